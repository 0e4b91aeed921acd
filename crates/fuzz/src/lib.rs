//! Fuzz targets over every parser that reads bytes Strata did not write itself in this
//! process: what clients send (SigV4 headers and presigned queries, aws-chunked bodies, S3 XML
//! bodies) and what the disks and streams hand back (extent records, commit-log records and
//! checkpoints).
//!
//! Each target is a plain `fn(&[u8])` that feeds the bytes to the real parsers and asserts the
//! invariants that are cheap to check: bad input is an error, never a panic; what decodes
//! re-encodes to what was read; what is accepted round-trips. Two drivers call them:
//! - the libFuzzer wrappers in `fuzz/fuzz_targets/` (cargo-fuzz, coverage-guided; `fuzz/run.sh`),
//! - [`run::run_bounded`], the deterministic stable-Rust run `cargo test -p strata-fuzz` does in
//!   CI: every checked-in corpus file and regression input, then a bounded number of seeded
//!   mutations of them ([`mutate`]).
//!
//! Module map:
//! - [`sigv4`]: HTTP requests built from the bytes (header-signed, presigned or unsigned;
//!   plain, aws-chunked with signed chunks, or aws-chunked with trailers) through the
//!   front-end's real service stack (`app(build_s3_service(..))`) over a sink S3.
//! - [`xml`]: the S3 XML bodies the front-end accepts, through s3s's deserializer and the
//!   front-end's own validation (CORS, lifecycle, tagging, CompleteMultipartUpload).
//! - [`extent`]: extent record headers and seal markers, and a replica file opened and read
//!   back the way an extent node recovers it.
//! - [`log`]: commit-log entries and checkpoint records, and fragment reassembly.
//! - [`mutate`]: the seeded mutator; [`run`]: corpus loading and the bounded run; [`seeds`]:
//!   the seed corpus as code.
//!
//! Corpora live in `fuzz/corpus/<target>/`, crash inputs in `fuzz/regressions/<target>/`
//! (replayed by the bounded run forever after); see docs/security.md, "Fuzzing".

pub mod extent;
pub mod log;
pub mod mutate;
pub mod run;
pub mod seeds;
pub mod sigv4;
pub mod xml;

/// One fuzz target: its name (the directory of its corpus) and its entry point.
#[derive(Clone, Copy)]
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, in the order the docs list them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "sigv4",
        run: sigv4::sigv4,
    },
    Target {
        name: "s3_xml",
        run: xml::s3_xml,
    },
    Target {
        name: "extent_records",
        run: extent::extent_records,
    },
    Target {
        name: "log_records",
        run: log::log_records,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().copied().find(|target| target.name == name)
}
