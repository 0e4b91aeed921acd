//! One location service node: its options (file / environment / flags, see
//! [`strata_util::config`]) and [`start`], which opens the table and serves gRPC until the
//! token is cancelled.

use crate::{LocationService, LocationStore};
use std::net::SocketAddr;
use std::path::PathBuf;
use strata_proto::location::location_server::LocationServer;
use strata_util::rpc;
use tokio_util::sync::CancellationToken;

/// What an operator sets; the keys are `strata-location`'s long flag names with `_`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocationOptions {
    /// Folder for the bucket table.
    pub data_dir: PathBuf,
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// Admin HTTP listen address (/health, /metrics).
    pub http_listen: SocketAddr,
    /// This deployment's stamp name.
    pub stamp: String,
    /// The stamp's S3 endpoint, reported by ListStamps.
    pub stamp_endpoint: String,
}

impl Default for LocationOptions {
    fn default() -> Self {
        let loopback_any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            data_dir: PathBuf::from("strata-data/location"),
            listen: loopback_any,
            http_listen: loopback_any,
            stamp: "stamp-1".into(),
            stamp_endpoint: String::new(),
        }
    }
}

/// A started location service. Cancel its token, then [`Self::join`].
pub struct RunningLocation {
    /// The bound gRPC address.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl RunningLocation {
    /// Waits until the gRPC server has stopped.
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

/// Opens the table in `options.data_dir` and serves the `Location` service on `listener` until
/// `token` is cancelled (a failing server cancels it too, so the node stops as a whole).
pub async fn start(
    options: &LocationOptions,
    listener: tokio::net::TcpListener,
    token: CancellationToken,
) -> anyhow::Result<RunningLocation> {
    let store = LocationStore::open(&options.data_dir)?;
    let stamps = vec![(options.stamp.clone(), options.stamp_endpoint.clone())];
    let service = LocationService::new(store, stamps);
    let addr = listener.local_addr()?;
    let router = rpc::server().add_service(LocationServer::new(service));
    let task = tokio::spawn(async move {
        if let Err(err) = rpc::serve(router, listener, token.clone()).await {
            tracing::error!(%err, "gRPC server failed");
            token.cancel();
        }
    });
    Ok(RunningLocation { addr, task })
}
