//! Bucket moves between stamps (issue 15, item 5), against real partition servers over gRPC,
//! each stamp on its own stream layer in process: a versioned bucket's rows (objects,
//! noncurrent versions, a delete marker, an unfinished upload and its part) page out of one
//! stamp with their bytes and into another, the fence stops every write on the source until it
//! is lifted, a moved bucket points writers at its new stamp, and the import refuses rows that
//! are not its move's.

mod common;
mod move_rpcs;

use md5::{Digest, Md5};
use move_rpcs::*;
use strata_proto::common::VersioningState;
use strata_proto::partition::*;
use strata_proto::record::{index_entry, BucketRecord, IndexEntry, ObjectRecord};
use strata_types::error_detail::{ErrorDetail, Missing, RejectReason};
use strata_types::keys;

/// What a row's value is, for assertions: its kind, and whether it is a delete marker.
fn kind(row: &IndexEntry) -> &'static str {
    match row.value.as_ref().unwrap() {
        index_entry::Value::Object(meta) if meta.delete_marker => "marker",
        index_entry::Value::Object(_) => "object",
        index_entry::Value::Version(_) => "version",
        index_entry::Value::Upload(_) => "upload",
        index_entry::Value::Part(part) => {
            assert!(part.chunks.is_empty(), "a part left with its chunks");
            "part"
        }
        index_entry::Value::Bucket(_) => "bucket",
    }
}

fn chunks_left(row: &IndexEntry) -> usize {
    match row.value.as_ref().unwrap() {
        index_entry::Value::Object(meta) | index_entry::Value::Version(meta) => meta.chunks.len(),
        index_entry::Value::Part(part) => part.chunks.len(),
        _ => 0,
    }
}

/// A body over two chunks, so its bytes travel (and are stored again) in several records.
fn big_body() -> Vec<u8> {
    (0..(5 << 19) + 7).map(|i: u32| (i % 251) as u8).collect()
}

/// Bucket `b` on `client` as the move tests want it: two versions of `k`, a deleted `gone`
/// (a delete marker over one version), a 2.5 MiB `big` and an unfinished upload of `mp` with
/// one part. Answers the upload id.
async fn fill(client: &mut Client) -> String {
    create_bucket(client, "b", ENABLED).await;
    put(client, "k", b"one").await.unwrap();
    put(client, "k", b"two-two").await.unwrap();
    put(client, "gone", b"bye").await.unwrap();
    delete(client, "gone", "").await.unwrap();
    put(client, "big", &big_body()).await.unwrap();
    let upload_id = create_upload(client, "mp").await.unwrap();
    upload_part(client, "mp", &upload_id, b"part-one").await;
    upload_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_versioned_bucket_s_rows_copy_to_another_stamp_with_their_bytes() {
    // The source's object rows lie in two ranges: those before `k` and the rest.
    let split = keys::object_key("b", "k");
    let mut source = stamp("ps-source", Some(split.clone())).await;
    let mut target = stamp("ps-target", None).await;
    let upload_id = fill(&mut source.client).await;

    // Pages of two: the first range ends after three rows (the next page starts AT its high
    // bound), the second holds four.
    let pages = scan_pages(&mut source.client, 2).await;
    let shape: Vec<(usize, bool)> = pages
        .iter()
        .map(|page| (page.rows.len(), page.next_inclusive))
        .collect();
    assert_eq!(shape, [(2, false), (1, true), (2, false), (2, false)]);
    assert_eq!(pages[1].next_after, split);
    assert_eq!(pages[0].next_after, pages[0].rows[1].key);
    let rows: Vec<IndexEntry> = pages.into_iter().flat_map(|page| page.rows).collect();
    let kinds: Vec<&str> = rows.iter().map(kind).collect();
    assert_eq!(
        kinds,
        ["object", "marker", "version", "object", "version", "upload", "part"]
    );
    assert!(rows.iter().all(|row| chunks_left(row) == 0));
    assert_eq!(rows[5].key, keys::upload_key("b", "mp", &upload_id));
    assert_eq!(
        rows,
        scan_all(&mut source.client).await,
        "pages make the whole"
    );

    // Each row with its bytes, as the index held them.
    let mut bodies = Vec::new();
    for row in &rows {
        let (read, data) = read_row(&mut source.client, &row.key).await.unwrap();
        assert_eq!(&read, row);
        bodies.push(data);
    }
    let wanted: [&[u8]; 7] = [
        &big_body(),
        b"",
        b"bye",
        b"two-two",
        b"one",
        b"",
        b"part-one",
    ];
    assert_eq!(bodies, wanted);
    let missing = read_row(&mut source.client, &keys::object_key("b", "none")).await;
    assert_eq!(
        detail(missing),
        ErrorDetail::NotFound {
            what: Missing::Key,
            name: String::new()
        }
    );

    // The bucket row first (the target's record, importing), then every object row.
    let (bucket_row, _) = read_row(&mut source.client, &keys::bucket_key("b"))
        .await
        .unwrap();
    import_row(&mut target.client, "m1", bucket_row, b"")
        .await
        .unwrap();
    for (row, data) in rows.iter().zip(&bodies) {
        import_row(&mut target.client, "m1", row.clone(), data)
            .await
            .unwrap();
    }
    let record = get_bucket(&mut target.client, "b").await.unwrap();
    assert!(record.importing);
    assert_eq!(
        (record.move_id.as_str(), record.versioning),
        ("m1", ENABLED)
    );
    assert_eq!(
        scan_all(&mut target.client).await,
        rows,
        "the same rows, field for field"
    );

    // The copy reads like the original, through the ordinary read paths.
    let target_client = &mut target.client;
    assert_eq!(get(target_client, "k", "").await.unwrap(), b"two-two");
    let index_entry::Value::Version(old) = rows[4].value.clone().unwrap() else {
        panic!("row 4 is k's noncurrent version");
    };
    assert_eq!(
        get(target_client, "k", &old.version_id).await.unwrap(),
        b"one"
    );
    assert_eq!(get(target_client, "big", "").await.unwrap(), big_body());
    assert!(
        get(target_client, "gone", "").await.is_err(),
        "a delete marker"
    );
    let parts = target_client
        .list_parts(ListPartsRequest {
            bucket: "b".into(),
            key: "mp".into(),
            upload_id: upload_id.clone(),
            max_parts: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(parts.parts.len(), 1);
    assert_eq!(parts.parts[0].size_bytes, 8);

    // Importing: no client writes until SERVE; then the bucket is the target's.
    let refused = put(target_client, "new", b"x").await;
    assert_eq!(detail(refused), ErrorDetail::BucketMoved { stamp: None });
    let served = set_step(target_client, "m1", MoveStep::Serve)
        .await
        .unwrap();
    assert!(!served.unwrap().importing);
    put(target_client, "new", b"x").await.unwrap();
    assert_eq!(get(target_client, "new", "").await.unwrap(), b"x");
}

fn throttled() -> ErrorDetail {
    ErrorDetail::Throttled {
        retry_after_ms: 1_000,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fence_stops_every_write_until_lifted_and_a_moved_bucket_points_at_its_stamp() {
    let mut source = stamp("ps-source", None).await;
    let client = &mut source.client;
    let upload_id = fill(client).await;
    // `k`'s versions: "one", "two-two", "three" (noncurrent) and "four" (current).
    let noncurrent = put(client, "k", b"three").await.unwrap();
    put(client, "k", b"four").await.unwrap();

    let fenced = set_step(client, "m1", MoveStep::Fence)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fenced.move_id, "m1");
    assert!(fenced.fenced_until_ms > strata_util::now_ms());
    // Writes that add keys, and writes that only change or remove them.
    assert_eq!(detail(put(client, "k2", b"x").await), throttled());
    assert_eq!(detail(create_upload(client, "mp2").await), throttled());
    let removal = delete(client, "k", &noncurrent.version_id).await;
    assert_eq!(detail(removal), throttled());
    let tags = PutObjectTagsRequest {
        bucket: "b".into(),
        key: "k".into(),
        tags: [("t".to_string(), "v".to_string())].into(),
        ..Default::default()
    };
    assert_eq!(
        detail(client.put_object_tags(tags.clone()).await),
        throttled()
    );
    let abort = AbortMultipartUploadRequest {
        bucket: "b".into(),
        key: "mp".into(),
        upload_id: upload_id.clone(),
    };
    assert_eq!(
        detail(client.abort_multipart_upload(abort.clone()).await),
        throttled()
    );
    // The record stays as it is: no deletion, no configuration change.
    let deleted = client
        .delete_bucket(DeleteBucketRequest { name: "b".into() })
        .await;
    assert_eq!(detail(deleted), throttled());
    let update = UpdateBucketRequest {
        name: "b".into(),
        change: Some(update_bucket_request::Change::Versioning(
            VersioningState::Suspended as i32,
        )),
    };
    assert_eq!(detail(client.update_bucket(update).await), throttled());
    // Another move cannot take or lift the fence; the same move repeats it.
    let conflict = rejected(RejectReason::OperationAborted);
    assert_eq!(
        detail(set_step(client, "m2", MoveStep::Fence).await),
        conflict
    );
    assert_eq!(
        detail(set_step(client, "m2", MoveStep::Unfence).await),
        conflict
    );
    set_step(client, "m1", MoveStep::Fence).await.unwrap();
    assert_eq!(get(client, "k", "").await.unwrap(), b"four", "reads go on");

    let lifted = set_step(client, "m1", MoveStep::Unfence)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((lifted.fenced_until_ms, lifted.move_id.as_str()), (0, ""));
    put(client, "k2", b"x").await.unwrap();
    client.put_object_tags(tags).await.unwrap();

    set_step(client, "m1", MoveStep::Fence).await.unwrap();
    let moved = set_step(client, "m1", MoveStep::Moved)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (moved.moved_to.as_str(), moved.fenced_until_ms),
        ("stamp-2", 0)
    );
    let to_stamp_2 = ErrorDetail::BucketMoved {
        stamp: Some("stamp-2".into()),
    };
    assert_eq!(detail(put(client, "k3", b"x").await), to_stamp_2);
    assert_eq!(detail(delete(client, "k2", "").await), to_stamp_2);
    assert_eq!(
        detail(client.abort_multipart_upload(abort).await),
        to_stamp_2
    );
    assert_eq!(
        detail(set_step(client, "m1", MoveStep::Unfence).await),
        conflict
    );

    // The moved copy goes once its rows are gone, and only then.
    let not_empty = rejected(RejectReason::BucketNotEmpty);
    assert_eq!(
        detail(set_step(client, "m1", MoveStep::Drop).await),
        not_empty
    );
    let keys: Vec<Vec<u8>> = scan_all(client).await.into_iter().map(|r| r.key).collect();
    assert_eq!(keys.len(), 10);
    assert_eq!(
        detail(remove_rows(client, "m2", keys.clone()).await),
        conflict
    );
    assert_eq!(remove_rows(client, "m1", keys.clone()).await.unwrap(), 10);
    assert_eq!(
        remove_rows(client, "m1", keys).await.unwrap(),
        0,
        "gone already"
    );
    assert!(scan_all(client).await.is_empty());
    assert_eq!(set_step(client, "m1", MoveStep::Drop).await.unwrap(), None);
    assert_eq!(get_bucket(client, "b").await, None);
    assert_eq!(set_step(client, "m1", MoveStep::Drop).await.unwrap(), None);
}

fn object_row(key: &str, body: &[u8]) -> IndexEntry {
    let record = ObjectRecord {
        size_bytes: body.len() as u64,
        etag: format!("\"{}\"", hex::encode(Md5::digest(body))),
        version_stamp: 1,
        ..Default::default()
    };
    IndexEntry {
        key: keys::object_key("b", key),
        value: Some(index_entry::Value::Object(record)),
    }
}

fn bucket_row(name: &str) -> IndexEntry {
    let record = BucketRecord {
        name: name.into(),
        ..Default::default()
    };
    IndexEntry {
        key: keys::bucket_key(name),
        value: Some(index_entry::Value::Bucket(record)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_import_takes_only_its_own_move_s_rows_whole() {
    let mut target = stamp("ps-target", None).await;
    let client = &mut target.client;
    let row = object_row("k", b"abc");
    let no_bucket = ErrorDetail::NotFound {
        what: Missing::Bucket,
        name: "b".into(),
    };
    assert_eq!(
        detail(import_row(client, "m1", row.clone(), b"abc").await),
        no_bucket
    );

    // A bucket of the target's own is never overwritten by an import.
    create_bucket(client, "taken", 0).await;
    let taken = bucket_row("taken");
    let header = ImportRowHeader {
        bucket: "taken".into(),
        move_id: "m1".into(),
        row: Some(taken),
        size_bytes: 0,
    };
    let messages = vec![ImportRowRequest {
        part: Some(import_row_request::Part::Header(header)),
    }];
    let refused = client.import_row(futures::stream::iter(messages)).await;
    assert_eq!(detail(refused), rejected(RejectReason::AlreadyExists));

    import_row(client, "m1", bucket_row("b"), b"")
        .await
        .unwrap();
    import_row(client, "m1", bucket_row("b"), b"")
        .await
        .unwrap();
    let conflict = rejected(RejectReason::OperationAborted);
    assert_eq!(
        detail(import_row(client, "m2", row.clone(), b"abc").await),
        conflict
    );
    // A later move takes over the copy an earlier (aborted) one left: from then on the
    // earlier move's rows are refused.
    import_row(client, "m2", bucket_row("b"), b"")
        .await
        .unwrap();
    assert_eq!(
        detail(import_row(client, "m1", row.clone(), b"abc").await),
        conflict
    );
    import_row(client, "m1", bucket_row("b"), b"")
        .await
        .unwrap();

    // Bytes must be the row's: its length and its MD5.
    let invalid = rejected(RejectReason::InvalidArgument);
    assert_eq!(
        detail(import_row(client, "m1", row.clone(), b"abcd").await),
        invalid
    );
    let corrupt = import_row(client, "m1", row.clone(), b"abd").await;
    assert_eq!(detail(corrupt), rejected(RejectReason::BadDigest));
    // A row of another bucket, or a value that does not fit its key.
    let mut elsewhere = row.clone();
    elsewhere.key = keys::object_key("c", "k");
    assert_eq!(
        detail(import_row(client, "m1", elsewhere, b"abc").await),
        invalid
    );
    let mut misplaced = row.clone();
    misplaced.key = keys::version_key("b", "k", 1);
    assert_eq!(
        detail(import_row(client, "m1", misplaced, b"abc").await),
        invalid
    );
    assert!(
        get(client, "k", "").await.is_err(),
        "nothing refused was stored"
    );

    import_row(client, "m1", row.clone(), b"abc").await.unwrap();
    assert_eq!(get(client, "k", "").await.unwrap(), b"abc");
    let scan_limit = ScanRowsRequest {
        bucket: "b".into(),
        limit: 1_001,
        ..Default::default()
    };
    assert_eq!(detail(client.scan_rows(scan_limit).await), invalid);
    let other_bucket = vec![keys::object_key("c", "k")];
    assert_eq!(
        detail(remove_rows(client, "m1", other_bucket).await),
        invalid
    );
    let too_many = vec![row.key.clone(); 1_001];
    assert_eq!(detail(remove_rows(client, "m1", too_many).await), invalid);
    assert_eq!(
        detail(remove_rows(client, "m2", vec![row.key.clone()]).await),
        conflict
    );
    // An abort: the imported rows go, then the copy's record.
    assert_eq!(remove_rows(client, "m1", vec![row.key]).await.unwrap(), 1);
    assert_eq!(set_step(client, "m1", MoveStep::Drop).await.unwrap(), None);
    assert_eq!(get_bucket(client, "b").await, None);
}
