//! `strata-location`: the bucket-name -> stamp service.

use clap::Parser;
use strata_location::LocationOptions;
use strata_util::config::NodeFlags;
use strata_util::{admin, rpc, shutdown::Shutdown};

/// Location service: the global bucket namespace (bucket name -> stamp), one member of its
/// Raft group (three for one loss tolerated; a group of one when --members is not given). Every flag can also
/// be set in the `--config` TOML file (key = flag name with `_`) or as `STRATA_<FLAG_NAME>`;
/// flags win over the environment, which wins over the file.
#[derive(Parser, Debug, serde::Serialize)]
#[command(version, about)]
struct Flags {
    #[command(flatten)]
    #[serde(flatten)]
    node: NodeFlags,
    /// This member's Raft id (a key of --members) [default: 1].
    #[arg(long)]
    node_id: Option<u64>,
    /// Every member, this one included: "1=host:port,2=host:port,3=host:port" [default: this
    /// member alone, at --listen].
    #[arg(long)]
    members: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    strata_util::init_tracing();
    let flags = Flags::parse();
    let (options, identity): (LocationOptions, _) =
        strata_util::config::load_node(&flags.node, &flags)?;
    strata_util::rpc::install_identity(identity)?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let (listener, _) = rpc::bind(options.listen).await?;
    let node = strata_location::start(&options, listener, shutdown.token()).await?;
    let health = node.health_check();
    let (http_addr, _) = admin::serve(options.http_listen, health, shutdown.token()).await?;
    let data_dir = options.data_dir.display();
    tracing::info!(grpc_addr = %node.addr, %http_addr, %data_dir, "strata-location listening");
    shutdown.spawn(node.join());
    shutdown.wait(std::time::Duration::from_secs(5)).await;
    Ok(())
}
