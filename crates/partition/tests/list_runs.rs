//! A server serving non-contiguous ranges answers listings only for the contiguous run of
//! ranges from the call's `from` key, and says where that run ends (`covered_until`), so the
//! front-end continues on whichever server owns the next range instead of skipping it.
//! Runs against a real stream layer in process (ranges load from their streams).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::stream_layer;
use strata_partition::range::IndexValue;
use strata_partition::{PartitionServerState, PartitionService};
use strata_proto::manager::RangeAssignment;
use strata_proto::partition::partition_server_server::PartitionServer;
use strata_proto::partition::*;
use strata_proto::record::ObjectRecord;
use strata_types::error_detail::{from_status, ErrorDetail, NotOwner};
use strata_types::keys;
use strata_types::{Epoch, RangeId};
use tonic::Request;

const EXTENT_BYTES: u64 = 1 << 20;

fn server(id: &str, layer: &common::StreamLayer) -> Arc<PartitionServerState> {
    common::partition_server(id, layer)
}

fn assignment(id: u64, low: &[u8], high: &[u8], owner: &str) -> RangeAssignment {
    RangeAssignment {
        range_id: id,
        low: low.to_vec(),
        high: high.to_vec(),
        owner_id: owner.into(),
        owner_addr: format!("{owner}:1"),
        epoch: 1,
    }
}

/// Waits until `state` serves a ready range holding each of `keys`.
async fn wait_ready(state: &PartitionServerState, keys: &[Vec<u8>]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !keys.iter().all(|key| state.range_for(key).is_ok()) {
        assert!(Instant::now() < deadline, "ranges never loaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn object() -> IndexValue {
    IndexValue::Object(ObjectRecord {
        size_bytes: 1,
        etag: "\"e\"".into(),
        ..Default::default()
    })
}

fn listed(response: &ListObjectsResponse) -> Vec<String> {
    response
        .items
        .iter()
        .map(|item| match &item.entry {
            Some(entry) => entry.key.clone(),
            None => format!("P:{}", item.common_prefix),
        })
        .collect()
}

fn list_request(from: &[u8], max_keys: u32) -> ListObjectsRequest {
    ListObjectsRequest {
        bucket: "b".into(),
        max_keys,
        from: from.to_vec(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_covers_only_the_contiguous_run_from_its_start() {
    let layer = stream_layer(EXTENT_BYTES).await;
    let b1 = keys::object_key("b", "g");
    let b2 = keys::object_key("b", "p");
    // A serves ranges 1 and 3; range 2, between them, is B's.
    let map = vec![
        assignment(1, b"", &b1, "A"),
        assignment(2, &b1, &b2, "B"),
        assignment(3, &b2, b"", "A"),
    ];
    let a = server("A", &layer);
    a.assign(map.clone());
    let in_1 = keys::object_key("b", "a");
    let in_2 = keys::object_key("b", "h");
    let in_3 = keys::object_key("b", "q");
    wait_ready(&a, &[in_1.clone(), in_3.clone()]).await;
    for key in ["a", "c", "e/1", "e/2", "q", "r/1", "z"] {
        let encoded = keys::object_key("b", key);
        let range = a.range_for(&encoded).unwrap();
        range.commit(encoded, Some(object())).await.unwrap();
    }
    let upload = keys::upload_key("b", "c", "u1");
    a.range_for(&upload)
        .unwrap()
        .commit(
            upload,
            Some(IndexValue::Upload(strata_proto::record::UploadRecord {
                upload_id: "u1".into(),
                ..Default::default()
            })),
        )
        .await
        .unwrap();
    let upload = keys::upload_key("b", "z", "u2");
    a.range_for(&upload)
        .unwrap()
        .commit(
            upload,
            Some(IndexValue::Upload(strata_proto::record::UploadRecord {
                upload_id: "u2".into(),
                ..Default::default()
            })),
        )
        .await
        .unwrap();

    // The run of range 1 alone: range 3's keys are not in the answer.
    let runs = a.run_from(&in_1).unwrap();
    assert_eq!(
        runs.iter()
            .map(|r| r.bounds.range_id.get())
            .collect::<Vec<_>>(),
        [1]
    );
    let service = PartitionService::new(a.clone());
    let answer = service
        .list_objects(Request::new(list_request(&in_1, 1000)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed(&answer), ["a", "c", "e/1", "e/2"]);
    assert!(!answer.truncated);
    assert_eq!(answer.covered_until, b1);
    assert!(!answer.covered_to_end);
    // Empty `from`: derived from the prefix, the same run.
    let answer = service
        .list_objects(Request::new(list_request(b"", 1000)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed(&answer), ["a", "c", "e/1", "e/2"]);
    assert_eq!(answer.covered_until, b1);
    // With a delimiter, and truncated: no coverage is claimed.
    let mut request = list_request(&in_1, 2);
    request.delimiter = "/".into();
    let answer = service
        .list_objects(Request::new(request))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed(&answer), ["a", "c"]);
    assert!(answer.truncated);
    assert!(answer.covered_until.is_empty() && !answer.covered_to_end);
    // The run of range 3 reaches +infinity.
    let answer = service
        .list_objects(Request::new(list_request(&in_3, 1000)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed(&answer), ["q", "r/1", "z"]);
    assert!(answer.covered_to_end);
    // A `from` in range 2 is refused with the map's hint.
    let status = service
        .list_objects(Request::new(list_request(&in_2, 1000)))
        .await
        .unwrap_err();
    assert_eq!(
        from_status(&status),
        Some(ErrorDetail::NotOwner(NotOwner {
            range_id: RangeId::new(2),
            epoch: Epoch::new(1),
            owner_hint: Some("B:1".into()),
        }))
    );

    // CountObjects, ListObjectVersions and ListMultipartUploads keep to the run too.
    let count = service
        .count_objects(Request::new(CountObjectsRequest {
            bucket: "b".into(),
            limit: 0,
            from: in_1.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    // a, c, e/1, e/2 and c's unfinished upload (an upload keeps its bucket from being deleted).
    assert_eq!(count.count, 5);
    assert_eq!(count.covered_until, b1);
    let count = service
        .count_objects(Request::new(CountObjectsRequest {
            bucket: "b".into(),
            limit: 0,
            from: in_3.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    // q, r/1, z and z's unfinished upload.
    assert_eq!(count.count, 4);
    assert!(count.covered_to_end);
    let versions = service
        .list_object_versions(Request::new(ListObjectVersionsRequest {
            bucket: "b".into(),
            max_keys: 1000,
            from: in_1.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = versions.items.iter().map(|v| v.key.as_str()).collect();
    assert_eq!(names, ["a", "c", "e/1", "e/2"]);
    assert_eq!(versions.covered_until, b1);
    // A key marker of the previous run needs no lookup in this one.
    let versions = service
        .list_object_versions(Request::new(ListObjectVersionsRequest {
            bucket: "b".into(),
            max_keys: 1000,
            key_marker: "m".into(),
            version_id_marker: "null".into(),
            from: in_3.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = versions.items.iter().map(|v| v.key.as_str()).collect();
    assert_eq!(names, ["q", "r/1", "z"]);
    assert!(versions.covered_to_end);
    let uploads = service
        .list_multipart_uploads(Request::new(ListMultipartUploadsRequest {
            bucket: "b".into(),
            max_uploads: 1000,
            from: in_1.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = uploads.items.iter().map(|u| u.key.as_str()).collect();
    assert_eq!(names, ["c"]);
    assert_eq!(uploads.covered_until, b1);

    // A server serving ranges 1 and 2 (contiguous) answers for both at once.
    let c = server("C", &layer);
    c.assign(vec![
        assignment(1, b"", &b1, "C"),
        assignment(2, &b1, &b2, "C"),
        assignment(3, &b2, b"", "A"),
    ]);
    wait_ready(&c, &[in_1.clone(), in_2.clone()]).await;
    let runs = c.run_from(&in_1).unwrap();
    assert_eq!(
        runs.iter()
            .map(|r| r.bounds.range_id.get())
            .collect::<Vec<_>>(),
        [1, 2]
    );
    let answer = PartitionService::new(c.clone())
        .list_objects(Request::new(list_request(&in_1, 1000)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed(&answer), ["a", "c", "e/1", "e/2"]);
    assert_eq!(answer.covered_until, b2);
}
