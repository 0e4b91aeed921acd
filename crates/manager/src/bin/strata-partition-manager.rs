//! `strata-partition-manager`: one member of the 3-member Raft group that keeps the partition map.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use strata_manager::{parse_members, start, ManagerConfig, SERVER_TIMEOUT_MS_DEFAULT};
use strata_util::{admin, config, shutdown::Shutdown};

/// Partition manager member: Raft over the partition map (range -> owner + epoch).
#[derive(Parser, Debug, Default, serde::Deserialize)]
#[command(version, about)]
#[serde(deny_unknown_fields, default)]
struct Args {
    /// TOML file whose keys are these flags' long names (with `_`); flags win.
    #[arg(long)]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// This member's Raft node id (a key of --members).
    #[arg(long)]
    node_id: Option<u64>,
    /// Every member, this one included: "1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103".
    #[arg(long)]
    members: Option<String>,
    /// gRPC listen address; default: this member's address in --members.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Admin HTTP listen address (/health, /metrics).
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// Folder of this member's Raft log and state machine.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A partition server silent this long is dead and its ranges move.
    #[arg(long)]
    server_timeout_ms: Option<u64>,
    /// Split a range serving more requests/s than this, sustained (250; 0 = never).
    #[arg(long)]
    split_requests_per_sec: Option<f64>,
    /// Split a range moving more body bytes/s than this, sustained (64 MiB; 0 = never).
    #[arg(long)]
    split_bytes_per_sec: Option<f64>,
    /// How long a range must stay over a split threshold (10000).
    #[arg(long)]
    split_sustain_ms: Option<u64>,
    /// Split a range holding more keys than this (2000000).
    #[arg(long)]
    split_keys_max: Option<u64>,
    /// Split a range holding more object bytes than this (64 GiB).
    #[arg(long)]
    split_size_bytes_max: Option<u64>,
    /// Merge neighbours both under this many requests/s (10) ...
    #[arg(long)]
    merge_requests_per_sec: Option<f64>,
    /// ... for this long (120000).
    #[arg(long)]
    merge_sustain_ms: Option<u64>,
    /// Only ranges at least this busy move between servers to balance load (50).
    #[arg(long)]
    move_requests_per_sec_min: Option<f64>,
    /// A range is left alone this long after it was made or moved (10000).
    #[arg(long)]
    reshape_cooldown_ms: Option<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    strata_util::init_tracing();
    let flags = Args::parse();
    let file: Args = config::load(flags.config.as_deref())?;
    let node_id = config::pick(flags.node_id, file.node_id, 1);
    let members = parse_members(&config::pick(
        flags.members,
        file.members,
        "1=127.0.0.1:7101".into(),
    ))?;
    let data_dir = config::pick(
        flags.data_dir,
        file.data_dir,
        PathBuf::from(format!("strata-data/manager-{node_id}")),
    );
    let mut manager = ManagerConfig::new(node_id, members, data_dir);
    manager.server_timeout_ms = config::pick(
        flags.server_timeout_ms,
        file.server_timeout_ms,
        SERVER_TIMEOUT_MS_DEFAULT,
    );
    let planner = &mut manager.planner;
    let ms = |v: u64| std::time::Duration::from_millis(v);
    planner.split_requests_per_sec = config::pick(
        flags.split_requests_per_sec,
        file.split_requests_per_sec,
        planner.split_requests_per_sec,
    );
    planner.split_bytes_per_sec = config::pick(
        flags.split_bytes_per_sec,
        file.split_bytes_per_sec,
        planner.split_bytes_per_sec,
    );
    if let Some(v) = flags.split_sustain_ms.or(file.split_sustain_ms) {
        planner.split_sustain = ms(v);
    }
    planner.split_keys_max = config::pick(
        flags.split_keys_max,
        file.split_keys_max,
        planner.split_keys_max,
    );
    planner.split_size_bytes_max = config::pick(
        flags.split_size_bytes_max,
        file.split_size_bytes_max,
        planner.split_size_bytes_max,
    );
    planner.merge_requests_per_sec = config::pick(
        flags.merge_requests_per_sec,
        file.merge_requests_per_sec,
        planner.merge_requests_per_sec,
    );
    if let Some(v) = flags.merge_sustain_ms.or(file.merge_sustain_ms) {
        planner.merge_sustain = ms(v);
    }
    planner.move_requests_per_sec_min = config::pick(
        flags.move_requests_per_sec_min,
        file.move_requests_per_sec_min,
        planner.move_requests_per_sec_min,
    );
    if let Some(v) = flags.reshape_cooldown_ms.or(file.reshape_cooldown_ms) {
        planner.cooldown = ms(v);
    }
    manager.validate()?;
    let own_addr: SocketAddr = match manager.own_addr().map(str::parse) {
        Some(Ok(addr)) => addr,
        _ => "127.0.0.1:0".parse()?,
    };
    let listen = config::pick(flags.listen.or(file.listen), None, own_addr);
    let http_listen = config::pick(flags.http_listen, file.http_listen, "127.0.0.1:0".parse()?);

    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let (listener, grpc_addr) = strata_util::rpc::bind(listen).await?;
    let handle = start(manager.clone(), listener, shutdown.token()).await?;
    let (http_addr, _) = admin::serve(http_listen, handle.health_check(), shutdown.token()).await?;
    tracing::info!(node_id, %grpc_addr, %http_addr, data_dir = %manager.data_dir.display(), "strata-partition-manager listening");
    shutdown.spawn(handle.wait());
    shutdown.wait(std::time::Duration::from_secs(10)).await;
    Ok(())
}
