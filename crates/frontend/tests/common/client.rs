//! Signed S3 requests into the front-end's real HTTP stack (`app(build_s3_service(..))`, the
//! router `strata_frontend::start` serves), and the small XML readers the tests share.

use super::sign::{now_amz_date, sign, ACCESS_KEY, SECRET_KEY};
use axum::body::Body;
use tower::ServiceExt;

/// The Host every request names (path-style addressing).
pub const HOST: &str = "127.0.0.1:9000";

pub struct Reply {
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

pub struct Client {
    pub app: axum::Router,
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

/// Deterministic bytes of `size`.
pub fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 31 % 251) as u8).collect()
}

/// The text between the first `<tag>` and its `</tag>`.
pub fn field(text: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let rest = text.split_once(open.as_str())?.1;
    Some(rest.split_once(close.as_str())?.0.to_string())
}

/// Every `<tag>` value, in order.
pub fn fields(text: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    text.split(open.as_str())
        .skip(1)
        .filter_map(|rest| rest.split_once(close.as_str()).map(|(v, _)| v.to_string()))
        .collect()
}

/// Asserts an S3 error reply: its status and its XML `<Code>`.
pub fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.text());
    assert!(
        reply.text().contains(&format!("<Code>{code}</Code>")),
        "expected {code}: {}",
        reply.text()
    );
}
