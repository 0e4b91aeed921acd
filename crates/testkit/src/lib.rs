//! strata-testkit: the one in-process stamp starter the integration tests share (a
//! dev-dependency only, never published). Every node runs on 127.0.0.1 over real gRPC, in a
//! temp dir, started through its layer's own start function (the code its binary runs), and
//! stops when its cancellation token is cancelled. Waits are on conditions, never bare sleeps.
//!
//! - this file: [`wait_for`] (poll a condition, fail the test after [`WAIT`]) and
//!   [`TempDirs`] (the temp dirs a test's nodes live in, removed when dropped).
//! - [`stream`]: [`StreamLayer`], a stream manager and N extent nodes on N racks
//!   (`strata_stream::start_stream_manager` / `start_extent_node`).
//! - [`nodes`]: a single-member partition manager with its planner off
//!   ([`start_partition_manager`], `strata_manager::start`), the location service
//!   ([`start_location`], `strata_location::start`) and partition servers
//!   ([`start_partition_server`], `strata_partition::start`).
//!
//! What only one crate's tests need (the front-end's HTTP client and range layouts, the
//! partition tests' servers without a manager) stays in that crate's `tests/common`.

pub mod nodes;
pub mod stream;

pub use nodes::{start_location, start_partition_manager, start_partition_server, PartitionServer};
pub use stream::StreamLayer;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Bound on every wait of the harness: far above what a healthy stamp needs, so a timeout
/// means a bug, not a slow machine.
pub const WAIT: Duration = Duration::from_secs(60);

/// Pause between two polls of a condition.
const POLL_INTERVAL_MS: u64 = 20;

/// Polls `check` until it yields a value; fails the test (naming `what`) after [`WAIT`].
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
    }
}

/// The temp dirs of a test's nodes; all are removed when this is dropped, so it must outlive
/// the nodes using them.
#[derive(Default)]
pub struct TempDirs(Vec<TempDir>);

impl TempDirs {
    /// A new empty temp dir, kept until `self` is dropped.
    pub fn add(&mut self) -> PathBuf {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().to_path_buf();
        self.0.push(dir);
        path
    }
}

/// A listener on a free loopback port, and its address.
pub async fn loopback_listener() -> (tokio::net::TcpListener, String) {
    let (listener, addr) = strata_util::rpc::bind(([127, 0, 0, 1], 0).into())
        .await
        .expect("a free loopback port");
    (listener, addr.to_string())
}
