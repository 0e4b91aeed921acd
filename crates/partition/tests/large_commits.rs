//! Every commit S3 allows must commit, even when it is larger than one stream record (8 MiB):
//! aborting an upload of 10,000 parts on a 1,000-byte key, completing one over an existing key
//! in a versioned bucket (10,003 changes), the chunk list of a multi-TiB object. Such a commit
//! once failed its log append for good (503 forever, the range reloading each time) or tripped
//! an assertion (500). And the result must survive a reload (log replay) and a checkpoint.
//! Against a real partition server over gRPC, on a real stream layer in process.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{create_upload, stream_layer};
use futures::StreamExt;
use strata_partition::range::{IndexValue, Range, RangeBounds};
use strata_partition::PartitionServerState;
use strata_proto::common::{ObjectMeta, VersioningState};
use strata_proto::partition::partition_server_client::PartitionServerClient;
use strata_proto::partition::*;
use strata_proto::record::{ChunkLocation, ObjectRecord};
use strata_types::error_detail::{from_status, ErrorDetail, Missing, RejectReason};
use strata_types::keys;
use tokio_util::sync::CancellationToken;

type Client = PartitionServerClient<strata_util::rpc::Channel>;

/// Partition server `id` over gRPC owning the whole key space at `epoch`, loaded (a later
/// epoch on another server is a move: it fences the log and replays it).
async fn serve(
    layer: &common::StreamLayer,
    id: &str,
    epoch: u64,
) -> (Client, Arc<PartitionServerState>, CancellationToken) {
    common::serve_range(layer, id, epoch).await
}

fn long_key() -> String {
    format!("{}-key", "k".repeat(996))
}

/// Uploads one-byte parts 1..=count, a few at a time, retrying SlowDown as a front-end does.
async fn upload_tiny_parts(client: &Client, key: &str, upload_id: &str, count: u32) {
    futures::stream::iter(1..=count)
        .for_each_concurrent(8, |number| {
            let mut client = client.clone();
            async move {
                loop {
                    let part = vec![
                        UploadPartRequest {
                            part: Some(upload_part_request::Part::Header(UploadPartHeader {
                                bucket: "b".into(),
                                key: key.into(),
                                upload_id: upload_id.into(),
                                part_number: number,
                                size_bytes: 1,
                                ..Default::default()
                            })),
                        },
                        UploadPartRequest {
                            part: Some(upload_part_request::Part::Chunk(vec![b'x'])),
                        },
                    ];
                    match client.upload_part(futures::stream::iter(part)).await {
                        Ok(_) => break,
                        Err(status)
                            if matches!(
                                from_status(&status),
                                Some(ErrorDetail::Throttled { .. })
                            ) =>
                        {
                            tokio::time::sleep(Duration::from_millis(50)).await
                        }
                        Err(status) => panic!("part {number} failed: {status}"),
                    }
                }
            }
        })
        .await;
}

async fn parts_listed(
    client: &mut Client,
    key: &str,
    upload_id: &str,
) -> Result<usize, Option<ErrorDetail>> {
    client
        .list_parts(ListPartsRequest {
            bucket: "b".into(),
            key: key.into(),
            upload_id: upload_id.into(),
            max_parts: 1000,
            ..Default::default()
        })
        .await
        .map(|answer| answer.into_inner().parts.len())
        .map_err(|status| from_status(&status))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborting_10000_parts_on_a_1000_byte_key_commits_and_survives_reload_and_checkpoint() {
    let layer = stream_layer(64 << 20).await;
    let (mut client, _state, token) = serve(&layer, "A", 1).await;
    let key = long_key();
    let upload_id = create_upload(&mut client, &key).await;
    upload_tiny_parts(&client, &key, &upload_id, 10_000).await;
    assert_eq!(parts_listed(&mut client, &key, &upload_id).await, Ok(1000));

    let aborted = client
        .abort_multipart_upload(AbortMultipartUploadRequest {
            bucket: "b".into(),
            key: key.clone(),
            upload_id: upload_id.clone(),
        })
        .await;
    assert!(
        aborted.is_ok(),
        "aborting 10,000 parts failed: {:?}",
        aborted.err()
    );
    let gone = parts_listed(&mut client, &key, &upload_id).await;
    assert!(matches!(
        gone.unwrap_err(),
        Some(ErrorDetail::NotFound {
            what: Missing::Upload,
            ..
        })
    ));
    // The range still commits (it did not reload, nor wedge).
    let other = create_upload(&mut client, "after").await;
    assert!(!other.is_empty());
    token.cancel();

    // A new owner replays the log: the abort is there, whole.
    let (mut moved, moved_state, token) = serve(&layer, "B", 2).await;
    let gone = parts_listed(&mut moved, &key, &upload_id).await;
    assert!(matches!(
        gone.unwrap_err(),
        Some(ErrorDetail::NotFound {
            what: Missing::Upload,
            ..
        })
    ));
    assert_eq!(parts_listed(&mut moved, "after", &other).await, Ok(0));
    let range = moved_state.range_for(&keys::object_key("b", &key)).unwrap();
    let mut leftover_parts = 0;
    range.scan(b"", None, |_, value| {
        leftover_parts += usize::from(matches!(value, IndexValue::Part(_)));
        true
    });
    assert_eq!(
        leftover_parts, 0,
        "parts of the aborted upload survived replay"
    );
    // And after a checkpoint, the next owner loads it from there.
    range.checkpoint().await.unwrap();
    token.cancel();
    let (mut third, _, token) = serve(&layer, "C", 3).await;
    let gone = parts_listed(&mut third, &key, &upload_id).await;
    assert!(matches!(
        gone.unwrap_err(),
        Some(ErrorDetail::NotFound {
            what: Missing::Upload,
            ..
        })
    ));
    assert_eq!(parts_listed(&mut third, "after", &other).await, Ok(0));
    token.cancel();
}

fn put(key: &str, body: &str) -> Vec<PutObjectRequest> {
    vec![
        PutObjectRequest {
            part: Some(put_object_request::Part::Header(PutObjectHeader {
                bucket: "b".into(),
                key: key.into(),
                size_bytes: body.len() as i64,
                meta: Some(ObjectMeta::default()),
                versioning: VersioningState::Enabled as i32,
                ..Default::default()
            })),
        },
        PutObjectRequest {
            part: Some(put_object_request::Part::Chunk(body.as_bytes().to_vec())),
        },
    ]
}

async fn get_body(client: &mut Client, key: &str, version_id: &str) -> Vec<u8> {
    let mut answer = client
        .get_object(GetObjectRequest {
            bucket: "b".into(),
            key: key.into(),
            version_id: version_id.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut body = Vec::new();
    while let Some(message) = answer.next().await {
        if let Some(get_object_response::Part::Chunk(data)) = message.unwrap().part {
            body.extend(data);
        }
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completing_10000_parts_over_a_versioned_key_commits_and_survives_reload_and_checkpoint() {
    let layer = stream_layer(64 << 20).await;
    let (mut client, _state, token) = serve(&layer, "A", 1).await;
    let key = long_key();
    let old = client
        .put_object(futures::stream::iter(put(&key, "old")))
        .await
        .unwrap()
        .into_inner()
        .meta
        .unwrap();
    let upload_id = create_upload(&mut client, &key).await;
    upload_tiny_parts(&client, &key, &upload_id, 10_000).await;
    // Only the last part may be under 5 MiB: complete with part 10,000 alone; the other 9,999
    // part records are deleted by the same commit (10,003 changes, over 10 MB).
    let last = client
        .list_parts(ListPartsRequest {
            bucket: "b".into(),
            key: key.clone(),
            upload_id: upload_id.clone(),
            part_number_marker: 9_999,
            max_parts: 1,
        })
        .await
        .unwrap()
        .into_inner()
        .parts
        .remove(0);
    let completed = client
        .complete_multipart_upload(CompleteMultipartUploadRequest {
            bucket: "b".into(),
            key: key.clone(),
            upload_id: upload_id.clone(),
            parts: vec![CompletedPart {
                part_number: last.part_number,
                etag: last.etag,
                ..Default::default()
            }],
            versioning: VersioningState::Enabled as i32,
            ..Default::default()
        })
        .await;
    let completed = match completed {
        Ok(answer) => answer.into_inner().meta.unwrap(),
        Err(status) => panic!("completing over a versioned key failed: {status}"),
    };
    assert_ne!(completed.version_id, old.version_id);
    assert_eq!(get_body(&mut client, &key, "").await, b"x");
    token.cancel();

    for (id, epoch, checkpoint_first) in [("B", 2, true), ("C", 3, false)] {
        let (mut moved, state, token) = serve(&layer, id, epoch).await;
        assert_eq!(get_body(&mut moved, &key, "").await, b"x", "on {id}");
        assert_eq!(get_body(&mut moved, &key, &old.version_id).await, b"old");
        let gone = parts_listed(&mut moved, &key, &upload_id).await;
        assert!(
            matches!(
                gone.unwrap_err(),
                Some(ErrorDetail::NotFound {
                    what: Missing::Upload,
                    ..
                })
            ),
            "on {id}"
        );
        if checkpoint_first {
            let range = state.range_for(&keys::object_key("b", &key)).unwrap();
            range.checkpoint().await.unwrap();
        }
        token.cancel();
    }
}

/// A 5 TiB object has 5,242,880 chunks of 1 MiB: its chunk list alone is ~80 MB, ten stream
/// records. One commit and one checkpoint entry must still carry it (the same path, at a
/// fifth of the size to keep the test quick: 1,048,576 chunks, ~16 MB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_whose_chunk_list_exceeds_a_record_commits_and_survives_checkpoints() {
    let layer = stream_layer(64 << 20).await;
    let bounds = |epoch| RangeBounds {
        range_id: strata_types::RangeId::new(1),
        low: Vec::new(),
        high: Vec::new(),
        epoch: strata_types::Epoch::new(epoch),
    };
    let chunks: Vec<ChunkLocation> = (0..1_048_576u64)
        .map(|i| ChunkLocation {
            extent_id: 1_000 + i / 60,
            offset: (i % 60) * (1 << 20),
            length: 1 << 20,
        })
        .collect();
    let meta = ObjectRecord {
        size_bytes: chunks.len() as u64 * (1 << 20),
        etag: "\"big\"".into(),
        chunks,
        ..Default::default()
    };
    let key = keys::object_key("b", "big");
    let range = Range::load(layer.client.clone(), bounds(1)).await.unwrap();
    range
        .commit(key.clone(), Some(IndexValue::Object(meta.clone())))
        .await
        .expect("a commit larger than one record");
    range
        .commit(keys::object_key("b", "next"), None)
        .await
        .unwrap();
    drop(range);
    let replayed = Range::load(layer.client.clone(), bounds(2)).await.unwrap();
    assert_eq!(replayed.get(&key), Some(IndexValue::Object(meta.clone())));
    replayed.checkpoint().await.expect("a checkpoint of it");
    drop(replayed);
    let from_checkpoint = Range::load(layer.client.clone(), bounds(3)).await.unwrap();
    assert_eq!(from_checkpoint.get(&key), Some(IndexValue::Object(meta)));
    assert!(!from_checkpoint.is_poisoned());
}

/// What S3 refuses is refused with S3's error before anything is written: user metadata over
/// 2 KiB (MetadataTooLarge), on a PUT and on an upload's creation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_over_s3s_limit_is_refused_before_anything_is_written() {
    let layer = stream_layer(1 << 20).await;
    let (mut client, _state, token) = serve(&layer, "A", 1).await;
    let meta = ObjectMeta {
        user_metadata: [("m".to_string(), "v".repeat(2 * 1024))].into(),
        ..Default::default()
    };
    let mut request = put("k", "body");
    if let Some(put_object_request::Part::Header(header)) = &mut request[0].part {
        header.meta = Some(meta.clone());
    }
    let refused = client
        .put_object(futures::stream::iter(request))
        .await
        .unwrap_err();
    assert!(
        from_status(&refused)
            == Some(ErrorDetail::Rejected {
                reason: RejectReason::MetadataTooLarge
            }),
        "{refused}"
    );
    let head = client
        .head_object(HeadObjectRequest {
            bucket: "b".into(),
            key: "k".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(head.meta.is_none(), "a refused PUT stored an object");
    let refused = client
        .create_multipart_upload(CreateMultipartUploadRequest {
            bucket: "b".into(),
            key: "k".into(),
            meta: Some(meta),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        from_status(&refused)
            == Some(ErrorDetail::Rejected {
                reason: RejectReason::MetadataTooLarge
            }),
        "{refused}"
    );
    token.cancel();
}
