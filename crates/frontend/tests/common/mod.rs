//! A real stamp in process for the front-end's tests, on 127.0.0.1 over real gRPC: a stream
//! layer (a stream manager and 3 extent nodes on 3 racks), a single-member partition manager,
//! partition servers ("ps-a", "ps-b"), the location service and the front-end's HTTP stack,
//! each in its own temp dir, all torn down when the [`Stamp`] is dropped (one cancellation
//! token). Waits are on conditions (nodes healthy, ranges served), never bare sleeps.
//!
//! The manager's planner is switched off (no load- or size-driven split, merge or move): a
//! test lays its ranges out itself with [`Stamp::split_at`] and [`Stamp::move_range`], which
//! propose the same commands the manager's reshape loop does, so layouts are exact.

#![allow(dead_code)] // each test module uses a part of the harness

pub mod client;
pub mod sign;

use client::Client;
use sign::{ACCESS_KEY, SECRET_KEY};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_frontend::{app, build_s3_service, Frontend, FrontendConfig};
use strata_manager::types::EventNote;
use strata_manager::{Command, CommandResponse, ManagerConfig, ManagerHandle};
use strata_partition::PartitionServerState;
use strata_proto::manager::{RangeAssignment, ServerHeartbeat};
use strata_proto::partition::partition_server_client::PartitionServerClient;
use strata_proto::partition::{PrepareReshapeRequest, ReshapeChild, ReshapeParent};
use strata_types::{keys, Epoch, RangeId, ServerId};
use strata_util::rpc;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

/// Bound on every wait of the harness.
const WAIT: Duration = Duration::from_secs(60);

/// Polls `check` every 20 ms until it yields a value; fails the test after [`WAIT`].
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How a stamp is built.
pub struct Options {
    /// Partition servers started ("ps-a" first: it gets the initial range).
    pub servers: usize,
    /// The front-end's retry budget per request.
    pub retry_budget_ms: u64,
    /// The manager's partition-server timeout (a dead owner's ranges move after it).
    pub server_timeout_ms: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            servers: 2,
            retry_budget_ms: 2_000,
            server_timeout_ms: 1_500,
        }
    }
}

/// One partition server of the stamp.
pub struct PartitionServer {
    pub id: String,
    pub addr: String,
    pub state: Arc<PartitionServerState>,
    token: CancellationToken,
}

impl PartitionServer {
    /// Stops it as a killed process stops: no more answers, no more heartbeats.
    pub fn kill(&self) {
        self.token.cancel();
    }

    fn alive(&self) -> bool {
        !self.token.is_cancelled()
    }

    /// Whether it serves (owns and has loaded) the range holding `key`.
    pub fn serves(&self, key: &[u8]) -> bool {
        self.alive() && self.state.range_for(key).is_ok()
    }
}

pub struct Stamp {
    pub client: Client,
    pub servers: Vec<PartitionServer>,
    pub manager: ManagerHandle,
    pub manager_addr: String,
    pub location_addr: String,
    stream_addr: String,
    token: CancellationToken,
    _dirs: Vec<TempDir>,
}

impl Drop for Stamp {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// Two partition servers split at photos/"m": ps-a serves the keys before it, ps-b the rest.
pub async fn split_stamp() -> Stamp {
    split_stamp_with(Options::default()).await
}

/// [`split_stamp`] with `options`.
pub async fn split_stamp_with(options: Options) -> Stamp {
    let stamp = Stamp::start(options).await;
    stamp.split_at(&keys::object_key("photos", "m")).await;
    stamp.move_range(&keys::object_key("photos", "m"), 1).await;
    stamp
}

impl Stamp {
    pub async fn start(options: Options) -> Stamp {
        let token = CancellationToken::new();
        let mut dirs = Vec::new();
        let stream_addr = start_stream_layer(&mut dirs, &token).await;
        let (manager, manager_addr) =
            start_manager(temp(&mut dirs), options.server_timeout_ms, &token).await;
        let location_addr = start_location(temp(&mut dirs), &token).await;
        let mut config = FrontendConfig::new(vec![manager_addr.clone()], ACCESS_KEY, SECRET_KEY);
        config.retry_budget_ms = options.retry_budget_ms;
        config.location_addr = Some(location_addr.clone());
        let frontend = Frontend::new(config.clone()).unwrap();
        let mut stamp = Stamp {
            client: Client {
                app: app(build_s3_service(frontend, &config), 64, None),
            },
            servers: Vec::new(),
            manager,
            manager_addr,
            location_addr,
            stream_addr,
            token,
            _dirs: dirs,
        };
        // The initial range exists once a leader is elected.
        wait_for("the initial range", || {
            let ranges = stamp.manager.partition_map().ranges.len();
            async move { (ranges > 0).then_some(()) }
        })
        .await;
        for id in ["ps-a", "ps-b"].into_iter().take(options.servers) {
            let server = start_partition_server(
                id,
                &stamp.stream_addr,
                &stamp.manager_addr,
                stamp.token.child_token(),
            )
            .await;
            stamp.servers.push(server);
            // One at a time, so the initial range deterministically goes to ps-a.
            stamp.wait_until_served().await;
        }
        stamp
    }

    /// The manager's current assignment of the range holding `key`.
    pub fn range_at(&self, key: &[u8]) -> RangeAssignment {
        self.manager
            .partition_map()
            .ranges
            .into_iter()
            .find(|r| keys::range_contains(&r.low, &r.high, key))
            .expect("the map covers every key")
    }

    /// Waits until every range owned by a live server of this stamp is loaded by it (ranges
    /// of other owners, such as a test's dead address, are skipped).
    pub async fn wait_until_served(&self) {
        wait_for("every range served by its owner", || {
            let map = self.manager.partition_map();
            let served = map.ranges.iter().all(|range| {
                let owner = self.servers.iter().find(|s| s.id == range.owner_id);
                // By id and epoch: a split's parent still holds the children's keys until
                // its owner drops it.
                match owner {
                    Some(server) if server.alive() => server
                        .state
                        .ready_range(range.range_id)
                        .is_some_and(|r| r.bounds.epoch == Epoch::new(range.epoch)),
                    Some(_) => true,
                    None => !range.owner_id.is_empty() || self.servers.is_empty(),
                }
            });
            async move { served.then_some(()) }
        })
        .await;
    }

    async fn propose(&self, command: Command) -> CommandResponse {
        self.manager
            .raft()
            .client_write(command)
            .await
            .expect("the single manager member leads")
            .data
    }

    fn note(kind: &str) -> EventNote {
        EventNote {
            at_ms: strata_util::now_ms(),
            kind: kind.into(),
            detail: "by the test".into(),
        }
    }

    /// Splits the range holding `split_key` at it, as the manager's reshape loop does:
    /// reserve two ids, prepare on the owner, commit. Both halves stay on the owner.
    pub async fn split_at(&self, split_key: &[u8]) {
        let range = self.range_at(split_key);
        let first = match self
            .propose(Command::ReserveRangeIds {
                count: 2,
                at_ms: strata_util::now_ms(),
            })
            .await
        {
            CommandResponse::RangeIdsReserved { first, .. } => first,
            other => panic!("reserving range ids: {other:?}"),
        };
        let mut owner = PartitionServerClient::new(rpc::channel(&range.owner_addr).unwrap());
        owner
            .prepare_reshape(PrepareReshapeRequest {
                parents: vec![ReshapeParent {
                    range_id: range.range_id,
                    epoch: range.epoch,
                }],
                children: vec![
                    ReshapeChild {
                        range_id: first,
                        low: range.low.clone(),
                        high: split_key.to_vec(),
                    },
                    ReshapeChild {
                        range_id: first + 1,
                        low: split_key.to_vec(),
                        high: range.high.clone(),
                    },
                ],
            })
            .await
            .expect("the owner prepares the split");
        let response = self
            .propose(Command::SplitRange {
                range_id: RangeId::new(range.range_id),
                expected_epoch: Epoch::new(range.epoch),
                split_key: split_key.to_vec(),
                left_id: RangeId::new(first),
                right_id: RangeId::new(first + 1),
                note: Self::note("split"),
            })
            .await;
        assert!(
            matches!(response, CommandResponse::Reshaped { .. }),
            "{response:?}"
        );
        self.wait_until_served().await;
    }

    /// Gives the range holding `key` to `owner_id` at `owner_addr` (the next epoch), as a
    /// move does; returns once a live owner of this stamp serves it.
    pub async fn assign(&self, key: &[u8], owner_id: &str, owner_addr: &str) {
        let range = self.range_at(key);
        let response = self
            .propose(Command::AssignRange {
                range_id: RangeId::new(range.range_id),
                owner_id: ServerId::new(owner_id.to_string()),
                owner_addr: owner_addr.to_string(),
                expected_epoch: Epoch::new(range.epoch),
                note: Some(Self::note("move")),
            })
            .await;
        assert!(
            matches!(response, CommandResponse::RangeAssigned { .. }),
            "{response:?}"
        );
        self.wait_until_served().await;
    }

    /// Moves the range holding `key` to `self.servers[to]`.
    pub async fn move_range(&self, key: &[u8], to: usize) {
        let (id, addr) = (self.servers[to].id.clone(), self.servers[to].addr.clone());
        self.assign(key, &id, &addr).await;
        wait_for("the new owner to serve the range", || {
            let served = self.servers[to].serves(key);
            async move { served.then_some(()) }
        })
        .await;
    }

    /// Heartbeats to the manager as partition server `id` at `addr` (so the manager counts it
    /// alive and leaves it its ranges) until the returned token is cancelled.
    pub async fn heartbeat_as(&self, id: &str, addr: &str) -> CancellationToken {
        let client = strata_manager::ManagerClient::new(vec![self.manager_addr.clone()]);
        let heartbeat = ServerHeartbeat {
            server_id: id.into(),
            addr: addr.into(),
            ..Default::default()
        };
        wait_for("a first heartbeat", || {
            let (client, heartbeat) = (&client, heartbeat.clone());
            async move { client.heartbeat(heartbeat).await.ok().map(|_| ()) }
        })
        .await;
        let stop = self.token.child_token();
        let beating = stop.clone();
        tokio::spawn(async move {
            while !beating.is_cancelled() {
                let _ = client.heartbeat(heartbeat.clone()).await;
                tokio::select! {
                    _ = beating.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        });
        stop
    }
}

fn temp(dirs: &mut Vec<TempDir>) -> std::path::PathBuf {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    dirs.push(dir);
    path
}

/// A stream manager and 3 extent nodes on 3 racks; returns the stream manager's address once
/// all three nodes are healthy (placement needs three racks).
async fn start_stream_layer(dirs: &mut Vec<TempDir>, token: &CancellationToken) -> String {
    use strata_stream::*;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let settings = ManagerSettings {
        extent_size_bytes_max: 64 << 20,
        node_timeout_ms: 2_000,
    };
    let manager = start_stream_manager(
        StreamManagerConfig::single(temp(dirs), &addr, settings),
        listener,
        token.clone(),
    )
    .await
    .unwrap();
    for rack in ["rack-1", "rack-2", "rack-3"] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = ExtentNodeConfig {
            data_dir: temp(dirs),
            rack: rack.into(),
            node_id: None,
            stream_manager_addrs: vec![manager.addr.clone()],
            heartbeat_interval_ms: 100,
            advertise_addr: None,
        };
        start_extent_node(config, listener, token.clone())
            .await
            .unwrap();
    }
    let client = StreamClient::new(vec![manager.addr.clone()]);
    wait_for("3 healthy extent nodes", || {
        let client = client.clone();
        async move {
            let status = client.status().await.ok()?;
            (status.nodes.iter().filter(|n| n.healthy).count() == 3).then_some(())
        }
    })
    .await;
    manager.addr.clone()
}

/// A single-member partition manager with its planner off (tests lay ranges out themselves).
async fn start_manager(
    dir: std::path::PathBuf,
    server_timeout_ms: u64,
    token: &CancellationToken,
) -> (ManagerHandle, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut config = ManagerConfig::new(1, BTreeMap::from([(1, addr.clone())]), dir);
    config.server_timeout_ms = server_timeout_ms;
    config.balance_interval_ms = 100;
    config.planner = strata_manager::planner::PlannerConfig {
        split_requests_per_sec: 0.0,
        split_bytes_per_sec: 0.0,
        split_keys_max: u64::MAX,
        split_size_bytes_max: u64::MAX,
        merge_requests_per_sec: 0.0,
        move_requests_per_sec_min: f64::INFINITY,
        ..Default::default()
    };
    let handle = strata_manager::start(config, listener, token.clone())
        .await
        .unwrap();
    (handle, addr)
}

/// The location service with this stamp ("stamp-1") registered.
async fn start_location(dir: std::path::PathBuf, token: &CancellationToken) -> String {
    use strata_proto::location::location_server::LocationServer;
    let store = strata_location::LocationStore::open(&dir).unwrap();
    let service = strata_location::LocationService::new(store, vec![("stamp-1".into(), "".into())]);
    let (listener, addr) = rpc::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let router = rpc::server().add_service(LocationServer::new(service));
    tokio::spawn(rpc::serve(router, listener, token.clone()));
    addr.to_string()
}

/// A partition server as its binary builds one (crates/partition/src/bin): gRPC service,
/// heartbeats, checkpoints, compaction, leftover collection, lifecycle; until `token`.
async fn start_partition_server(
    id: &str,
    stream_addr: &str,
    manager_addr: &str,
    token: CancellationToken,
) -> PartitionServer {
    use strata_partition::*;
    use strata_proto::partition::partition_server_server::PartitionServerServer;
    let (listener, addr) = rpc::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let config = PartitionServerConfig {
        server_id: id.into(),
        advertise_addr: addr.to_string(),
        http_addr: String::new(),
        manager_addrs: vec![manager_addr.into()],
        heartbeat_interval_ms: 100,
        // Below the manager's server timeout, as the binary's defaults are.
        lease_ms: 1_000,
        checkpoint_every_entries: 10_000,
        compaction: CompactionConfig::default(),
        throttle: ThrottleConfig::default(),
        lifecycle: LifecycleConfig::default(),
    };
    let state = PartitionServerState::new(
        config,
        strata_stream::StreamClient::new(vec![stream_addr.into()]),
    );
    let service = PartitionServerServer::new(PartitionService::new(state.clone()))
        .max_decoding_message_size(strata_proto::GRPC_MESSAGE_SIZE_BYTES_MAX)
        .max_encoding_message_size(strata_proto::GRPC_MESSAGE_SIZE_BYTES_MAX);
    tokio::spawn(rpc::serve(
        rpc::server().add_service(service),
        listener,
        token.clone(),
    ));
    tokio::spawn(server::run_heartbeats(state.clone(), token.clone()));
    tokio::spawn(server::run_checkpoints(state.clone(), token.clone()));
    tokio::spawn(server::run_compaction(state.clone(), token.clone()));
    tokio::spawn(leftovers::run_leftover_collection(
        state.clone(),
        token.clone(),
    ));
    tokio::spawn(lifecycle::run_lifecycle(state.clone(), token.clone()));
    PartitionServer {
        id: id.into(),
        addr: addr.to_string(),
        state,
        token,
    }
}
