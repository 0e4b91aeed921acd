//! Stream layer: durable, append-only, replicated storage for the partition layer.
//!
//! An **extent** is an append-only file of CRC-framed records on an extent node; every extent
//! has 3 replicas on 3 distinct racks. A **stream** is a named, ordered list of extents of
//! which only the last is open for appends. The **stream manager** keeps streams and replica
//! sets (sled) and node liveness (heartbeats); the **client** appends through the primary
//! replica, seals and moves on when an extent is full or an append fails, and reads from any
//! replica that passes the checksum.
//!
//! Invariants:
//! - An append is acknowledged only when every replica of the open extent holds it durably
//!   (fsynced) at the same offset; so sealing at the smallest replica length (after fencing
//!   the replicas) never loses an acknowledged record.
//! - A read never returns bytes of a record that fails its length or CRC check.
//! - No rack holds two replicas of one extent.
//!
//! Modules:
//! - [`extent`]: on-disk format, one replica, all replicas of a node (recovery of torn tails).
//! - [`node`]: the `ExtentNode` gRPC service and the heartbeat; [`start_extent_node`].
//! - [`manager`]: metadata, placement, sealing, the `StreamManager` service;
//!   [`start_stream_manager`].
//! - [`client`]: [`StreamClient`] and [`StreamWriter`], what the partition layer uses.
//! - [`channels`]: cached gRPC clients with bounded calls. [`metrics`]: Prometheus metrics.
//! - [`error`]: [`StreamError`], the crate's one error type.

pub mod channels;
pub mod client;
pub mod error;
pub mod extent;
pub mod manager;
pub mod metrics;
pub mod node;

pub use client::{RecordPos, StreamClient, StreamWriter};
pub use error::{Result, StreamError};
pub use manager::{
    start_stream_manager, ManagerSettings, RunningStreamManager, StreamManagerConfig,
};
pub use node::{start_extent_node, ExtentNodeConfig, RunningExtentNode};
