//! The front-end's tests, in one binary (one link on a 2-core machine): signed HTTP through
//! the real service stack to a real stamp started in process (`../common`: stream layer,
//! partition manager, partition servers, location service).
//!
//! - `sigv4`: AWS's published SigV4 examples and the auth hooks, over a stub S3 (no stamp).
//! - `objects`: buckets, objects, ranges, conditions, listing, copies, deletes, ownership.
//! - `list`: listings over three ranges on two servers, non-contiguous on one.
//! - `multipart`: multipart uploads and UploadPartCopy across servers.
//! - `failover`: an owner that dies in the middle of a call.
//! - `perimeter`: the edge against hostile clients (SigV2, presigned bounds, metadata size,
//!   protection headers, connection bounds, cached CORS preflights).

#[path = "../common/mod.rs"]
mod common;

mod failover;
mod list;
mod multipart;
mod objects;
mod perimeter;
mod sigv4;
