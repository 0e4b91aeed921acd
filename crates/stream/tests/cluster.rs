//! In-process stream layer: a stream manager and 6 extent nodes on 3 racks, all on
//! 127.0.0.1:0 with temporary folders. Proves: appends read back (by position and as a
//! stream), replicas sit on 3 racks, a full extent is sealed and the writer moves on, a dead
//! replica neither loses reads nor stops the writer, a corrupted replica file is read around,
//! a fenced writer stops, and the manager's metadata survives a restart.

mod common;

use bytes::Bytes;
use common::wait_until;
use futures::StreamExt;
use std::collections::HashSet;
use std::net::SocketAddr;
use strata_stream::{
    start_extent_node, start_stream_manager, ExtentNodeConfig, ManagerSettings, RecordPos,
    RunningExtentNode, RunningStreamManager, StreamClient, StreamError, StreamManagerConfig,
};
use strata_types::ExtentId;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

struct Node {
    running: RunningExtentNode,
    token: CancellationToken,
    _dir: TempDir,
}

async fn start_manager(
    dir: &std::path::Path,
    addr: SocketAddr,
) -> (RunningStreamManager, CancellationToken) {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("bind manager");
    let token = CancellationToken::new();
    let config = StreamManagerConfig::single(
        dir.to_path_buf(),
        &listener.local_addr().unwrap().to_string(),
        ManagerSettings {
            extent_size_bytes_max: 64 * 1024,
            node_timeout_ms: 1_000,
        },
    );
    let manager = start_stream_manager(config, listener, token.clone())
        .await
        .expect("start manager");
    (manager, token)
}

async fn start_node(rack: &str, manager_addr: &str) -> Node {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind node");
    let token = CancellationToken::new();
    let config = ExtentNodeConfig {
        data_dir: dir.path().to_path_buf(),
        rack: rack.to_string(),
        node_id: None,
        stream_manager_addrs: vec![manager_addr.to_string()],
        heartbeat_interval_ms: 100,
        advertise_addr: None,
        capacity_bytes: 0,
    };
    let running = start_extent_node(config, listener, token.clone())
        .await
        .expect("start node");
    Node {
        running,
        token,
        _dir: dir,
    }
}

async fn wait_for_healthy_nodes(client: &StreamClient, count: usize) {
    wait_until("healthy nodes", || async {
        let status = client.status().await.ok()?;
        (status.nodes.iter().filter(|n| n.healthy).count() == count).then_some(())
    })
    .await;
}

fn payload(index: usize, len: usize) -> Bytes {
    let mut bytes = format!("record-{index:05}-").into_bytes();
    bytes.resize(len, (index % 251) as u8);
    Bytes::from(bytes)
}

async fn read_all(
    client: &StreamClient,
    name: &str,
    from: Option<(ExtentId, u64)>,
) -> Vec<(RecordPos, Bytes)> {
    client
        .read_stream(name, from)
        .map(|item| item.expect("stream read"))
        .collect()
        .await
}

/// The stream holds every acknowledged record, in order, at its position. Anything else must
/// be a copy of an acknowledged payload: an append that failed (not acknowledged) may still
/// have reached every reachable replica before the writer sealed and retried it elsewhere.
fn assert_holds_in_order(read: &[(RecordPos, Bytes)], written: &[(RecordPos, Bytes)]) {
    let positions: HashSet<RecordPos> = written.iter().map(|(p, _)| *p).collect();
    let (acknowledged, extra): (Vec<_>, Vec<_>) = read
        .iter()
        .cloned()
        .partition(|(p, _)| positions.contains(p));
    assert_eq!(labels(&acknowledged), labels(written));
    assert_eq!(acknowledged, written);
    for (pos, data) in extra {
        assert!(
            written.iter().any(|(_, w)| *w == data),
            "unexpected record at {pos:?}"
        );
    }
}

/// Short form for assertion messages: position and the payload's label.
fn labels(records: &[(RecordPos, Bytes)]) -> Vec<(ExtentId, u64, String)> {
    records
        .iter()
        .map(|(p, b)| {
            (
                p.extent_id,
                p.offset,
                String::from_utf8_lossy(&b[..b.len().min(12)]).into_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stream_layer_on_six_nodes_and_three_racks() {
    let manager_dir = tempfile::tempdir().unwrap();
    let (manager, manager_token) =
        start_manager(manager_dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let mut nodes = Vec::new();
    for rack in ["rack-a", "rack-a", "rack-b", "rack-b", "rack-c", "rack-c"] {
        nodes.push(start_node(rack, &manager.addr).await);
    }
    let client = StreamClient::new(vec![manager.addr.clone()]);
    wait_for_healthy_nodes(&client, 6).await;

    // Open and append; every record reads back by position and as a stream.
    let writer = client.open("range-1/log").await.expect("open stream");
    let first = writer.info().await.extents[0].clone();
    let racks: HashSet<String> = first.replicas.iter().map(|r| r.rack.clone()).collect();
    assert_eq!(
        (first.replicas.len(), racks.len()),
        (3, 3),
        "3 replicas on 3 distinct racks"
    );
    let mut written: Vec<(RecordPos, Bytes)> = Vec::new();
    for index in 0..20 {
        let data = payload(index, 1000);
        let pos = writer.append(data.clone()).await.expect("append");
        assert_eq!(pos.length, 1000);
        written.push((pos, data));
    }
    for (pos, data) in &written {
        assert_eq!(
            &client
                .read_record(pos.extent_id, pos.offset)
                .await
                .expect("read record"),
            data
        );
    }
    assert_holds_in_order(&read_all(&client, "range-1/log", None).await, &written);
    let from = written[5].0;
    assert_eq!(
        read_all(&client, "range-1/log", Some((from.extent_id, from.offset))).await,
        written[5..].to_vec()
    );

    // Fill the 64 KiB extent: the writer seals it at the end of its last record and goes on.
    let mut index = written.len();
    while writer.info().await.extents.len() < 2 {
        let data = payload(index, 8 * 1024);
        written.push((writer.append(data.clone()).await.expect("append"), data));
        index += 1;
    }
    let info = client.stream_info("range-1/log").await.unwrap();
    let sealed = &info.extents[0];
    assert!(sealed.sealed);
    let last_in_first = written
        .iter()
        .rfind(|(p, _)| p.extent_id.get() == sealed.extent_id)
        .unwrap()
        .0;
    assert_eq!(
        sealed.sealed_length,
        last_in_first.offset + 12 + last_in_first.length
    );
    assert!(!info.extents[1].sealed);
    let data = payload(index, 500);
    let pos = writer.append(data.clone()).await.unwrap();
    assert_eq!(pos.extent_id.get(), info.extents[1].extent_id);
    written.push((pos, data));
    index += 1;
    assert_holds_in_order(&read_all(&client, "range-1/log", None).await, &written);

    // Stop a secondary of the open extent: the next append seals and moves to a fresh extent
    // on live nodes; everything acknowledged still reads.
    let open_extent = info.extents[1].clone();
    let victim_id = open_extent.replicas[1].node_id.clone();
    let victim = nodes
        .iter()
        .position(|n| n.running.node_id == victim_id)
        .unwrap();
    let stopped = nodes.remove(victim);
    stopped.token.cancel();
    stopped.running.join().await;
    let data = payload(index, 700);
    let pos = writer
        .append(data.clone())
        .await
        .expect("append after a replica died");
    written.push((pos, data));
    assert_ne!(
        pos.extent_id.get(),
        open_extent.extent_id,
        "the writer carried on on a fresh extent"
    );
    let info = client.stream_info("range-1/log").await.unwrap();
    let old = info
        .extents
        .iter()
        .find(|e| e.extent_id == open_extent.extent_id)
        .unwrap();
    assert!(old.sealed);
    let fresh = info.extents.last().unwrap();
    assert!(fresh.replicas.iter().all(|r| r.node_id != victim_id));
    assert_eq!(
        fresh
            .replicas
            .iter()
            .map(|r| r.rack.clone())
            .collect::<HashSet<_>>()
            .len(),
        3
    );
    for (pos, data) in &written {
        assert_eq!(
            &client
                .read_record(pos.extent_id, pos.offset)
                .await
                .expect("read after node loss"),
            data
        );
    }
    assert_holds_in_order(&read_all(&client, "range-1/log", None).await, &written);

    // Corrupt one replica's copy of a record on disk: reads still return the right bytes.
    let (target, target_data) = written[3].clone();
    let extent = client.extent_info(target.extent_id, false).await.unwrap();
    let holder = extent
        .replicas
        .iter()
        .find_map(|r| nodes.iter().find(|n| n.running.node_id == r.node_id))
        .unwrap();
    let path = holder.running.store.extent_file_path(target.extent_id);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[(target.offset + 12 + 3) as usize] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let failures_before = strata_stream::metrics::checksum_failures().get();
    for _ in 0..6 {
        assert_eq!(
            client
                .read_record(target.extent_id, target.offset)
                .await
                .expect("read around corruption"),
            target_data
        );
    }
    assert!(
        strata_stream::metrics::checksum_failures().get() > failures_before,
        "the bad copy was detected"
    );
    assert_holds_in_order(&read_all(&client, "range-1/log", None).await, &written);

    // Status: every extent on 3 racks; the stopped node is reported unhealthy in time.
    let status = wait_until("stopped node unhealthy", || async {
        let status = client.status().await.ok()?;
        (status.nodes.iter().filter(|n| n.healthy).count() == 5).then_some(status)
    })
    .await;
    assert_eq!(status.streams_total, 1);
    for extent in &status.extents {
        assert_eq!(
            extent.racks.iter().collect::<HashSet<_>>().len(),
            3,
            "extent {} racks",
            extent.extent_id
        );
    }

    // Fencing: a second writer seals the stream; the first one is told to stop.
    let newer = client.open("range-1/log").await.unwrap();
    newer.seal_current().await.expect("fence");
    match writer.append(payload(0, 10)).await {
        Err(err @ StreamError::Fenced { .. }) => assert!(err.is_fenced()),
        other => panic!("expected the old writer to be fenced, got {other:?}"),
    }
    let pos = newer
        .append(payload(1, 10))
        .await
        .expect("newer writer appends");
    assert_eq!(
        client.read_record(pos.extent_id, pos.offset).await.unwrap(),
        payload(1, 10)
    );

    for node in nodes {
        node.token.cancel();
        node.running.join().await;
    }
    manager_token.cancel();
    manager.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn manager_metadata_survives_restart() {
    let manager_dir = tempfile::tempdir().unwrap();
    let (manager, manager_token) =
        start_manager(manager_dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let manager_addr: SocketAddr = manager.addr.parse().unwrap();
    let mut nodes = Vec::new();
    for rack in ["r1", "r2", "r3"] {
        nodes.push(start_node(rack, &manager.addr).await);
    }
    let client = StreamClient::new(vec![manager.addr.clone()]);
    wait_for_healthy_nodes(&client, 3).await;
    let writer = client.open("checkpoints").await.unwrap();
    let pos = writer.append(Bytes::from_static(b"durable")).await.unwrap();
    let before = client.stream_info("checkpoints").await.unwrap();
    manager_token.cancel();
    manager.join().await;

    // Same folder, same port (nodes keep heartbeating there).
    let (manager, manager_token) = start_manager(manager_dir.path(), manager_addr).await;
    let client = StreamClient::new(vec![manager.addr.clone()]);
    assert_eq!(client.stream_info("checkpoints").await.unwrap(), before);
    assert_eq!(
        client.read_record(pos.extent_id, pos.offset).await.unwrap(),
        Bytes::from_static(b"durable")
    );
    wait_for_healthy_nodes(&client, 3).await;
    let status = client.status().await.unwrap();
    assert_eq!((status.streams_total, status.extents.len()), (1, 1));
    // Extent ids keep counting after the restart.
    let other = client.open("other").await.unwrap();
    assert!(other.info().await.extents[0].extent_id > pos.extent_id.get());

    for node in nodes {
        node.token.cancel();
        node.running.join().await;
    }
    manager_token.cancel();
    manager.join().await;
}
