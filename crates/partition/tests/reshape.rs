//! Splits and merges against a real stream layer in process: the children hold exactly the
//! frozen parents' index, read the parents' object bytes from the shared extents (nothing is
//! copied), accept writes of their own, and their first load releases the parents' streams.

mod common;

use bytes::Bytes;
use common::stream_layer;
use std::sync::Arc;
use strata_partition::range::{stream_names, IndexValue, Range, RangeBounds};
use strata_partition::records::chunk_extent;
use strata_partition::reshape::prepare_ranges;
use strata_partition::PartitionError;
use strata_proto::partition::ReshapeChild;
use strata_proto::record::ObjectRecord;
use strata_types::{keys, Epoch, RangeId};

const SMALL_EXTENT_BYTES: u64 = 64 * 1024;

fn bounds(range_id: u64, low: &[u8], high: &[u8]) -> RangeBounds {
    RangeBounds {
        range_id: RangeId::new(range_id),
        low: low.to_vec(),
        high: high.to_vec(),
        epoch: Epoch::new(1),
    }
}

fn child(range_id: u64, low: &[u8], high: &[u8]) -> ReshapeChild {
    ReshapeChild {
        range_id,
        low: low.to_vec(),
        high: high.to_vec(),
    }
}

/// Puts `count` objects `k000..` into `range`, each one chunk of its own bytes.
async fn put_objects(range: &Range, count: u32) {
    for i in 0..count {
        let body = Bytes::from(format!("body of object {i}").repeat(200));
        let _guard = range.begin_upload();
        let chunk = range.append_data(body.clone()).await.unwrap();
        let meta = ObjectRecord {
            size_bytes: body.len() as u64,
            chunks: vec![chunk],
            ..Default::default()
        };
        range
            .commit(
                keys::object_key("b", &format!("k{i:03}")),
                Some(IndexValue::Object(meta)),
            )
            .await
            .unwrap();
    }
}

fn keys_of(range: &Range) -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    range.scan(b"", None, |key, _| {
        all.push(key.to_vec());
        true
    });
    all
}

async fn body_of(range: &Range, key: &[u8]) -> Bytes {
    let Some(IndexValue::Object(meta)) = range.get(key) else {
        panic!("no object at {key:?}");
    };
    let chunk = &meta.chunks[0];
    range
        .stream_client()
        .read_record(chunk_extent(chunk), chunk.offset)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_then_merge_keeps_every_object_and_copies_no_data() {
    let layer = stream_layer(SMALL_EXTENT_BYTES).await;
    let client = layer.client.clone();
    let parent = Arc::new(
        Range::load(client.clone(), bounds(1, b"", b""))
            .await
            .unwrap(),
    );
    put_objects(&parent, 60).await;
    let all_keys = keys_of(&parent);
    let split_key = keys::object_key("b", "k030");

    let prepared = prepare_ranges(
        &client,
        std::slice::from_ref(&parent),
        &[child(2, b"", &split_key), child(3, &split_key, b"")],
    )
    .await
    .unwrap();
    assert_eq!(prepared.child_keys, vec![30, 30]);
    // Frozen: the parent acknowledges nothing any more.
    let refused = parent
        .commit(
            keys::object_key("b", "late"),
            Some(IndexValue::Object(ObjectRecord::default())),
        )
        .await;
    assert!(
        matches!(refused, Err(PartitionError::Frozen { .. })),
        "{refused:?}"
    );

    let left = Range::load(client.clone(), bounds(2, b"", &split_key))
        .await
        .unwrap();
    let right = Range::load(client.clone(), bounds(3, &split_key, b""))
        .await
        .unwrap();
    let mut joined = keys_of(&left);
    joined.extend(keys_of(&right));
    assert_eq!(
        joined, all_keys,
        "the halves hold exactly the parent's keys"
    );
    assert!(keys_of(&right).iter().all(|k| *k >= split_key));
    // The range clock goes on from the parent's in both children (never back along a key).
    assert!(parent.clock_ms() > 0);
    assert_eq!(left.clock_ms(), parent.clock_ms());
    assert_eq!(right.clock_ms(), parent.clock_ms());

    // The children read the parent's bytes from the very same extents.
    let (_, parent_data, _) = stream_names(RangeId::new(1));
    let (_, right_data, _) = stream_names(RangeId::new(3));
    let right_info = client.stream_info(&right_data).await.unwrap();
    let k045 = keys::object_key("b", "k045");
    let Some(IndexValue::Object(meta)) = right.get(&k045) else {
        panic!()
    };
    assert!(right_info
        .extents
        .iter()
        .any(|e| e.extent_id == meta.chunks[0].extent_id));
    assert_eq!(
        body_of(&right, &k045).await,
        Bytes::from("body of object 45".repeat(200))
    );

    // The children's first loads released the parent's streams.
    assert!(
        client.stream_info(&parent_data).await.is_err(),
        "parent data stream is gone"
    );

    // Children take writes of their own, and a merge brings everything back together.
    put_objects(&left, 5).await; // overwrites k000..k004 in the left half
    let left = Arc::new(left);
    let right = Arc::new(right);
    let merged = prepare_ranges(
        &client,
        &[left.clone(), right.clone()],
        &[child(4, b"", b"")],
    )
    .await
    .unwrap();
    assert_eq!(merged.child_keys, vec![60]);
    let whole = Range::load(client.clone(), bounds(4, b"", b""))
        .await
        .unwrap();
    assert_eq!(keys_of(&whole), all_keys);
    assert_eq!(whole.clock_ms(), left.clock_ms().max(right.clock_ms()));
    assert_eq!(
        body_of(&whole, &k045).await,
        Bytes::from("body of object 45".repeat(200))
    );
    let k002 = keys::object_key("b", "k002");
    assert_eq!(body_of(&whole, &k002).await, body_of(&left, &k002).await);
    whole
        .commit(
            keys::object_key("b", "after-merge"),
            Some(IndexValue::Object(ObjectRecord::default())),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_reshape_request_leaves_the_parent_serving() {
    let layer = stream_layer(SMALL_EXTENT_BYTES).await;
    let client = layer.client.clone();
    let parent = Arc::new(
        Range::load(client.clone(), bounds(1, b"", b""))
            .await
            .unwrap(),
    );
    put_objects(&parent, 3).await;
    // A child stream name that already exists with other extents makes the build fail.
    let (_, taken, _) = stream_names(RangeId::new(9));
    client.open(&taken).await.unwrap();
    let split_key = keys::object_key("b", "k001");
    let failed = prepare_ranges(
        &client,
        std::slice::from_ref(&parent),
        &[child(8, b"", &split_key), child(9, &split_key, b"")],
    )
    .await;
    assert!(failed.is_err());
    parent
        .commit(
            keys::object_key("b", "still-open"),
            Some(IndexValue::Object(ObjectRecord::default())),
        )
        .await
        .expect("the parent serves again after a failed preparation");
}
