//! The stream manager: streams (ordered extent lists) and extent replica sets in sled
//! ([`meta`]), node liveness from heartbeats, placement on 3 racks ([`placement`]), sealing
//! ([`state`]), served over gRPC ([`service`]).

pub mod meta;
pub mod placement;
pub mod service;
pub mod state;

pub use state::{ManagerSettings, EXTENT_SIZE_BYTES_MAX_DEFAULT, NODE_TIMEOUT_MS_DEFAULT};

use crate::error::Result;
use std::path::PathBuf;
use std::sync::Arc;
use strata_proto::stream::stream_manager_server::StreamManagerServer;
use strata_proto::GRPC_MESSAGE_SIZE_BYTES_MAX;
use strata_util::admin::HealthCheck;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug)]
pub struct StreamManagerConfig {
    /// sled lives in `<data_dir>/meta`.
    pub data_dir: PathBuf,
    pub settings: ManagerSettings,
}

/// A started stream manager. Cancel its token, then [`Self::join`].
pub struct RunningStreamManager {
    /// The bound gRPC address.
    pub addr: String,
    state: Arc<state::ManagerState>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningStreamManager {
    /// Healthy once sled is open (it is, once this exists); details count nodes and streams.
    pub fn health_check(&self) -> HealthCheck {
        let state = self.state.clone();
        Arc::new(move || state.health_details().map_err(|err| err.to_string()))
    }

    pub async fn join(self) {
        if let Err(err) = self.task.await {
            tracing::error!(%err, "stream manager task failed");
        }
    }
}

/// Opens the metadata under `config.data_dir` and serves `StreamManager` on `listener` until
/// `token` is cancelled.
pub async fn start_stream_manager(
    config: StreamManagerConfig,
    listener: tokio::net::TcpListener,
    token: CancellationToken,
) -> Result<RunningStreamManager> {
    std::fs::create_dir_all(&config.data_dir)?;
    let meta_path = config.data_dir.join("meta");
    let meta = tokio::task::spawn_blocking(move || meta::MetaStore::open(&meta_path))
        .await
        .map_err(|err| crate::StreamError::Unavailable(format!("opening metadata: {err}")))??;
    let state = Arc::new(state::ManagerState::new(meta, config.settings.clone()));
    let addr = listener.local_addr()?.to_string();
    let service = StreamManagerServer::new(service::StreamManagerService::new(state.clone()))
        .max_decoding_message_size(GRPC_MESSAGE_SIZE_BYTES_MAX)
        .max_encoding_message_size(GRPC_MESSAGE_SIZE_BYTES_MAX);
    let router = strata_util::rpc::server().add_service(service);
    let task = tokio::spawn(async move {
        if let Err(err) = strata_util::rpc::serve(router, listener, token).await {
            tracing::error!(%err, "stream manager gRPC server failed");
        }
    });
    tracing::info!(%addr, settings = ?config.settings, "stream manager started");
    Ok(RunningStreamManager { addr, state, task })
}
