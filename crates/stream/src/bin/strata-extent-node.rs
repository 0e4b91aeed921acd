//! `strata-extent-node`: serves extent replicas from a data folder and heartbeats to the
//! stream manager.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use strata_stream::node::scrub::{SCRUB_BYTES_PER_SEC_DEFAULT, SCRUB_INTERVAL_MS_DEFAULT};
use strata_stream::node::HEARTBEAT_INTERVAL_MS_DEFAULT;
use strata_stream::{start_extent_node_with_scrub, ExtentNodeConfig, ScrubSettings};
use strata_util::{admin, config, rpc, shutdown::Shutdown};

#[derive(Parser, Debug)]
#[command(about = "Strata extent node: append-only replicated extents on local disk")]
struct Args {
    /// TOML file whose keys are these flags' long names with `_`; flags win.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// gRPC listen address.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Admin HTTP listen address (/health, /metrics).
    #[arg(long)]
    http_listen: Option<SocketAddr>,
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
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    http_listen: Option<SocketAddr>,
    rack: Option<String>,
    node_id: Option<String>,
    stream_manager: Option<String>,
    heartbeat_interval_ms: Option<u64>,
    scrub_bytes_per_sec: Option<u64>,
    scrub_interval_ms: Option<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    strata_util::init_tracing();
    let args = Args::parse();
    let file: FileConfig = config::load(args.config.as_deref())?;
    let loopback_any: SocketAddr = ([127, 0, 0, 1], 0).into();
    let rack = args
        .rack
        .or(file.rack)
        .ok_or_else(|| anyhow::anyhow!("--rack is required (flag or config)"))?;
    let managers = args
        .stream_manager
        .or(file.stream_manager)
        .unwrap_or_default();
    let stream_manager_addrs: Vec<String> = managers
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect();
    if stream_manager_addrs.is_empty() {
        anyhow::bail!("--stream-manager is required (flag or config)");
    }
    let node_config = ExtentNodeConfig {
        data_dir: config::pick(
            args.data_dir,
            file.data_dir,
            PathBuf::from("data/extent-node"),
        ),
        rack,
        node_id: args.node_id.or(file.node_id),
        stream_manager_addrs,
        heartbeat_interval_ms: config::pick(
            args.heartbeat_interval_ms,
            file.heartbeat_interval_ms,
            HEARTBEAT_INTERVAL_MS_DEFAULT,
        ),
        advertise_addr: None,
    };

    let scrub = ScrubSettings {
        bytes_per_sec: config::pick(
            args.scrub_bytes_per_sec,
            file.scrub_bytes_per_sec,
            SCRUB_BYTES_PER_SEC_DEFAULT,
        ),
        interval_ms: config::pick(
            args.scrub_interval_ms,
            file.scrub_interval_ms,
            SCRUB_INTERVAL_MS_DEFAULT,
        ),
    };

    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let (listener, _) = rpc::bind(config::pick(args.listen, file.listen, loopback_any)).await?;
    let node = start_extent_node_with_scrub(node_config, scrub, listener, shutdown.token()).await?;
    let http_listen = config::pick(args.http_listen, file.http_listen, loopback_any);
    let (http_addr, admin_task) =
        admin::serve(http_listen, node.health_check(), shutdown.token()).await?;
    node.set_http_addr(http_addr);
    tracing::info!(node_id = %node.node_id, rack = %node.rack, grpc = %node.addr, http = %http_addr, "strata-extent-node listening");
    shutdown.spawn(node.join());
    shutdown.spawn(admin_task);
    shutdown.wait(Duration::from_secs(10)).await;
    Ok(())
}
