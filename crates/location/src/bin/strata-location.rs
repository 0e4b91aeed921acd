//! `strata-location`: the bucket-name -> stamp service.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use strata_location::LocationOptions;
use strata_util::{admin, config, rpc, shutdown::Shutdown};

/// Location service: the global bucket namespace (bucket name -> stamp). Every flag can also
/// be set in the `--config` TOML file (key = flag name with `_`) or as `STRATA_<FLAG_NAME>`;
/// flags win over the environment, which wins over the file.
#[derive(Parser, Debug, serde::Serialize)]
#[command(version, about)]
struct Flags {
    /// TOML file of options.
    #[arg(long)]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Folder for the bucket table [default: strata-data/location].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// gRPC listen address [default: 127.0.0.1:0].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Admin HTTP listen address (/health, /metrics) [default: 127.0.0.1:0].
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// This deployment's stamp name [default: stamp-1].
    #[arg(long)]
    stamp: Option<String>,
    /// The stamp's S3 endpoint, reported by ListStamps.
    #[arg(long)]
    stamp_endpoint: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    strata_util::init_tracing();
    let flags = Flags::parse();
    let options: LocationOptions = config::load(flags.config.as_deref(), &flags)?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let (listener, _) = rpc::bind(options.listen).await?;
    let node = strata_location::start(&options, listener, shutdown.token()).await?;
    let health = admin::always_healthy("location");
    let (http_addr, _) = admin::serve(options.http_listen, health, shutdown.token()).await?;
    let data_dir = options.data_dir.display();
    tracing::info!(grpc_addr = %node.addr, %http_addr, %data_dir, "strata-location listening");
    shutdown.spawn(node.join());
    shutdown.wait(std::time::Duration::from_secs(5)).await;
    Ok(())
}
