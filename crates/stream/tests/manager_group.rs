//! The stream manager as a Raft group of 3, in one process over real gRPC on 127.0.0.1:
//! proves its metadata store passes openraft's storage suite; that writers keep appending
//! (sealing and opening fresh extents through the manager) while the leader is killed, with
//! every acknowledged record readable afterwards; that followers send callers to the leader;
//! and that a killed member restarted on its folder rejoins with every stream and extent.

mod common;

use bytes::Bytes;
use common::wait_until;
use futures::StreamExt;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use strata_stream::manager::machine::MetaMachine;
use strata_stream::{
    start_extent_node, start_stream_manager, ExtentNodeConfig, ManagerSettings, RecordPos,
    RunningExtentNode, RunningStreamManager, StreamClient, StreamManagerConfig,
};
use strata_types::NodeId;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

/// Reads `stream` whole: every acknowledged record in `written` must be in it.
async fn assert_every_acknowledged_read(
    client: &StreamClient,
    stream: &str,
    written: &[(RecordPos, Bytes)],
) {
    let read: Vec<(RecordPos, Bytes)> = client
        .read_stream(stream, None)
        .map(|item| item.unwrap())
        .collect()
        .await;
    for acknowledged in written {
        assert!(
            read.contains(acknowledged),
            "acknowledged record lost: {:?}",
            acknowledged.0
        );
    }
}

#[test]
fn stream_metadata_store_passes_the_openraft_storage_suite() {
    strata_raft::testing::run_storage_suite(|| MetaMachine).unwrap();
}

struct Member {
    running: RunningStreamManager,
    token: CancellationToken,
}

async fn start_member(
    node_id: u64,
    members: &BTreeMap<u64, String>,
    dir: &std::path::Path,
) -> Member {
    let addr = &members[&node_id];
    let deadline = Instant::now() + Duration::from_secs(10);
    let listener = loop {
        match tokio::net::TcpListener::bind(addr.as_str()).await {
            Ok(listener) => break listener,
            Err(err) => {
                assert!(Instant::now() < deadline, "rebinding {addr}: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let token = CancellationToken::new();
    let config = StreamManagerConfig {
        data_dir: dir.to_path_buf(),
        node_id: NodeId::new(node_id),
        members: members
            .iter()
            .map(|(id, addr)| (NodeId::new(*id), addr.clone()))
            .collect(),
        settings: ManagerSettings {
            extent_size_bytes_max: 16 * 1024,
            node_timeout_ms: 1_000,
        },
    };
    let running = start_stream_manager(config, listener, token.clone())
        .await
        .expect("start member");
    Member { running, token }
}

async fn start_node(
    rack: &str,
    managers: &[String],
) -> (RunningExtentNode, CancellationToken, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let token = CancellationToken::new();
    let config = ExtentNodeConfig {
        data_dir: dir.path().to_path_buf(),
        rack: rack.to_string(),
        node_id: None,
        stream_manager_addrs: managers.to_vec(),
        heartbeat_interval_ms: 100,
        advertise_addr: None,
        capacity_bytes: 0,
    };
    let running = start_extent_node(config, listener, token.clone())
        .await
        .unwrap();
    (running, token, dir)
}

fn payload(index: usize) -> Bytes {
    let mut bytes = format!("record-{index:05}-").into_bytes();
    bytes.resize(3000, (index % 251) as u8);
    Bytes::from(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_carry_on_while_the_manager_leader_dies_and_it_rejoins() {
    let dirs: Vec<TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut members_addrs = BTreeMap::new();
    for id in 1..=3u64 {
        // Reserve a port: bind, note, drop (the member binds it again right away).
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        members_addrs.insert(id, probe.local_addr().unwrap().to_string());
    }
    let mut members = BTreeMap::new();
    for id in 1..=3u64 {
        members.insert(
            id,
            start_member(id, &members_addrs, dirs[id as usize - 1].path()).await,
        );
    }
    let addrs: Vec<String> = members_addrs.values().cloned().collect();
    let mut nodes = Vec::new();
    for rack in ["a", "a", "b", "b", "c", "c"] {
        nodes.push(start_node(rack, &addrs).await);
    }
    let client = StreamClient::new(addrs.clone());
    wait_until("6 healthy nodes", || async {
        let status = client.status().await.ok()?;
        (status.nodes.iter().filter(|n| n.healthy).count() == 6).then_some(status)
    })
    .await;

    // A writer that keeps filling 16 KiB extents, so it keeps asking the manager to seal.
    let writer = client.open("range-1/log").await.unwrap();
    let mut written: Vec<(RecordPos, Bytes)> = Vec::new();
    for index in 0..20 {
        let data = payload(index);
        written.push((writer.append(data.clone()).await.unwrap(), data));
    }
    let leader_id = wait_until("a leader", || async {
        members
            .iter()
            .find(|(_, m)| m.running.is_leader())
            .map(|(id, _)| *id)
    })
    .await;
    let status = client.status().await.unwrap();
    assert_eq!(status.leader_id, leader_id);
    assert_eq!(status.managers.len(), 3);

    // Kill the leader mid-writes; the writer goes on (the client finds the new leader).
    let old = members.remove(&leader_id).unwrap();
    old.token.cancel();
    old.running.join().await;
    for index in 20..80 {
        let data = payload(index);
        let pos = writer
            .append(data.clone())
            .await
            .expect("append after failover");
        written.push((pos, data));
    }
    let info = client.stream_info("range-1/log").await.unwrap();
    assert!(
        info.extents.len() > 4,
        "extents were sealed and opened after the failover"
    );
    assert_every_acknowledged_read(&client, "range-1/log", &written).await;

    // The old leader comes back on its folder and catches up with the group.
    let current_leader = wait_until("a new leader", || async {
        members
            .iter()
            .find(|(_, m)| m.running.is_leader())
            .map(|(id, _)| *id)
    })
    .await;
    let target_index = members[&current_leader].running.last_applied_index();
    let returned = start_member(
        leader_id,
        &members_addrs,
        dirs[leader_id as usize - 1].path(),
    )
    .await;
    wait_until("the returned member catches up", || async {
        (returned.running.last_applied_index() >= target_index).then_some(())
    })
    .await;
    members.insert(leader_id, returned);

    // Now the current leader dies too: the returned member and the third one are a quorum,
    // and the metadata they serve holds every extent of the stream.
    let second = members.remove(&current_leader).unwrap();
    second.token.cancel();
    second.running.join().await;
    let expected_extents: Vec<u64> = info.extents.iter().map(|e| e.extent_id).collect();
    let after = client.stream_info("range-1/log").await.unwrap();
    let ids: Vec<u64> = after.extents.iter().map(|e| e.extent_id).collect();
    assert!(
        ids.starts_with(&expected_extents),
        "{ids:?} lost extents of {expected_extents:?}"
    );
    for index in 80..100 {
        let data = payload(index);
        written.push((writer.append(data.clone()).await.expect("append"), data));
    }
    assert_every_acknowledged_read(&client, "range-1/log", &written).await;

    for (running, token, _dir) in nodes {
        token.cancel();
        running.join().await;
    }
    for (_, member) in members {
        member.token.cancel();
        member.running.join().await;
    }
}

/// A writer's seal retried after its answer was lost (a manager failover) is recognized as
/// its own and answered with the stream; another writer's stale seal is fenced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_seal_of_the_same_writer_is_not_taken_for_fencing() {
    use strata_proto::stream::stream_manager_client::StreamManagerClient;
    use strata_proto::stream::SealExtentRequest;

    let dir = tempfile::tempdir().unwrap();
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let members = BTreeMap::from([(1u64, probe.local_addr().unwrap().to_string())]);
    drop(probe);
    let member = start_member(1, &members, dir.path()).await;
    let addrs = vec![members[&1].clone()];
    let mut nodes = Vec::new();
    for rack in ["a", "b", "c"] {
        nodes.push(start_node(rack, &addrs).await);
    }
    let client = StreamClient::new(addrs.clone());
    wait_until("3 healthy nodes", || async {
        let status = client.status().await.ok()?;
        (status.nodes.iter().filter(|n| n.healthy).count() == 3).then_some(())
    })
    .await;
    let writer = client.open("s").await.unwrap();
    let first = writer.info().await.extents[0].extent_id;
    let mut raw = StreamManagerClient::new(strata_util::rpc::channel(&addrs[0]).unwrap());
    let seal = |writer_id: &str| SealExtentRequest {
        stream: "s".into(),
        extent_id: first,
        length: 0,
        expect_open: true,
        writer_id: writer_id.into(),
    };
    let sealed = raw.seal_extent(seal("w1")).await.unwrap().into_inner();
    assert_eq!(sealed.extents.len(), 2);
    let retried = raw.seal_extent(seal("w1")).await.unwrap().into_inner();
    assert_eq!(retried.extents, sealed.extents, "the retry changed nothing");
    let stale = raw.seal_extent(seal("w2")).await.unwrap_err();
    assert!(
        matches!(
            strata_types::error_detail::from_status(&stale),
            Some(strata_types::ErrorDetail::Fenced { .. })
        ),
        "{stale:?}"
    );
    for (running, token, _dir) in nodes {
        token.cancel();
        running.join().await;
    }
    member.token.cancel();
    member.running.join().await;
}
