//! Partition layer: range partitions of the sorted key space and the partition-server service.
//!
//! A partition server serves the ranges `[low, high)` the partition manager assigns to it. For
//! each range it keeps an in-memory sorted index (encoded key -> object or bucket record) whose
//! durable state lives entirely in three streams of the stream layer:
//! - `range-<id>/log`: the commit log, one entry per index update (with a sequence number),
//!   one record or, for an entry over the stream's record limit, several applied only whole;
//! - `range-<id>/checkpoint`: sorted snapshots of the index (and of the recent writes by write
//!   id), each naming the log position it covers, so a load is "newest checkpoint + replay of
//!   the log after it";
//! - `range-<id>/data`: object bytes, one record per chunk of at most `CHUNK_SIZE_BYTES`.
//!
//! Nothing on the server's own disk is needed to serve a range: kill it, and another server
//! rebuilds the same index from the streams.
//!
//! Modules, in layers: a module uses only modules listed before it (so the module graph has no
//! cycle; a script over the `crate::` paths outside comments and tests checks it):
//! 1. Leaves.
//!    - [`config`]: the server's settings and its background work's (compaction, lifecycle,
//!      request-rate limits).
//!    - [`error`]: the crate's error type and its mapping to gRPC statuses.
//!    - [`records`]: the stored records (index values, log records, checkpoints; proto package
//!      `strata.record`) and their one conversion to and from wire types.
//!    - [`checksum`]: S3's additional checksums (CRC32, CRC32C, CRC64NVME, SHA-1, SHA-256), and
//!      composite / full-object checksums of multipart objects.
//!    - [`load`]: each range's requests/s, bytes/s, sampled request keys and size, reported to
//!      the manager in heartbeats (its split, merge and move decisions).
//!    - [`uploads`]: uploads in flight on a range (chunks appended, not yet committed).
//!    - [`replication_rules`]: which new versions a bucket's replication rules cover (marked
//!      PENDING in the write's own commit).
//!    - [`replication_cursors`]: how far a range's versions have been replicated (a watermark
//!      per bucket over the versions' marks, committed in the range's log and checkpoints).
//!    - [`replication_backlog`]: the versions a range still owes its destinations, in memory
//!      (refilled by an index scan after a load), and the watermarks they allow.
//! 2. Encodings and streams.
//!    - [`format`]: the versioned on-stream encodings of log entries and checkpoints (a message
//!      larger than one stream record is written as several and applied only whole).
//!    - [`index`]: what a range's index maps keys to, and one change to it.
//!    - [`streams`]: a range's three streams by name, deleting them, which range ids are free.
//!    - [`throttle`]: per-range and per-bucket request-rate limits (SlowDown instead of queues).
//!    - [`bucket_gate`]: write leases on buckets, which order DeleteBucket and a bucket move's
//!      fence against writes into the bucket on every range (no object lands in a bucket being
//!      deleted, no key of a fenced bucket changes).
//! 3. One range.
//!    - [`recent_writes`]: a range's writes of the last minute by write id (kept in
//!      checkpoints), so a retried write that took effect is answered with it.
//!    - [`persist`]: appending commits and checkpoints, finding the newest checkpoint, replay.
//!    - [`range`]: one loaded range: index, commit path, load (checkpoint + replay),
//!      checkpointing.
//!    - [`compaction`]: data-stream compaction (copy live chunks off mostly-dead old extents,
//!      re-point the index, trim the stream) so DELETE and overwrite free disk.
//! 4. The server.
//!    - [`server`]: the set of ranges this server serves, reconciled with the manager by
//!      heartbeat.
//! 5. What runs on the server.
//!    - [`reshape`]: preparing a split or merge (freeze, seal, share data extents, children's
//!      first checkpoints) for the manager to commit.
//!    - [`service`]: the `PartitionServer` gRPC service (buckets, objects, listing, and the
//!      operator's bucket moves between stamps: rows out, rows in, the record's move marks).
//!    - [`leftovers`]: deletes the streams of range ids that can never serve (a split's or
//!      merge's children whose commit never applied), so shared extents are freed.
//!    - [`replication`]: the shipper, which sends each range's owed versions to their
//!      destination buckets (ApplyReplica on the destination's owner) in commit order per key,
//!      and commits the ranges' replication cursors.
//!    - [`lifecycle`]: bucket lifecycle rules (expiration, aborting old uploads) carried out by
//!      a bounded background pass per range (uses the service's version rules).
//! 6. The node.
//!    - [`node`]: one partition server node: its options (file / environment / flags) and
//!      [`start`] (gRPC service and background loops).
//!
//! Invariants:
//! - An index update is applied in memory only after its log record is durable on every
//!   replica, and in sequence order; reads see only applied updates, so once a write is
//!   acknowledged every later read on the owner sees it (read-after-write, list-after-write).
//! - An object becomes visible only when all of its chunks are durable and its Content-MD5 and
//!   length checked out; a failed or aborted upload changes no index entry.
//! - A range serves only under a live lease (a heartbeat the manager's leader answered less
//!   than `lease_ms` ago), and only at the epoch of its assignment; a new owner seals the old
//!   owner's open log extent before serving, so a fenced server can acknowledge nothing.
//! - A frozen range commits nothing; the children of a split or merge start from the frozen
//!   parents' final index, so no acknowledged write is lost or reordered by a reshape.
//! - A write adds a key to a bucket only under a write lease on the bucket's record, checked
//!   under its range's commit lock; DeleteBucket marks the record, waits the leases out, then
//!   counts every range under its commit lock, so no object outlives its bucket.
//! - Every write into a bucket, also one that only changes or removes keys, passes the same
//!   gate; a move's FENCE marks the record and waits the leases out the same way, so once it
//!   answered no key of the bucket changes and the mover's scan (under each range's commit
//!   lock) sees every write. A move's copy (importing) or moved record takes no client write.
//!   (Compaction only re-points chunks, changing no content; the mover's own calls check the
//!   record's move marks themselves.)
//! - A data extent is trimmed only when no index entry references it and no upload in flight
//!   may have written to it; GETs racing a trim rely on the stream manager's GC delay.

pub mod bucket_gate;
pub mod checksum;
pub mod compaction;
pub mod config;
pub mod error;
pub mod format;
pub mod index;
pub mod leftovers;
pub mod lifecycle;
pub mod load;
pub mod node;
pub mod persist;
pub mod range;
pub mod recent_writes;
pub mod records;
pub mod replication;
pub mod replication_backlog;
pub mod replication_cursors;
pub mod replication_rules;
pub mod reshape;
pub mod server;
pub mod service;
pub mod streams;
pub mod throttle;
pub mod uploads;

pub use compaction::CompactionReport;
pub use config::{
    CompactionConfig, LifecycleConfig, PartitionServerConfig, StampsConfig, ThrottleConfig,
};
pub use error::PartitionError;
pub use node::start;
pub use server::PartitionServerState;
pub use service::PartitionService;
