//! libFuzzer wrapper of `strata_fuzz::sigv4::sigv4` (see crates/fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::sigv4::sigv4(data));
