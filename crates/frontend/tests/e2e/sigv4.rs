//! SigV4 through the real service stack (s3s + this crate's auth, access and host hooks).
//!
//! A small test signer is first pinned to AWS's published examples ("Signature Calculations
//! for the Authorization Header: Transferring Payload in a Single Chunk", and the presigned
//! URL example of "Authenticating Requests: Using Query Parameters"), with AWS's example
//! credentials. Then requests go through `app(build_s3_service(..))`: the 2013 header example
//! itself (accepted with s3s's clock-skew knob widened), fresh requests signed now (accepted
//! with the right secret, `SignatureDoesNotMatch` with a wrong one), unknown keys, anonymous
//! requests, presigned URLs, and an unimplemented operation.

use crate::common::sign::{now_amz_date, sign, ACCESS_KEY, SECRET_KEY};
use axum::body::Body;
use s3s::dto::{GetObjectInput, GetObjectOutput, Range, StreamingBlob};
use s3s::{S3Request, S3Response, S3Result, S3};
use std::sync::{Arc, Mutex};
use strata_frontend::{app, build_s3_service, FrontendConfig};
use tower::ServiceExt;

const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn get_canonical_request(host: &str, amz_date: &str) -> String {
    format!(
        "GET\n/test.txt\n\nhost:{host}\nrange:bytes=0-9\nx-amz-content-sha256:{EMPTY_SHA256}\nx-amz-date:{amz_date}\n\nhost;range;x-amz-content-sha256;x-amz-date\n{EMPTY_SHA256}"
    )
}

fn presigned_query(access_key: &str, amz_date: &str) -> String {
    let credential = urlencoding::encode(&format!(
        "{access_key}/{}/us-east-1/s3/aws4_request",
        &amz_date[..8]
    ))
    .into_owned();
    format!(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={credential}&X-Amz-Date={amz_date}&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
    )
}

fn presigned_canonical_request(host: &str, query: &str) -> String {
    format!("GET\n/test.txt\n{query}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD")
}

const EXAMPLE_HOST: &str = "examplebucket.s3.amazonaws.com";
const EXAMPLE_DATE: &str = "20130524T000000Z";

#[test]
fn aws_example_get_object_signature() {
    let signature = sign(
        SECRET_KEY,
        EXAMPLE_DATE,
        &get_canonical_request(EXAMPLE_HOST, EXAMPLE_DATE),
    );
    assert_eq!(
        signature,
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    );
}

#[test]
fn aws_example_presigned_url_signature() {
    let query = presigned_query(ACCESS_KEY, EXAMPLE_DATE);
    let signature = sign(
        SECRET_KEY,
        EXAMPLE_DATE,
        &presigned_canonical_request(EXAMPLE_HOST, &query),
    );
    assert_eq!(
        signature,
        "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    );
}

/// (bucket, key, range) of one GetObject the stub answered.
type Seen = (String, String, Option<Range>);

/// Answers GetObject with "ok" and remembers what it was asked.
#[derive(Clone, Default)]
struct StubS3 {
    seen: Arc<Mutex<Vec<Seen>>>,
}

#[async_trait::async_trait]
impl S3 for StubS3 {
    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        if let Ok(mut seen) = self.seen.lock() {
            seen.push((
                req.input.bucket.clone(),
                req.input.key.clone(),
                req.input.range,
            ));
        }
        Ok(S3Response::new(GetObjectOutput {
            body: Some(StreamingBlob::from(s3s::Body::from("ok".to_string()))),
            content_length: Some(2),
            ..Default::default()
        }))
    }
}

fn service(domain: &str, clock_skew_secs_max: u32) -> (axum::Router, StubS3) {
    let stub = StubS3::default();
    let mut config = FrontendConfig::new(vec![], ACCESS_KEY, SECRET_KEY);
    config.domain = domain.into();
    config.clock_skew_secs_max = clock_skew_secs_max;
    (
        app(build_s3_service(stub.clone(), &config), &config, None),
        stub,
    )
}

async fn send(app: &axum::Router, request: http::Request<Body>) -> (u16, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Asserts an answer's status and its XML error `<Code>`.
#[track_caller]
fn assert_refused((status, body): (u16, String), expected_status: u16, code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert!(body.contains(&format!("<Code>{code}</Code>")), "{body}");
}

fn header_signed(
    host: &str,
    amz_date: &str,
    access_key: &str,
    signature: &str,
) -> http::Request<Body> {
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={access_key}/{}/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature={signature}",
        &amz_date[..8]
    );
    http::Request::builder()
        .method("GET")
        .uri("/test.txt")
        .header("host", host)
        .header("range", "bytes=0-9")
        .header("x-amz-content-sha256", EMPTY_SHA256)
        .header("x-amz-date", amz_date)
        .header("authorization", authorization)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn aws_example_request_is_accepted_by_the_service() {
    // The example is from 2013: widen s3s's clock-skew knob so the signature itself decides.
    let (app, stub) = service("s3.amazonaws.com", u32::MAX);
    let request = header_signed(
        EXAMPLE_HOST,
        EXAMPLE_DATE,
        ACCESS_KEY,
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    );
    let (status, body) = send(&app, request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "ok");
    let seen = stub.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![(
            "examplebucket".to_string(),
            "test.txt".to_string(),
            Some(Range::Int {
                first: 0,
                last: Some(9)
            })
        )]
    );

    let tampered = header_signed(
        EXAMPLE_HOST,
        EXAMPLE_DATE,
        ACCESS_KEY,
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb42",
    );
    assert_refused(send(&app, tampered).await, 403, "SignatureDoesNotMatch");
}

#[tokio::test]
async fn aws_example_request_is_too_old_with_default_skew() {
    let (app, _) = service("s3.amazonaws.com", 900);
    let request = header_signed(
        EXAMPLE_HOST,
        EXAMPLE_DATE,
        ACCESS_KEY,
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    );
    assert_refused(send(&app, request).await, 403, "RequestTimeTooSkewed");
}

#[tokio::test]
async fn fresh_signatures_right_and_wrong_secret() {
    let (app, stub) = service("localhost", 900);
    let host = "bucket.localhost:9000";
    let amz_date = now_amz_date();
    let good = sign(
        SECRET_KEY,
        &amz_date,
        &get_canonical_request(host, &amz_date),
    );
    let (status, body) = send(&app, header_signed(host, &amz_date, ACCESS_KEY, &good)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        stub.seen.lock().unwrap()[0].0,
        "bucket",
        "virtual-hosted-style bucket"
    );

    let wrong = sign(
        "not-the-secret",
        &amz_date,
        &get_canonical_request(host, &amz_date),
    );
    assert_refused(
        send(&app, header_signed(host, &amz_date, ACCESS_KEY, &wrong)).await,
        403,
        "SignatureDoesNotMatch",
    );

    assert_refused(
        send(&app, header_signed(host, &amz_date, "AKIDUNKNOWN", &good)).await,
        403,
        "InvalidAccessKeyId",
    );
}

#[tokio::test]
async fn anonymous_requests_are_denied() {
    let (app, stub) = service("localhost", 900);
    let request = http::Request::builder()
        .uri("/bucket/test.txt")
        .header("host", "127.0.0.1:9000")
        .body(Body::empty())
        .unwrap();
    assert_refused(send(&app, request).await, 403, "AccessDenied");
    assert!(stub.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn presigned_urls() {
    let (app, stub) = service("localhost", 900);
    let host = "bucket.localhost";
    let presigned = |secret: &str, amz_date: &str| {
        let query = presigned_query(ACCESS_KEY, amz_date);
        let signature = sign(secret, amz_date, &presigned_canonical_request(host, &query));
        http::Request::builder()
            .uri(format!("/test.txt?{query}&X-Amz-Signature={signature}"))
            .header("host", host)
            .body(Body::empty())
            .unwrap()
    };
    let amz_date = now_amz_date();
    let (status, body) = send(&app, presigned(SECRET_KEY, &amz_date)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(stub.seen.lock().unwrap().len(), 1);

    assert_refused(
        send(&app, presigned("not-the-secret", &amz_date)).await,
        403,
        "SignatureDoesNotMatch",
    );

    // AWS's own example URL has long expired.
    let (app, _) = service("s3.amazonaws.com", 900);
    let query = presigned_query(ACCESS_KEY, EXAMPLE_DATE);
    let request = http::Request::builder()
        .uri(format!(
            "/test.txt?{query}&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        ))
        .header("host", EXAMPLE_HOST)
        .body(Body::empty())
        .unwrap();
    assert_refused(send(&app, request).await, 403, "AccessDenied");
}

#[tokio::test]
async fn unimplemented_operations_answer_501_with_xml() {
    let (app, _) = service("localhost", 900);
    let host = "127.0.0.1:9000";
    let amz_date = now_amz_date();
    // GetBucketAcl: GET /bucket?acl
    let canonical = format!(
        "GET\n/bucket\nacl=\nhost:{host}\nx-amz-content-sha256:{EMPTY_SHA256}\nx-amz-date:{amz_date}\n\nhost;x-amz-content-sha256;x-amz-date\n{EMPTY_SHA256}"
    );
    let signature = sign(SECRET_KEY, &amz_date, &canonical);
    let request = http::Request::builder()
        .uri("/bucket?acl")
        .header("host", host)
        .header("x-amz-content-sha256", EMPTY_SHA256)
        .header("x-amz-date", &amz_date)
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{}/us-east-1/s3/aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature={signature}",
                &amz_date[..8]
            ),
        )
        .body(Body::empty())
        .unwrap();
    assert_refused(send(&app, request).await, 501, "NotImplemented");
}

/// A fresh request signed right for GET /test.txt at `host`.
fn signed_now(host: &str) -> http::Request<Body> {
    let amz_date = now_amz_date();
    let signature = sign(
        SECRET_KEY,
        &amz_date,
        &get_canonical_request(host, &amz_date),
    );
    header_signed(host, &amz_date, ACCESS_KEY, &signature)
}

/// Slots are taken only after authentication: with the only slot held by a signed request
/// whose body is unsent, another signed request gets SlowDown, while anonymous and badly
/// signed ones still get their 403 (they never wait for, or take, a slot).
#[tokio::test]
async fn only_authenticated_requests_take_in_flight_slots() {
    let stub = StubS3::default();
    let mut config = FrontendConfig::new(vec![], ACCESS_KEY, SECRET_KEY);
    config.domain = "localhost".into();
    config.requests_in_flight_max = 1;
    let app = app(build_s3_service(stub, &config), &config, None);
    let host = "bucket.localhost:9000";
    let anonymous = || {
        http::Request::builder()
            .uri("/bucket/key")
            .header("host", "127.0.0.1:9000")
            .body(Body::empty())
            .unwrap()
    };
    let badly_signed = || header_signed(host, &now_amz_date(), ACCESS_KEY, "00");
    // Strangers do not hold the slot: a signed request behind two of them is served.
    let first_anonymous = app.clone().oneshot(anonymous()).await.unwrap();
    assert_eq!(first_anonymous.status().as_u16(), 403);
    let first_bad = app.clone().oneshot(badly_signed()).await.unwrap();
    assert_eq!(first_bad.status().as_u16(), 403);
    // The first response's body is not consumed yet: it still holds the only slot.
    let first = app.clone().oneshot(signed_now(host)).await.unwrap();
    assert_eq!(first.status().as_u16(), 200);
    assert_refused(send(&app, signed_now(host)).await, 503, "SlowDown");
    assert_refused(send(&app, anonymous()).await, 403, "AccessDenied");
    assert_refused(
        send(&app, badly_signed()).await,
        403,
        "SignatureDoesNotMatch",
    );
    drop(first);
    let (status, body) = send(&app, signed_now(host)).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "ok"),
        "the slot is free again"
    );
}
