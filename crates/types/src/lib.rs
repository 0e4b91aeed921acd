//! Vocabulary shared by every Strata layer.
//!
//! - [`ids`]: typed ids (`ExtentId`, `RangeId`, `NodeId`, `ServerId`) that cannot be mixed up.
//! - [`Epoch`]: the fencing number of a range assignment, its own type so it is never used as
//!   an id or formatted into a key by accident.
//! - [`keys`]: the one sorted key space `(table, bucket, key)` that ranges partition.
//! - [`error_detail`]: the one error contract across gRPC: [`ErrorDetail`] (typed ids inside)
//!   written into and read from a `tonic::Status` only there.
//! - [`limits`]: every S3 limit (sizes, counts, page sizes), with one integer type rule.
//!
//! Invariant: the key encoding is order-preserving: for one bucket, encoded object keys sort
//! exactly as the raw key bytes do, which is S3's listing order.

pub mod error_detail;
pub mod ids;
pub mod keys;
pub mod limits;
pub mod role;

pub use error_detail::ErrorDetail;
pub use ids::{Epoch, ExtentId, NodeId, RangeId, ServerId};
pub use role::Role;

/// Size of one chunk of object bytes as it moves between layers and is stored as one record.
/// Every buffer on the data path is bounded by a small multiple of this.
pub const CHUNK_SIZE_BYTES: usize = 1024 * 1024;

/// The move id that marks a bucket record as a geo-replica copy (issue 16): the copy a stamp
/// holds of a bucket homed on another stamp, filled only by replication. It is importing, so
/// it is never served, listed or expired; a bucket move to its stamp takes it over (its sync
/// passes then copy only what replication had not shipped).
pub const GEO_REPLICA_MOVE_ID: &str = "geo-replica";
