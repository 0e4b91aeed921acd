//! Serving: the s3s service (auth, access, host, limits) inside axum, with request metrics.

use crate::auth::{DenyAnonymous, DomainHost, KeyAuth, OperationSlot, RequestSlot};
use crate::config::FrontendConfig;
use crate::connections::ConnectionLimits;
use crate::cors::{BucketRecords, CorsRequest, CorsSource};
use crate::error::{error_response, FrontendError};
use crate::frontend::Frontend;
use crate::metrics::{status_class, METRICS};
use crate::perimeter::{self, SignaturePolicy};
use crate::routing::Router;
use axum::body::Body as AxumBody;
use axum::extract::Request;
use axum::response::Response;
use http_body_util::BodyExt;
use s3s::config::{S3Config, StaticConfigProvider};
use s3s::service::{S3Service, S3ServiceBuilder};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How often the partition map is refreshed in the background (requests refresh it on demand
/// too, whenever an owner answers "not mine").
pub const MAP_REFRESH_INTERVAL_MS: u64 = 5_000;

/// The header that answers each request's id (S3's name for it).
pub const X_AMZ_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-amz-request-id");

/// Largest XML request body s3s buffers (DeleteObjects of 1000 keys of 1 KiB fits).
pub use strata_types::limits::XML_BODY_BYTES_MAX;

/// The s3s service around any `S3` implementation, with this front-end's auth (one key pair,
/// anonymous requests denied), virtual-hosted-style addressing under `config.domain`, and the
/// clock skew bound. POST Object bodies (which s3s buffers) are capped at one chunk.
pub fn build_s3_service(s3: impl s3s::S3, config: &FrontendConfig) -> S3Service {
    let mut builder = S3ServiceBuilder::new(s3);
    builder.set_auth(KeyAuth::new(&config.access_key, &config.secret_key));
    builder.set_access(DenyAnonymous);
    builder.set_host(DomainHost::new(&config.domain));
    let mut s3_config = S3Config::default();
    s3_config.presigned_url_max_skew_time_secs = config.clock_skew_secs_max;
    s3_config.post_object_max_file_size = strata_types::CHUNK_SIZE_BYTES as u64;
    s3_config.xml_max_body_size = XML_BODY_BYTES_MAX as usize;
    builder.set_config(Arc::new(StaticConfigProvider::new(Arc::new(s3_config))));
    builder.build()
}

/// The axum app: every request goes to the S3 service, measured. Before s3s authenticates it,
/// a request signed in a form this edge refuses is answered (`perimeter.rs`). At most
/// `config.requests_in_flight_max` authenticated requests are served at once (the slot is
/// taken by the access check, after authentication, and held until the response body is
/// sent): an unsigned or badly signed request never holds one. With a CORS source, preflight
/// `OPTIONS` requests are answered from the bucket's CORS rules and requests with an `Origin`
/// get the matching rule's headers.
pub fn app(
    service: S3Service,
    config: &FrontendConfig,
    cors: Option<Arc<dyn CorsSource>>,
) -> axum::Router {
    app_with(service, config, cors, None)
}

/// [`app`], and with a forwarder, requests for buckets homed on another stamp are forwarded
/// there once the signature's form passed (`forward.rs`); the rest are served here.
pub fn app_with(
    service: S3Service,
    config: &FrontendConfig,
    cors: Option<Arc<dyn CorsSource>>,
    forwarder: Option<Arc<crate::forward::Forwarder>>,
) -> axum::Router {
    let slots = Arc::new(Semaphore::new(config.requests_in_flight_max));
    let policy = SignaturePolicy {
        sigv2_enabled: config.sigv2_enabled,
        clock_skew_secs_max: config.clock_skew_secs_max,
    };
    axum::Router::new().fallback_service(tower::service_fn(move |request: Request| {
        // Read to its end even when answered early (unread_body.rs).
        let expects_continue = expects_continue(&request);
        let mut request = request.map(|body| {
            AxumBody::new(crate::unread_body::DrainOnDrop::new(body, expects_continue))
        });
        let service = service.clone();
        let slot = RequestSlot::new(slots.clone());
        let cors = cors.clone();
        let forwarder = forwarder.clone();
        async move {
            let checked = perimeter::check_signature_form(
                request.headers(),
                request.uri(),
                policy,
                time::OffsetDateTime::now_utc(),
            );
            if let Err(err) = checked {
                METRICS
                    .requests
                    .with_label_values(&["Unauthenticated", "4xx"])
                    .inc();
                let mut response = error_response(err);
                close_if_body_unread(has_body(&request), &mut response);
                return Ok::<_, Infallible>(response);
            }
            if let Some(forwarder) = forwarder {
                request = match forwarder.forward_or_serve(request).await {
                    Ok(response) => return Ok(response),
                    Err(request) => request,
                };
            }
            request.extensions_mut().insert(slot.clone());
            let response = match cors {
                Some(cors) if request.method() == http::Method::OPTIONS => {
                    METRICS
                        .requests
                        .with_label_values(&["CorsPreflight", "2xx"])
                        .inc();
                    crate::cors::preflight(cors.as_ref(), request.headers(), request.uri()).await
                }
                Some(cors) => {
                    let wants_cors = CorsRequest::of(
                        request.headers(),
                        request.uri(),
                        request.method(),
                        cors.domain(),
                    );
                    let mut response = handle(service, request).await;
                    if let Some(wants_cors) = wants_cors {
                        wants_cors.answer(cors.as_ref(), &mut response).await;
                    }
                    response
                }
                None => handle(service, request).await,
            };
            let Some(permit) = slot.into_held() else {
                return Ok(response);
            };
            // The slot lives as long as the response body.
            Ok(response.map(|body| {
                AxumBody::new(body.map_frame(move |frame| {
                    let _held = &permit;
                    frame
                }))
            }))
        }
    }))
}

/// Every 503 (SlowDown, ServiceUnavailable) says when to come back. Throttling budgets refill
/// within a second (per-second token buckets), so one second is always enough to try again.
pub(crate) fn add_retry_after(response: &mut Response) {
    if response.status() == http::StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .entry(http::header::RETRY_AFTER)
            .or_insert(http::HeaderValue::from_static("1"));
    }
}

/// Whether the request carries a body (which an early error answer may leave unread).
fn has_body(request: &Request) -> bool {
    has_body_headers(request.headers())
}

/// Whether headers announce a body (a length above 0, or a transfer coding).
pub(crate) fn has_body_headers(headers: &http::HeaderMap) -> bool {
    headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|length| length > 0)
}

/// An error answered before the body was read leaves the body's bytes on the connection (a
/// client that sent `Expect: 100-continue` may send them anyway after a short wait); reading
/// the next request from there would desynchronize the connection. Closing it after the
/// answer is what keeps every later request on a clean connection.
fn close_if_body_unread(had_body: bool, response: &mut Response) {
    if had_body && response.status().as_u16() >= 400 {
        response.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
}

/// Whether the request waits for `100 Continue` but has no body: the server then answers
/// with the final status and no `100` (there is nothing to ask for). botocore leaves such a
/// connection out of step (its next request on it hangs until the read timeout), so the
/// connection is closed after the answer.
fn expects_continue_without_body(request: &Request) -> bool {
    expects_continue(request) && !has_body(request)
}

/// Whether the client waits for `100 Continue` before it sends the body.
fn expects_continue(request: &Request) -> bool {
    request
        .headers()
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

async fn handle(service: S3Service, mut request: Request) -> Response {
    let had_body = has_body(&request);
    let close_after = expects_continue_without_body(&request);
    let slot = OperationSlot::default();
    request.extensions_mut().insert(slot.clone());
    let is_head = request.method() == http::Method::HEAD;
    let started = Instant::now();
    // The id the client sees names the span this request's handling runs in, here and, through
    // the gRPC metadata, on every node it reaches (strata_util::trace).
    let request_id = strata_util::trace::new_request_id();
    let answered = strata_util::trace::scope(&request_id, service.oneshot(request)).await;
    let mut response = match answered {
        Ok(response) => response.map(AxumBody::new),
        Err(err) => {
            tracing::error!(?err, %request_id, "S3 service failed");
            internal_error_response()
        }
    };
    if let Ok(value) = http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(X_AMZ_REQUEST_ID, value);
    }
    close_if_body_unread(had_body, &mut response);
    add_retry_after(&mut response);
    if close_after {
        response.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    // s3s answers HEAD with 200 even for a range; S3 answers 206.
    if is_head
        && response.status() == http::StatusCode::OK
        && response.headers().contains_key(http::header::CONTENT_RANGE)
    {
        *response.status_mut() = http::StatusCode::PARTIAL_CONTENT;
    }
    let operation = slot.get().unwrap_or_else(|| "Unauthenticated".to_string());
    let operation = operation.as_str();
    METRICS
        .requests
        .with_label_values(&[operation, status_class(response.status().as_u16())])
        .inc();
    METRICS
        .latency
        .with_label_values(&[operation])
        .observe(started.elapsed().as_secs_f64());
    response
}

fn internal_error_response() -> Response {
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>";
    let mut response = Response::new(AxumBody::from(body));
    *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    response
}

/// A running front-end.
pub struct Running {
    pub s3_addr: SocketAddr,
    /// The link's address (`link.rs`), when the front-end has one.
    pub link_addr: Option<SocketAddr>,
    pub router: Arc<Router>,
    /// Ends after `token` is cancelled and in-flight requests finished.
    pub task: tokio::task::JoinHandle<()>,
}

/// Health for the admin server: healthy once a partition map has been fetched.
pub fn health_check(router: Arc<Router>) -> strata_util::admin::HealthCheck {
    Arc::new(move || match router.current_version() {
        Some(version) => {
            Ok(serde_json::json!({ "kind": "frontend", "partition_map_version": version }))
        }
        None => Err("no partition map fetched yet".to_string()),
    })
}

/// Serves S3 on `listener` until `token` is cancelled.
pub async fn start(
    config: FrontendConfig,
    listener: tokio::net::TcpListener,
    token: CancellationToken,
) -> Result<Running, FrontendError> {
    if config.access_key.is_empty() || config.secret_key.is_empty() {
        return Err(FrontendError::Config(
            "an access key and a secret key are required".into(),
        ));
    }
    if config.location_addr.is_none() {
        tracing::warn!(
            "no location service configured: bucket names are unique within this stamp only"
        );
    }
    let s3_addr = listener.local_addr()?;
    let link = match config.link_listen {
        Some(addr) => Some(bind_link(addr).await?),
        None => None,
    };
    let link_addr = link
        .as_ref()
        .map(|(listener, _)| listener.local_addr())
        .transpose()?;
    let mut config = config;
    if config.stamp_endpoint.is_none() {
        config.stamp_endpoint = Some(match (link_addr, &config.tls) {
            (Some(link_addr), _) => format!("{}{link_addr}", crate::link::LINK_SCHEME),
            (None, Some(_)) => format!("https://{s3_addr}"),
            (None, None) => format!("http://{s3_addr}"),
        });
    }
    let frontend = Frontend::new(config.clone())?;
    let router = frontend.router().clone();
    if let Some(reporter) = &frontend.stamp_reporter {
        tokio::spawn(reporter.clone().run(token.clone()));
    }

    let refresher = router.clone();
    let refresh_token = token.clone();
    tokio::spawn(async move {
        loop {
            if let Err(err) = refresher.refresh(None).await {
                tracing::debug!(%err, "background partition map refresh failed");
            }
            tokio::select! {
                () = refresh_token.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(MAP_REFRESH_INTERVAL_MS)) => {}
            }
        }
    });

    let cors: Arc<dyn CorsSource> = Arc::new(BucketRecords {
        router: router.clone(),
        buckets: frontend.buckets.clone(),
        domain: config.domain.clone(),
        misses: Default::default(),
    });
    let limits = ConnectionLimits {
        header_read_timeout_ms: config.header_read_timeout_ms,
        idle_timeout_ms: config.idle_timeout_ms,
        connections_max: config.connections_max,
    };
    let forwarder = crate::forward::Forwarder::new(&frontend);
    if let Some(forwarder) = &forwarder {
        let _ = frontend.links.set(Arc::downgrade(forwarder));
    }
    let sink_frontend = frontend.clone();
    let app = app_with(
        build_s3_service(frontend, &config),
        &config,
        Some(cors),
        forwarder,
    );
    let tls = match &config.tls {
        Some(files) => Some(
            files
                .acceptor()
                .map_err(|err| FrontendError::Config(format!("S3 TLS: {err:#}")))?,
        ),
        None => None,
    };
    let link_task = link.map(|(listener, acceptor)| {
        let link_app = crate::replica_sink::link_app(app.clone(), sink_frontend);
        let serving =
            crate::connections::serve(listener, link_app, limits, Some(acceptor), token.clone());
        tokio::spawn(serving)
    });
    let s3_task = tokio::spawn(crate::connections::serve(listener, app, limits, tls, token));
    let task = tokio::spawn(async move {
        let _ = s3_task.await;
        if let Some(link_task) = link_task {
            let _ = link_task.await;
        }
    });
    Ok(Running {
        s3_addr,
        link_addr,
        router,
        task,
    })
}

/// The link listener (`link.rs`) on `addr`, with its acceptor made from this process's mTLS
/// identity; a link without one is a configuration error, never a plain listener.
async fn bind_link(
    addr: SocketAddr,
) -> Result<(tokio::net::TcpListener, tokio_rustls::TlsAcceptor), FrontendError> {
    let Some(identity) = strata_util::rpc::process_identity() else {
        return Err(FrontendError::Config(
            "--link-listen needs mutual TLS (--mtls-ca, --mtls-cert, --mtls-key)".into(),
        ));
    };
    let acceptor = crate::link::acceptor(identity.pems())
        .map_err(|err| FrontendError::Config(format!("link TLS: {err:#}")))?;
    let (listener, _) = strata_util::rpc::bind(addr)
        .await
        .map_err(|err| FrontendError::Config(format!("link listener on {addr}: {err:#}")))?;
    Ok((listener, acceptor))
}

#[cfg(test)]
mod connection_tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request {
        let mut builder = http::Request::builder().method("PUT").uri("/b/k");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn errors_to_requests_with_bodies_close_the_connection() {
        let with_body = request(&[("content-length", "8")]);
        let chunked = request(&[("transfer-encoding", "chunked")]);
        let empty = request(&[("content-length", "0")]);
        assert!(has_body(&with_body) && has_body(&chunked) && !has_body(&empty));
        let empty_expecting = request(&[("content-length", "0"), ("expect", "100-continue")]);
        let full_expecting = request(&[("content-length", "8"), ("expect", "100-continue")]);
        assert!(expects_continue_without_body(&empty_expecting));
        assert!(!expects_continue_without_body(&full_expecting));
        assert!(!expects_continue_without_body(&empty));

        let mut rejected = Response::new(AxumBody::empty());
        *rejected.status_mut() = http::StatusCode::BAD_REQUEST;
        close_if_body_unread(true, &mut rejected);
        assert_eq!(rejected.headers()[http::header::CONNECTION], "close");

        let mut ok = Response::new(AxumBody::empty());
        close_if_body_unread(true, &mut ok);
        assert!(!ok.headers().contains_key(http::header::CONNECTION));

        let mut no_body = Response::new(AxumBody::empty());
        *no_body.status_mut() = http::StatusCode::NOT_FOUND;
        close_if_body_unread(false, &mut no_body);
        assert!(!no_body.headers().contains_key(http::header::CONNECTION));
    }
}
