//! What every Strata node binary shares, so each `main.rs` stays a few dozen lines.
//!
//! - [`shutdown`]: graceful shutdown as a tree: one cancellation token per node, child tokens
//!   per component, a task tracker to wait on, SIGINT/SIGTERM wired to the root.
//! - [`admin`]: the admin HTTP server every node runs: `GET /health` and Prometheus `/metrics`.
//! - [`config`]: the one config pattern of every node: defaults < TOML file (`--config`) <
//!   environment (`STRATA_<FIELD>`) < flags, merged into a layer's serde options struct.
//! - [`rpc`]: gRPC channels with connect and request timeouts, one bounded [`rpc::ChannelPool`]
//!   of them per use, and serving a tonic router on a listener until shutdown.
//! - [`tls`]: mutual TLS on internal gRPC: a node's identity, who called, role checks.
//! - [`link`]: the client side of the mutual-TLS link between stamps (front-ends' listener).
//! - [`certs`]: making a deployment's CA and its nodes' certificates.
//! - [`retry`]: the one bounded retry-with-backoff (a time budget, doubling pauses).
//! - [`trace`]: the request id that follows one S3 request across nodes (span, gRPC metadata).
//! - [`files`]: small durable files (write to temp, fsync, rename, fsync the folder).
//! - [`codec`]: the one versioned, checksummed frame for records in sled and snapshot files.
//!
//! Invariant: every outgoing RPC made through [`rpc::channel`] (or a [`rpc::ChannelPool`]) has a
//! timeout and carries the current request id.

pub mod admin;
pub mod certs;
pub mod codec;
pub mod config;
pub mod files;
pub mod link;
pub mod retry;
pub mod rpc;
pub mod shutdown;
pub mod tls;
pub mod trace;

/// Starts logging to stderr, filtered by `RUST_LOG` (default `info`). Colours only when stderr
/// is a terminal: a node started by `strata up` or docker writes to a file or pipe, and escape
/// codes there break `grep` and every log reader.
pub fn init_tracing() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,h2=warn,hyper=warn,tower=warn,openraft=warn,sled=warn",
        )
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
