//! Generated gRPC code for every Strata service, compiled once from `proto/`.
//!
//! Modules mirror the proto packages:
//! - [`common`]: messages shared by several services (object metadata, chunk references).
//! - [`error`]: `ErrorDetail`, the typed error every Strata service puts in its status details
//!   (read and written only by `strata_types::error_detail`).
//! - [`stream`]: extent nodes and the stream manager (the stream layer).
//! - [`partition`]: partition servers (the object index over range partitions).
//! - [`manager`]: the partition manager Raft group (the partition map).
//! - [`location`]: the location service (bucket name -> stamp).
//! - [`raft`]: the transport between the members of a Raft group (both managers use it).
//! - [`record`]: what a partition server stores (index values, log records, checkpoints).
//! - [`replica_link`]: the framing of a replicated version sent over the link between stamps.
//!
//! Invariant: no other crate runs a proto compiler; every wire type comes from here.

#![allow(clippy::all, clippy::pedantic)]

pub mod common {
    tonic::include_proto!("strata.common");
}
pub mod error {
    tonic::include_proto!("strata.error");
}
pub mod stream {
    tonic::include_proto!("strata.stream");
}
pub mod partition {
    tonic::include_proto!("strata.partition");
}
pub mod manager {
    tonic::include_proto!("strata.manager");
}
pub mod location {
    tonic::include_proto!("strata.location");
}
pub mod raft {
    tonic::include_proto!("strata.raft");
}
pub mod record {
    tonic::include_proto!("strata.record");
}

pub mod replica_link;

/// Largest gRPC message any Strata service sends or accepts. Object data moves in chunks far
/// smaller than this (see `strata_types::CHUNK_SIZE_BYTES`), so the bound only stops abuse.
pub const GRPC_MESSAGE_SIZE_BYTES_MAX: usize = 16 * 1024 * 1024;
