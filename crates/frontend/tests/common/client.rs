//! Signed S3 requests over HTTP to the front-end `strata_frontend::start` serves, the short
//! forms the tests repeat (a request without query, headers or body; a PUT of a body; a
//! bucket created), and the small XML readers and assertions the tests share.

use super::sign::{now_amz_date, sign, ACCESS_KEY, SECRET_KEY};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;

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

    /// Asserts the status (showing the body when it differs); returns the reply.
    #[track_caller]
    pub fn assert_status(self, status: u16) -> Self {
        assert_eq!(self.status, status, "{}", self.text());
        self
    }
}

/// A client of one front-end, signing with the example credentials every test stamp accepts.
pub struct Client {
    /// `host:port`, what requests name as Host (path-style addressing).
    host: String,
    http: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            host: addr.to_string(),
            http: hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// The Host requests name (the front-end's `host:port`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `method` on `path` without query, headers or body.
    pub async fn call(&self, method: &str, path: &str) -> Reply {
        self.send(method, path, &[], &[], Vec::new()).await
    }

    /// `method` on `path` with `query`, without headers or body.
    pub async fn query(&self, method: &str, path: &str, query: &[(&str, &str)]) -> Reply {
        self.send(method, path, query, &[], Vec::new()).await
    }

    /// `method` on `path` with `headers`, without query or body.
    pub async fn with_headers(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send(method, path, &[], headers, Vec::new()).await
    }

    /// PUT `body` at `path`.
    pub async fn put(&self, path: &str, body: impl Into<Vec<u8>>) -> Reply {
        self.send("PUT", path, &[], &[], body.into()).await
    }

    /// CopyObject: PUT at `path` a copy of `source` ("bucket/key").
    pub async fn copy(&self, path: &str, source: &str) -> Reply {
        self.with_headers("PUT", path, &[("x-amz-copy-source", source)])
            .await
    }

    /// Creates `bucket`, asserting 200.
    pub async fn create_bucket(&self, bucket: &str) {
        self.call("PUT", &format!("/{bucket}"))
            .await
            .assert_status(200);
    }

    /// DeleteObjects on `bucket` with the request body `xml`.
    pub async fn delete_objects(&self, bucket: &str, xml: impl Into<Vec<u8>>) -> Reply {
        let path = format!("/{bucket}");
        self.send("POST", &path, &[("delete", "")], &[], xml.into())
            .await
    }

    /// Sends a SigV4-signed request. The body is signed as `UNSIGNED-PAYLOAD` unless `headers`
    /// carry an `x-amz-content-sha256` (which may be wrong on purpose).
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let is_sha = |name: &str| name.eq_ignore_ascii_case("x-amz-content-sha256");
        let content_sha256 = headers
            .iter()
            .find(|(k, _)| is_sha(k))
            .map_or("UNSIGNED-PAYLOAD", |(_, v)| *v);
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
            .filter(|(k, _)| !is_sha(k))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        signed.push(("host".into(), self.host.clone()));
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
            format!("http://{}{path}", self.host)
        } else {
            format!("http://{}{path}?{canonical_query}", self.host)
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
        let request = builder.body(Full::new(Bytes::from(body))).unwrap();
        self.exchange(request).await
    }
}

/// A DeleteObjects request body naming `keys`.
pub fn delete_xml<K: std::fmt::Display>(keys: impl IntoIterator<Item = K>) -> String {
    let objects: String = keys
        .into_iter()
        .map(|key| format!("<Object><Key>{key}</Key></Object>"))
        .collect();
    format!("<Delete>{objects}</Delete>")
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
#[track_caller]
pub fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.text());
    assert!(
        reply.text().contains(&format!("<Code>{code}</Code>")),
        "expected {code}: {}",
        reply.text()
    );
}

impl Client {
    /// Sends `method` on `path_and_query` with `headers` as they are (unsigned, or signed some
    /// other way), without a body.
    pub async fn raw(&self, method: &str, path_and_query: &str, headers: &[(&str, &str)]) -> Reply {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path_and_query}", self.host));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        self.exchange(builder.body(Full::new(Bytes::new())).unwrap())
            .await
    }

    /// Sends `request` and reads the whole answer.
    async fn exchange(&self, request: http::Request<Full<Bytes>>) -> Reply {
        let response = self
            .http
            .request(request)
            .await
            .expect("the front-end answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }
}
