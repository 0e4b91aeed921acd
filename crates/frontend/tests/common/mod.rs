//! A real stamp in process for the front-end's tests, on 127.0.0.1 over real gRPC and HTTP,
//! each node started by strata-testkit through its layer's start function (the code the
//! binaries run): a stream layer (a stream manager and 3 extent nodes on 3 racks), a
//! single-member partition manager, partition servers ("ps-a", "ps-b"), the location service,
//! and the front-end (`strata_frontend::start`), which the [`Client`] reaches over HTTP. All
//! in temp dirs, torn down when the [`Stamp`] is dropped. Waits are on conditions (nodes
//! healthy, ranges served), never bare sleeps.
//!
//! The manager's planner is switched off (no load- or size-driven split, merge or move): a
//! test lays its ranges out itself with [`Stamp::split_at`] and [`Stamp::move_range`], which
//! propose the same commands the manager's reshape loop does, so layouts are exact.

#![allow(dead_code)] // each test module uses a part of the harness

pub mod client;
pub mod sign;

use client::Client;
use sign::{ACCESS_KEY, SECRET_KEY};
use std::time::Duration;
use strata_frontend::FrontendConfig;
use strata_manager::types::EventNote;
use strata_manager::{Command, CommandResponse, ManagerHandle};
use strata_proto::manager::{RangeAssignment, ServerHeartbeat};
use strata_proto::partition::partition_server_client::PartitionServerClient;
use strata_proto::partition::{PrepareReshapeRequest, ReshapeChild, ReshapeParent};
pub use strata_testkit::{wait_for, PartitionServer};
use strata_testkit::{StreamLayer, TempDirs};
use strata_types::{keys, Epoch, RangeId, ServerId};
use strata_util::rpc;
use tokio_util::sync::CancellationToken;

/// Extents seal at 64 MiB: large enough that no test's objects cross a seal by accident.
const EXTENT_SIZE_BYTES_MAX: u64 = 64 << 20;

/// How a stamp is built.
pub struct Options {
    /// Partition servers started ("ps-a" first: it gets the initial range).
    pub servers: usize,
    /// The front-end's retry budget per request.
    pub retry_budget_ms: u64,
    /// The manager's partition-server timeout (a dead owner's ranges move after it).
    pub server_timeout_ms: u64,
    /// Changes to the front-end's config (limits, timeouts) before it starts.
    pub frontend: fn(&mut FrontendConfig),
}

impl Default for Options {
    fn default() -> Self {
        Self {
            servers: 2,
            retry_budget_ms: 2_000,
            server_timeout_ms: 1_500,
            frontend: |_| {},
        }
    }
}

pub struct Stamp {
    pub client: Client,
    pub servers: Vec<PartitionServer>,
    pub manager: ManagerHandle,
    pub manager_addr: String,
    pub location_addr: String,
    /// The front-end's S3 address.
    pub s3_addr: std::net::SocketAddr,
    stream: StreamLayer,
    token: CancellationToken,
    _dirs: TempDirs,
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
        let mut dirs = TempDirs::default();
        let stream = StreamLayer::start(3, EXTENT_SIZE_BYTES_MAX).await;
        let manager = strata_testkit::start_partition_manager(
            dirs.add(),
            options.server_timeout_ms,
            token.clone(),
        )
        .await;
        let manager_addr = manager.addr().to_string();
        let location_addr = strata_testkit::start_location(dirs.add(), token.clone()).await;
        let mut config = FrontendConfig::new(vec![manager_addr.clone()], ACCESS_KEY, SECRET_KEY);
        config.retry_budget_ms = options.retry_budget_ms;
        config.location_addr = Some(location_addr.clone());
        (options.frontend)(&mut config);
        let (listener, _) = strata_testkit::loopback_listener().await;
        let frontend = strata_frontend::start(config, listener, token.clone())
            .await
            .expect("the front-end starts");
        let mut stamp = Stamp {
            client: Client::new(frontend.s3_addr),
            servers: Vec::new(),
            manager,
            manager_addr,
            location_addr,
            s3_addr: frontend.s3_addr,
            stream,
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
            let server = strata_testkit::start_partition_server(
                id,
                &stamp.stream.addr,
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
                    Some(server) if server.is_alive() => server
                        .state
                        .ready_range(strata_types::RangeId::new(range.range_id))
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
        let right = RangeId::new(first.get() + 1);
        let mut owner = PartitionServerClient::new(rpc::channel(&range.owner_addr).unwrap());
        owner
            .prepare_reshape(PrepareReshapeRequest {
                parents: vec![ReshapeParent {
                    range_id: range.range_id,
                    epoch: range.epoch,
                }],
                children: vec![
                    ReshapeChild {
                        range_id: first.get(),
                        low: range.low.clone(),
                        high: split_key.to_vec(),
                    },
                    ReshapeChild {
                        range_id: right.get(),
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
                left_id: first,
                right_id: right,
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
        // The old owner learns it lost the range at its next heartbeat; until then it may
        // still answer a front-end whose map is stale, so wait until only `to` serves it.
        wait_for("the new owner alone to serve the range", || {
            let served_by_new = self.servers[to].serves(key);
            let served_by_others = self
                .servers
                .iter()
                .enumerate()
                .any(|(index, server)| index != to && server.serves(key));
            async move { (served_by_new && !served_by_others).then_some(()) }
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
