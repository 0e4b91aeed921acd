//! The extent node: an [`ExtentStore`] served over gRPC ([`service`]), a heartbeat to the
//! stream manager ([`heartbeat`]), repair copies pulled from other replicas ([`copy`]) and a
//! rate-limited scrubber of sealed replicas ([`scrub`]).

pub mod copy;
pub mod heartbeat;
pub mod scrub;
pub mod service;

pub use scrub::ScrubSettings;

use crate::error::{Result, StreamError};
use crate::extent::ExtentStore;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use strata_proto::common::NodeAddr;
use strata_proto::stream::extent_node_server::ExtentNodeServer;
use strata_proto::GRPC_MESSAGE_SIZE_BYTES_MAX;
use strata_util::admin::HealthCheck;
use tokio_util::sync::CancellationToken;

pub const HEARTBEAT_INTERVAL_MS_DEFAULT: u64 = 1_000;

/// Everything an extent node needs to start.
#[derive(Clone, Debug)]
pub struct ExtentNodeConfig {
    pub data_dir: PathBuf,
    /// Rack label; the stream manager never puts two replicas of an extent on one rack.
    pub rack: String,
    /// Overrides the id kept in `<data-dir>/node-id`.
    pub node_id: Option<String>,
    pub stream_manager_addrs: Vec<String>,
    pub heartbeat_interval_ms: u64,
    /// Address other nodes and clients dial; defaults to the listener's address.
    pub advertise_addr: Option<String>,
    /// Bytes this node offers for extents, reported in heartbeats for placement by fill;
    /// 0 = the size of the file system holding `data_dir`. Reported, not enforced: a full
    /// disk still fails appends (and the node stops acknowledging them).
    pub capacity_bytes: u64,
}

/// A started extent node. Dropping it does not stop it; cancel its token and [`Self::join`].
pub struct RunningExtentNode {
    pub node_id: String,
    pub rack: String,
    /// The gRPC address the node advertises.
    pub addr: String,
    pub store: Arc<ExtentStore>,
    http_addr: Arc<RwLock<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningExtentNode {
    /// Tells the node its admin HTTP address, reported in heartbeats.
    pub fn set_http_addr(&self, addr: SocketAddr) {
        if let Ok(mut slot) = self.http_addr.write() {
            *slot = addr.to_string();
        }
    }

    /// Healthy once the store is open (it is, once this exists); details name the node.
    pub fn health_check(&self) -> HealthCheck {
        let store = self.store.clone();
        let (node_id, rack) = (self.node_id.clone(), self.rack.clone());
        Arc::new(move || {
            let extents = store.report().map_err(|err| err.to_string())?.len();
            Ok(
                serde_json::json!({ "kind": "extent-node", "node_id": node_id, "rack": rack, "extents": extents }),
            )
        })
    }

    /// Waits until the node stopped (after its token was cancelled).
    pub async fn join(self) {
        if let Err(err) = self.task.await {
            tracing::error!(%err, "extent node task failed");
        }
    }
}

/// Opens the store under `config.data_dir`, then serves `ExtentNode` on `listener` and
/// heartbeats to the stream manager until `token` is cancelled; scrubs with the default
/// [`ScrubSettings`].
pub async fn start_extent_node(
    config: ExtentNodeConfig,
    listener: tokio::net::TcpListener,
    token: CancellationToken,
) -> Result<RunningExtentNode> {
    start_extent_node_with_scrub(config, ScrubSettings::default(), listener, token).await
}

/// [`start_extent_node`] with explicit scrubber settings.
pub async fn start_extent_node_with_scrub(
    config: ExtentNodeConfig,
    scrub: ScrubSettings,
    listener: tokio::net::TcpListener,
    token: CancellationToken,
) -> Result<RunningExtentNode> {
    if config.rack.trim().is_empty() {
        return Err(StreamError::InvalidArgument(
            "an extent node needs a rack label".into(),
        ));
    }
    std::fs::create_dir_all(&config.data_dir)?;
    let node_id = match config.node_id.clone() {
        Some(id) => id,
        None => strata_util::files::read_or_init(&config.data_dir.join("node-id"), || {
            format!("en-{:016x}", rand::random::<u64>())
        })?,
    };
    crate::metrics::init_extent_node_metrics();
    let store = Arc::new(ExtentStore::open(&config.data_dir).await?);
    let bound = listener.local_addr()?;
    let addr = config
        .advertise_addr
        .clone()
        .unwrap_or_else(|| bound.to_string());
    let http_addr = Arc::new(RwLock::new(String::new()));

    let service = ExtentNodeServer::new(service::ExtentNodeService::new(store.clone()))
        .max_decoding_message_size(GRPC_MESSAGE_SIZE_BYTES_MAX)
        .max_encoding_message_size(GRPC_MESSAGE_SIZE_BYTES_MAX);
    let router = strata_util::rpc::server().add_service(service);
    let heartbeat = heartbeat::Heartbeat {
        node: NodeAddr {
            node_id: node_id.clone(),
            addr: addr.clone(),
            rack: config.rack.clone(),
        },
        http_addr: http_addr.clone(),
        store: store.clone(),
        manager_addrs: config.stream_manager_addrs.clone(),
        interval_ms: config.heartbeat_interval_ms,
        capacity_bytes: config.capacity_bytes,
        data_dir: config.data_dir.clone(),
    };
    let scrubber = scrub::Scrubber {
        store: store.clone(),
        node_id: node_id.clone(),
        manager_addrs: config.stream_manager_addrs.clone(),
        settings: scrub,
    };
    let task_token = token.child_token();
    let log_id = node_id.clone();
    let task = tokio::spawn(async move {
        let beats = tokio::spawn(heartbeat.run(task_token.clone()));
        let scrubbing = tokio::spawn(scrubber.run(task_token.clone()));
        if let Err(err) = strata_util::rpc::serve(router, listener, task_token.clone()).await {
            tracing::error!(node_id = %log_id, %err, "extent node gRPC server failed");
        }
        task_token.cancel();
        if let Err(err) = beats.await {
            tracing::error!(%err, "heartbeat task failed");
        }
        if let Err(err) = scrubbing.await {
            tracing::error!(%err, "scrubber task failed");
        }
    });
    tracing::info!(node_id = %node_id, rack = %config.rack, %addr, "extent node started");
    Ok(RunningExtentNode {
        node_id,
        rack: config.rack,
        addr,
        store,
        http_addr,
        task,
    })
}
