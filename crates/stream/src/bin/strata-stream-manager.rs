//! `strata-stream-manager`: one member of the Raft group that keeps the stream layer's
//! metadata (streams, extent replica sets) and watches extent-node health.

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
#[command(
    version,
    about = "Strata stream manager member: streams, extents and extent-node health, kept by a Raft group"
)]
struct Args {
    /// TOML file whose keys are these flags' long names with `_`; flags win.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// This member's Raft node id (a key of --members).
    #[arg(long)]
    node_id: Option<u64>,
    /// Every member, this one included: "1=127.0.0.1:7201,2=127.0.0.1:7202,3=127.0.0.1:7203".
    /// Default: this member alone, at --listen.
    #[arg(long)]
    members: Option<String>,
    /// gRPC listen address; default: this member's address in --members.
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
    node_id: Option<u64>,
    members: Option<String>,
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
    let node_id = config::pick(args.node_id, file.node_id, 1);
    let members = match args.members.or(file.members) {
        Some(text) => strata_raft::parse_members(&text)?,
        None => {
            let listen = args.listen.or(file.listen).ok_or_else(|| {
                anyhow::anyhow!("give --members (or --listen for a one-member group)")
            })?;
            std::collections::BTreeMap::from([(node_id, listen.to_string())])
        }
    };
    let own_addr: SocketAddr = members
        .get(&node_id)
        .ok_or_else(|| anyhow::anyhow!("--node-id {node_id} is not one of --members"))?
        .parse()?;
    let listen = config::pick(args.listen, file.listen, own_addr);
    let manager_config = StreamManagerConfig {
        data_dir: config::pick(
            args.data_dir,
            file.data_dir,
            PathBuf::from(format!("data/stream-manager-{node_id}")),
        ),
        node_id,
        members,
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
    let (listener, _) = rpc::bind(listen).await?;
    let manager =
        start_stream_manager_with_repair(manager_config, repair, listener, shutdown.token())
            .await?;
    let http_listen = config::pick(args.http_listen, file.http_listen, loopback_any);
    let (http_addr, admin_task) =
        admin::serve(http_listen, manager.health_check(), shutdown.token()).await?;
    tracing::info!(node_id, grpc = %manager.addr, http = %http_addr, "strata-stream-manager listening");
    shutdown.spawn(manager.join());
    shutdown.spawn(admin_task);
    shutdown.wait(Duration::from_secs(10)).await;
    Ok(())
}
