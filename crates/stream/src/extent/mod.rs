//! Extent replicas on local disk: the file format ([`format`]), one replica ([`replica`]) and
//! all replicas of a node ([`store`]).

pub mod format;
pub mod replica;
pub mod store;

pub use format::{FILE_HEADER_LEN, RECORD_HEADER_LEN, RECORD_PAYLOAD_BYTES_MAX};
pub use replica::{ExtentReplica, ReadBatch, ReplicaState};
pub use store::{ExtentStore, ExtentSummary};
