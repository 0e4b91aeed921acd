//! `strata-stream-manager`: streams, extent replica sets and node health for the stream layer.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use strata_stream::manager::{
    EXTENT_SIZE_BYTES_MAX_DEFAULT, GC_DELAY_MS_DEFAULT, NODE_TIMEOUT_MS_DEFAULT,
    REPAIR_BANDWIDTH_BYTES_PER_SEC_DEFAULT, REPAIR_CONCURRENCY_DEFAULT, REPAIR_INTERVAL_MS_DEFAULT,
};
use strata_stream::{
    start_stream_manager_with_repair, ManagerSettings, RepairSettings, StreamManagerConfig,
};
use strata_util::{admin, config, rpc, shutdown::Shutdown};

#[derive(Parser, Debug)]
#[command(about = "Strata stream manager: streams, extents and extent-node health")]
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
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    http_listen: Option<SocketAddr>,
    extent_size_bytes_max: Option<u64>,
    node_timeout_ms: Option<u64>,
    repair_concurrency: Option<usize>,
    repair_bandwidth_bytes_per_sec: Option<u64>,
    repair_interval_ms: Option<u64>,
    gc_delay_ms: Option<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    strata_util::init_tracing();
    let args = Args::parse();
    let file: FileConfig = config::load(args.config.as_deref())?;
    let loopback_any: SocketAddr = ([127, 0, 0, 1], 0).into();
    let manager_config = StreamManagerConfig {
        data_dir: config::pick(
            args.data_dir,
            file.data_dir,
            PathBuf::from("data/stream-manager"),
        ),
        settings: ManagerSettings {
            extent_size_bytes_max: config::pick(
                args.extent_size_bytes_max,
                file.extent_size_bytes_max,
                EXTENT_SIZE_BYTES_MAX_DEFAULT,
            ),
            node_timeout_ms: config::pick(
                args.node_timeout_ms,
                file.node_timeout_ms,
                NODE_TIMEOUT_MS_DEFAULT,
            ),
        },
    };

    let repair = RepairSettings {
        concurrency: config::pick(
            args.repair_concurrency,
            file.repair_concurrency,
            REPAIR_CONCURRENCY_DEFAULT,
        ),
        bandwidth_bytes_per_sec: config::pick(
            args.repair_bandwidth_bytes_per_sec,
            file.repair_bandwidth_bytes_per_sec,
            REPAIR_BANDWIDTH_BYTES_PER_SEC_DEFAULT,
        ),
        interval_ms: config::pick(
            args.repair_interval_ms,
            file.repair_interval_ms,
            REPAIR_INTERVAL_MS_DEFAULT,
        ),
        gc_delay_ms: config::pick(args.gc_delay_ms, file.gc_delay_ms, GC_DELAY_MS_DEFAULT),
    };

    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let (listener, _) = rpc::bind(config::pick(args.listen, file.listen, loopback_any)).await?;
    let manager =
        start_stream_manager_with_repair(manager_config, repair, listener, shutdown.token())
            .await?;
    let http_listen = config::pick(args.http_listen, file.http_listen, loopback_any);
    let (http_addr, admin_task) =
        admin::serve(http_listen, manager.health_check(), shutdown.token()).await?;
    tracing::info!(grpc = %manager.addr, http = %http_addr, "strata-stream-manager listening");
    shutdown.spawn(manager.join());
    shutdown.spawn(admin_task);
    shutdown.wait(Duration::from_secs(10)).await;
    Ok(())
}
