//! `strata-location`: the bucket-name -> stamp service.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use strata_location::{LocationService, LocationStore};
use strata_proto::location::location_server::LocationServer;
use strata_util::{admin, config, rpc, shutdown::Shutdown};

/// Location service: the global bucket namespace (bucket name -> stamp).
#[derive(Parser, Debug, Default, serde::Deserialize)]
#[command(version, about)]
#[serde(deny_unknown_fields, default)]
struct Args {
    /// TOML file whose keys are these flags' long names (with `_`); flags win.
    #[arg(long)]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Folder for the bucket table.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// gRPC listen address.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Admin HTTP listen address (/health, /metrics).
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// This deployment's stamp name.
    #[arg(long)]
    stamp: Option<String>,
    /// The stamp's S3 endpoint, reported by ListStamps.
    #[arg(long)]
    stamp_endpoint: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    strata_util::init_tracing();
    let flags = Args::parse();
    let file: Args = config::load(flags.config.as_deref())?;
    let data_dir = config::pick(
        flags.data_dir,
        file.data_dir,
        PathBuf::from("strata-data/location"),
    );
    let listen = config::pick(flags.listen, file.listen, "127.0.0.1:0".parse()?);
    let http_listen = config::pick(flags.http_listen, file.http_listen, "127.0.0.1:0".parse()?);
    let stamp = config::pick(flags.stamp, file.stamp, "stamp-1".to_string());
    let endpoint = config::pick(flags.stamp_endpoint, file.stamp_endpoint, String::new());

    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let store = LocationStore::open(&data_dir)?;
    let service = LocationService::new(store, vec![(stamp, endpoint)]);
    let (listener, grpc_addr) = rpc::bind(listen).await?;
    let (http_addr, _) = admin::serve(
        http_listen,
        admin::always_healthy("location"),
        shutdown.token(),
    )
    .await?;
    tracing::info!(%grpc_addr, %http_addr, data_dir = %data_dir.display(), "strata-location listening");
    let router = rpc::server().add_service(LocationServer::new(service));
    let token = shutdown.token();
    shutdown.spawn(async move {
        if let Err(err) = rpc::serve(router, listener, token.clone()).await {
            tracing::error!(%err, "gRPC server failed");
            token.cancel();
        }
    });
    shutdown.wait(std::time::Duration::from_secs(5)).await;
    Ok(())
}
