//! `strata-extent-node`: serves extent replicas from a data folder and heartbeats to the
//! stream manager.

use clap::Parser;
use std::time::Duration;
use strata_stream::{start_extent_node_with_scrub, ExtentNodeOptions};
use strata_util::config::NodeFlags;
use strata_util::{admin, rpc, shutdown::Shutdown};

/// Strata extent node: append-only replicated extents on local disk. Every flag can also be
/// set in the `--config` TOML file (key = flag name with `_`) or as `STRATA_<FLAG_NAME>`;
/// flags win over the environment, which wins over the file.
#[derive(Parser, Debug, serde::Serialize)]
#[command(about = "Strata extent node: append-only replicated extents on local disk")]
struct Flags {
    #[command(flatten)]
    #[serde(flatten)]
    node: NodeFlags,
    /// Rack label (required, by flag or config file).
    #[arg(long)]
    rack: Option<String>,
    /// Overrides the node id kept in the data folder.
    #[arg(long)]
    node_id: Option<String>,
    /// Stream manager gRPC addresses, comma-separated.
    #[arg(long)]
    stream_manager: Option<String>,
    #[arg(long)]
    heartbeat_interval_ms: Option<u64>,
    /// Rate at which the scrubber re-verifies sealed replicas (0 = no scrubbing).
    #[arg(long)]
    scrub_bytes_per_sec: Option<u64>,
    /// Pause between two scrub passes.
    #[arg(long)]
    scrub_interval_ms: Option<u64>,
    /// Bytes this node offers for extents, reported for placing buckets on the least full
    /// stamp (not enforced) [default: the size of the file system holding --data-dir].
    #[arg(long)]
    capacity_bytes: Option<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    strata_util::init_tracing();
    let flags = Flags::parse();
    let (options, identity): (ExtentNodeOptions, _) =
        strata_util::config::load_node(&flags.node, &flags)?;
    strata_util::rpc::install_identity(identity)?;
    let (node_config, scrub) = options.node_config()?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let (listener, _) = rpc::bind(options.listen).await?;
    let node = start_extent_node_with_scrub(node_config, scrub, listener, shutdown.token()).await?;
    let (http_addr, admin_task) =
        admin::serve(options.http_listen, node.health_check(), shutdown.token()).await?;
    node.set_http_addr(http_addr);
    tracing::info!(node_id = %node.node_id, rack = %node.rack, grpc = %node.addr, http = %http_addr, "strata-extent-node listening");
    shutdown.spawn(node.join());
    shutdown.spawn(admin_task);
    shutdown.wait(Duration::from_secs(10)).await;
    Ok(())
}
