//! Proves the manager group works end to end in one process, over real gRPC on 127.0.0.1:
//! a leader is elected, the initial range is created, ranges go to live partition servers and
//! move (with a bumped epoch) when their owner stops heartbeating, the map survives the loss of
//! the leader, and a restarted member catches up from its sled folder (via a snapshot).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strata_manager::{
    start, Command, CommandResponse, ManagerClient, ManagerConfig, ManagerHandle, ServerHeartbeat,
};
use strata_proto::manager::{PartitionMap, ServerHeartbeatResponse};
use strata_testkit::wait_for;
use strata_types::RangeId;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const SERVER_TIMEOUT_MS: u64 = 1_500;
fn config(id: u64, members: &BTreeMap<u64, String>, dir: &std::path::Path) -> ManagerConfig {
    let mut config = ManagerConfig::new(id, members.clone(), dir.join(format!("member-{id}")));
    config.server_timeout_ms = SERVER_TIMEOUT_MS;
    // Small numbers so the test exercises snapshots and log purging.
    config.snapshot_logs_since_last = 10;
    config.logs_kept_after_snapshot = 0;
    config
}

/// Waits until `member` has taken (or installed) a snapshot.
async fn wait_for_snapshot(what: &str, member: &ManagerHandle) {
    wait_for(&format!("a snapshot on {what}"), || async {
        member
            .raft()
            .metrics()
            .borrow()
            .snapshot
            .is_some()
            .then_some(())
    })
    .await;
}

async fn bind_again(addr: &str) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(err) => {
                assert!(Instant::now() < deadline, "rebinding {addr}: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A fake partition server: heartbeats through `ManagerClient` every 200 ms until stopped and
/// keeps the last answer.
struct FakeServer {
    token: CancellationToken,
    server_id: String,
    last: Arc<Mutex<Option<ServerHeartbeatResponse>>>,
}

impl FakeServer {
    fn start(client: Arc<ManagerClient>, server_id: &str, addr: &str) -> Self {
        let token = CancellationToken::new();
        let last = Arc::new(Mutex::new(None));
        let heartbeat = ServerHeartbeat {
            server_id: server_id.into(),
            addr: addr.into(),
            serving: Vec::new(),
            http_addr: String::new(),
        };
        let (stop, keep) = (token.clone(), last.clone());
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                if let Ok(response) = client.heartbeat(heartbeat.clone()).await {
                    *keep.lock().unwrap() = Some(response);
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        });
        Self {
            token,
            server_id: server_id.to_string(),
            last,
        }
    }

    /// The ranges the last answer gave this server (the answer carries the whole map; a
    /// server serves the ranges it owns).
    fn assigned(&self) -> Vec<(u64, u64)> {
        let last = self.last.lock().unwrap();
        last.iter()
            .flat_map(|response| response.assignments.iter())
            .filter(|a| a.owner_id == self.server_id)
            .map(|a| (a.range_id, a.epoch))
            .collect()
    }
}

/// The one range of the map as (owner id, epoch), if the map has exactly one range.
fn single_range(map: &PartitionMap) -> Option<(String, u64)> {
    match map.ranges.as_slice() {
        [range] if range.range_id == 1 && range.low.is_empty() && range.high.is_empty() => {
            Some((range.owner_id.clone(), range.epoch))
        }
        _ => None,
    }
}

fn agreed_leader(handles: &[&ManagerHandle]) -> Option<u64> {
    let leader = handles.first()?.leader_id()?;
    handles
        .iter()
        .all(|handle| {
            handle.leader_id() == Some(leader) && handle.raft().metrics().borrow().current_term > 0
        })
        .then_some(leader)
        .filter(|leader| {
            handles
                .iter()
                .any(|handle| handle.node_id() == *leader && handle.is_leader())
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_assign_move_fail_over_and_catch_up() {
    strata_util::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut listeners = Vec::new();
    let mut members = BTreeMap::new();
    for id in 1..=3u64 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        members.insert(id, listener.local_addr().unwrap().to_string());
        listeners.push((id, listener));
    }
    let mut handles: BTreeMap<u64, ManagerHandle> = BTreeMap::new();
    for (id, listener) in listeners {
        let handle = start(
            config(id, &members, dir.path()),
            listener,
            CancellationToken::new(),
        )
        .await
        .unwrap();
        handles.insert(id, handle);
    }

    // A leader is elected and every member agrees on it.
    let all: Vec<&ManagerHandle> = handles.values().collect();
    let leader = wait_for("a leader", || async { agreed_leader(&all) }).await;

    // The leader creates the initial range covering all keys, without an owner.
    let client = Arc::new(ManagerClient::new(members.values().cloned().collect()));
    let map = wait_for("the initial range", || async {
        let map = client.partition_map().await.ok()?;
        single_range(&map).map(|_| map)
    })
    .await;
    assert_eq!(single_range(&map), Some((String::new(), 0)));
    assert_eq!(map.leader_hint, members[&leader]);

    // A partition server heartbeats and gets range 1 under epoch 1.
    let server_a = FakeServer::start(client.clone(), "ps-a", "127.0.0.1:9001");
    wait_for("range 1 assigned to ps-a", || async {
        (server_a.assigned() == vec![(1, 1)]).then_some(())
    })
    .await;
    let map = client.partition_map().await.unwrap();
    assert_eq!(single_range(&map), Some(("ps-a".to_string(), 1)));
    assert_eq!(map.ranges[0].owner_addr, "127.0.0.1:9001");

    // A second server heartbeats too; the range stays where it is.
    let server_b = FakeServer::start(client.clone(), "ps-b", "127.0.0.1:9002");
    wait_for("two live servers in the status", || async {
        let status = client.status().await.ok()?;
        (status.servers.iter().filter(|server| server.alive).count() == 2).then_some(())
    })
    .await;
    assert!(server_b.assigned().is_empty());
    assert_eq!(
        single_range(&client.partition_map().await.unwrap()),
        Some(("ps-a".to_string(), 1))
    );

    // ps-a stops heartbeating: after the timeout the range moves to ps-b under epoch 2.
    server_a.token.cancel();
    wait_for("range 1 moved to ps-b", || async {
        (server_b.assigned() == vec![(1, 2)]).then_some(())
    })
    .await;
    let map_before_failover = client.partition_map().await.unwrap();
    assert_eq!(
        single_range(&map_before_failover),
        Some(("ps-b".to_string(), 2))
    );
    let status = client.status().await.unwrap();
    assert_eq!(status.members.len(), 3);
    assert_eq!(status.leader_id, leader);

    // The leader dies: the others elect a new one and the map still answers, unchanged.
    let old_leader = handles.remove(&leader).unwrap();
    old_leader.shutdown().await;
    let survivors: Vec<&ManagerHandle> = handles.values().collect();
    let new_leader = wait_for("a new leader", || async { agreed_leader(&survivors) }).await;
    assert_ne!(new_leader, leader);
    let map = wait_for("the map from the new leader", || async {
        let map = client.partition_map().await.ok()?;
        (map.leader_hint == members[&new_leader]).then_some(map)
    })
    .await;
    assert_eq!(map.ranges, map_before_failover.ranges);
    assert_eq!(map.version, map_before_failover.version);

    // ps-b keeps its range through the fail-over (the new leader waits out its grace period).
    wait_for("ps-b heartbeating to the new leader", || async {
        let status = client.status().await.ok()?;
        (status.leader_id == new_leader
            && status
                .servers
                .iter()
                .any(|s| s.server_id == "ps-b" && s.alive))
        .then_some(())
    })
    .await;

    // While the old leader is down, more entries are committed (stale proposals that apply as
    // no-ops) so the log is snapshotted and purged past what the stopped member has.
    let leader_handle = &handles[&new_leader];
    for _ in 0..30 {
        let response = leader_handle
            .raft()
            .client_write(Command::CreateInitialRange {
                range_id: RangeId::new(1),
                low: vec![],
                high: vec![],
            })
            .await
            .unwrap();
        assert!(matches!(response.data, CommandResponse::Rejected { .. }));
    }
    wait_for_snapshot("the leader", leader_handle).await;
    let target_index = leader_handle.last_applied_index();

    // The old leader restarts from its sled folder and catches up.
    let listener = bind_again(&members[&leader]).await;
    let restarted = start(
        config(leader, &members, dir.path()),
        listener,
        CancellationToken::new(),
    )
    .await
    .unwrap();
    wait_for("the restarted member to catch up", || async {
        (restarted.last_applied_index() >= target_index).then_some(())
    })
    .await;
    // It was behind the leader's purged log, so it must have caught up through a snapshot.
    wait_for_snapshot("the restarted member", &restarted).await;
    let local = restarted.partition_map();
    assert_eq!(local.ranges, map_before_failover.ranges);
    assert_eq!(local.version, map_before_failover.version);
    assert_eq!(
        single_range(&client.partition_map().await.unwrap()),
        Some(("ps-b".to_string(), 2))
    );
    assert_eq!(server_b.assigned(), vec![(1, 2)]);

    server_b.token.cancel();
    restarted.shutdown().await;
    for (_, handle) in handles {
        handle.shutdown().await;
    }
}
