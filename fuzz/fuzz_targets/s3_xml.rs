//! libFuzzer wrapper of `strata_fuzz::xml::s3_xml` (see crates/fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::xml::s3_xml(data));
