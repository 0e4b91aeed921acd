//! `strata-partition-server`: serves the range partitions the manager assigns to it.

use clap::Parser;
use strata_partition::node::PartitionNodeOptions;
use strata_stream::StreamClient;
use strata_util::config::NodeFlags;
use strata_util::{admin, rpc, shutdown::Shutdown};

/// Partition server: owns key ranges, keeps their index in the stream layer. Every flag can
/// also be set in the `--config` TOML file (key = flag name with `_`) or as
/// `STRATA_<FLAG_NAME>`; flags win over the environment, which wins over the file.
#[derive(Parser, Debug, serde::Serialize)]
#[command(version, about)]
struct Flags {
    #[command(flatten)]
    #[serde(flatten)]
    node: NodeFlags,
    /// Partition manager members' gRPC addresses, comma-separated.
    #[arg(long)]
    manager: Option<String>,
    /// Stream manager gRPC address(es), comma-separated.
    #[arg(long)]
    stream_manager: Option<String>,
    /// Overrides the server id kept in the data folder.
    #[arg(long)]
    server_id: Option<String>,
    /// Heartbeat to the partition manager every this many ms (250).
    #[arg(long)]
    heartbeat_interval_ms: Option<u64>,
    /// Serve only while the manager answered a heartbeat sent less than this long ago (1000;
    /// keep it below the manager's --server-timeout-ms).
    #[arg(long)]
    lease_ms: Option<u64>,
    /// Checkpoint a range after this many commit-log entries (10000).
    #[arg(long)]
    checkpoint_every_entries: Option<u64>,
    /// Compact a sealed data extent when its live bytes / length is below this (0.5).
    #[arg(long)]
    compaction_live_ratio_max: Option<f64>,
    /// Live bytes copied per compaction pass at most (64 MiB).
    #[arg(long)]
    compaction_bytes_per_pass_max: Option<u64>,
    /// Compaction copies at most this many bytes per second (32 MiB).
    #[arg(long)]
    compaction_bytes_per_sec_max: Option<u64>,
    /// Pause between compaction passes (5000).
    #[arg(long)]
    compaction_interval_ms: Option<u64>,
    /// Requests per second one range accepts before answering SlowDown (5500; 0 = no limit).
    #[arg(long)]
    range_requests_per_sec_max: Option<u32>,
    /// Requests per second one bucket accepts on this server (11000; 0 = no limit).
    #[arg(long)]
    bucket_requests_per_sec_max: Option<u32>,
    /// Pause between lifecycle passes over the served ranges (60000).
    #[arg(long)]
    lifecycle_interval_ms: Option<u64>,
    /// Length of a lifecycle "day" in ms (86400000). Test-only: integration tests shorten it
    /// (through STRATA_LIFECYCLE_DAY_MS, which `strata up` passes on) to watch rules fire.
    #[arg(long)]
    lifecycle_day_ms: Option<u64>,
    /// Location group members' gRPC addresses, comma-separated: replication finds destination
    /// buckets on other stamps there (none: destinations on this stamp only).
    #[arg(long)]
    location: Option<String>,
    /// The stamp this server belongs to (required with --location).
    #[arg(long)]
    stamp: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    strata_util::init_tracing();
    let flags = Flags::parse();
    let (options, identity): (PartitionNodeOptions, _) =
        strata_util::config::load_node(&flags.node, &flags)?;
    strata_util::rpc::install_identity(identity)?;
    options.validate()?;
    let server_id = options.server_id()?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let (listener, grpc_addr) = rpc::bind(options.listen).await?;
    let health = admin::always_healthy("partition-server");
    let (http_addr, _) = admin::serve(options.http_listen, health, shutdown.token()).await?;
    let config = options.server_config(server_id.clone(), grpc_addr, http_addr);
    let streams = StreamClient::new(options.stream_manager_addrs());
    let server = strata_partition::start(config, streams, listener, shutdown.token()).await?;
    tracing::info!(%server_id, %grpc_addr, %http_addr, "strata-partition-server listening");
    shutdown.spawn(server.join());
    shutdown.wait(std::time::Duration::from_secs(20)).await;
    Ok(())
}
