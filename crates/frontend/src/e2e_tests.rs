//! End to end: signed HTTP requests through the real service stack (s3s, auth, this crate's
//! S3 implementation, routing) to in-memory partition servers and a manager over real gRPC.

use crate::e2e_fakes::{
    serve_location, serve_manager, serve_partition, FakeLocation, FakeManager, FakePartition, Store,
};
use crate::sigv4_tests::{now_amz_date, sha256_hex, sign, ACCESS_KEY, SECRET_KEY};
use crate::{app, build_s3_service, Frontend, FrontendConfig};
use axum::body::Body;
use base64::Engine;
use md5::{Digest, Md5};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use strata_proto::manager::{PartitionMap, RangeAssignment};
use strata_types::keys;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

pub(crate) const HOST: &str = "127.0.0.1:9000";

pub(crate) struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

pub(crate) struct Client {
    app: axum::Router,
}

impl Client {
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        self.send_with_sha(method, path, query, headers, body, "UNSIGNED-PAYLOAD")
            .await
    }

    pub async fn send_with_sha(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: Vec<u8>,
        content_sha256: &str,
    ) -> Reply {
        let amz_date = now_amz_date();
        let mut pairs: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| {
                (
                    urlencoding::encode(k).into_owned(),
                    urlencoding::encode(v).into_owned(),
                )
            })
            .collect();
        pairs.sort();
        let canonical_query = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let mut signed: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        signed.push(("host".into(), HOST.into()));
        signed.push(("x-amz-content-sha256".into(), content_sha256.into()));
        signed.push(("x-amz-date".into(), amz_date.clone()));
        signed.sort();
        let canonical_headers: String = signed.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
        let signed_names = signed
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(";");
        let canonical = format!("{method}\n{path}\n{canonical_query}\n{canonical_headers}\n{signed_names}\n{content_sha256}");
        let signature = sign(SECRET_KEY, &amz_date, &canonical);
        let uri = if canonical_query.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{canonical_query}")
        };
        let mut builder = http::Request::builder().method(method).uri(uri);
        for (k, v) in &signed {
            builder = builder.header(k.as_str(), v.as_str());
        }
        builder = builder.header("content-length", body.len().to_string()).header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{}/us-east-1/s3/aws4_request,SignedHeaders={signed_names},Signature={signature}",
                &amz_date[..8]
            ),
        );
        let response = self
            .app
            .clone()
            .oneshot(builder.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), 64 << 20)
            .await
            .unwrap()
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }
}

pub(crate) struct Cluster {
    pub client: Client,
    pub store: Arc<Mutex<Store>>,
    /// The ranges A and B own (change them to move ranges).
    pub owned: [crate::e2e_fakes::Owned; 2],
    manager: FakeManager,
    location: FakeLocation,
    token: CancellationToken,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

pub(crate) fn assignment(id: u64, low: Vec<u8>, high: Vec<u8>, owner: &str) -> RangeAssignment {
    RangeAssignment {
        range_id: id,
        low,
        high,
        owner_id: owner.to_string(),
        owner_addr: owner.to_string(),
        epoch: 1,
    }
}

/// Two partition servers sharing one store: A owns everything before photos/"m", B the rest.
/// `maps` builds the maps the manager answers with, in order, from A's and B's addresses.
pub(crate) async fn cluster(
    maps: impl Fn(&str, &str) -> Vec<PartitionMap>,
    retry_budget_ms: u64,
) -> Cluster {
    let split = keys::object_key("photos", "m");
    let a = vec![(Vec::new(), split.clone())];
    let b = vec![(split, Vec::new())];
    cluster_owning(a, b, maps, retry_budget_ms).await
}

/// Like [`cluster`], with the ranges A and B own given as (low, high) encoded keys.
pub(crate) async fn cluster_owning(
    a_owned: Vec<(Vec<u8>, Vec<u8>)>,
    b_owned: Vec<(Vec<u8>, Vec<u8>)>,
    maps: impl Fn(&str, &str) -> Vec<PartitionMap>,
    retry_budget_ms: u64,
) -> Cluster {
    let token = CancellationToken::new();
    let store = Arc::new(Mutex::new(Store::default()));
    let a = FakePartition {
        store: store.clone(),
        owned: Arc::new(Mutex::new(a_owned)),
    };
    let b = FakePartition {
        store: store.clone(),
        owned: Arc::new(Mutex::new(b_owned)),
    };
    let owned = [a.owned.clone(), b.owned.clone()];
    let a_addr = serve_partition(a, token.clone()).await.to_string();
    let b_addr = serve_partition(b, token.clone()).await.to_string();
    let manager = FakeManager {
        maps: Arc::new(Mutex::new(VecDeque::from(maps(&a_addr, &b_addr)))),
        ..Default::default()
    };
    let manager_addr = serve_manager(manager.clone(), token.clone())
        .await
        .to_string();
    let location = FakeLocation::default();
    let location_addr = serve_location(location.clone(), token.clone())
        .await
        .to_string();
    let mut config = FrontendConfig::new(vec![manager_addr], ACCESS_KEY, SECRET_KEY);
    config.retry_budget_ms = retry_budget_ms;
    config.location_addr = Some(location_addr);
    let frontend = Frontend::new(config.clone()).unwrap();
    Cluster {
        client: Client {
            app: app(build_s3_service(frontend, &config), 64, None),
        },
        store,
        owned,
        manager,
        location,
        token,
    }
}

pub(crate) fn split_map(a: &str, b: &str) -> PartitionMap {
    let split = keys::object_key("photos", "m");
    PartitionMap {
        version: 2,
        ranges: vec![
            assignment(1, Vec::new(), split.clone(), a),
            assignment(2, split, Vec::new(), b),
        ],
        leader_hint: String::new(),
    }
}

pub(crate) fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn e2e_buckets_objects_ranges_conditions_listing_copy_delete() {
    let cluster = cluster(|a, b| vec![split_map(a, b)], 2_000).await;
    let c = &cluster.client;

    assert_eq!(c.send("PUT", "/photos", &[], &[], vec![]).await.status, 200);
    let again = c.send("PUT", "/photos", &[], &[], vec![]).await;
    assert_eq!(again.status, 409, "{}", again.text());
    assert!(again.text().contains("BucketAlreadyOwnedByYou"));
    let bad = c.send("PUT", "/bad..name", &[], &[], vec![]).await;
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("InvalidBucketName"), "{}", bad.text());
    let buckets = c.send("GET", "/", &[], &[], vec![]).await;
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
    assert!(cluster.store.lock().unwrap().largest_chunk_bytes <= strata_types::CHUNK_SIZE_BYTES);
    let bad_md5 = c
        .send(
            "PUT",
            "/photos/dir/bad",
            &[],
            &[("content-md5", "AAAAAAAAAAAAAAAAAAAAAA==")],
            b"abc".to_vec(),
        )
        .await;
    assert_eq!(bad_md5.status, 400);
    assert!(bad_md5.text().contains("BadDigest"), "{}", bad_md5.text());

    let get = c.send("GET", "/photos/dir/big", &[], &[], vec![]).await;
    assert_eq!(get.status, 200);
    assert_eq!(get.body, big);
    assert_eq!(get.header("x-amz-meta-color"), "blue");
    let ranged = c
        .send(
            "GET",
            "/photos/dir/big",
            &[],
            &[("range", "bytes=100-199")],
            vec![],
        )
        .await;
    assert_eq!(ranged.status, 206);
    assert_eq!(
        ranged.header("content-range"),
        format!("bytes 100-199/{}", big.len())
    );
    assert_eq!(ranged.body, big[100..200]);
    let suffix = c
        .send(
            "GET",
            "/photos/dir/big",
            &[],
            &[("range", "bytes=-10")],
            vec![],
        )
        .await;
    assert_eq!(suffix.status, 206);
    assert_eq!(suffix.body, big[big.len() - 10..]);
    let beyond = c
        .send(
            "GET",
            "/photos/dir/big",
            &[],
            &[("range", "bytes=99999999-")],
            vec![],
        )
        .await;
    assert_eq!(beyond.status, 416, "{}", beyond.text());
    let not_modified = c
        .send(
            "GET",
            "/photos/dir/big",
            &[],
            &[("if-none-match", &etag)],
            vec![],
        )
        .await;
    assert_eq!(not_modified.status, 304);
    let failed = c
        .send(
            "GET",
            "/photos/dir/big",
            &[],
            &[("if-match", "\"nope\"")],
            vec![],
        )
        .await;
    assert_eq!(failed.status, 412);
    let head = c.send("HEAD", "/photos/dir/big", &[], &[], vec![]).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), big.len().to_string());
    let head_range = c
        .send(
            "HEAD",
            "/photos/dir/big",
            &[],
            &[("range", "bytes=0-9")],
            vec![],
        )
        .await;
    assert_eq!(head_range.status, 206);
    let missing = c.send("GET", "/photos/missing", &[], &[], vec![]).await;
    assert_eq!(missing.status, 404);
    assert!(missing.text().contains("NoSuchKey"));
    let no_bucket = c.send("GET", "/nobucket/x", &[], &[], vec![]).await;
    assert_eq!(no_bucket.status, 404);
    assert!(no_bucket.text().contains("NoSuchBucket"));

    // Keys on both servers; "n/" lives on B, "dir/" on A.
    for key in ["a", "dir/x", "n/1", "n/2", "z"] {
        let reply = c
            .send(
                "PUT",
                &format!("/photos/{key}"),
                &[],
                &[],
                key.as_bytes().to_vec(),
            )
            .await;
        assert_eq!(reply.status, 200, "{key}: {}", reply.text());
    }
    let listed = c
        .send(
            "GET",
            "/photos",
            &[("list-type", "2"), ("delimiter", "/")],
            &[],
            vec![],
        )
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
        let page = c.send("GET", "/photos", &query, &[], vec![]).await.text();
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
        .send(
            "GET",
            "/photos",
            &[("delimiter", "/"), ("max-keys", "1")],
            &[],
            vec![],
        )
        .await
        .text();
    assert!(
        v1.contains("<IsTruncated>true</IsTruncated>") && v1.contains("<NextMarker>a</NextMarker>"),
        "{v1}"
    );

    // Copies: same owner (metadata only), across owners (streamed), onto itself.
    let same = c
        .send(
            "PUT",
            "/photos/b-copy",
            &[],
            &[("x-amz-copy-source", "photos/dir/big")],
            vec![],
        )
        .await;
    assert_eq!(same.status, 200, "{}", same.text());
    assert!(
        same.text().contains("<CopyObjectResult>"),
        "{}",
        same.text()
    );
    let across = c
        .send(
            "PUT",
            "/photos/zz-copy",
            &[],
            &[("x-amz-copy-source", "/photos/dir/big")],
            vec![],
        )
        .await;
    assert_eq!(across.status, 200, "{}", across.text());
    assert_eq!(
        c.send("GET", "/photos/zz-copy", &[], &[], vec![])
            .await
            .body,
        big
    );
    let onto_itself = c
        .send(
            "PUT",
            "/photos/a",
            &[],
            &[("x-amz-copy-source", "photos/a")],
            vec![],
        )
        .await;
    assert_eq!(onto_itself.status, 400);
    assert!(onto_itself.text().contains("InvalidRequest"));

    let not_empty = c.send("DELETE", "/photos", &[], &[], vec![]).await;
    assert_eq!(not_empty.status, 409);
    assert!(not_empty.text().contains("BucketNotEmpty"));
    assert_eq!(
        c.send("DELETE", "/photos/never-existed", &[], &[], vec![])
            .await
            .status,
        204
    );
    let keys = [
        "a", "b-copy", "dir/big", "dir/x", "n/1", "n/2", "z", "zz-copy",
    ];
    let xml: String = keys
        .iter()
        .map(|k| format!("<Object><Key>{k}</Key></Object>"))
        .collect();
    let delete = c
        .send(
            "POST",
            "/photos",
            &[("delete", "")],
            &[],
            format!("<Delete>{xml}</Delete>").into_bytes(),
        )
        .await;
    assert_eq!(delete.status, 200, "{}", delete.text());
    assert_eq!(
        delete.text().matches("<Deleted>").count(),
        keys.len(),
        "{}",
        delete.text()
    );
    assert_eq!(
        c.send("DELETE", "/photos", &[], &[], vec![]).await.status,
        204
    );
    assert_eq!(
        c.send("HEAD", "/photos", &[], &[], vec![]).await.status,
        404
    );
}

#[tokio::test]
async fn e2e_body_checksum_mismatch_stores_nothing() {
    let cluster = cluster(|a, b| vec![split_map(a, b)], 2_000).await;
    let c = &cluster.client;
    assert_eq!(c.send("PUT", "/photos", &[], &[], vec![]).await.status, 200);
    let body = pattern(3 * 1024 * 1024 + 5);
    let wrong_sha = sha256_hex(b"something else");
    let reply = c
        .send_with_sha("PUT", "/photos/bad", &[], &[], body.clone(), &wrong_sha)
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(
        reply.text().contains("XAmzContentSHA256Mismatch"),
        "{}",
        reply.text()
    );
    assert_eq!(
        c.send("HEAD", "/photos/bad", &[], &[], vec![]).await.status,
        404
    );
    let committed = cluster.store.lock().unwrap().puts_committed;
    assert_eq!(committed, 0);
    let right_sha = sha256_hex(&body);
    let reply = c
        .send_with_sha("PUT", "/photos/good", &[], &[], body, &right_sha)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[tokio::test]
async fn e2e_not_owner_refreshes_the_map_and_retries() {
    // The first map (A owns everything) is stale: A answers NotOwner for keys after "m".
    let stale = |a: &str| PartitionMap {
        version: 1,
        ranges: vec![assignment(1, Vec::new(), Vec::new(), a)],
        leader_hint: String::new(),
    };
    let cluster = cluster(move |a, b| vec![stale(a), split_map(a, b)], 3_000).await;
    let c = &cluster.client;
    assert_eq!(c.send("PUT", "/photos", &[], &[], vec![]).await.status, 200);
    let reply = c.send("PUT", "/photos/z", &[], &[], b"zzz".to_vec()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        c.send("GET", "/photos/z", &[], &[], vec![]).await.body,
        b"zzz"
    );
    assert!(*cluster.manager.calls.lock().unwrap() >= 2);
}

#[tokio::test]
async fn e2e_a_range_without_owner_answers_503() {
    let cluster = cluster(
        |a, _| {
            let split = keys::object_key("photos", "m");
            vec![PartitionMap {
                version: 1,
                ranges: vec![
                    assignment(1, Vec::new(), split.clone(), a),
                    assignment(2, split, Vec::new(), ""),
                ],
                leader_hint: String::new(),
            }]
        },
        300,
    )
    .await;
    let c = &cluster.client;
    assert_eq!(c.send("PUT", "/photos", &[], &[], vec![]).await.status, 200);
    let reply = c.send("GET", "/photos/z", &[], &[], vec![]).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert!(
        reply.text().contains("ServiceUnavailable"),
        "{}",
        reply.text()
    );
}

#[tokio::test]
async fn e2e_bucket_names_are_global() {
    let cluster = cluster(|a, b| vec![split_map(a, b)], 2_000).await;
    let c = &cluster.client;
    // Another owner holds "taken" in the global namespace.
    cluster.location.names.lock().unwrap().insert(
        "taken".into(),
        strata_proto::location::BucketLocation {
            bucket: "taken".into(),
            stamp: "stamp-2".into(),
            owner_access_key: "SOMEONE-ELSE".into(),
            created_ms: 0,
        },
    );
    let reply = c.send("PUT", "/taken", &[], &[], vec![]).await;
    assert_eq!(reply.status, 409, "{}", reply.text());
    assert!(
        reply.text().contains("BucketAlreadyExists"),
        "{}",
        reply.text()
    );

    assert_eq!(c.send("PUT", "/mine", &[], &[], vec![]).await.status, 200);
    let reserved = cluster
        .location
        .names
        .lock()
        .unwrap()
        .get("mine")
        .cloned()
        .unwrap();
    assert_eq!(
        (reserved.owner_access_key.as_str(), reserved.stamp.as_str()),
        (ACCESS_KEY, "stamp-1")
    );
    assert_eq!(
        c.send("DELETE", "/mine", &[], &[], vec![]).await.status,
        204
    );
    assert!(
        !cluster.location.names.lock().unwrap().contains_key("mine"),
        "the name was released"
    );
}

#[tokio::test]
async fn e2e_delete_objects_quiet_limits_location_and_copy_conditions() {
    let cluster = cluster(|a, b| vec![split_map(a, b)], 2_000).await;
    let c = &cluster.client;
    assert_eq!(c.send("PUT", "/photos", &[], &[], vec![]).await.status, 200);
    let location = c
        .send("GET", "/photos", &[("location", "")], &[], vec![])
        .await;
    assert_eq!(location.status, 200, "{}", location.text());
    assert!(
        location.text().contains("LocationConstraint"),
        "{}",
        location.text()
    );
    for key in ["a", "z"] {
        assert_eq!(
            c.send("PUT", &format!("/photos/{key}"), &[], &[], b"x".to_vec())
                .await
                .status,
            200
        );
    }
    let copy_failed = c
        .send(
            "PUT",
            "/photos/b",
            &[],
            &[
                ("x-amz-copy-source", "photos/a"),
                ("x-amz-copy-source-if-match", "\"other\""),
            ],
            vec![],
        )
        .await;
    assert_eq!(copy_failed.status, 412, "{}", copy_failed.text());
    let missing_source = c
        .send(
            "PUT",
            "/photos/b",
            &[],
            &[("x-amz-copy-source", "photos/nope")],
            vec![],
        )
        .await;
    assert_eq!(missing_source.status, 404);

    let too_many: String = (0..1001)
        .map(|i| format!("<Object><Key>k{i}</Key></Object>"))
        .collect();
    let reply = c
        .send(
            "POST",
            "/photos",
            &[("delete", "")],
            &[],
            format!("<Delete>{too_many}</Delete>").into_bytes(),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(reply.text().contains("MalformedXML"), "{}", reply.text());

    let quiet = "<Delete><Quiet>true</Quiet><Object><Key>a</Key></Object><Object><Key>z</Key></Object></Delete>";
    let reply = c
        .send(
            "POST",
            "/photos",
            &[("delete", "")],
            &[],
            quiet.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(!reply.text().contains("<Deleted>"), "{}", reply.text());
    assert_eq!(
        c.send("HEAD", "/photos/a", &[], &[], vec![]).await.status,
        404
    );
    assert_eq!(
        c.send("HEAD", "/photos/z", &[], &[], vec![]).await.status,
        404
    );
}
