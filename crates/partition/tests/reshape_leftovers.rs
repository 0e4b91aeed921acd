//! A split prepared but never committed (the manager failed over between prepare and commit)
//! left its children's streams behind, and with them every data extent they shared with the
//! parent, for good (issue 12, item 8). Against a real stream layer in process: the leftovers
//! are deleted once the map says their ids are free, the shared extents become garbage, and the
//! streams of the live range and of a reshape still reserved are never touched.

mod common;

use std::collections::BTreeSet;

use bytes::Bytes;
use common::stream_layer;
use strata_partition::leftovers::{collect, KnownIds};
use strata_partition::range::{IndexValue, Range, RangeBounds};
use strata_partition::reshape::prepare_ranges;
use strata_proto::partition::ReshapeChild;
use strata_proto::record::ObjectRecord;
use strata_stream::StreamClient;
use strata_types::{keys, Epoch, ExtentId, RangeId};

const SMALL_EXTENT_BYTES: u64 = 64 * 1024;

fn bounds(epoch: u64) -> RangeBounds {
    RangeBounds {
        range_id: RangeId::new(1),
        low: Vec::new(),
        high: Vec::new(),
        epoch: Epoch::new(epoch),
    }
}

async fn range_streams(client: &StreamClient) -> Vec<String> {
    client.list_streams("range-").await.unwrap()
}

/// Whether each of `extents` is still referenced by some stream, per the stream manager.
async fn referenced(client: &StreamClient, extents: &BTreeSet<u64>) -> Vec<bool> {
    let status = client.status().await.unwrap();
    extents
        .iter()
        .map(|id| {
            status
                .extents
                .iter()
                .find(|e| e.extent_id == *id)
                .is_some_and(|e| e.referenced)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_split_leaves_no_stream_and_frees_the_shared_extents() {
    let layer = stream_layer(SMALL_EXTENT_BYTES).await;
    let client = layer.client.clone();
    let parent = std::sync::Arc::new(Range::load(client.clone(), bounds(1)).await.unwrap());
    // Enough bytes for several data extents, then every object deleted: compaction may drop
    // all of them from the parent's data stream.
    for i in 0..40u32 {
        let body = Bytes::from(vec![i as u8; 8 * 1024]);
        let _guard = parent.begin_upload();
        let chunk = parent.append_data(body.clone()).await.unwrap();
        let key = keys::object_key("b", &format!("k{i:03}"));
        let meta = ObjectRecord {
            size_bytes: body.len() as u64,
            chunks: vec![chunk],
            ..Default::default()
        };
        parent
            .commit(key.clone(), Some(IndexValue::Object(meta)))
            .await
            .unwrap();
        parent.commit(key, None).await.unwrap();
    }
    let split = keys::object_key("b", "k020");
    let children = [
        ReshapeChild {
            range_id: 2,
            low: Vec::new(),
            high: split.clone(),
        },
        ReshapeChild {
            range_id: 3,
            low: split,
            high: Vec::new(),
        },
    ];
    prepare_ranges(&client, std::slice::from_ref(&parent), &children)
        .await
        .unwrap();
    let shared: BTreeSet<u64> = client
        .stream_info("range-2/data")
        .await
        .unwrap()
        .extents
        .iter()
        .map(|e| e.extent_id)
        .collect();
    assert!(shared.len() > 1, "{shared:?}");
    // The commit never applies: the parent is renewed (reloaded unfrozen) and compacts its
    // data stream (all dead) down to its open extent.
    drop(parent);
    let renewed = Range::load(client.clone(), bounds(2)).await.unwrap();
    let parent_data = client.stream_info("range-1/data").await.unwrap();
    let open = ExtentId::new(parent_data.extents.last().unwrap().extent_id);
    client.trim_stream("range-1/data", open).await.unwrap();
    assert_eq!(referenced(&client, &shared).await, vec![true; shared.len()]);
    let every_stream = range_streams(&client).await;

    // While the split's ids are still reserved (a reshape in flight), nothing is touched.
    let in_flight = KnownIds {
        live: [RangeId::new(1)].into(),
        next_range_id: RangeId::new(4),
        reserved: [RangeId::new(2), RangeId::new(3)].into(),
    };
    assert!(collect(&client, &in_flight).await.unwrap().is_empty());
    assert_eq!(range_streams(&client).await, every_stream);

    // Released (the manager gave up on the split): the children's streams go, the live
    // range's stay, and the shared extents are garbage.
    let released = KnownIds {
        reserved: BTreeSet::new(),
        ..in_flight
    };
    assert_eq!(
        collect(&client, &released).await.unwrap(),
        vec![RangeId::new(2), RangeId::new(3)]
    );
    assert_eq!(
        range_streams(&client).await,
        vec!["range-1/checkpoint", "range-1/data", "range-1/log"]
    );
    assert_eq!(
        referenced(&client, &shared).await,
        vec![false; shared.len()]
    );
    // The live range still serves: it commits and reads back.
    let key = keys::object_key("b", "after");
    renewed
        .commit(
            key.clone(),
            Some(IndexValue::Object(ObjectRecord::default())),
        )
        .await
        .unwrap();
    assert!(renewed.get(&key).is_some());
}
