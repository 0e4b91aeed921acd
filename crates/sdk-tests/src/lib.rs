//! The AWS SDK for Rust in Strata's client matrix. The crate holds no library code: its one
//! integration test (`tests/aws_sdk_s3.rs`) starts a real stamp with `strata up` (the binaries
//! of `cargo build --release --workspace --bins`, or `STRATA_BIN_DIR`) and drives it with
//! `aws-sdk-s3` as an application would, asserting that every byte round-trips.
