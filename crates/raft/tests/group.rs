//! Proves the generic group with a small key-value machine: openraft's storage suite passes
//! on the sled stores; a store reopened after a crash has every applied record; three members
//! over real gRPC on loopback elect a leader, replicate, survive the leader's loss, and bring
//! a member that missed a snapshot's worth of entries up to date.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_raft::{Group, GroupConfig, GroupError, Machine, Overlay, StateReader};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum KvCommand {
    Put {
        key: String,
        value: String,
    },
    /// Adds to a counter and answers the new value (not idempotent: re-applying would show).
    Add {
        key: String,
        amount: u64,
    },
}

#[derive(Default)]
struct Kv;

impl Machine for Kv {
    type Command = KvCommand;
    type Response = Option<u64>;

    fn no_change() -> Option<u64> {
        None
    }

    fn apply(
        &self,
        state: &mut Overlay<'_>,
        _index: u64,
        command: &KvCommand,
    ) -> Result<Option<u64>, GroupError> {
        match command {
            KvCommand::Put { key, value } => {
                state.put_record(key.as_bytes(), value)?;
                Ok(None)
            }
            KvCommand::Add { key, amount } => {
                let now = state.get_record::<u64>(key.as_bytes())?.unwrap_or(0) + amount;
                state.put_record(key.as_bytes(), &now)?;
                Ok(Some(now))
            }
        }
    }
}

fn value(reader: &StateReader, key: &str) -> Option<String> {
    reader.get_record(key.as_bytes()).unwrap()
}

#[test]
fn sled_stores_pass_the_openraft_storage_suite() {
    strata_raft::testing::run_storage_suite(|| Kv).unwrap();
}

struct Member {
    group: Group<Kv>,
    token: CancellationToken,
    server: tokio::task::JoinHandle<()>,
}

async fn start_member(
    node_id: u64,
    members: &BTreeMap<u64, String>,
    listener: tokio::net::TcpListener,
    dir: &std::path::Path,
) -> Member {
    let mut config = GroupConfig::new("kv-test", node_id, members.clone(), dir);
    config.snapshot_logs_since_last = 20;
    config.logs_kept_after_snapshot = 5;
    let group = Group::start(&config, Arc::new(Kv)).await.unwrap();
    let token = CancellationToken::new();
    let router = strata_util::rpc::server().add_service(group.service());
    let serve_token = token.clone();
    let server = tokio::spawn(async move {
        strata_util::rpc::serve(router, listener, serve_token)
            .await
            .unwrap();
    });
    group.initialize_if_first(members).await.unwrap();
    Member {
        group,
        token,
        server,
    }
}

impl Member {
    async fn stop(self) {
        self.group.shutdown().await;
        self.token.cancel();
        let _ = self.server.await;
    }
}

async fn wait_until<F: Fn() -> bool>(what: &str, timeout: Duration, condition: F) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Proposes through whichever member leads, following NotLeader answers.
async fn propose(members: &BTreeMap<u64, Member>, command: KvCommand) -> Option<u64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for member in members.values() {
            match member.group.propose(command.clone(), 5_000).await {
                Ok(response) => return response,
                Err(err) => assert!(
                    Instant::now() < deadline,
                    "no member took the proposal: {err}"
                ),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_members_replicate_fail_over_and_catch_up() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut listeners = Vec::new();
    let mut addrs = BTreeMap::new();
    for id in 1..=3u64 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.insert(id, listener.local_addr().unwrap().to_string());
        listeners.push(listener);
    }
    let mut members = BTreeMap::new();
    for (id, listener) in (1..=3u64).zip(listeners) {
        let member = start_member(id, &addrs, listener, dirs[id as usize - 1].path()).await;
        members.insert(id, member);
    }

    // Replication: a committed write is applied on every member.
    assert_eq!(
        propose(
            &members,
            KvCommand::Add {
                key: "n".into(),
                amount: 5
            }
        )
        .await,
        Some(5)
    );
    propose(
        &members,
        KvCommand::Put {
            key: "a".into(),
            value: "1".into(),
        },
    )
    .await;
    for member in members.values() {
        let reader = member.group.reader().clone();
        wait_until("replication", Duration::from_secs(10), || {
            value(&reader, "a").as_deref() == Some("1")
        })
        .await;
    }

    // A follower is refused with a hint to the leader.
    let leader_id = members
        .values()
        .find(|m| m.group.is_leader())
        .map(|m| m.group.node_id())
        .expect("a leader");
    let follower = members
        .values()
        .find(|m| m.group.node_id() != leader_id)
        .unwrap();
    match follower
        .group
        .propose(
            KvCommand::Put {
                key: "x".into(),
                value: "y".into(),
            },
            5_000,
        )
        .await
    {
        Err(GroupError::NotLeader { leader_addr, .. }) => {
            assert_eq!(leader_addr.as_deref(), Some(addrs[&leader_id].as_str()))
        }
        other => panic!("a follower took a proposal: {other:?}"),
    }

    // The leader dies; the others elect a new one and go on.
    let old_leader = members.remove(&leader_id).unwrap();
    old_leader.stop().await;
    assert_eq!(
        propose(
            &members,
            KvCommand::Add {
                key: "n".into(),
                amount: 1
            }
        )
        .await,
        Some(6)
    );
    // Enough entries for several snapshots (and log purges) while the old leader is away.
    for i in 0..60 {
        propose(
            &members,
            KvCommand::Put {
                key: format!("k{i:02}"),
                value: i.to_string(),
            },
        )
        .await;
    }

    // It comes back on the same folder and catches up (from a snapshot: its log is behind the
    // purge point of the others).
    let listener = tokio::net::TcpListener::bind(addrs[&leader_id].as_str())
        .await
        .unwrap();
    let returned = start_member(
        leader_id,
        &addrs,
        listener,
        dirs[leader_id as usize - 1].path(),
    )
    .await;
    let reader = returned.group.reader().clone();
    wait_until("catch-up", Duration::from_secs(20), || {
        value(&reader, "k59").as_deref() == Some("59")
    })
    .await;
    assert_eq!(reader.get_record::<u64>(b"n").unwrap(), Some(6));
    assert_eq!(reader.scan_records::<String>(b"k").unwrap().len(), 60);
    members.insert(leader_id, returned);
    // Counters were applied exactly once everywhere.
    for member in members.values() {
        let reader = member.group.reader().clone();
        wait_until("counter everywhere", Duration::from_secs(10), || {
            reader.get_record::<u64>(b"n").unwrap() == Some(6)
        })
        .await;
    }
    for (_, member) in members {
        member.stop().await;
    }
}

/// A member restarted on its folder has its records and applied index, and applies nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_member_restarts_with_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addrs = BTreeMap::from([(1u64, listener.local_addr().unwrap().to_string())]);
    let member = start_member(1, &addrs, listener, dir.path()).await;
    let mut members = BTreeMap::from([(1u64, member)]);
    for _ in 0..30 {
        propose(
            &members,
            KvCommand::Add {
                key: "n".into(),
                amount: 1,
            },
        )
        .await;
    }
    let applied = members[&1].group.last_applied_index();
    members.remove(&1).unwrap().stop().await;

    let listener = tokio::net::TcpListener::bind(addrs[&1].as_str())
        .await
        .unwrap();
    let member = start_member(1, &addrs, listener, dir.path()).await;
    assert_eq!(
        member.group.reader().get_record::<u64>(b"n").unwrap(),
        Some(30)
    );
    assert!(member.group.reader().applied().unwrap().unwrap().index >= applied);
    let members = BTreeMap::from([(1u64, member)]);
    assert_eq!(
        propose(
            &members,
            KvCommand::Add {
                key: "n".into(),
                amount: 1
            }
        )
        .await,
        Some(31)
    );
    for (_, member) in members {
        member.stop().await;
    }
}
