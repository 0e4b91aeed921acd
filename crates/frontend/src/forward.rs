//! One endpoint for every stamp: a request for a bucket homed on another stamp is forwarded to
//! that stamp's front-ends as it came (method, path, query, headers, Host included, and the body
//! streamed), and the home's answer is streamed back; the client sees no redirect. The
//! signature is checked at home, where it stays valid because nothing it signs changes.
//!
//! Where a bucket lives ([`Forwarder::home_of`]): here when this stamp holds and serves its
//! record (not a copy a move is filling or left behind, `crate::frontend::serves_here`); else
//! where the location group says; a bucket nobody holds is answered here (NoSuchBucket) and
//! not remembered (so a bucket created elsewhere next is found at once), and neither is
//! "here" (this stamp's record is read again, so a bucket deleted here and created elsewhere
//! is found at once). A home on another stamp is
//! trusted for [`HOME_TTL_MS`] (a moved or deleted bucket is seen within that bound),
//! and past it still used while a new answer cannot be had (the location group elects), for at
//! most [`HOMES_MAX`] buckets; stamps' endpoints are trusted for [`STAMPS_TTL_MS`].
//!
//! Bounds: at most [`LOOKUPS_IN_FLIGHT_MAX`] lookups at once; a forwarded request never hops twice (it carries [`FORWARDED_FROM`]; the home serves
//! it whatever it finds); only signed requests and CORS preflights are forwarded (other
//! anonymous requests are refused here);
//! at most [`FORWARDS_IN_FLIGHT_MAX`] at once (then 503 SlowDown); the home has
//! [`FORWARD_CONNECT_TIMEOUT_MS`] to accept the connection and [`FORWARD_HEAD_TIMEOUT_MS`] to
//! answer with a head. A request without a body moves to the stamp's next endpoint when one
//! cannot be reached; one with a body cannot be replayed and is answered 503 (retryable).
//!
//! How: a stamp's `https://` endpoints are its front-ends' links (`link.rs`: the deployment's
//! mutual TLS, front-end certificates on both ends), tried first; `http://` endpoints are S3
//! endpoints of stamps without mTLS. A front-end without an mTLS identity cannot use a link:
//! a home reachable only through links is answered 501 NotImplemented naming its endpoint.

use crate::auth::DomainHost;
use crate::error::{error_response, FrontendError, Refusal};
use crate::frontend::Frontend;
use crate::metrics::METRICS;
use axum::body::Body as AxumBody;
use axum::extract::Request;
use axum::response::Response;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strata_location::LocationClient;
use strata_proto::location::Stamp;
use tokio::sync::Semaphore;

mod request;
pub use request::bucket_of;
use request::{answer, is_signed, outgoing};

/// The header a forwarded request carries: the stamp that forwarded it.
pub const FORWARDED_FROM: &str = "x-strata-forwarded-from";
/// The header of a home's "not here" answer to a forwarded request for a bucket it does not
/// serve (moved away, or a move's copy is filling here): the home it knows of. The answer is
/// a retryable 503 SlowDown, and the forwarder forgets the bucket's home at once.
pub const NOT_HERE: &str = "x-strata-not-here";
/// How long a bucket's home is trusted before it is looked up again.
pub const HOME_TTL_MS: u64 = 2_000;
/// Lookups of buckets not held here in flight at once (beyond: served here, as unknown).
pub const LOOKUPS_IN_FLIGHT_MAX: usize = 64;
/// Bound of finding a bucket's home (a record read, then the location group).
pub const LOOKUP_TIMEOUT_MS: u64 = 3_000;
/// Part of it the location leader has, before any member is asked (`ask_location`): with a
/// member's own call bound (2 s), within [`LOOKUP_TIMEOUT_MS`].
pub const LEADER_LOOKUP_TIMEOUT_MS: u64 = 1_000;
/// How long the stamps' endpoints are trusted.
pub const STAMPS_TTL_MS: u64 = 5_000;
/// How long a stamp that took no connection is passed over by placement.
pub const UNREACHABLE_MS: u64 = 10_000;
/// Most bucket homes kept (then the map starts over: a bound, not an LRU).
pub const HOMES_MAX: usize = 10_000;
/// Bound of one internal call of another stamp's replica sink ([`Forwarder::call_link`]).
pub const INTERNAL_CALL_TIMEOUT_MS: u64 = 5_000;
/// Forwarded requests in flight at once.
pub const FORWARDS_IN_FLIGHT_MAX: usize = 256;
pub const FORWARD_CONNECT_TIMEOUT_MS: u64 = 2_000;
pub const FORWARD_HEAD_TIMEOUT_MS: u64 = 30_000;

/// What one lookup of a bucket's home found.
enum Lookup {
    /// Held here or on another stamp.
    Held(Home),
    /// No stamp holds the bucket (or only a reservation for this one does).
    Nobody,
    /// Not known now (a record or the location group unreadable in time, or too many
    /// lookups in flight).
    Unknown,
}

/// Where a bucket is served from.
#[derive(Clone, Debug, PartialEq)]
pub enum Home {
    /// Here (this stamp holds it, or nobody does).
    Here,
    /// Not held here, and where it is cannot be learnt now (the location group does not
    /// answer, and no home was ever known): answered 503, never NoSuchBucket, which would
    /// deny a bucket another stamp holds.
    Unknown,
    /// On `stamp`, reachable at `endpoints` (`http://host:port`).
    Elsewhere {
        stamp: String,
        endpoints: Vec<String>,
    },
}

pub struct Forwarder {
    pub(crate) frontend: Frontend,
    /// The front-end's virtual-host domain.
    domain: DomainHost,
    location: Arc<LocationClient>,
    homes: Mutex<HashMap<String, (Home, Instant)>>,
    /// The stamps as last listed, and when.
    stamps: Mutex<Option<(Instant, Vec<Stamp>)>>,
    /// Stamps no endpoint of which took a connection, and when: placement passes them over
    /// for [`UNREACHABLE_MS`].
    unreachable: Mutex<HashMap<String, Instant>>,
    client: Client<HttpConnector, AxumBody>,
    /// The client of other stamps' links; None without an mTLS identity.
    link_client: Option<Client<crate::link::LinkConnector, AxumBody>>,
    slots: Arc<Semaphore>,
    /// Bounds the lookups of buckets not held here (each may ask the location group).
    lookups: Arc<Semaphore>,
}

impl Forwarder {
    /// A forwarder for `frontend` (None when it has no location group: one stamp alone).
    pub fn new(frontend: &Frontend) -> Option<Arc<Self>> {
        let location = frontend.location.clone()?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_millis(FORWARD_CONNECT_TIMEOUT_MS)));
        connector.set_nodelay(true);
        let link_client = strata_util::rpc::process_identity().and_then(|identity| {
            match crate::link::connector(identity.pems(), connector.clone()) {
                Ok(link) => Some(Client::builder(TokioExecutor::new()).build(link)),
                Err(err) => {
                    tracing::error!(%err, "no link to other stamps: the identity does not make a TLS client");
                    None
                }
            }
        });
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Some(Arc::new(Self {
            frontend: frontend.clone(),
            domain: DomainHost::new(&frontend.config.domain),
            location,
            homes: Mutex::new(HashMap::new()),
            stamps: Mutex::new(None),
            unreachable: Mutex::new(HashMap::new()),
            client,
            link_client,
            slots: Arc::new(Semaphore::new(FORWARDS_IN_FLIGHT_MAX)),
            lookups: Arc::new(Semaphore::new(LOOKUPS_IN_FLIGHT_MAX)),
        }))
    }

    /// The request forwarded to its bucket's home, or back unchanged (`Err`) to be served here.
    pub async fn forward_or_serve(&self, request: Request) -> Result<Response, Request> {
        let preflight = request.method() == http::Method::OPTIONS;
        if request.headers().contains_key(FORWARDED_FROM) {
            return self.serve_forwarded(request).await;
        }
        if !(is_signed(&request) || preflight) {
            return Err(request);
        }
        let Some(bucket) = self.bucket_named(&request) else {
            return Err(request);
        };
        match self.home_of(&bucket).await {
            Home::Here if crate::placement::is_create_bucket(&request) => {
                crate::placement::place(self, request, &bucket).await
            }
            Home::Here => Err(request),
            Home::Unknown if crate::placement::is_create_bucket(&request) => Err(request),
            Home::Unknown => Ok(busy(FrontendError::Unavailable(format!(
                "where bucket {bucket:?} lives cannot be learnt now; retry"
            )))),
            Home::Elsewhere { stamp, endpoints } => {
                Ok(self.forward(request, &bucket, &stamp, &endpoints).await)
            }
        }
    }

    /// The bucket a request names, when the name can be a bucket's: any other is answered
    /// here (InvalidBucketName, NoSuchBucket) without asking anyone where it lives.
    fn bucket_named(&self, request: &Request) -> Option<String> {
        bucket_of(request, &self.domain)
            .filter(|bucket| crate::naming::is_valid_bucket_name(bucket))
    }

    /// A request another stamp forwarded here: served here, unless the bucket is served from
    /// a third place (it moved away, or a move's copy is filling here): then [`NOT_HERE`].
    /// A CreateBucket is always served where placement sent it.
    async fn serve_forwarded(&self, request: Request) -> Result<Response, Request> {
        if crate::placement::is_create_bucket(&request) {
            return Err(request);
        }
        let Some(bucket) = self.bucket_named(&request) else {
            return Err(request);
        };
        match self.home_of(&bucket).await {
            // The forwarder could not tell either: served here, whatever this stamp finds.
            Home::Here | Home::Unknown => Err(request),
            Home::Elsewhere { stamp, .. } => Ok(not_here(&bucket, &stamp)),
        }
    }

    /// Where `bucket` is served from (see the module comment). When the lookup cannot be
    /// made within [`LOOKUP_TIMEOUT_MS`] (the location group elects, or is unreachable), the
    /// last known home answers, however old: a running stamp keeps being reached while the
    /// location group is away; without one, Unknown (unless this stamp serves it).
    pub async fn home_of(&self, bucket: &str) -> Home {
        let known = self.known_home(bucket);
        if let Some((home, at)) = &known {
            if at.elapsed() < Duration::from_millis(HOME_TTL_MS) {
                return home.clone();
            }
        }
        let looked_up = match self.lookups.clone().try_acquire_owned() {
            Ok(_slot) => tokio::time::timeout(
                Duration::from_millis(LOOKUP_TIMEOUT_MS),
                self.look_up_home(bucket),
            )
            .await
            .unwrap_or(Lookup::Unknown),
            Err(_) => Lookup::Unknown,
        };
        let home = match (looked_up, known) {
            (Lookup::Held(home), _) => home,
            // Not remembered: the bucket may be created anywhere next, and is then found.
            (Lookup::Nobody, _) => {
                self.forget(bucket);
                return Home::Here;
            }
            // A stale home is trusted for another bound before the next try, so an absent
            // location group costs one lookup timeout per bucket per bound, not one per
            // request.
            (Lookup::Unknown, Some((stale, _))) => stale,
            (Lookup::Unknown, None) => return Home::Unknown,
        };
        // "Here" is never remembered: it came from this stamp's own record, which is read
        // again cheaply, and a remembered one outlived the bucket's deletion here (a name
        // deleted, then created on another stamp, was answered NoSuchBucket here for 2 s).
        if home == Home::Here {
            self.forget(bucket);
            return home;
        }
        if let Ok(mut homes) = self.homes.lock() {
            if homes.len() >= HOMES_MAX {
                homes.clear();
            }
            homes.insert(bucket.to_string(), (home.clone(), Instant::now()));
        }
        home
    }

    fn known_home(&self, bucket: &str) -> Option<(Home, Instant)> {
        self.homes.lock().ok()?.get(bucket).cloned()
    }

    /// Forgets `bucket`'s home (its home answered that it is not there).
    pub fn forget(&self, bucket: &str) {
        if let Ok(mut homes) = self.homes.lock() {
            homes.remove(bucket);
        }
    }

    async fn look_up_home(&self, bucket: &str) -> Lookup {
        match self.frontend.get_bucket_record(bucket).await {
            Ok(Some(record)) if crate::frontend::serves_here(&record) => {
                return Lookup::Held(Home::Here)
            }
            // A copy a move fills, or one it left behind: the location group names the home.
            Ok(_) => {}
            // Unreadable for now (its range splits or moves): the location group names the
            // home, this stamp's included ("here" is not remembered, so this is asked often).
            Err(err) => tracing::debug!(%err, bucket, "bucket record unreadable"),
        }
        let Some(found) = self.ask_location(bucket).await else {
            return Lookup::Unknown;
        };
        let Some(location) = found else {
            return Lookup::Nobody;
        };
        if location.stamp == self.frontend.config.stamp {
            // Held for this stamp, not recorded yet (a CreateBucket in flight).
            return Lookup::Nobody;
        }
        let endpoints = self.endpoints_of(&location.stamp).await;
        if endpoints.is_empty() {
            tracing::warn!(bucket, stamp = %location.stamp, "home stamp has no endpoint");
            return Lookup::Unknown;
        }
        Lookup::Held(Home::Elsewhere {
            stamp: location.stamp,
            endpoints,
        })
    }

    /// The location group's record of `bucket` (None inside: no such bucket; None: no
    /// answer). The leader is asked for [`LEADER_LOOKUP_TIMEOUT_MS`]; past that (it died, the
    /// group elects or lost its quorum), any member that holds the bucket answers from what it
    /// applied: a running stamp keeps finding other stamps' buckets.
    async fn ask_location(
        &self,
        bucket: &str,
    ) -> Option<Option<strata_proto::location::BucketLocation>> {
        let leader = Duration::from_millis(LEADER_LOOKUP_TIMEOUT_MS);
        match tokio::time::timeout(leader, self.location.lookup_bucket(bucket)).await {
            Ok(Ok(answer)) => return Some(answer.location),
            Ok(Err(status)) => {
                tracing::debug!(%status, bucket, "the location leader did not answer")
            }
            Err(_) => tracing::debug!(bucket, "the location leader did not answer in time"),
        }
        match self.location.lookup_bucket_applied(bucket).await {
            Ok(answer) => {
                METRICS.applied_lookups.inc();
                Some(answer.location)
            }
            Err(status) => {
                tracing::warn!(%status, bucket, "no location member answered");
                None
            }
        }
    }

    /// `stamp`'s endpoints as the location group lists them (none when unknown).
    pub async fn endpoints_of(&self, stamp: &str) -> Vec<String> {
        self.stamps()
            .await
            .into_iter()
            .find(|s| s.name == stamp)
            .map(|s| s.endpoints)
            .unwrap_or_default()
    }

    /// The stamps the location group lists (trusted [`STAMPS_TTL_MS`]; when the group does
    /// not answer, the last list however old, rather than none).
    pub async fn stamps(&self) -> Vec<Stamp> {
        let fresh = |at: &Instant| at.elapsed() < Duration::from_millis(STAMPS_TTL_MS);
        let known = self.stamps.lock().ok().and_then(|s| s.clone());
        if let Some((_, stamps)) = known.as_ref().filter(|(at, _)| fresh(at)) {
            return stamps.clone();
        }
        let Ok(answer) = self.location.list_stamps().await else {
            return known.map(|(_, stamps)| stamps).unwrap_or_default();
        };
        if let Ok(mut cache) = self.stamps.lock() {
            *cache = Some((Instant::now(), answer.stamps.clone()));
        }
        answer.stamps
    }

    /// Counts a bucket placed on `stamp` in the cached stamp list, so that the placements of
    /// one [`STAMPS_TTL_MS`] spread by bucket count as the location group's would.
    pub fn count_placement(&self, stamp: &str) {
        if let Ok(mut cache) = self.stamps.lock() {
            let listed = cache.as_mut().map(|(_, stamps)| stamps.iter_mut());
            if let Some(known) = listed.into_iter().flatten().find(|s| s.name == stamp) {
                known.buckets = known.buckets.saturating_add(1);
            }
        }
    }

    /// Whether a connection to `stamp` failed in the last [`UNREACHABLE_MS`].
    pub fn unreachable(&self, stamp: &str) -> bool {
        let window = Duration::from_millis(UNREACHABLE_MS);
        self.unreachable
            .lock()
            .is_ok_and(|marks| marks.get(stamp).is_some_and(|at| at.elapsed() < window))
    }

    fn mark_unreachable(&self, stamp: &str) {
        if let Ok(mut marks) = self.unreachable.lock() {
            marks.retain(|_, at| at.elapsed() < Duration::from_millis(UNREACHABLE_MS));
            marks.insert(stamp.to_string(), Instant::now());
        }
    }

    /// A call of another stamp's replica sink (`replica_sink.rs`'s front-end paths) over the
    /// first of its `endpoints`' links that answers within [`INTERNAL_CALL_TIMEOUT_MS`]: the
    /// answer's status and body (at most 64 KiB).
    pub async fn call_link(
        &self,
        endpoints: &[String],
        method: http::Method,
        path_and_query: &str,
        body: Vec<u8>,
    ) -> Result<(http::StatusCode, bytes::Bytes), String> {
        let Some(link) = &self.link_client else {
            return Err("no link identity (mutual TLS) to reach other stamps with".into());
        };
        let mut last = "no link endpoint".to_string();
        for endpoint in endpoints
            .iter()
            .filter(|e| e.starts_with(crate::link::LINK_SCHEME))
        {
            let request = http::Request::builder()
                .method(method.clone())
                .uri(format!("{endpoint}{path_and_query}"))
                .body(AxumBody::from(body.clone()))
                .map_err(|err| err.to_string())?;
            let exchange = async {
                let response = link.request(request).await.map_err(|e| e.to_string())?;
                let status = response.status();
                let body = axum::body::to_bytes(AxumBody::new(response.into_body()), 64 * 1024)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>((status, body))
            };
            match tokio::time::timeout(Duration::from_millis(INTERNAL_CALL_TIMEOUT_MS), exchange)
                .await
            {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(err)) => last = format!("{endpoint}: {err}"),
                Err(_) => last = format!("{endpoint}: timed out"),
            }
        }
        Err(last)
    }

    /// Whether this front-end can forward over other stamps' links (it holds an mTLS identity).
    pub fn has_links(&self) -> bool {
        self.link_client.is_some()
    }

    /// The endpoints this front-end can reach, in the order to try them: links first (when it
    /// holds an mTLS identity), then plain S3 endpoints.
    fn usable<'a>(&self, endpoints: &'a [String]) -> Vec<&'a String> {
        let links = endpoints
            .iter()
            .filter(|e| e.starts_with(crate::link::LINK_SCHEME) && self.link_client.is_some());
        let plain = endpoints.iter().filter(|e| e.starts_with("http://"));
        links.chain(plain).collect()
    }

    /// Sends `request` to `endpoint` through the client its scheme needs (see [`Self::usable`]).
    fn send(&self, request: http::Request<AxumBody>) -> hyper_util::client::legacy::ResponseFuture {
        match &self.link_client {
            Some(link) if request.uri().scheme() == Some(&http::uri::Scheme::HTTPS) => {
                link.request(request)
            }
            _ => self.client.request(request),
        }
    }

    /// A request whose (small, buffered) body can be sent again, offered to each reachable
    /// endpoint of `stamp` in turn: the first answer, or None when no endpoint took the
    /// connection, so the request surely reached none and the caller may place it elsewhere.
    /// A request sent without an answer in time is answered 503 (it may have been served).
    pub(crate) async fn forward_buffered(
        &self,
        parts: &http::request::Parts,
        body: bytes::Bytes,
        stamp: &str,
        endpoints: &[String],
    ) -> Option<Response> {
        let Ok(_slot) = self.slots.clone().try_acquire_owned() else {
            METRICS.forwarded(stamp, "busy");
            return Some(busy(FrontendError::SlowDown(format!(
                "{FORWARDS_IN_FLIGHT_MAX} requests are being forwarded"
            ))));
        };
        for endpoint in self.usable(endpoints) {
            let Some(outgoing) = outgoing(parts, endpoint, &self.frontend.config.stamp) else {
                continue;
            };
            let sent = tokio::time::timeout(
                Duration::from_millis(FORWARD_HEAD_TIMEOUT_MS),
                self.send(outgoing.map(|()| AxumBody::from(body.clone()))),
            )
            .await;
            match sent {
                Ok(Ok(response)) => {
                    METRICS.forwarded(stamp, "answered");
                    return Some(answer(response));
                }
                Ok(Err(err)) if err.is_connect() => {
                    tracing::warn!(%err, stamp, endpoint, "no connection to the stamp");
                }
                Ok(Err(err)) => {
                    tracing::warn!(%err, stamp, endpoint, "forwarding failed after sending");
                    METRICS.forwarded(stamp, "unreachable");
                    return Some(busy(FrontendError::Unavailable(format!(
                        "stamp {stamp} did not answer"
                    ))));
                }
                Err(_) => {
                    METRICS.forwarded(stamp, "unreachable");
                    return Some(busy(FrontendError::Unavailable(format!(
                        "stamp {stamp} did not answer in time"
                    ))));
                }
            }
        }
        self.mark_unreachable(stamp);
        METRICS.forwarded(stamp, "unreachable");
        None
    }

    pub(crate) async fn forward(
        &self,
        request: Request,
        bucket: &str,
        stamp: &str,
        endpoints: &[String],
    ) -> Response {
        let Ok(_slot) = self.slots.clone().try_acquire_owned() else {
            METRICS.forwarded(stamp, "busy");
            return busy(FrontendError::SlowDown(format!(
                "{FORWARDS_IN_FLIGHT_MAX} requests are being forwarded"
            )));
        };
        let usable = self.usable(endpoints);
        if usable.is_empty() {
            // The home is reached only through links (or HTTPS), and this front-end has no
            // mTLS identity to use one.
            METRICS.forwarded(stamp, "not-implemented");
            let message = format!(
                "The bucket is served by stamp {stamp} over TLS, which this endpoint cannot forward to without a mutual-TLS identity; use {}.",
                endpoints.first().map_or("its endpoint", String::as_str)
            );
            return error_response(FrontendError::refused(Refusal::NotImplemented, message));
        }
        let (parts, body) = request.into_parts();
        let replayable = !crate::server::has_body_headers(&parts.headers);
        let mut body = Some(body);
        for endpoint in usable {
            let Some(outgoing) = outgoing(&parts, endpoint, &self.frontend.config.stamp) else {
                continue;
            };
            let this_body = if replayable {
                AxumBody::empty()
            } else {
                match body.take() {
                    Some(body) => body,
                    None => break,
                }
            };
            let sent = tokio::time::timeout(
                Duration::from_millis(FORWARD_HEAD_TIMEOUT_MS),
                self.send(outgoing.map(|()| this_body)),
            )
            .await;
            match sent {
                Ok(Ok(response)) if response.headers().contains_key(NOT_HERE) => {
                    // The next request looks the home up again.
                    METRICS.forwarded(stamp, "not-here");
                    self.forget(bucket);
                    return answer(response);
                }
                Ok(Ok(response)) => {
                    METRICS.forwarded(stamp, "answered");
                    return answer(response);
                }
                Ok(Err(err)) => {
                    tracing::warn!(%err, bucket, stamp, endpoint, "forwarding failed");
                }
                Err(_) => tracing::warn!(bucket, stamp, endpoint, "forwarded request timed out"),
            }
            if !replayable {
                break;
            }
        }
        self.forget(bucket);
        METRICS.forwarded(stamp, "unreachable");
        busy(FrontendError::Unavailable(format!(
            "bucket {bucket:?}: its home stamp {stamp} could not be reached"
        )))
    }
}

/// The home's answer to a forwarded request for `bucket`, which `home` serves: see [`NOT_HERE`].
fn not_here(bucket: &str, home: &str) -> Response {
    let mut response = busy(FrontendError::SlowDown(format!(
        "bucket {bucket:?} is served by stamp {home}"
    )));
    if let Ok(value) = http::HeaderValue::from_str(home) {
        response.headers_mut().insert(NOT_HERE, value);
    }
    response
}

/// A 503 (SlowDown or ServiceUnavailable) that says when to come back.
fn busy(err: FrontendError) -> Response {
    let mut response = error_response(err);
    crate::server::add_retry_after(&mut response);
    response
}
