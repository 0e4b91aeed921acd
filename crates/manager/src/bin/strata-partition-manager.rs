//! `strata-partition-manager`: one member of the 3-member Raft group that keeps the partition map.

use clap::Parser;
use strata_manager::{start, ManagerOptions};
use strata_util::config::NodeFlags;
use strata_util::{admin, shutdown::Shutdown};

/// Partition manager member: Raft over the partition map (range -> owner + epoch). Every
/// flag can also be set in the `--config` TOML file (key = flag name with `_`) or as
/// `STRATA_<FLAG_NAME>`; flags win over the environment, which wins over the file.
#[derive(Parser, Debug, serde::Serialize)]
#[command(version, about)]
struct Flags {
    #[command(flatten)]
    #[serde(flatten)]
    node: NodeFlags,
    /// This member's Raft node id (a key of --members).
    #[arg(long)]
    node_id: Option<u64>,
    /// Every member, this one included: "1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103".
    #[arg(long)]
    members: Option<String>,
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
    let flags = Flags::parse();
    let (options, identity): (ManagerOptions, _) =
        strata_util::config::load_node(&flags.node, &flags)?;
    strata_util::rpc::install_identity(identity)?;
    let (manager, listen) = options.manager_config()?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let (listener, grpc_addr) = strata_util::rpc::bind(listen).await?;
    let handle = start(manager.clone(), listener, shutdown.token()).await?;
    let health = handle.health_check();
    let (http_addr, _) = admin::serve(options.http_listen, health, shutdown.token()).await?;
    let (node_id, data_dir) = (manager.node_id, manager.data_dir.display());
    tracing::info!(node_id, %grpc_addr, %http_addr, %data_dir, "strata-partition-manager listening");
    shutdown.spawn(handle.wait());
    shutdown.wait(std::time::Duration::from_secs(10)).await;
    Ok(())
}
