//! `strata-partition-server`: serves the range partitions the manager assigns to it.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use strata_partition::{
    server, CompactionConfig, LifecycleConfig, PartitionServerConfig, PartitionServerState,
    PartitionService, ThrottleConfig,
};
use strata_proto::partition::partition_server_server::PartitionServerServer;
use strata_stream::StreamClient;
use strata_util::{admin, config, files, rpc, shutdown::Shutdown};

/// Partition server: owns key ranges, keeps their index in the stream layer.
#[derive(Parser, Debug, Default, serde::Deserialize)]
#[command(version, about)]
#[serde(deny_unknown_fields, default)]
struct Args {
    /// TOML file whose keys are these flags' long names (with `_`); flags win.
    #[arg(long)]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Folder for the server's identity (its ranges live in streams, not here).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// gRPC listen address.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Admin HTTP listen address (/health, /metrics).
    #[arg(long)]
    http_listen: Option<SocketAddr>,
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
    /// Checkpoint a range after this many commit-log entries.
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
    #[arg(long, env = "STRATA_LIFECYCLE_INTERVAL_MS")]
    lifecycle_interval_ms: Option<u64>,
    /// Length of a lifecycle "day" in ms (86400000). Test-only: integration tests shorten it
    /// (through the environment, which `strata up` passes on) to watch rules fire.
    #[arg(long, env = "STRATA_LIFECYCLE_DAY_MS")]
    lifecycle_day_ms: Option<u64>,
}

fn split_addrs(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    strata_util::init_tracing();
    let flags = Args::parse();
    let file: Args = config::load(flags.config.as_deref())?;
    let data_dir = config::pick(
        flags.data_dir,
        file.data_dir,
        PathBuf::from("strata-data/partition"),
    );
    let listen = config::pick(flags.listen, file.listen, "127.0.0.1:0".parse()?);
    let http_listen = config::pick(flags.http_listen, file.http_listen, "127.0.0.1:0".parse()?);
    let manager_addrs = split_addrs(&flags.manager.or(file.manager).unwrap_or_default());
    let stream_addrs = split_addrs(
        &flags
            .stream_manager
            .or(file.stream_manager)
            .unwrap_or_default(),
    );
    anyhow::ensure!(!manager_addrs.is_empty(), "--manager is required");
    anyhow::ensure!(!stream_addrs.is_empty(), "--stream-manager is required");
    let server_id = match flags.server_id.or(file.server_id) {
        Some(id) => id,
        None => files::read_or_init(&data_dir.join("server-id"), || {
            format!("ps-{:08x}", rand::random::<u32>())
        })?,
    };

    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let (listener, grpc_addr) = rpc::bind(listen).await?;
    let (http_addr, _) = admin::serve(
        http_listen,
        admin::always_healthy("partition-server"),
        shutdown.token(),
    )
    .await?;
    let defaults = CompactionConfig::default();
    let throttle_defaults = ThrottleConfig::default();
    let lifecycle_defaults = LifecycleConfig::default();
    let config = PartitionServerConfig {
        server_id: server_id.clone(),
        advertise_addr: grpc_addr.to_string(),
        http_addr: http_addr.to_string(),
        manager_addrs,
        heartbeat_interval_ms: config::pick(
            flags.heartbeat_interval_ms,
            file.heartbeat_interval_ms,
            250,
        ),
        lease_ms: config::pick(flags.lease_ms, file.lease_ms, 1_000),
        checkpoint_every_entries: config::pick(
            flags.checkpoint_every_entries,
            file.checkpoint_every_entries,
            10_000,
        ),
        compaction: CompactionConfig {
            live_ratio_max: config::pick(
                flags.compaction_live_ratio_max,
                file.compaction_live_ratio_max,
                defaults.live_ratio_max,
            ),
            bytes_per_pass_max: config::pick(
                flags.compaction_bytes_per_pass_max,
                file.compaction_bytes_per_pass_max,
                defaults.bytes_per_pass_max,
            ),
            bytes_per_sec_max: config::pick(
                flags.compaction_bytes_per_sec_max,
                file.compaction_bytes_per_sec_max,
                defaults.bytes_per_sec_max,
            ),
            interval_ms: config::pick(
                flags.compaction_interval_ms,
                file.compaction_interval_ms,
                defaults.interval_ms,
            ),
        },
        throttle: ThrottleConfig {
            range_requests_per_sec_max: config::pick(
                flags.range_requests_per_sec_max,
                file.range_requests_per_sec_max,
                throttle_defaults.range_requests_per_sec_max,
            ),
            bucket_requests_per_sec_max: config::pick(
                flags.bucket_requests_per_sec_max,
                file.bucket_requests_per_sec_max,
                throttle_defaults.bucket_requests_per_sec_max,
            ),
        },
        lifecycle: LifecycleConfig {
            interval_ms: config::pick(
                flags.lifecycle_interval_ms,
                file.lifecycle_interval_ms,
                lifecycle_defaults.interval_ms,
            ),
            day_ms: config::pick(
                flags.lifecycle_day_ms,
                file.lifecycle_day_ms,
                lifecycle_defaults.day_ms,
            )
            .max(1),
            ..lifecycle_defaults
        },
    };
    let state = PartitionServerState::new(config, StreamClient::new(stream_addrs));
    tracing::info!(%server_id, %grpc_addr, %http_addr, "strata-partition-server listening");

    let service = PartitionServerServer::new(PartitionService::new(state.clone()))
        .max_decoding_message_size(strata_proto::GRPC_MESSAGE_SIZE_BYTES_MAX)
        .max_encoding_message_size(strata_proto::GRPC_MESSAGE_SIZE_BYTES_MAX);
    let router = rpc::server().add_service(service);
    let token = shutdown.token();
    shutdown.spawn(async move {
        if let Err(err) = rpc::serve(router, listener, token.clone()).await {
            tracing::error!(%err, "gRPC server failed");
            token.cancel();
        }
    });
    shutdown.spawn(server::run_heartbeats(Arc::clone(&state), shutdown.token()));
    shutdown.spawn(server::run_checkpoints(
        Arc::clone(&state),
        shutdown.token(),
    ));
    shutdown.spawn(server::run_compaction(Arc::clone(&state), shutdown.token()));
    shutdown.spawn(strata_partition::leftovers::run_leftover_collection(
        Arc::clone(&state),
        shutdown.token(),
    ));
    shutdown.spawn(strata_partition::lifecycle::run_lifecycle(
        Arc::clone(&state),
        shutdown.token(),
    ));
    shutdown.wait(std::time::Duration::from_secs(20)).await;
    Ok(())
}
