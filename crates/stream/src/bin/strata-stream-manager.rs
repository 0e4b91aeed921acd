//! `strata-stream-manager`: one member of the Raft group that keeps the stream layer's
//! metadata (streams, extent replica sets) and watches extent-node health.

use clap::Parser;
use std::time::Duration;
use strata_stream::{start_stream_manager_with_repair, StreamManagerOptions};
use strata_util::config::NodeFlags;
use strata_util::{admin, rpc, shutdown::Shutdown};

/// Strata stream manager member: streams, extents and extent-node health, kept by a Raft
/// group. Every flag can also be set in the `--config` TOML file (key = flag name with `_`)
/// or as `STRATA_<FLAG_NAME>`; flags win over the environment, which wins over the file.
#[derive(Parser, Debug, serde::Serialize)]
#[command(
    version,
    about = "Strata stream manager member: streams, extents and extent-node health, kept by a Raft group"
)]
struct Flags {
    #[command(flatten)]
    #[serde(flatten)]
    node: NodeFlags,
    /// This member's Raft node id (a key of --members).
    #[arg(long)]
    node_id: Option<u64>,
    /// Every member, this one included: "1=127.0.0.1:7201,2=127.0.0.1:7202,3=127.0.0.1:7203".
    /// Default: this member alone, at --listen.
    #[arg(long)]
    members: Option<String>,
    /// Writers seal an extent once it reaches this many bytes.
    #[arg(long)]
    extent_size_bytes_max: Option<u64>,
    /// A node not heard from for this long is unhealthy.
    #[arg(long)]
    node_timeout_ms: Option<u64>,
    /// Replica copies (re-replication, rewrites of bad replicas) in flight at most.
    #[arg(long)]
    repair_concurrency: Option<usize>,
    /// Total repair copy bandwidth, shared by the copies in flight (0 = unbounded).
    #[arg(long)]
    repair_bandwidth_bytes_per_sec: Option<u64>,
    /// Pause between two repair passes.
    #[arg(long)]
    repair_interval_ms: Option<u64>,
    /// Safety delay before unreferenced extents and unknown replicas are deleted.
    #[arg(long)]
    gc_delay_ms: Option<u64>,
    /// This stamp's name (as its front-ends register it) [default: stamp-1].
    #[arg(long)]
    stamp: Option<String>,
    /// The location group's members, comma-separated gRPC addresses: the leader reports the
    /// stamp's capacity and bytes stored there every 5 s [default: no reports].
    #[arg(long)]
    location: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    strata_util::init_tracing();
    let flags = Flags::parse();
    let (options, identity): (StreamManagerOptions, _) =
        strata_util::config::load_node(&flags.node, &flags)?;
    strata_util::rpc::install_identity(identity)?;
    let (manager_config, repair, listen) = options.manager_config()?;
    let fill_report = options.fill_report()?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let (listener, _) = rpc::bind(listen).await?;
    let manager =
        start_stream_manager_with_repair(manager_config, repair, listener, shutdown.token())
            .await?;
    let (http_addr, admin_task) = admin::serve(
        options.http_listen,
        manager.health_check(),
        shutdown.token(),
    )
    .await?;
    let node_id = options.node_id.get();
    tracing::info!(node_id, grpc = %manager.addr, http = %http_addr, "strata-stream-manager listening");
    if let Some((stamp, location)) = fill_report {
        shutdown.spawn(manager.report_fill(stamp, location, shutdown.token()));
    }
    shutdown.spawn(manager.join());
    shutdown.spawn(admin_task);
    shutdown.wait(Duration::from_secs(10)).await;
    Ok(())
}
