//! A front-end retries a PutObject whose owner died after committing but before answering
//! (same write id, as `ObjectMeta.write_id` says): the retry must answer that write, not
//! evaluate its condition again, so a conditional write that took effect is never told 412.
//! Likewise a retried CompleteMultipartUpload answers its commit (the version carries the
//! upload id), not NoSuchUpload or 412.
//! Against a real partition server over gRPC, on a real stream layer in process.

mod common;

use common::{create_upload, serve_range, stream_layer};
use strata_proto::common::{ObjectMeta, WriteCondition};
use strata_proto::partition::partition_server_client::PartitionServerClient;
use strata_proto::partition::*;
use strata_types::error_detail::{from_status, ErrorDetail, Missing};
use strata_types::keys;
use tokio_util::sync::CancellationToken;

fn put(key: &str, body: &str, write_id: &str, create_only: bool) -> Vec<PutObjectRequest> {
    vec![
        PutObjectRequest {
            part: Some(put_object_request::Part::Header(PutObjectHeader {
                bucket: "b".into(),
                key: key.into(),
                size_bytes: body.len() as i64,
                meta: Some(ObjectMeta {
                    write_id: write_id.into(),
                    ..Default::default()
                }),
                condition: create_only.then(|| WriteCondition {
                    if_none_match_any: true,
                    ..Default::default()
                }),
                ..Default::default()
            })),
        },
        PutObjectRequest {
            part: Some(put_object_request::Part::Chunk(body.as_bytes().to_vec())),
        },
    ]
}

/// A partition server over gRPC owning the whole key space, loaded; the layer must outlive it.
async fn serve_whole_range(
    layer: &common::StreamLayer,
) -> (
    PartitionServerClient<strata_util::rpc::Channel>,
    CancellationToken,
) {
    let (client, _, token) = serve_range(layer, "A", 1).await;
    (client, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_conditional_put_answers_its_own_committed_write() {
    let layer = stream_layer(1 << 20).await;
    let (mut client, token) = serve_whole_range(&layer).await;

    let first = client
        .put_object(futures::stream::iter(put("k", "first", "w-1", true)))
        .await
        .unwrap()
        .into_inner();
    // The same request again (its answer was lost): the write it made is answered.
    let retried = client
        .put_object(futures::stream::iter(put("k", "first", "w-1", true)))
        .await
        .expect("a retry of a committed conditional write succeeds")
        .into_inner();
    assert_eq!(retried.meta.unwrap().etag, first.meta.clone().unwrap().etag);
    // Another request with the same condition is refused, as S3 does.
    let other = client
        .put_object(futures::stream::iter(put("k", "second", "w-2", true)))
        .await
        .unwrap_err();
    assert!(
        from_status(&other) == Some(ErrorDetail::PreconditionFailed),
        "{other}"
    );
    // Once another write replaced it, a late retry of the first still answers the first (it
    // took effect, then was overwritten), not 412.
    client
        .put_object(futures::stream::iter(put("k", "third", "w-3", false)))
        .await
        .unwrap();
    let late = client
        .put_object(futures::stream::iter(put("k", "first", "w-1", true)))
        .await
        .expect("a late retry of an overwritten write succeeds")
        .into_inner();
    assert_eq!(late.meta.unwrap().etag, first.meta.unwrap().etag);
    token.cancel();
}

/// The new owner of a range (a load replaying the log) knows the write ids of the writes it
/// replayed, so a retry that follows a failover is answered too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_range_remembers_the_writes_it_replayed() {
    use strata_partition::range::{IndexValue, Range, RangeBounds};
    let layer = stream_layer(1 << 20).await;
    let bounds = |epoch| RangeBounds {
        range_id: strata_types::RangeId::new(1),
        low: Vec::new(),
        high: Vec::new(),
        epoch: strata_types::Epoch::new(epoch),
    };
    let key = keys::object_key("b", "k");
    let version = |write_id: &str, etag: &str| {
        Some(IndexValue::Object(strata_proto::record::ObjectRecord {
            write_id: write_id.into(),
            etag: etag.into(),
            ..Default::default()
        }))
    };
    let range = Range::load(layer.client.clone(), bounds(1)).await.unwrap();
    range
        .commit(key.clone(), version("w-1", "e1"))
        .await
        .unwrap();
    range
        .commit(key.clone(), version("w-2", "e2"))
        .await
        .unwrap();
    drop(range);
    let reloaded = Range::load(layer.client.clone(), bounds(2)).await.unwrap();
    assert_eq!(reloaded.recent_write(&key, "w-1").unwrap().etag, "e1");
    assert_eq!(reloaded.recent_write(&key, "w-2").unwrap().etag, "e2");
    assert!(reloaded
        .recent_write(&keys::object_key("b", "other"), "w-1")
        .is_none());
    assert!(reloaded.recent_write(&key, "w-3").is_none());
}

async fn one_part_upload(
    client: &mut PartitionServerClient<strata_util::rpc::Channel>,
    key: &str,
    body: &str,
) -> (String, CompletedPart) {
    let upload_id = create_upload(client, key).await;
    let part = vec![
        UploadPartRequest {
            part: Some(upload_part_request::Part::Header(UploadPartHeader {
                bucket: "b".into(),
                key: key.into(),
                upload_id: upload_id.clone(),
                part_number: 1,
                size_bytes: body.len() as i64,
                ..Default::default()
            })),
        },
        UploadPartRequest {
            part: Some(upload_part_request::Part::Chunk(body.as_bytes().to_vec())),
        },
    ];
    let etag = client
        .upload_part(futures::stream::iter(part))
        .await
        .unwrap()
        .into_inner()
        .part
        .unwrap()
        .etag;
    let completed = CompletedPart {
        part_number: 1,
        etag,
        ..Default::default()
    };
    (upload_id, completed)
}

fn complete_create_only(upload_id: &str, part: &CompletedPart) -> CompleteMultipartUploadRequest {
    CompleteMultipartUploadRequest {
        bucket: "b".into(),
        key: "mp".into(),
        upload_id: upload_id.into(),
        parts: vec![part.clone()],
        condition: Some(WriteCondition {
            if_none_match_any: true,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_conditional_completion_answers_its_own_commit() {
    let layer = stream_layer(1 << 20).await;
    let (mut client, token) = serve_whole_range(&layer).await;
    let (upload_id, part) = one_part_upload(&mut client, "mp", "parts").await;

    let first = client
        .complete_multipart_upload(complete_create_only(&upload_id, &part))
        .await
        .unwrap()
        .into_inner()
        .meta
        .unwrap();
    assert!(first.etag.ends_with("-1\""), "{}", first.etag);
    // The same completion again (its answer was lost): the commit it made is answered, neither
    // NoSuchUpload nor 412.
    let retried = client
        .complete_multipart_upload(complete_create_only(&upload_id, &part))
        .await
        .expect("a retried completion that took effect succeeds")
        .into_inner()
        .meta
        .unwrap();
    assert_eq!((retried.etag, retried.size_bytes), (first.etag, 5));
    // Another upload completing under the same condition is refused, and stays in place.
    let (other_id, other_part) = one_part_upload(&mut client, "mp", "other").await;
    let refused = client
        .complete_multipart_upload(complete_create_only(&other_id, &other_part))
        .await
        .unwrap_err();
    assert!(
        from_status(&refused) == Some(ErrorDetail::PreconditionFailed),
        "{refused}"
    );
    // An upload id that never completed here is still unknown.
    let unknown = client
        .complete_multipart_upload(complete_create_only(&"0".repeat(32), &part))
        .await
        .unwrap_err();
    assert!(
        matches!(
            from_status(&unknown),
            Some(ErrorDetail::NotFound {
                what: Missing::Upload,
                ..
            })
        ),
        "{unknown}"
    );
    token.cancel();
}

/// Writes b/k create-only as "first" (write id w-1, which the test retries later), then over
/// it as "second" (w-2); returns the first write's answer.
async fn write_first_then_second(
    client: &mut PartitionServerClient<strata_util::rpc::Channel>,
) -> ObjectMeta {
    let first = client
        .put_object(futures::stream::iter(put("k", "first", "w-1", true)))
        .await
        .unwrap()
        .into_inner()
        .meta
        .unwrap();
    client
        .put_object(futures::stream::iter(put("k", "second", "w-2", false)))
        .await
        .unwrap();
    first
}

/// The write id of b/k's current version.
async fn current_write_id(client: &mut PartitionServerClient<strata_util::rpc::Channel>) -> String {
    client
        .head_object(HeadObjectRequest {
            bucket: "b".into(),
            key: "k".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .meta
        .unwrap()
        .write_id
}

/// A front-end retries for up to its whole retry budget (5 s by default), and a range takes
/// thousands of writes a second: a retry that comes after more than 4,096 other writes (the
/// range's old memory) must still be answered with its own write, not 412.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_more_than_4096_other_writes_answers_its_own_effect() {
    let layer = stream_layer(64 << 20).await;
    let (mut client, state, token) = serve_range(&layer, "A", 1).await;
    let first = write_first_then_second(&mut client).await;
    // 5,000 other writes, each with its own write id, 500 to a commit to keep the test quick.
    let range = state.range_for(&keys::object_key("b", "k")).unwrap();
    for batch in 0..10 {
        let changes = (0..500)
            .map(|i| {
                let meta = strata_proto::record::ObjectRecord {
                    write_id: format!("other-{batch}-{i}"),
                    etag: "\"other\"".into(),
                    ..Default::default()
                };
                (
                    keys::object_key("b", &format!("other-{batch}-{i}")),
                    Some(strata_partition::range::IndexValue::Object(meta)),
                )
            })
            .collect();
        range.commit_batch(changes).await.unwrap();
    }
    let late = client
        .put_object(futures::stream::iter(put("k", "first", "w-1", true)))
        .await;
    let late = late.expect("a retry after 5,000 other writes answers its own write");
    assert_eq!(late.into_inner().meta.unwrap().etag, first.etag);
    // Answered, not applied again: the current version is still the second write.
    assert_eq!(current_write_id(&mut client).await, "w-2");
    token.cancel();
}

/// A checkpoint between a write and its retry, then a move (the new owner loads the checkpoint
/// and replays only the log after it): the retry still answers its own write, not 412.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_checkpoint_and_a_move_answers_its_own_effect() {
    let layer = stream_layer(1 << 20).await;
    let (mut client, state, token) = serve_range(&layer, "A", 1).await;
    let first = write_first_then_second(&mut client).await;
    let range = state.range_for(&keys::object_key("b", "k")).unwrap();
    range.checkpoint().await.unwrap();
    token.cancel();

    let (mut moved, _, token) = serve_range(&layer, "B", 2).await;
    let late = moved
        .put_object(futures::stream::iter(put("k", "first", "w-1", true)))
        .await;
    let late = late.expect("a retry after a checkpoint and a move answers its own write");
    assert_eq!(late.into_inner().meta.unwrap().etag, first.etag);
    // Nothing was applied twice: the current version is still the second write.
    assert_eq!(current_write_id(&mut moved).await, "w-2");
    token.cancel();
}
