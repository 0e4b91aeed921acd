//! Location service: the global bucket namespace.
//!
//! Bucket names are unique across every stamp. Creating a bucket reserves its name here first,
//! recording which stamp holds it and which access key owns it; deleting the bucket releases
//! the name. Today one stamp registers itself; the table already answers "which stamp?".
//!
//! Modules:
//! - [`store`]: the sled-backed table bucket -> location (versioned, checksummed values).
//! - [`service`]: the `Location` gRPC service over the store.
//! - [`node`]: [`LocationOptions`] (file / environment / flags) and [`start`], one running node.
//! - [`machine`]: stamps and bucket names as a strata-raft state machine, for the 3-member
//!   location group that replaces the single store (built and tested; not served yet).
//!
//! Invariant: a name is reserved by at most one owner at a time: reservation is one atomic
//! compare-and-swap on the table, flushed to disk before it is acknowledged.

pub mod machine;
pub mod node;
pub mod service;
pub mod store;

pub use node::{start, LocationOptions, RunningLocation};

pub use machine::{LocationCommand, LocationMachine, LocationResponse};
pub use service::LocationService;
pub use store::{LocationStore, StoreError};
