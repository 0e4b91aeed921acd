//! Acknowledged records survive damage the stream layer cannot prevent, only survive: a bit
//! flip in the last record of an open extent's replica followed by a restart, a second writer
//! appending to the extent a full-extent seal closes, records damaged on their way to the
//! reader, and a disk whose fsync fails.

mod common;

use common::*;
use strata_proto::stream::stream_manager_client::StreamManagerClient;
use strata_proto::stream::SealExtentRequest;
use strata_stream::extent::{ExtentStore, FILE_HEADER_LEN, RECORD_HEADER_LEN};
use strata_types::ExtentId;

/// Every record of `extent_id` held by `store`, read and verified from the start to `length`.
async fn replica_verifies(store: &ExtentStore, extent_id: u64, length: u64) -> bool {
    let mut offset = FILE_HEADER_LEN;
    while offset < length {
        match store
            .read(ExtentId::new(extent_id), offset, 256, 1 << 20)
            .await
        {
            Ok(batch) if batch.next_offset > offset => offset = batch.next_offset,
            _ => return false,
        }
    }
    offset == length
}

/// Restarts the replica of the open extent at `replica_index` with one bit of its last record
/// flipped, then keeps appending: no acknowledged record may be lost, and the damaged replica
/// is rewritten from a good one.
async fn damaged_tail_survives_restart(replica_index: usize) {
    let (mut cluster, writer, mut written) = six_nodes_with_a_log(3).await;
    let open = last_extent(&writer).await;
    assert!(!open.sealed && open.extent_id == written[2].0.extent_id.get());
    let victim = open.replicas[replica_index].clone();
    let (dir, keep) = cluster.stop_node(&victim.node_id).await;
    let path = dir.join("extents").join(format!("{}.ext", open.extent_id));
    let mut bytes = std::fs::read(&path).unwrap();
    let last = written[2].0.offset;
    bytes[(last + RECORD_HEADER_LEN + 7) as usize] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    cluster.add_node(&victim.rack, Some(dir), no_scrub()).await;
    let _keep = keep;

    append_acknowledged(&writer, &mut written, 5).await;
    assert_all_readable(&cluster.client, &written).await;
    let sealed = cluster
        .wait_status("the damaged extent sealed and healed", |s| {
            s.nodes.iter().filter(|n| n.healthy).count() == 6
                && fully_healed(s)
                && s.extents
                    .iter()
                    .any(|e| e.extent_id == open.extent_id && e.sealed)
        })
        .await;
    let extent = sealed
        .extents
        .iter()
        .find(|e| e.extent_id == open.extent_id)
        .unwrap();
    assert!(
        extent.length >= written[2].0.offset + RECORD_HEADER_LEN + written[2].0.length,
        "sealed at {} below the acknowledged record at {last}",
        extent.length
    );
    wait_until("every replica of the damaged extent verifies", || async {
        let info = cluster
            .client
            .extent_info(ExtentId::new(open.extent_id), true)
            .await
            .ok()?;
        for replica in &info.replicas {
            let node = cluster.node(&replica.node_id);
            if !replica_verifies(&node.running.store, open.extent_id, extent.length).await {
                return None;
            }
        }
        Some(())
    })
    .await;
    assert_all_readable(&cluster.client, &written).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bit_flip_in_a_secondarys_open_tail_loses_nothing() {
    damaged_tail_survives_restart(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bit_flip_in_the_primarys_open_tail_loses_nothing() {
    damaged_tail_survives_restart(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_extent_seal_never_cuts_another_writers_records() {
    let cluster = Cluster::start(&["a", "b", "c"], no_scrub()).await;
    let first = cluster.client.open("data").await.unwrap();
    let second = cluster.client.open("data").await.unwrap();
    let mine = first.append(payload(1, 1_000)).await.unwrap();
    let theirs_data = payload(2, 1_000);
    let theirs = second.append(theirs_data.clone()).await.unwrap();
    assert_eq!(
        theirs.extent_id, mine.extent_id,
        "both writers share the open extent"
    );
    // The first writer believes its append filled the extent and seals at its own end.
    let my_end = mine.offset + RECORD_HEADER_LEN + mine.length;
    let mut raw =
        StreamManagerClient::new(strata_util::rpc::channel(&cluster.manager_addr()).unwrap());
    raw.seal_extent(SealExtentRequest {
        stream: "data".into(),
        extent_id: mine.extent_id.get(),
        length: my_end,
        expect_open: true,
        writer_id: "first".into(),
    })
    .await
    .unwrap();
    let read = cluster
        .client
        .read_record(theirs.extent_id, theirs.offset)
        .await
        .expect("the other writer's acknowledged record survives the seal");
    assert_eq!(read, theirs_data);
    let info = cluster
        .client
        .extent_info(mine.extent_id, true)
        .await
        .unwrap();
    assert!(info.sealed && info.sealed_length == theirs.offset + RECORD_HEADER_LEN + theirs.length);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_damaged_on_the_wire_are_read_from_another_replica() {
    let cluster = Cluster::start(&["a", "b", "c"], no_scrub()).await;
    let writer = cluster.client.open("log").await.unwrap();
    let mut written = Vec::new();
    append_acknowledged(&writer, &mut written, 4).await;
    cluster.nodes[0].running.store.inject_wire_damage(true);
    let before = strata_stream::metrics::wire_checksum_failures().get();
    // Reads start at a rotating replica: over 12 reads, the damaged node is asked first often.
    for _ in 0..3 {
        assert_all_readable(&cluster.client, &written).await;
    }
    assert!(
        strata_stream::metrics::wire_checksum_failures().get() > before,
        "the damaged node was read from and caught"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_fsync_stops_a_node_acknowledging() {
    let (cluster, writer, mut written) = six_nodes_with_a_log(3).await;
    let victim = last_extent(&writer).await.replicas[1].node_id.clone();
    let store = cluster.node(&victim).running.store.clone();
    store.inject_sync_failures(true);
    // Appends go on (on a fresh extent without the failed node); nothing acknowledged is lost.
    append_acknowledged(&writer, &mut written, 10).await;
    assert!(store.disk_failed(), "the failed fsync was seen");
    store.inject_sync_failures(false);
    assert!(
        store.create(ExtentId::new(999_999)).await.is_err(),
        "a node whose fsync failed accepts no new extent"
    );
    let status = cluster
        .wait_status(
            "the failed node taken for dead and its data re-replicated",
            |s| {
                s.nodes
                    .iter()
                    .any(|n| n.node.as_ref().is_some_and(|a| a.node_id == victim) && !n.healthy)
                    && s.nodes.iter().filter(|n| n.healthy).count() == 5
                    && s.extents_under_replicated == 0
            },
        )
        .await;
    for extent in &status.extents {
        let info = cluster
            .client
            .extent_info(ExtentId::new(extent.extent_id), true)
            .await
            .unwrap();
        assert!(info.replicas.iter().all(|r| r.node_id != victim));
    }
    assert_all_readable(&cluster.client, &written).await;
    cluster.stop().await;
}
