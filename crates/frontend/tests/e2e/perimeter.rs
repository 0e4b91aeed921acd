//! The S3 edge against hostile or mistaken clients, on a real stamp over HTTP: SigV2 refused
//! (and, enabled, never replayable past the skew bound), presigned URLs bounded to 7 days,
//! user metadata bounded to 2 KiB, headers promising protections Strata does not give refused
//! with nothing stored, connections bounded (cap, idle and header-read timeouts) without
//! keeping a new client out, and CORS preflights answered from the front-end's cache.

use crate::common::client::{assert_error, field, Client, Reply};
use crate::common::sign::ACCESS_KEY;
use crate::common::{Options, Stamp};
use std::time::Duration;
use strata_frontend::FrontendConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An HTTP date `secs_ago` seconds before now (negative: in the future).
fn http_date(secs_ago: i64) -> String {
    let at = time::OffsetDateTime::now_utc() - time::Duration::seconds(secs_ago);
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    at.format(&format).unwrap()
}

async fn stamp_with(frontend: fn(&mut FrontendConfig)) -> Stamp {
    Stamp::start(Options {
        servers: 1,
        frontend,
        ..Options::default()
    })
    .await
}

/// GET /photos/a with a SigV2 header signature (not a right one) dated `secs_ago`.
async fn get_signed_v2(c: &Client, secs_ago: i64) -> Reply {
    let authorization = format!("AWS {ACCESS_KEY}:bm90IGNoZWNrZWQ=");
    let date = http_date(secs_ago);
    let headers = [("authorization", authorization.as_str()), ("date", &date)];
    c.raw("GET", "/photos/a", &headers).await
}

#[tokio::test]
async fn e2e_sigv2_is_refused_by_default_and_enabled_only_within_the_skew() {
    let stamp = stamp_with(|_| {}).await;
    let c = &stamp.client;
    c.create_bucket("photos").await;
    c.put("/photos/a", b"a".to_vec()).await.assert_status(200);
    let reply = get_signed_v2(c, 0).await;
    assert_error(&reply, 400, "InvalidRequest");
    assert!(
        reply.text().contains("Please use AWS4-HMAC-SHA256"),
        "{}",
        reply.text()
    );
    let expires = time::OffsetDateTime::now_utc().unix_timestamp() + 60;
    let presigned_v2 =
        format!("/photos/a?AWSAccessKeyId={ACCESS_KEY}&Expires={expires}&Signature=bm90");
    assert_error(
        &c.raw("GET", &presigned_v2, &[]).await,
        400,
        "InvalidRequest",
    );

    let stamp = stamp_with(|config| config.sigv2_enabled = true).await;
    let c = &stamp.client;
    // A captured request 16 minutes old (or a clock 16 minutes ahead) does not replay.
    for secs_ago in [16 * 60, -16 * 60] {
        assert_error(
            &get_signed_v2(c, secs_ago).await,
            403,
            "RequestTimeTooSkewed",
        );
    }
    // Fresh, it reaches s3s's own SigV2 check (this signature is wrong).
    assert_error(&get_signed_v2(c, 0).await, 403, "SignatureDoesNotMatch");
}

#[tokio::test]
async fn e2e_presigned_urls_are_bounded_to_a_week_and_expire() {
    let stamp = stamp_with(|_| {}).await;
    let c = &stamp.client;
    c.create_bucket("photos").await;
    let presigned = |amz_date: &str, expires_secs: u64| {
        let credential = format!(
            "{ACCESS_KEY}%2F{}%2Fus-east-1%2Fs3%2Faws4_request",
            &amz_date[..8]
        );
        format!("/photos/a?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={credential}&X-Amz-Date={amz_date}&X-Amz-Expires={expires_secs}&X-Amz-SignedHeaders=host&X-Amz-Signature={}", "0".repeat(64))
    };
    let now = crate::common::sign::now_amz_date();
    let reply = c.raw("GET", &presigned(&now, 604_801), &[]).await;
    assert_error(&reply, 400, "AuthorizationQueryParametersError");
    assert!(reply.text().contains("604800"), "{}", reply.text());
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let two_hours_ago = (time::OffsetDateTime::now_utc() - time::Duration::hours(2))
        .format(&format)
        .unwrap();
    let reply = c.raw("GET", &presigned(&two_hours_ago, 3_600), &[]).await;
    assert_error(&reply, 403, "AccessDenied");
    assert_eq!(
        field(&reply.text(), "Message").as_deref(),
        Some("Request has expired")
    );
}

#[tokio::test]
async fn e2e_user_metadata_over_2_kib_is_refused_and_nothing_is_stored() {
    let stamp = stamp_with(|_| {}).await;
    let c = &stamp.client;
    c.create_bucket("photos").await;
    // "x-amz-meta-" is not counted: key "k" (1 byte) and a 2047-byte value fill 2 KiB exactly.
    let fits = "v".repeat(2047);
    let over = "v".repeat(2048);
    c.send(
        "PUT",
        "/photos/fits",
        &[],
        &[("x-amz-meta-k", &fits)],
        b"x".to_vec(),
    )
    .await
    .assert_status(200);
    let reply = c
        .send(
            "PUT",
            "/photos/over",
            &[],
            &[("x-amz-meta-k", &over)],
            b"x".to_vec(),
        )
        .await;
    assert_error(&reply, 400, "MetadataTooLarge");
    c.call("HEAD", "/photos/over").await.assert_status(404);

    let reply = c
        .send(
            "POST",
            "/photos/upload",
            &[("uploads", "")],
            &[("x-amz-meta-k", &over)],
            Vec::new(),
        )
        .await;
    assert_error(&reply, 400, "MetadataTooLarge");
    let uploads = c
        .query("GET", "/photos", &[("uploads", "")])
        .await
        .assert_status(200);
    assert!(!uploads.text().contains("<Upload>"), "{}", uploads.text());

    let copy = [
        ("x-amz-copy-source", "photos/fits"),
        ("x-amz-metadata-directive", "REPLACE"),
        ("x-amz-meta-k", over.as_str()),
    ];
    assert_error(
        &c.with_headers("PUT", "/photos/copy", &copy).await,
        400,
        "MetadataTooLarge",
    );
    c.call("HEAD", "/photos/copy").await.assert_status(404);
}

#[tokio::test]
async fn e2e_protection_headers_are_refused_and_nothing_is_stored() {
    let stamp = stamp_with(|_| {}).await;
    let c = &stamp.client;
    c.create_bucket("photos").await;
    let refused = [
        (
            "x-amz-server-side-encryption",
            "AES256",
            501,
            "NotImplemented",
        ),
        (
            "x-amz-server-side-encryption",
            "aws:kms",
            501,
            "NotImplemented",
        ),
        (
            "x-amz-server-side-encryption-aws-kms-key-id",
            "key-1",
            501,
            "NotImplemented",
        ),
        (
            "x-amz-server-side-encryption-bucket-key-enabled",
            "true",
            501,
            "NotImplemented",
        ),
        (
            "x-amz-server-side-encryption-customer-algorithm",
            "AES256",
            501,
            "NotImplemented",
        ),
        (
            "x-amz-object-lock-mode",
            "COMPLIANCE",
            501,
            "NotImplemented",
        ),
        (
            "x-amz-object-lock-retain-until-date",
            "2030-01-01T00:00:00Z",
            501,
            "NotImplemented",
        ),
        ("x-amz-object-lock-legal-hold", "ON", 501, "NotImplemented"),
        (
            "x-amz-acl",
            "public-read",
            400,
            "AccessControlListNotSupported",
        ),
        (
            "x-amz-grant-read",
            "id=someone",
            400,
            "AccessControlListNotSupported",
        ),
    ];
    for (name, value, status, code) in refused {
        let reply = c
            .send(
                "PUT",
                "/photos/k",
                &[],
                &[(name, value)],
                b"secret".to_vec(),
            )
            .await;
        assert_error(&reply, status, code);
        c.call("HEAD", "/photos/k").await.assert_status(404);
        let reply = c
            .send(
                "POST",
                "/photos/k",
                &[("uploads", "")],
                &[(name, value)],
                Vec::new(),
            )
            .await;
        assert_error(&reply, status, code);
    }
    let uploads = c
        .query("GET", "/photos", &[("uploads", "")])
        .await
        .assert_status(200);
    assert!(!uploads.text().contains("<Upload>"), "{}", uploads.text());
    // The owner-only ACLs S3 accepts with ACLs disabled still work.
    for acl in ["private", "bucket-owner-full-control"] {
        c.send(
            "PUT",
            "/photos/k",
            &[],
            &[("x-amz-acl", acl)],
            b"v".to_vec(),
        )
        .await
        .assert_status(200);
    }
    // SSE-C on reads and on a copy's source: refused too (the key would be ignored).
    let sse_c = ("x-amz-server-side-encryption-customer-key", "a2V5");
    assert_error(
        &c.with_headers("GET", "/photos/k", &[sse_c]).await,
        501,
        "NotImplemented",
    );
    // HEAD answers have no body: the status says it.
    c.with_headers("HEAD", "/photos/k", &[sse_c])
        .await
        .assert_status(501);
    let copy_sse_c = [
        ("x-amz-copy-source", "photos/k"),
        (
            "x-amz-copy-source-server-side-encryption-customer-key",
            "a2V5",
        ),
    ];
    assert_error(
        &c.with_headers("PUT", "/photos/c", &copy_sse_c).await,
        501,
        "NotImplemented",
    );
    c.call("HEAD", "/photos/c").await.assert_status(404);
    // A bucket with object lock: refused, not created.
    let lock = [("x-amz-bucket-object-lock-enabled", "true")];
    assert_error(
        &c.with_headers("PUT", "/locked", &lock).await,
        501,
        "NotImplemented",
    );
    c.call("HEAD", "/locked").await.assert_status(404);
    // The bucket- and object-level protection calls are not implemented.
    let encryption = "<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>";
    let lock = "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled></ObjectLockConfiguration>";
    let acl = "<AccessControlPolicy><Owner><ID>o</ID></Owner><AccessControlList></AccessControlList></AccessControlPolicy>";
    let retention = "<Retention><Mode>GOVERNANCE</Mode><RetainUntilDate>2030-01-01T00:00:00Z</RetainUntilDate></Retention>";
    let hold = "<LegalHold><Status>ON</Status></LegalHold>";
    let calls: [(&str, &str, &str, &str); 10] = [
        ("PUT", "/photos", "encryption", encryption),
        ("GET", "/photos", "encryption", ""),
        ("PUT", "/photos", "object-lock", lock),
        ("PUT", "/photos", "acl", acl),
        ("PUT", "/photos/k", "acl", acl),
        ("PUT", "/photos/k", "retention", retention),
        ("GET", "/photos/k", "retention", ""),
        ("PUT", "/photos/k", "legal-hold", hold),
        ("GET", "/photos/k", "legal-hold", ""),
        ("GET", "/photos", "object-lock", ""),
    ];
    for (method, path, sub, body) in calls {
        let md5 = content_md5(body);
        let reply = c
            .send(
                method,
                path,
                &[(sub, "")],
                &[("content-md5", &md5)],
                body.into(),
            )
            .await;
        assert_eq!(reply.status, 501, "{method} {path}?{sub}: {}", reply.text());
    }
}

fn content_md5(body: &str) -> String {
    use base64::Engine;
    use md5::Digest;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body.as_bytes()))
}

/// Reads until the server closes the connection (EOF or reset), within `bound`.
async fn closed_within(socket: &mut TcpStream, bound: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(bound, async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn e2e_idle_connections_at_the_cap_do_not_keep_a_new_client_out() {
    // Long timeouts: only closing the idlest connection at the cap can let the client in.
    let stamp = stamp_with(|config| {
        config.connections_max = 16;
        config.idle_timeout_ms = 600_000;
        config.header_read_timeout_ms = 600_000;
    })
    .await;
    let c = &stamp.client;
    c.create_bucket("photos").await;
    let addr = c.host().to_string();
    let mut idle = Vec::new();
    for _ in 0..64 {
        idle.push(TcpStream::connect(&addr).await.unwrap());
    }
    let answered = tokio::time::timeout(Duration::from_secs(10), c.put("/photos/a", b"a".to_vec()))
        .await
        .expect("a signed request is answered while idle connections fill the cap");
    answered.assert_status(200);
    drop(idle);
}

#[tokio::test]
async fn e2e_silent_and_slow_connections_are_closed() {
    let stamp = stamp_with(|config| {
        config.idle_timeout_ms = 300;
        config.header_read_timeout_ms = 300;
    })
    .await;
    let addr = stamp.client.host().to_string();
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    assert!(
        closed_within(&mut silent, Duration::from_secs(5)).await,
        "a silent connection is closed"
    );
    // A head that never ends: bytes keep coming, but not the blank line.
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let dribble = async {
        for _ in 0..100 {
            if slow.write_all(b"x-slow: 1\r\n").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), dribble).await;
    assert!(
        closed_within(&mut slow, Duration::from_secs(1)).await,
        "a dribbled head is cut off"
    );
    // A client that speaks promptly is served, with the short timeouts.
    stamp.client.create_bucket("photos").await;
}

#[tokio::test]
async fn e2e_cors_preflights_are_answered_from_the_cache_without_a_partition_server() {
    let stamp = stamp_with(|config| config.bucket_cache_ttl_ms = 600_000).await;
    let c = &stamp.client;
    c.create_bucket("site").await;
    let cors = "<CORSConfiguration><CORSRule><AllowedOrigin>https://app.example</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>";
    let md5 = content_md5(cors);
    c.send(
        "PUT",
        "/site",
        &[("cors", "")],
        &[("content-md5", &md5)],
        cors.as_bytes().to_vec(),
    )
    .await
    .assert_status(200);
    let preflight = [
        ("origin", "https://app.example"),
        ("access-control-request-method", "GET"),
    ];
    c.raw("OPTIONS", "/site/page.html", &preflight)
        .await
        .assert_status(200);
    // Every partition server gone: the preflights cannot have reached one, nor its throttle.
    for server in &stamp.servers {
        server.kill();
    }
    for _ in 0..50 {
        let reply = c
            .raw("OPTIONS", "/site/page.html", &preflight)
            .await
            .assert_status(200);
        assert_eq!(
            reply.header("access-control-allow-origin"),
            "https://app.example"
        );
    }
}
