//! HTTP requests through the front-end's real service stack, `app(build_s3_service(..))`: the
//! perimeter checks, s3s's SigV4 parsing and verification (Authorization header, presigned
//! query, `x-amz-content-sha256`, aws-chunked bodies with signed chunks or trailers), the
//! front-end's auth and access hooks, s3s's routing and input parsing, then a sink S3 whose
//! PutObject and UploadPart drain the body (so s3s's aws-chunked decoder and signature chain
//! run to the end) and run the front-end's checksum plan and trailer reading
//! (`checksum::plan`, `TrailerSource::value`) and its tag-header parsing.
//!
//! s3s keeps its SigV4 and aws-chunked parsers private, so they are reached the way a client
//! reaches them. A fuzzer cannot forge HMACs, so the target signs what it is given: the
//! bytes describe the request, the target adds a valid signature (and re-signs every chunk
//! of a signed aws-chunked body) and the service gets past verification to the parsers
//! behind it. In `raw` mode nothing is signed: the Authorization header and query are parsed
//! exactly as sent.
//!
//! Input (text; a line ends at `\n`, a `\r` before it is dropped):
//! ```text
//! <mode: header | presign | raw>
//! <METHOD> <path and query>
//! <name>: <value>          (zero or more)
//!                          (empty line)
//! <body bytes>
//! ```

use axum::body::Body;
use futures::StreamExt;
use s3s::dto::{PutObjectInput, PutObjectOutput, UploadPartInput, UploadPartOutput};
use s3s::{S3Request, S3Response, S3Result, S3};
use sha2::{Digest, Sha256};
use strata_frontend::checksum::{self, sent_checksums_of, SentChecksums};
use strata_frontend::{app, build_s3_service, FrontendConfig};
use strata_proto::common::ChecksumAlgorithm;
use tower::ServiceExt;

pub const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
pub const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const SIGNED_CHUNKS: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
/// Body bytes a sink operation reads at most (the corpus bodies are far smaller).
const BODY_BYTES_MAX: usize = 1 << 20;

/// Drains PutObject and UploadPart bodies through the front-end's checksum handling; every
/// other operation is s3s's NotImplemented.
struct Sink;

async fn drain(
    body: Option<s3s::dto::StreamingBlob>,
    plan: Option<checksum::WriteChecksum>,
) -> S3Result<()> {
    if let Some(mut body) = body {
        let mut read = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|_| s3s::s3_error!(IncompleteBody))?;
            read += chunk.len();
            if read > BODY_BYTES_MAX {
                return Err(s3s::s3_error!(EntityTooLarge));
            }
        }
    }
    if let Some(trailer) = plan.and_then(|plan| plan.trailer) {
        trailer.value()?;
    }
    Ok(())
}

/// Our checksum plan for a write's headers and trailers, then the body drained through it.
async fn drain_planned<I>(
    req: &S3Request<I>,
    sent: SentChecksums,
    algorithm: Option<&s3s::dto::ChecksumAlgorithm>,
    body: Option<s3s::dto::StreamingBlob>,
) -> S3Result<()> {
    let plan = checksum::plan(
        &sent,
        algorithm,
        &req.headers,
        req.trailing_headers.as_ref(),
        ChecksumAlgorithm::Crc64nvme,
    )?;
    drain(body, Some(plan)).await
}

#[async_trait::async_trait]
impl S3 for Sink {
    async fn put_object(
        &self,
        mut req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        strata_frontend::tagging::tags_of_header(req.input.tagging.as_deref())?;
        let sent = sent_checksums_of!(req.input);
        let (algorithm, body) = (req.input.checksum_algorithm.clone(), req.input.body.take());
        drain_planned(&req, sent, algorithm.as_ref(), body).await?;
        Ok(S3Response::new(PutObjectOutput::default()))
    }

    async fn upload_part(
        &self,
        mut req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let sent = sent_checksums_of!(req.input);
        let (algorithm, body) = (req.input.checksum_algorithm.clone(), req.input.body.take());
        drain_planned(&req, sent, algorithm.as_ref(), body).await?;
        Ok(S3Response::new(UploadPartOutput::default()))
    }
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    static APP: axum::Router = {
        let config = FrontendConfig::new(vec![], ACCESS_KEY, SECRET_KEY);
        app(build_s3_service(Sink, &config), &config, None)
    };
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(data)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// SigV4's URI encoding: unreserved bytes kept, every other byte `%XX`.
fn uri_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |text: &str| {
                urlencoding::decode(text)
                    .map(|text| text.into_owned())
                    .unwrap_or_else(|_| text.to_string())
            };
            (uri_encode(&decode(key)), uri_encode(&decode(value)))
        })
        .collect();
    pairs.sort();
    let pairs: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join("&")
}

/// A parsed input, before signing.
struct Draft {
    mode: String,
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn parse_draft(data: &[u8]) -> Option<Draft> {
    let mut rest = data;
    let mut next_line = || -> Option<String> {
        let end = rest.iter().position(|&b| b == b'\n')?;
        let line = &rest[..end];
        rest = &rest[end + 1..];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        Some(String::from_utf8_lossy(line).into_owned())
    };
    let mode = next_line()?;
    let request_line = next_line()?;
    let (method, target) = request_line.split_once(' ')?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = Vec::new();
    // Headers up to an empty line or the end; a line without a colon is skipped.
    while let Some(line) = next_line() {
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    Some(Draft {
        mode,
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers,
        body: rest.to_vec(),
    })
}

fn header<'a>(draft: &'a Draft, name: &str) -> Option<&'a str> {
    draft
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn set_default(draft: &mut Draft, name: &str, value: String) {
    if header(draft, name).is_none() {
        draft.headers.push((name.to_string(), value));
    }
}

struct Signer {
    amz_date: String,
    scope: String,
    key: [u8; 32],
}

impl Signer {
    fn now() -> Self {
        let format =
            time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
        let amz_date = time::OffsetDateTime::now_utc()
            .format(&format)
            .expect("formats");
        let date = amz_date[..8].to_string();
        let mut key = hmac_sha256(format!("AWS4{SECRET_KEY}").as_bytes(), date.as_bytes());
        for part in ["us-east-1", "s3", "aws4_request"] {
            key = hmac_sha256(&key, part.as_bytes());
        }
        Self {
            scope: format!("{date}/us-east-1/s3/aws4_request"),
            amz_date,
            key,
        }
    }

    fn sign(&self, kind: &str, tail: &str) -> String {
        let string_to_sign = format!("{kind}\n{}\n{}\n{tail}", self.amz_date, self.scope);
        hex::encode(hmac_sha256(&self.key, string_to_sign.as_bytes()))
    }

    fn canonical_request(
        &self,
        draft: &Draft,
        query: &str,
        payload_hash: &str,
    ) -> (String, String) {
        let mut headers = draft.headers.clone();
        headers.sort();
        let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
        let signed = names.join(";");
        let canonical_headers: String = headers
            .iter()
            .map(|(name, value)| format!("{name}:{value}\n"))
            .collect();
        let request = format!(
            "{}\n{}\n{}\n{canonical_headers}\n{signed}\n{payload_hash}",
            draft.method,
            draft.path,
            canonical_query(query)
        );
        (request, signed)
    }

    /// Signs with an Authorization header (and re-signs the chunks of a signed aws-chunked body).
    fn sign_header(&self, draft: &mut Draft) {
        set_default(draft, "x-amz-date", self.amz_date.clone());
        let payload_hash = sha256_hex(&draft.body);
        set_default(draft, "x-amz-content-sha256", payload_hash);
        set_default(draft, "content-length", draft.body.len().to_string());
        let payload_hash = header(draft, "x-amz-content-sha256")
            .unwrap_or_default()
            .to_string();
        let (request, signed) = self.canonical_request(draft, &draft.query, &payload_hash);
        let signature = self.sign("AWS4-HMAC-SHA256", &sha256_hex(request.as_bytes()));
        if payload_hash == SIGNED_CHUNKS {
            self.sign_chunks(&mut draft.body, &signature);
        }
        draft.headers.push((
            "authorization".into(),
            format!(
                "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{},SignedHeaders={signed},Signature={signature}",
                self.scope
            ),
        ));
    }

    /// Rewrites `chunk-signature=` of every chunk that frames, chaining from `seed`.
    fn sign_chunks(&self, body: &mut [u8], seed: &str) {
        const FIELD: &[u8] = b";chunk-signature=";
        let mut previous = seed.to_string();
        let mut at = 0;
        while let Some(line_len) = body[at..].windows(2).position(|w| w == b"\r\n") {
            let line = &body[at..at + line_len];
            let Some(field) = line.windows(FIELD.len()).position(|w| w == FIELD) else {
                return;
            };
            let Some(size) = std::str::from_utf8(&line[..field])
                .ok()
                .and_then(|hex| usize::from_str_radix(hex, 16).ok())
            else {
                return;
            };
            let signature_at = at + field + FIELD.len();
            let data_at = at + line_len + 2;
            if signature_at + 64 > at + line_len || data_at + size > body.len() {
                return;
            }
            let data_hash = sha256_hex(&body[data_at..data_at + size]);
            let signature = self.sign(
                "AWS4-HMAC-SHA256-PAYLOAD",
                &format!("{previous}\n{EMPTY_SHA256}\n{data_hash}"),
            );
            body[signature_at..signature_at + 64].copy_from_slice(signature.as_bytes());
            previous = signature;
            if size == 0 {
                return;
            }
            at = data_at + size + 2;
            if at > body.len() {
                return;
            }
        }
    }

    /// Signs as a presigned URL (host only, unsigned payload).
    fn presign(&self, draft: &mut Draft) {
        let mut query = draft.query.clone();
        let mut add = |name: &str, value: &str| {
            if !query.contains(&format!("{name}=")) {
                if !query.is_empty() {
                    query.push('&');
                }
                query.push_str(&format!("{name}={}", uri_encode(value)));
            }
        };
        add("X-Amz-Algorithm", "AWS4-HMAC-SHA256");
        add("X-Amz-Credential", &format!("{ACCESS_KEY}/{}", self.scope));
        add("X-Amz-Date", &self.amz_date);
        add("X-Amz-Expires", "3600");
        add("X-Amz-SignedHeaders", "host");
        let host_only = Draft {
            mode: String::new(),
            method: draft.method.clone(),
            path: draft.path.clone(),
            query: String::new(),
            headers: vec![(
                "host".into(),
                header(draft, "host").unwrap_or_default().to_string(),
            )],
            body: Vec::new(),
        };
        let (request, _) = self.canonical_request(&host_only, &query, "UNSIGNED-PAYLOAD");
        let signature = self.sign("AWS4-HMAC-SHA256", &sha256_hex(request.as_bytes()));
        draft.query = format!("{query}&X-Amz-Signature={signature}");
    }
}

fn build(draft: Draft) -> Option<http::Request<Body>> {
    let target = if draft.query.is_empty() {
        draft.path
    } else {
        format!("{}?{}", draft.path, draft.query)
    };
    let mut builder = http::Request::builder()
        .method(draft.method.as_bytes())
        .uri(target);
    for (name, value) in &draft.headers {
        builder = builder.header(name.as_bytes(), value.as_bytes());
    }
    builder.body(Body::from(draft.body)).ok()
}

/// Fuzz target `sigv4` (see the module doc for the input's layout).
pub fn sigv4(data: &[u8]) {
    answer(data);
}

/// The status and body the service answers the request `data` describes (None when the bytes
/// describe no request), checking the answer is well formed: a success, or an S3 error
/// document with a code.
pub fn answer(data: &[u8]) -> Option<(u16, String)> {
    let mut draft = parse_draft(data)?;
    set_default(&mut draft, "host", "localhost:9000".into());
    match draft.mode.as_str() {
        "header" => Signer::now().sign_header(&mut draft),
        "presign" => Signer::now().presign(&mut draft),
        _ => {}
    }
    let request = build(draft)?;
    let service = APP.with(|app| app.clone());
    let (status, body) = RUNTIME.with(|runtime| {
        runtime.block_on(async move {
            let response = service.oneshot(request).await.expect("infallible service");
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .expect("the answer is read whole");
            (status, String::from_utf8_lossy(&body).into_owned())
        })
    });
    if status.is_client_error() || status.is_server_error() {
        assert!(
            body.is_empty() || body.contains("<Code>"),
            "{status} answered without an error code: {body}"
        );
    }
    Some((status.as_u16(), body))
}
