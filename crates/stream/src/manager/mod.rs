//! The stream manager: streams (ordered extent lists) and extent replica sets in sled
//! ([`meta`]), node liveness from heartbeats, placement on 3 racks ([`placement`]), sealing,
//! stream deletion and trimming ([`state`]), re-replication, repair and garbage collection
//! ([`repair`]), served over gRPC ([`service`]).

pub mod meta;
pub mod placement;
pub mod repair;
pub mod service;
pub mod state;

pub use repair::{
    RepairSettings, GC_DELAY_MS_DEFAULT, REPAIR_BANDWIDTH_BYTES_PER_SEC_DEFAULT,
    REPAIR_CONCURRENCY_DEFAULT, REPAIR_INTERVAL_MS_DEFAULT,
};
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
/// `token` is cancelled; repairs with the default [`RepairSettings`].
pub async fn start_stream_manager(
    config: StreamManagerConfig,
    listener: tokio::net::TcpListener,
    token: CancellationToken,
) -> Result<RunningStreamManager> {
    start_stream_manager_with_repair(config, RepairSettings::default(), listener, token).await
}

/// [`start_stream_manager`] with explicit repair and garbage-collection settings.
pub async fn start_stream_manager_with_repair(
    config: StreamManagerConfig,
    repair_settings: RepairSettings,
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
    let task_token = token.child_token();
    let repairing = tokio::spawn(repair::run(
        state.clone(),
        repair_settings.clone(),
        task_token.clone(),
    ));
    let task = tokio::spawn(async move {
        if let Err(err) = strata_util::rpc::serve(router, listener, task_token.clone()).await {
            tracing::error!(%err, "stream manager gRPC server failed");
        }
        task_token.cancel();
        if let Err(err) = repairing.await {
            tracing::error!(%err, "repair task failed");
        }
    });
    tracing::info!(%addr, settings = ?config.settings, repair = ?repair_settings, "stream manager started");
    Ok(RunningStreamManager { addr, state, task })
}
