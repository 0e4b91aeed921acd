//! Buckets, objects, ranges, conditions, listing, copies and deletes through the front-end to
//! a real stamp (`split_stamp`: ps-a serves keys before photos/"m", ps-b the rest), and the
//! front-end's routing: a stale map refreshed on NotOwner, a range without owner, the global
//! bucket namespace in the location service.

use crate::common::client::{assert_error, delete_xml, pattern};
use crate::common::sign::{sha256_hex, ACCESS_KEY};
use crate::common::{split_stamp, Options, Stamp};
use base64::Engine;
use md5::{Digest, Md5};
use strata_location::LocationClient;
use strata_proto::location::ReserveBucketRequest;
use strata_types::keys;

#[tokio::test]
async fn e2e_buckets_objects_ranges_conditions_listing_copy_delete() {
    let stamp = split_stamp().await;
    let c = &stamp.client;

    c.create_bucket("photos").await;
    let again = c.call("PUT", "/photos").await;
    assert_error(&again, 409, "BucketAlreadyOwnedByYou");
    let bad = c.call("PUT", "/bad..name").await;
    assert_error(&bad, 400, "InvalidBucketName");
    let buckets = c.call("GET", "/").await;
    assert!(
        buckets.text().contains("<Name>photos</Name>"),
        "{}",
        buckets.text()
    );

    // A 2.5 MiB object moves in chunks of at most 1 MiB.
    let big = pattern(5 * 512 * 1024);
    let md5_base64 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&big));
    let etag = format!("\"{}\"", hex::encode(Md5::digest(&big)));
    let put = c
        .send(
            "PUT",
            "/photos/dir/big",
            &[],
            &[("content-md5", &md5_base64), ("x-amz-meta-color", "blue")],
            big.clone(),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(put.header("etag"), etag);
    let bad_md5 = c
        .send(
            "PUT",
            "/photos/dir/bad",
            &[],
            &[("content-md5", "AAAAAAAAAAAAAAAAAAAAAA==")],
            b"abc".to_vec(),
        )
        .await;
    assert_error(&bad_md5, 400, "BadDigest");

    let get = c.call("GET", "/photos/dir/big").await;
    assert_eq!(get.status, 200);
    assert_eq!(get.body, big);
    assert_eq!(get.header("x-amz-meta-color"), "blue");
    let ranged = c
        .with_headers("GET", "/photos/dir/big", &[("range", "bytes=100-199")])
        .await;
    assert_eq!(ranged.status, 206);
    assert_eq!(
        ranged.header("content-range"),
        format!("bytes 100-199/{}", big.len())
    );
    assert_eq!(ranged.body, big[100..200]);
    let suffix = c
        .with_headers("GET", "/photos/dir/big", &[("range", "bytes=-10")])
        .await;
    assert_eq!(suffix.status, 206);
    assert_eq!(suffix.body, big[big.len() - 10..]);
    let beyond = c
        .with_headers("GET", "/photos/dir/big", &[("range", "bytes=99999999-")])
        .await;
    assert_eq!(beyond.status, 416, "{}", beyond.text());
    let not_modified = c
        .with_headers("GET", "/photos/dir/big", &[("if-none-match", &etag)])
        .await;
    assert_eq!(not_modified.status, 304);
    let failed = c
        .with_headers("GET", "/photos/dir/big", &[("if-match", "\"nope\"")])
        .await;
    assert_eq!(failed.status, 412);
    let head = c.call("HEAD", "/photos/dir/big").await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), big.len().to_string());
    let head_range = c
        .with_headers("HEAD", "/photos/dir/big", &[("range", "bytes=0-9")])
        .await;
    assert_eq!(head_range.status, 206);
    let missing = c.call("GET", "/photos/missing").await;
    assert_error(&missing, 404, "NoSuchKey");
    let no_bucket = c.call("GET", "/nobucket/x").await;
    assert_error(&no_bucket, 404, "NoSuchBucket");

    // Keys on both servers; "n/" lives on B, "dir/" on A.
    for key in ["a", "dir/x", "n/1", "n/2", "z"] {
        let reply = c
            .put(&format!("/photos/{key}"), key.as_bytes().to_vec())
            .await;
        assert_eq!(reply.status, 200, "{key}: {}", reply.text());
    }
    let listed = c
        .query("GET", "/photos", &[("list-type", "2"), ("delimiter", "/")])
        .await;
    let text = listed.text();
    assert_eq!(listed.status, 200, "{text}");
    assert!(text.contains("<KeyCount>4</KeyCount>"), "{text}");
    assert!(
        text.contains("<Key>a</Key>") && text.contains("<Key>z</Key>"),
        "{text}"
    );
    assert!(
        text.contains("<Prefix>dir/</Prefix>") && text.contains("<Prefix>n/</Prefix>"),
        "{text}"
    );

    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..10 {
        let mut query = vec![("list-type", "2"), ("max-keys", "2")];
        if let Some(t) = token.as_deref() {
            query.push(("continuation-token", t));
        }
        let page = c.query("GET", "/photos", &query).await.text();
        for part in page.split("<Key>").skip(1) {
            seen.push(part.split("</Key>").next().unwrap().to_string());
        }
        token = page.split("<NextContinuationToken>").nth(1).map(|rest| {
            rest.split("</NextContinuationToken>")
                .next()
                .unwrap()
                .to_string()
        });
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, vec!["a", "dir/big", "dir/x", "n/1", "n/2", "z"]);
    let v1 = c
        .query("GET", "/photos", &[("delimiter", "/"), ("max-keys", "1")])
        .await
        .text();
    assert!(
        v1.contains("<IsTruncated>true</IsTruncated>") && v1.contains("<NextMarker>a</NextMarker>"),
        "{v1}"
    );

    // Copies: same owner (metadata only), across owners (streamed), onto itself.
    let same = c.copy("/photos/b-copy", "photos/dir/big").await;
    assert_eq!(same.status, 200, "{}", same.text());
    assert!(
        same.text().contains("<CopyObjectResult>"),
        "{}",
        same.text()
    );
    let across = c.copy("/photos/zz-copy", "/photos/dir/big").await;
    assert_eq!(across.status, 200, "{}", across.text());
    assert_eq!(c.call("GET", "/photos/zz-copy").await.body, big);
    let onto_itself = c.copy("/photos/a", "photos/a").await;
    assert_error(&onto_itself, 400, "InvalidRequest");

    let not_empty = c.call("DELETE", "/photos").await;
    assert_error(&not_empty, 409, "BucketNotEmpty");
    assert_eq!(c.call("DELETE", "/photos/never-existed").await.status, 204);
    let keys = [
        "a", "b-copy", "dir/big", "dir/x", "n/1", "n/2", "z", "zz-copy",
    ];
    let delete = c.delete_objects("photos", delete_xml(keys)).await;
    assert_eq!(delete.status, 200, "{}", delete.text());
    assert_eq!(
        delete.text().matches("<Deleted>").count(),
        keys.len(),
        "{}",
        delete.text()
    );
    assert_eq!(c.call("DELETE", "/photos").await.status, 204);
    assert_eq!(c.call("HEAD", "/photos").await.status, 404);
}

#[tokio::test]
async fn e2e_body_checksum_mismatch_stores_nothing() {
    let stamp = split_stamp().await;
    let c = &stamp.client;
    c.create_bucket("photos").await;
    let body = pattern(3 * 1024 * 1024 + 5);
    let wrong_sha = sha256_hex(b"something else");
    let reply = c
        .send(
            "PUT",
            "/photos/bad",
            &[],
            &[("x-amz-content-sha256", &wrong_sha)],
            body.clone(),
        )
        .await;
    assert_error(&reply, 400, "XAmzContentSHA256Mismatch");
    assert_eq!(c.call("HEAD", "/photos/bad").await.status, 404);
    let listed = c.query("GET", "/photos", &[("list-type", "2")]).await;
    assert!(
        listed.text().contains("<KeyCount>0</KeyCount>"),
        "{}",
        listed.text()
    );
    let right_sha = sha256_hex(&body);
    let reply = c
        .send(
            "PUT",
            "/photos/good",
            &[],
            &[("x-amz-content-sha256", &right_sha)],
            body,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[tokio::test]
async fn e2e_not_owner_refreshes_the_map_and_retries() {
    // The front-end caches a map where ps-a owns everything; then the keys from photos/"m" on
    // move to ps-b: ps-a answers NotOwner and the front-end refreshes its map and retries.
    let stamp = Stamp::start(Options {
        retry_budget_ms: 3_000,
        ..Options::default()
    })
    .await;
    let c = &stamp.client;
    c.create_bucket("photos").await;
    let split = keys::object_key("photos", "m");
    stamp.split_at(&split).await;
    stamp.move_range(&split, 1).await;
    let reply = c.put("/photos/z", b"zzz".to_vec()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(c.call("GET", "/photos/z").await.body, b"zzz");
    assert!(stamp.servers[1].serves(&keys::object_key("photos", "z")));
    assert!(!stamp.servers[0].serves(&keys::object_key("photos", "z")));
}

#[tokio::test]
async fn e2e_a_range_without_owner_answers_503() {
    // No partition server has joined: the manager's only range has no owner yet.
    let stamp = Stamp::start(Options {
        servers: 0,
        retry_budget_ms: 300,
        ..Options::default()
    })
    .await;
    let c = &stamp.client;
    for (method, path) in [("PUT", "/photos"), ("GET", "/photos/z")] {
        let reply = c.call(method, path).await;
        assert_eq!(reply.status, 503, "{method} {path}: {}", reply.text());
        assert!(
            reply.text().contains("ServiceUnavailable"),
            "{}",
            reply.text()
        );
    }
}

#[tokio::test]
async fn e2e_bucket_names_are_global() {
    let stamp = split_stamp().await;
    let c = &stamp.client;
    // The client the front-ends use: it waits out the group's first election.
    let location = LocationClient::new(&stamp.location_addr).unwrap();
    // The front-end registers its stamp, with its S3 address as the endpoint.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let registered = loop {
        let stamps = location.list_stamps().await.unwrap().stamps;
        if let Some(found) = stamps.into_iter().find(|s| s.name == "stamp-1") {
            break found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stamp-1 never registered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(registered.region, "us-east-1");
    assert_eq!(registered.state, "open");
    assert_eq!(registered.endpoints, [format!("http://{}", stamp.s3_addr)]);
    // Another owner holds "taken" in the global namespace.
    let taken = location
        .reserve_bucket(ReserveBucketRequest {
            bucket: "taken".into(),
            owner_access_key: "SOMEONE-ELSE".into(),
            stamp: "stamp-1".into(),
        })
        .await
        .unwrap();
    assert!(taken.reserved);
    let reply = c.call("PUT", "/taken").await;
    assert_error(&reply, 409, "BucketAlreadyExists");

    c.create_bucket("mine").await;
    let reserved = location
        .lookup_bucket("mine")
        .await
        .unwrap()
        .location
        .expect("the name is reserved");
    assert_eq!(
        (reserved.owner_access_key.as_str(), reserved.stamp.as_str()),
        (ACCESS_KEY, "stamp-1")
    );
    assert_eq!(c.call("DELETE", "/mine").await.status, 204);
    let released = location.lookup_bucket("mine").await.unwrap().location;
    assert!(released.is_none(), "the name was released: {released:?}");
}

#[tokio::test]
async fn e2e_delete_objects_quiet_limits_location_and_copy_conditions() {
    let stamp = split_stamp().await;
    let c = &stamp.client;
    c.create_bucket("photos").await;
    let location = c.query("GET", "/photos", &[("location", "")]).await;
    assert_eq!(location.status, 200, "{}", location.text());
    assert!(
        location.text().contains("LocationConstraint"),
        "{}",
        location.text()
    );
    for key in ["a", "z"] {
        assert_eq!(
            c.put(&format!("/photos/{key}"), b"x".to_vec()).await.status,
            200
        );
    }
    let copy_failed = c
        .with_headers(
            "PUT",
            "/photos/b",
            &[
                ("x-amz-copy-source", "photos/a"),
                ("x-amz-copy-source-if-match", "\"other\""),
            ],
        )
        .await;
    assert_eq!(copy_failed.status, 412, "{}", copy_failed.text());
    let missing_source = c.copy("/photos/b", "photos/nope").await;
    assert_eq!(missing_source.status, 404);

    let too_many = delete_xml((0..1001).map(|i| format!("k{i}")));
    let reply = c.delete_objects("photos", too_many).await;
    assert_error(&reply, 400, "MalformedXML");

    let quiet = "<Delete><Quiet>true</Quiet><Object><Key>a</Key></Object><Object><Key>z</Key></Object></Delete>";
    let reply = c.delete_objects("photos", quiet).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(!reply.text().contains("<Deleted>"), "{}", reply.text());
    assert_eq!(c.call("HEAD", "/photos/a").await.status, 404);
    assert_eq!(c.call("HEAD", "/photos/z").await.status, 404);
}
