//! The stream layer heals itself (in process, real gRPC on 127.0.0.1, temporary folders,
//! short timeouts): re-replication after a node or a whole rack is lost, placement restored
//! when a rack returns, corrupt replicas rewritten (found by a reader or by the scrubber),
//! returning nodes synced to the sealed length and their surplus replicas removed, and
//! garbage collection of deleted and trimmed streams.

mod common;

use bytes::Bytes;
use common::*;
use std::path::PathBuf;
use strata_stream::extent::format;
use strata_stream::{RecordPos, ScrubSettings, StreamClient};
use strata_types::ExtentId;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_replica_mid_appends_is_re_replicated() {
    let (mut cluster, writer, mut written) = six_nodes_with_a_log(20).await;
    // Kill a replica of the open extent while a writer keeps appending.
    let victim = last_extent(&writer).await.replicas[1].node_id.clone();
    let appending = async {
        append_acknowledged(&writer, &mut written, 30).await;
    };
    let (_, kept) = tokio::join!(appending, cluster.stop_node(&victim));
    drop(kept);
    append_acknowledged(&writer, &mut written, 10).await;
    assert_all_readable(&cluster.client, &written).await;
    let status = cluster
        .wait_status("every extent back to 3 healthy replicas on 3 racks", |s| {
            s.nodes.iter().filter(|n| n.healthy).count() == 5 && fully_healed(s)
        })
        .await;
    assert!(status.extents.len() > 3, "the log spans several extents");
    for extent in &status.extents {
        let info = cluster
            .client
            .extent_info(ExtentId::new(extent.extent_id), true)
            .await
            .unwrap();
        assert!(info.replicas.iter().all(|r| r.node_id != victim));
    }
    assert_eq!(status.repair_bytes_left, 0);
    assert!(strata_stream::metrics::extents_repaired().get() > 0);
    assert_all_readable(&cluster.client, &written).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rack_loss_keeps_writes_going_and_placement_is_restored() {
    let (mut cluster, writer, mut written) = six_nodes_with_a_log(20).await;
    let rack_c: Vec<String> = cluster
        .nodes
        .iter()
        .filter(|n| n.running.rack == "c")
        .map(|n| n.running.node_id.clone())
        .collect();
    for node_id in &rack_c {
        cluster.stop_node(node_id).await;
    }
    // Writes and reads go on with two racks.
    append_acknowledged(&writer, &mut written, 30).await;
    assert_all_readable(&cluster.client, &written).await;
    let status = cluster
        .wait_status("3 healthy replicas on the 2 remaining racks", |s| {
            s.nodes.iter().filter(|n| n.healthy).count() == 4
                && s.extents_under_replicated == 0
                && s.extents.iter().all(|e| e.replicas_healthy == 3)
        })
        .await;
    assert!(
        status.extents.iter().any(|e| e.misplaced),
        "some extents had to double up on a rack"
    );
    for extent in &status.extents {
        assert!(extent.racks.iter().all(|r| r != "c"));
    }
    // A rack comes back (new nodes): placement returns to 3 racks.
    cluster.add_node("c", None, no_scrub()).await;
    cluster.add_node("c", None, no_scrub()).await;
    append_acknowledged(&writer, &mut written, 5).await;
    cluster
        .wait_status("3 replicas on 3 racks again", |s| {
            s.nodes.iter().filter(|n| n.healthy).count() == 6 && fully_healed(s)
        })
        .await;
    assert_all_readable(&cluster.client, &written).await;
    // Surplus replicas of the moved extents are deleted from the doubled rack.
    let status = cluster.client.status().await.unwrap();
    wait_until("surplus replicas deleted", || async {
        let mut holders = 0;
        for extent in &status.extents {
            for node in &cluster.nodes {
                if node
                    .running
                    .store
                    .extent_file_path(ExtentId::new(extent.extent_id))
                    .exists()
                {
                    holders += 1;
                }
            }
        }
        (holders == 3 * status.extents.len()).then_some(())
    })
    .await;
    cluster.stop().await;
}

/// Fills stream `name` until its first extent is sealed; returns the records written.
async fn fill_first_extent(client: &StreamClient, name: &str) -> Vec<(RecordPos, Bytes)> {
    let writer = client.open(name).await.unwrap();
    let mut written = Vec::new();
    while writer.info().await.extents.len() < 2 {
        append_acknowledged(&writer, &mut written, 1).await;
    }
    written
}

/// Flips a payload byte of `pos`'s record in `node`'s copy of the extent.
fn corrupt(node: &Node, pos: &RecordPos) -> PathBuf {
    let path = node.running.store.extent_file_path(pos.extent_id);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[(pos.offset + 12 + 5) as usize] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn corrupt_replica_found_by_a_reader_is_rewritten() {
    let cluster = Cluster::start(&["a", "b", "c"], no_scrub()).await;
    let written = fill_first_extent(&cluster.client, "data").await;
    let (pos, data) = written[2].clone();
    let info = cluster
        .client
        .extent_info(pos.extent_id, true)
        .await
        .unwrap();
    assert!(info.sealed);
    let bad = cluster.node(&info.replicas[0].node_id);
    let good_bytes = cluster.replica_bytes(&info.replicas[1].node_id, pos.extent_id);
    let path = corrupt(bad, &pos);
    assert_ne!(file_bytes(&path).unwrap(), good_bytes);
    // Reads rotate over the replicas: some hit the bad copy, all return the right bytes.
    for _ in 0..6 {
        assert_eq!(
            cluster
                .client
                .read_record(pos.extent_id, pos.offset)
                .await
                .unwrap(),
            data
        );
    }
    // The file is renamed into place just before the node serves the new replica: wait for
    // both, then every record of the served replica verifies.
    wait_until("the bad replica rewritten from a good one", || async {
        if file_bytes(&path)? != good_bytes {
            return None;
        }
        let batch = bad
            .running
            .store
            .read(pos.extent_id, format::FILE_HEADER_LEN, 10_000, u64::MAX)
            .await
            .ok()?;
        (batch.next_offset == info.sealed_length).then_some(())
    })
    .await;
    cluster.wait_status("healed", fully_healed).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scrubber_finds_and_repairs_corruption() {
    let scrub = ScrubSettings {
        bytes_per_sec: 16 * 1024 * 1024,
        interval_ms: 200,
    };
    let cluster = Cluster::start(&["a", "b", "c"], scrub).await;
    let written = fill_first_extent(&cluster.client, "data").await;
    let (pos, _) = written[1].clone();
    let info = cluster
        .client
        .extent_info(pos.extent_id, true)
        .await
        .unwrap();
    let bad = cluster.node(&info.replicas[2].node_id);
    let good_bytes = cluster.replica_bytes(&info.replicas[0].node_id, pos.extent_id);
    let found_before = strata_stream::metrics::scrub_corrupt_records().get();
    let path = corrupt(bad, &pos);
    // No reads: the scrubber alone finds it and the manager has it rewritten.
    wait_until("the scrubber's find repaired", || async {
        (file_bytes(&path)? == good_bytes).then_some(())
    })
    .await;
    assert!(strata_stream::metrics::scrub_corrupt_records().get() > found_before);
    assert!(strata_stream::metrics::scrub_bytes().get() > 0);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn returning_node_is_synced_and_its_surplus_replicas_removed() {
    let mut cluster = Cluster::start(&["a", "b", "c"], no_scrub()).await;
    let writer_1 = cluster.client.open("one").await.unwrap();
    let writer_2 = cluster.client.open("two").await.unwrap();
    let (mut written_1, mut written_2) = (Vec::new(), Vec::new());
    append_acknowledged(&writer_1, &mut written_1, 4).await;
    append_acknowledged(&writer_2, &mut written_2, 4).await;
    let e1 = written_1[0].0.extent_id;
    let e2 = written_2[0].0.extent_id;
    let away = cluster
        .nodes
        .iter()
        .find(|n| n.running.rack == "c")
        .map(|n| n.running.node_id.clone())
        .unwrap();
    let stayed = cluster
        .nodes
        .iter()
        .find(|n| n.running.rack == "a")
        .map(|n| n.running.node_id.clone())
        .unwrap();
    let (away_dir, keep) = cluster.stop_node(&away).await;
    // With only 2 nodes left there is nowhere to copy to: the open extents are sealed and the
    // away node stays in their replica sets.
    cluster
        .wait_status("both extents sealed", |s| {
            s.extents
                .iter()
                .filter(|e| e.extent_id == e1.get() || e.extent_id == e2.get())
                .all(|e| e.sealed)
        })
        .await;
    // While away: the node's copy of e1 grows a tail the others never had, its copy of e2
    // loses its last record.
    let e1_path = strata_stream::extent::replica::extent_path(&away_dir.join("extents"), e1);
    let e2_path = strata_stream::extent::replica::extent_path(&away_dir.join("extents"), e2);
    let mut tail = file_bytes(&e1_path).unwrap();
    tail.extend_from_slice(&format::encode_record(b"never acknowledged").unwrap());
    std::fs::write(&e1_path, &tail).unwrap();
    let last = written_2.last().unwrap().0;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&e2_path)
        .unwrap()
        .set_len(last.offset)
        .unwrap();
    cluster
        .add_node("c", Some(away_dir.clone()), no_scrub())
        .await;
    let (want_1, want_2) = (
        cluster.replica_bytes(&stayed, e1),
        cluster.replica_bytes(&stayed, e2),
    );
    wait_until(
        "the returning replicas synced to the sealed length",
        || async {
            let node = cluster.node(&away);
            let state_1 = node.running.store.state(e1).ok()?;
            let state_2 = node.running.store.state(e2).ok()?;
            (state_1.sealed
                && state_2.sealed
                && file_bytes(&e1_path)? == want_1
                && file_bytes(&e2_path)? == want_2)
                .then_some(())
        },
    )
    .await;
    cluster.wait_status("healed", fully_healed).await;
    assert_all_readable(&cluster.client, &written_1).await;
    assert_all_readable(&cluster.client, &written_2).await;

    // Away again; this time a new node on its rack replaces it, so on return its replicas
    // are surplus and deleted.
    cluster.stop_node(&away).await;
    cluster.add_node("c", None, no_scrub()).await;
    wait_until("replaced on the new node", || async {
        for extent_id in [e1, e2] {
            let info = cluster.client.extent_info(extent_id, true).await.ok()?;
            if info.replicas.iter().any(|r| r.node_id == away) {
                return None;
            }
        }
        Some(())
    })
    .await;
    cluster
        .wait_status("healed on the new node", |s| {
            fully_healed(s) && s.nodes.iter().filter(|n| n.healthy).count() == 3
        })
        .await;
    cluster.add_node("c", Some(away_dir), no_scrub()).await;
    wait_until("surplus replicas deleted", || async {
        (!e1_path.exists() && !e2_path.exists()).then_some(())
    })
    .await;
    drop(keep);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleted_and_trimmed_streams_are_garbage_collected() {
    let cluster = Cluster::start(&["a", "b", "c"], no_scrub()).await;
    let mut extents = std::collections::HashMap::new();
    for name in ["gone", "trimmed"] {
        let writer = cluster.client.open(name).await.unwrap();
        let mut written = Vec::new();
        while writer.info().await.extents.len() < 4 {
            append_acknowledged(&writer, &mut written, 1).await;
        }
        let ids: Vec<u64> = writer
            .info()
            .await
            .extents
            .iter()
            .map(|e| e.extent_id)
            .collect();
        extents.insert(name, ids);
    }
    let files = |ids: &[u64]| -> Vec<PathBuf> {
        ids.iter()
            .flat_map(|&id| {
                cluster
                    .nodes
                    .iter()
                    .map(move |n| n.running.store.extent_file_path(ExtentId::new(id)))
            })
            .collect()
    };
    let gone_files = files(&extents["gone"]);
    assert_eq!(
        cluster.client.delete_stream("gone").await.unwrap(),
        extents["gone"].len() as u32
    );
    assert_eq!(cluster.client.delete_stream("gone").await.unwrap(), 0);
    assert!(cluster.client.stream_info("gone").await.is_err());
    assert!(
        gone_files.iter().all(|p| p.exists()),
        "kept during the safety delay"
    );
    wait_until("deleted stream's extents removed", || async {
        gone_files.iter().all(|p| !p.exists()).then_some(())
    })
    .await;

    let trimmed = &extents["trimmed"];
    let info = cluster
        .client
        .trim_stream("trimmed", ExtentId::new(trimmed[2]))
        .await
        .unwrap();
    assert_eq!(info.extents[0].extent_id, trimmed[2]);
    // Idempotent: trimming to an already dropped extent changes nothing.
    let again = cluster
        .client
        .trim_stream("trimmed", ExtentId::new(trimmed[0]))
        .await
        .unwrap();
    assert_eq!(again, info);
    let dropped = files(&trimmed[..2]);
    let kept = files(&trimmed[2..]);
    wait_until("trimmed extents removed", || async {
        dropped.iter().all(|p| !p.exists()).then_some(())
    })
    .await;
    assert!(kept.iter().all(|p| p.exists()));
    let status = cluster
        .wait_status("garbage gone from the metadata", |s| {
            s.extents.len() == trimmed.len() - 2
        })
        .await;
    assert!(status
        .extents
        .iter()
        .all(|e| trimmed[2..].contains(&e.extent_id)));
    cluster.stop().await;
}
