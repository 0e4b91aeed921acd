//! DeleteBucket is ordered against writes into the bucket (issue 12, item 7): a write racing a
//! DeleteBucket either lands first (and the delete answers BucketNotEmpty) or fails with
//! NoSuchBucket; nothing is left behind to reappear in a bucket re-created under the same name.
//! Against real partition servers over gRPC on a real stream layer in process: server A holds
//! the bucket records, server B the bucket's objects, as after a split.

mod common;

use std::sync::Arc;

use common::stream_layer;
use strata_partition::PartitionServerState;
use strata_proto::common::BucketMeta;
use strata_proto::manager::RangeAssignment;
use strata_proto::partition::partition_server_client::PartitionServerClient;
use strata_proto::partition::*;
use strata_types::error_detail::{from_status, ErrorDetail, Missing, RejectReason};
use strata_types::keys;
use tokio_util::sync::CancellationToken;

type Client = PartitionServerClient<strata_util::rpc::Channel>;

fn header(key: &str, size: usize) -> PutObjectRequest {
    PutObjectRequest {
        part: Some(put_object_request::Part::Header(PutObjectHeader {
            bucket: "b".into(),
            key: key.into(),
            size_bytes: size as i64,
            ..Default::default()
        })),
    }
}

fn chunk(body: &str) -> PutObjectRequest {
    PutObjectRequest {
        part: Some(put_object_request::Part::Chunk(body.as_bytes().to_vec())),
    }
}

async fn put(client: &mut Client, key: &str, body: &str) -> Result<(), tonic::Status> {
    let messages = vec![header(key, body.len()), chunk(body)];
    client
        .put_object(futures::stream::iter(messages))
        .await
        .map(|_| ())
}

async fn create_bucket(client: &mut Client) {
    let created = client
        .create_bucket(CreateBucketRequest {
            bucket: Some(BucketMeta {
                name: "b".into(),
                ..Default::default()
            }),
            geo_replica: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(created.created);
}

async fn listed(client: &mut Client) -> Vec<String> {
    client
        .list_objects(ListObjectsRequest {
            bucket: "b".into(),
            max_keys: 1_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .items
        .into_iter()
        .filter_map(|item| item.entry.map(|entry| entry.key))
        .collect()
}

/// Servers A (keys below the object table: bucket records) and B (the object table), each
/// serving its range over gRPC and knowing the whole map; the layer must outlive them.
async fn serve_two(layer: &common::StreamLayer) -> (Client, Client, CancellationToken) {
    let split = vec![keys::TABLE_OBJECTS];
    let token = CancellationToken::new();
    let mut listeners = Vec::new();
    for _ in 0..2 {
        let (listener, addr) = strata_util::rpc::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        listeners.push((listener, addr.to_string()));
    }
    let assignments = vec![
        RangeAssignment {
            range_id: 1,
            low: Vec::new(),
            high: split.clone(),
            owner_id: "A".into(),
            owner_addr: listeners[0].1.clone(),
            epoch: 1,
        },
        RangeAssignment {
            range_id: 2,
            low: split.clone(),
            high: Vec::new(),
            owner_id: "B".into(),
            owner_addr: listeners[1].1.clone(),
            epoch: 1,
        },
    ];
    let mut clients = Vec::new();
    for ((listener, addr), (id, probe)) in listeners.into_iter().zip([
        ("A", keys::bucket_key("b")),
        ("B", keys::object_key("b", "k")),
    ]) {
        let state: Arc<PartitionServerState> = common::partition_server(id, layer);
        state.assign(assignments.clone());
        common::wait_for("the range to load", || {
            let loaded = state.range_for(&probe).is_ok();
            async move { loaded.then_some(()) }
        })
        .await;
        common::serve_state(state, listener, token.clone());
        clients.push(PartitionServerClient::new(
            strata_util::rpc::channel(&addr).unwrap(),
        ));
    }
    let b = clients.pop().unwrap();
    let a = clients.pop().unwrap();
    (a, b, token)
}

/// A front-end that read the bucket record (or has it cached) streams a PUT while the bucket
/// is deleted: the PUT must not land, and the bucket created again under the name is empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_streaming_across_delete_bucket_fails_and_a_recreated_bucket_is_empty() {
    let layer = stream_layer(1 << 20).await;
    let (mut a, mut b, token) = serve_two(&layer).await;
    create_bucket(&mut a).await;

    let (send, receive) = tokio::sync::mpsc::channel::<PutObjectRequest>(4);
    send.send(header("late", 4)).await.unwrap();
    let body = futures::stream::unfold(receive, |mut receive| async move {
        receive.recv().await.map(|message| (message, receive))
    });
    let mut putter = b.clone();
    let streaming = tokio::spawn(async move { putter.put_object(body).await.map(|_| ()) });

    let deleted = a
        .delete_bucket(DeleteBucketRequest { name: "b".into() })
        .await
        .expect("deleting the empty bucket succeeds")
        .into_inner();
    assert!(deleted.existed);
    send.send(chunk("late")).await.unwrap();
    drop(send);
    let landed = streaming.await.unwrap();
    let refused = landed.expect_err("a PUT committing after its bucket was deleted must fail");
    assert!(
        matches!(
            from_status(&refused),
            Some(ErrorDetail::NotFound {
                what: Missing::Bucket,
                ..
            })
        ),
        "{refused}"
    );

    create_bucket(&mut a).await;
    assert_eq!(listed(&mut b).await, Vec::<String>::new());
    token.cancel();
}

/// The owners count the bucket's objects: a bucket holding one is not deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_bucket_of_a_bucket_with_an_object_answers_bucket_not_empty() {
    let layer = stream_layer(1 << 20).await;
    let (mut a, mut b, token) = serve_two(&layer).await;
    create_bucket(&mut a).await;
    put(&mut b, "k", "body").await.unwrap();
    let refused = a
        .delete_bucket(DeleteBucketRequest { name: "b".into() })
        .await
        .expect_err("a bucket holding an object is not deleted");
    assert!(
        from_status(&refused)
            == Some(ErrorDetail::Rejected {
                reason: RejectReason::BucketNotEmpty
            }),
        "{refused}"
    );
    // The bucket is whole again: its record is there and writes land.
    let record = a
        .get_bucket(GetBucketRequest {
            name: "b".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(record.bucket.is_some());
    put(&mut b, "k2", "body").await.unwrap();
    assert_eq!(
        listed(&mut b).await,
        vec!["k".to_string(), "k2".to_string()]
    );
    token.cancel();
}

/// PUTs race a DeleteBucket: if the delete succeeded, no PUT did (each would have been
/// counted); if it answered BucketNotEmpty, exactly the acknowledged PUTs are listed. Either
/// way, a bucket created again under the name holds nothing it was not given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_racing_delete_bucket_land_before_it_or_fail() {
    let layer = stream_layer(1 << 20).await;
    let (mut a, b, token) = serve_two(&layer).await;
    create_bucket(&mut a).await;
    let stop = CancellationToken::new();
    let mut writers = Vec::new();
    for writer in 0..4 {
        let mut client = b.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..100 {
                if stop.is_cancelled() {
                    break;
                }
                let key = format!("w{writer}-{i:05}");
                match put(&mut client, &key, "x").await {
                    Ok(()) => acknowledged.push(key),
                    Err(status) => {
                        assert!(
                            matches!(
                                from_status(&status),
                                Some(ErrorDetail::NotFound {
                                    what: Missing::Bucket,
                                    ..
                                })
                            ),
                            "{status}"
                        );
                        break;
                    }
                }
            }
            acknowledged
        }));
    }
    let deleted = a
        .delete_bucket(DeleteBucketRequest { name: "b".into() })
        .await;
    stop.cancel();
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    acknowledged.sort();
    let mut b = b;
    match deleted {
        Ok(_) => {
            assert!(acknowledged.is_empty(), "deleted over {acknowledged:?}");
            create_bucket(&mut a).await;
            assert_eq!(listed(&mut b).await, Vec::<String>::new());
        }
        Err(status) => {
            assert!(
                from_status(&status)
                    == Some(ErrorDetail::Rejected {
                        reason: RejectReason::BucketNotEmpty
                    }),
                "{status}"
            );
            assert_eq!(listed(&mut b).await, acknowledged);
        }
    }
    token.cancel();
}
