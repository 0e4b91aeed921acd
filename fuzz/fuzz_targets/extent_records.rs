//! libFuzzer wrapper of `strata_fuzz::extent::extent_records` (see crates/fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::extent::extent_records(data));
