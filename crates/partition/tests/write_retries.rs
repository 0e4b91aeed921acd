//! A front-end retries a PutObject whose owner died after committing but before answering
//! (same write id, as `ObjectMeta.write_id` says): the retry must answer that write, not
//! evaluate its condition again, so a conditional write that took effect is never told 412.
//! Against a real partition server over gRPC, on a real stream layer in process.

mod common;

use std::time::{Duration, Instant};

use common::stream_layer;
use strata_partition::PartitionService;
use strata_proto::common::{ObjectMeta, WriteCondition};
use strata_proto::manager::RangeAssignment;
use strata_proto::partition::partition_server_client::PartitionServerClient;
use strata_proto::partition::partition_server_server::PartitionServerServer;
use strata_proto::partition::*;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_conditional_put_answers_its_own_committed_write() {
    let layer = stream_layer(1 << 20).await;
    let state = common::partition_server("A", &layer);
    state.assign(vec![RangeAssignment {
        range_id: 1,
        low: Vec::new(),
        high: Vec::new(),
        owner_id: "A".into(),
        owner_addr: "A:1".into(),
        epoch: 1,
    }]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while state.range_for(&keys::object_key("b", "k")).is_err() {
        assert!(Instant::now() < deadline, "range never loaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (listener, addr) = strata_util::rpc::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let token = CancellationToken::new();
    let router = strata_util::rpc::server().add_service(PartitionServerServer::new(
        PartitionService::new(state.clone()),
    ));
    tokio::spawn(strata_util::rpc::serve(router, listener, token.clone()));
    let mut client =
        PartitionServerClient::new(strata_util::rpc::channel(&addr.to_string()).unwrap());

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
    assert_eq!(retried.meta.unwrap().etag, first.meta.unwrap().etag);
    // Another request with the same condition is refused, as S3 does.
    let other = client
        .put_object(futures::stream::iter(put("k", "second", "w-2", true)))
        .await
        .unwrap_err();
    assert!(other.message().contains("PreconditionFailed"), "{other}");
    // Once another write replaced it, a late retry of the first is no longer recognized.
    client
        .put_object(futures::stream::iter(put("k", "third", "w-3", false)))
        .await
        .unwrap();
    let late = client
        .put_object(futures::stream::iter(put("k", "first", "w-1", true)))
        .await;
    assert!(late.is_err());
    token.cancel();
}
