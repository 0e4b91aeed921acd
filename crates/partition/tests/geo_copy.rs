//! Geo-replica copies (issue 16) on a real partition server over gRPC: CreateBucket with
//! `geo_replica` makes an unserved copy (importing by the geo-replica mark, versioning
//! Enabled) that never replaces a record; ApplyReplica takes a geo version into the copy only,
//! so once a move (or a fail-over) took the copy over and serves it, a geo version is refused
//! (what the old home still owed stays there) while an S3 destination's version is taken.

mod common;
mod move_rpcs;

use move_rpcs::*;
use strata_proto::common::{BucketMeta, ReplicationStatus};
use strata_proto::partition::*;
use strata_proto::record::{index_entry, BucketRecord, IndexEntry, ObjectRecord};
use strata_types::error_detail::RejectReason;
use strata_types::{keys, GEO_REPLICA_MOVE_ID};

/// A delete marker of `key` at `stamp` (no bytes, so one ApplyReplica call stores it).
fn marker(stamp: u64) -> ObjectRecord {
    ObjectRecord {
        version_id: format!("{stamp:016x}00000001"),
        version_stamp: stamp,
        delete_marker: true,
        last_modified_ms: 1_700_000_000_000,
        ..Default::default()
    }
}

async fn apply(
    client: &mut Client,
    key: &str,
    version: ObjectRecord,
    geo_replica: bool,
) -> Result<ApplyOutcome, tonic::Status> {
    let header = ApplyReplicaHeader {
        bucket: "b".into(),
        key: key.into(),
        version: Some(version),
        with_bytes: false,
        geo_replica,
    };
    let first = ApplyReplicaRequest {
        part: Some(apply_replica_request::Part::Header(header)),
    };
    let answer = client.apply_replica(futures::stream::iter([first])).await?;
    Ok(answer.into_inner().outcome())
}

async fn make_copy(client: &mut Client) -> CreateBucketResponse {
    let request = CreateBucketRequest {
        bucket: Some(BucketMeta {
            name: "b".into(),
            replication_sources: vec!["b".into()],
            ..Default::default()
        }),
        geo_replica: true,
    };
    client.create_bucket(request).await.unwrap().into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_geo_version_enters_the_copy_and_never_the_bucket_served_in_its_place() {
    let mut stamp = stamp("ps-geo", None).await;
    let client = &mut stamp.client;
    let made = make_copy(client).await;
    assert!(made.created);
    let copy = made.bucket.unwrap();
    assert!(
        copy.importing && copy.move_id == GEO_REPLICA_MOVE_ID,
        "{copy:?}"
    );
    assert_eq!(copy.versioning, ENABLED);
    assert_eq!(copy.replication_sources, vec!["b".to_string()]);
    assert!(!make_copy(client).await.created, "a second call finds it");

    assert_eq!(
        apply(client, "k", marker(1 << 40), true).await.unwrap(),
        ApplyOutcome::Applied
    );
    let rows = scan_all(client).await;
    let Some(index_entry::Value::Object(stored)) = &rows[0].value else {
        panic!("{rows:?}");
    };
    assert_eq!(stored.replication_status, ReplicationStatus::Replica as i32);

    // A move takes the copy over and serves it: the bucket's home is here now.
    let record = IndexEntry {
        key: keys::bucket_key("b"),
        value: Some(index_entry::Value::Bucket(BucketRecord {
            name: "b".into(),
            versioning: ENABLED,
            ..Default::default()
        })),
    };
    import_row(client, "m1", record, b"").await.unwrap();
    set_step(client, "m1", MoveStep::Serve).await.unwrap();

    let late = apply(client, "k", marker(2 << 40), true).await;
    assert_eq!(detail(late), rejected(RejectReason::OperationAborted));
    assert_eq!(
        scan_all(client).await.len(),
        1,
        "the late geo version was not stored"
    );
    let crr = apply(client, "k", marker(3 << 40), false).await.unwrap();
    assert_eq!(
        crr,
        ApplyOutcome::Applied,
        "an S3 destination's version is taken"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn making_a_copy_never_replaces_a_record() {
    let mut stamp = stamp("ps-geo-served", None).await;
    let client = &mut stamp.client;
    create_bucket(client, "b", ENABLED).await;
    let made = make_copy(client).await;
    assert!(!made.created);
    let served = made.bucket.unwrap();
    assert!(!served.importing && served.move_id.is_empty(), "{served:?}");
    assert!(!get_bucket(client, "b").await.unwrap().importing);
}
