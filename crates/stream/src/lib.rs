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
//! - With 3 healthy racks, no rack holds two replicas of one extent.
//! - Sealed replicas of an extent are bitwise identical (a returning replica is cut to the
//!   sealed length or re-copied).
//!
//! Self-healing (the stream manager's repair loop, [`manager::repair`]): nodes heartbeat their
//! extents; a node silent past `node_timeout_ms` is dead until it returns. Every pass derives
//! its to-do list from sled + liveness (so it resumes after any crash) and takes idempotent
//! steps: an open extent with a dead (or bad) replica is sealed at the commit length; a sealed
//! extent with fewer than 3 good replicas (healthy node, full sealed length) is copied by the
//! TARGET node from a good replica (`CopyExtent`: CRC-checked, temp file, fsync, installed
//! sealed) and only then swapped into the replica set; a returning replica is sealed at the
//! sealed length or re-copied; surplus replicas are deleted; replicas reported bad by readers
//! or by each node's scrubber (`ReportBadReplica`) are rewritten from a good one; extents no
//! stream references (`DeleteStream`, `TrimStream`) and replicas of unknown extents are
//! deleted after a safety delay. Copies are bounded in number and bandwidth.
//!
//! Placement with only 2 healthy racks (a rack is lost): we do NOT wait for a third rack, as
//! writes would stall. A new extent, or a re-replicated one, gets its 3 replicas on the 2
//! healthy racks (2 on one rack, on distinct nodes), and is reported `misplaced`; once a third
//! rack is healthy again, the repair copies one of the doubled replicas to it and drops the
//! surplus one, restoring 3 replicas on 3 racks. With a single healthy rack, no extent is
//! allocated (losing that rack would lose everything) and writes fail with UNAVAILABLE.
//!
//! Modules:
//! - [`extent`]: on-disk format, one replica, all replicas of a node (recovery of torn tails).
//! - [`node`]: the `ExtentNode` gRPC service and the heartbeat; [`start_extent_node`].
//! - [`manager`]: metadata, placement, sealing, the `StreamManager` service;
//!   [`start_stream_manager`].
//! - [`options`]: what an operator sets for each node kind (file / environment / flags).
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
pub mod options;

pub use client::{RecordPos, StreamClient, StreamWriter};
pub use error::{Result, StreamError};
pub use manager::{
    start_stream_manager, start_stream_manager_with_repair, ManagerSettings, RepairSettings,
    RunningStreamManager, StreamManagerConfig,
};
pub use node::{
    start_extent_node, start_extent_node_with_scrub, ExtentNodeConfig, RunningExtentNode,
    ScrubSettings,
};
pub use options::{ExtentNodeOptions, StreamManagerOptions};
