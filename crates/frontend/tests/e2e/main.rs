//! The front-end's tests, in one binary (one link on a 2-core machine): signed HTTP through
//! the real service stack to a real stamp started in process (`../common`: stream layer,
//! partition manager, partition servers, location service).
//!
//! - `sigv4`: AWS's published SigV4 examples and the auth hooks, over a stub S3 (no stamp).
//! - `objects`: buckets, objects, ranges, conditions, listing, copies, deletes, ownership.
//! - `list`: listings over three ranges on two servers, non-contiguous on one.
//! - `multipart`: multipart uploads and UploadPartCopy across servers.
//! - `failover`: an owner that dies in the middle of a call.

#[path = "../common/mod.rs"]
mod common;

mod failover;
mod list;
mod multipart;
mod objects;
mod sigv4;
