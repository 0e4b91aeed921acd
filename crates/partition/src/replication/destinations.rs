//! Where a destination bucket lives, and the way there: this stamp's owners directly, or
//! another stamp's front-end links (`strata_util::link`), found through the location group.
//!
//! Homes are remembered for [`HOME_TTL_MS`] and forgotten at once when a call there fails, so
//! a bucket that moved is followed within one retry; a stamp's links are listed at most every
//! [`STAMPS_TTL_MS`]. Without a location group every destination is on this stamp.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prost::Message;
use strata_location::client::LocationClient;
use strata_proto::partition::{
    replica_link_answer, ApplyOutcome, ApplyReplicaHeader, ReplicaLinkAnswer,
};
use strata_proto::replica_link::{frame_header, ANSWER_BYTES_MAX, APPLY_PATH, CONTENT_TYPE};
use strata_util::link::{LinkConnector, LINK_SCHEME};
use tonic::{Code, Status};

use crate::config::StampsConfig;

/// A destination's home is looked up again after this long.
const HOME_TTL_MS: u64 = 5_000;
/// Stamps' link endpoints are listed again after this long.
const STAMPS_TTL_MS: u64 = 10_000;
/// A link connection is made within this.
const LINK_CONNECT_TIMEOUT_MS: u64 = 3_000;

/// Where a destination bucket is served from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// On this stamp: its owner, from the partition map.
    Here,
    /// On `stamp`, reached over one of its front-ends' links.
    Link {
        stamp: String,
        endpoints: Vec<String>,
    },
}

/// Why a destination cannot be reached now.
#[derive(Debug)]
pub enum Unresolved {
    /// No bucket of that name exists on any stamp.
    Missing,
    /// A transient cause (the location group or the stamp's links unreachable).
    Transient(String),
}

/// Each stamp's reported endpoints, by stamp name.
type StampEndpoints = HashMap<String, Vec<String>>;

type LinkBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

pub struct Destinations {
    own_stamp: String,
    location: Option<LocationClient>,
    homes: Mutex<HashMap<String, (Option<String>, Instant)>>,
    stamps: Mutex<Option<(Instant, StampEndpoints)>>,
    /// None without a mutual-TLS identity: other stamps cannot be reached.
    link: Option<Client<LinkConnector, LinkBody>>,
    /// Spreads sends over a stamp's endpoints (and away from one that failed).
    next_endpoint: AtomicUsize,
}

impl Destinations {
    pub fn new(config: &StampsConfig) -> Self {
        let location = if config.location_addrs.is_empty() {
            None
        } else {
            match LocationClient::new(&config.location_addrs.join(",")) {
                Ok(client) => Some(client),
                Err(err) => {
                    tracing::error!(%err, "replication: no location group; destinations on this stamp only");
                    None
                }
            }
        };
        Self {
            own_stamp: config.stamp.clone(),
            location,
            homes: Mutex::new(HashMap::new()),
            stamps: Mutex::new(None),
            link: link_client(),
            next_endpoint: AtomicUsize::new(0),
        }
    }

    /// Where `bucket` is served from now.
    pub async fn resolve(&self, bucket: &str) -> Result<Target, Unresolved> {
        let Some(location) = &self.location else {
            return Ok(Target::Here);
        };
        let home = match self.cached_home(bucket) {
            Some(home) => home,
            None => {
                let found = location.lookup_bucket(bucket).await.map_err(|status| {
                    Unresolved::Transient(format!("location group: {}", status.message()))
                })?;
                let home = found.location.map(|l| l.stamp);
                if let Ok(mut homes) = self.homes.lock() {
                    homes.insert(bucket.to_string(), (home.clone(), Instant::now()));
                }
                home
            }
        };
        match home {
            None => Err(Unresolved::Missing),
            Some(stamp) if stamp == self.own_stamp => Ok(Target::Here),
            Some(stamp) => {
                let endpoints = self.links_of(location, &stamp).await?;
                Ok(Target::Link { stamp, endpoints })
            }
        }
    }

    /// The way to `stamp`, which holds a geo-replica copy (this stamp itself only after a move
    /// took its copy over: PutBucketReplication refuses a geo-replica on the bucket's home).
    pub async fn stamp_target(&self, stamp: &str) -> Result<Target, Unresolved> {
        if stamp == self.own_stamp {
            return Ok(Target::Here);
        }
        let Some(location) = &self.location else {
            return Err(Unresolved::Transient(format!(
                "stamp {stamp} is reached through the location group, which this server was not given"
            )));
        };
        let endpoints = self.links_of(location, stamp).await?;
        Ok(Target::Link {
            stamp: stamp.to_string(),
            endpoints,
        })
    }

    /// Forgets where `bucket` lives (a call there failed; it may have moved).
    pub fn forget(&self, bucket: &str) {
        if let Ok(mut homes) = self.homes.lock() {
            homes.remove(bucket);
        }
    }

    fn cached_home(&self, bucket: &str) -> Option<Option<String>> {
        let homes = self.homes.lock().ok()?;
        let (home, at) = homes.get(bucket)?;
        (at.elapsed() < Duration::from_millis(HOME_TTL_MS)).then(|| home.clone())
    }

    async fn links_of(
        &self,
        location: &LocationClient,
        stamp: &str,
    ) -> Result<Vec<String>, Unresolved> {
        let cached = self.stamps.lock().ok().and_then(|cached| {
            cached
                .as_ref()
                .filter(|(at, _)| at.elapsed() < Duration::from_millis(STAMPS_TTL_MS))
                .map(|(_, stamps)| stamps.get(stamp).cloned())
        });
        let endpoints = match cached {
            Some(endpoints) => endpoints,
            None => {
                let listed = location.list_stamps().await.map_err(|status| {
                    Unresolved::Transient(format!("location group: {}", status.message()))
                })?;
                let stamps: StampEndpoints = listed
                    .stamps
                    .into_iter()
                    .map(|s| (s.name, s.endpoints))
                    .collect();
                let endpoints = stamps.get(stamp).cloned();
                if let Ok(mut cached) = self.stamps.lock() {
                    *cached = Some((Instant::now(), stamps));
                }
                endpoints
            }
        };
        let links: Vec<String> = endpoints
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.starts_with(LINK_SCHEME))
            .collect();
        if self.link.is_none() {
            return Err(Unresolved::Transient(format!(
                "stamp {stamp} is reached over its links, which need this server's mutual-TLS identity"
            )));
        }
        if links.is_empty() {
            return Err(Unresolved::Transient(format!(
                "stamp {stamp} reports no link (its front-ends need --link-listen)"
            )));
        }
        Ok(links)
    }

    /// Sends one replica over a link of the destination's stamp: the header, then `data`
    /// (when the header says so); the owner's answer, or its refusal as its gRPC status.
    pub async fn apply_over_link<S>(
        &self,
        endpoints: &[String],
        header: &ApplyReplicaHeader,
        data: S,
        timeout_ms: u64,
    ) -> Result<ApplyOutcome, Status>
    where
        S: Stream<Item = Bytes> + Send + 'static,
    {
        let Some(client) = &self.link else {
            return Err(Status::unavailable("no link identity"));
        };
        let turn = self.next_endpoint.fetch_add(1, Ordering::Relaxed);
        let endpoint = &endpoints[turn % endpoints.len().max(1)];
        let frames = futures::stream::iter([Bytes::from(frame_header(header))])
            .chain(data)
            .map(|bytes| Ok::<_, std::io::Error>(Frame::data(bytes)));
        let body = BodyExt::boxed_unsync(StreamBody::new(frames));
        let request = http::Request::post(format!("{endpoint}{APPLY_PATH}"))
            .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(body)
            .map_err(|err| Status::internal(format!("a replica request: {err}")))?;
        let exchange = async {
            let response = client
                .request(request)
                .await
                .map_err(|err| Status::unavailable(format!("link {endpoint}: {err}")))?;
            let status = response.status();
            let body = http_body_util::Limited::new(response.into_body(), ANSWER_BYTES_MAX)
                .collect()
                .await
                .map_err(|err| Status::unavailable(format!("link {endpoint}: {err}")))?
                .to_bytes();
            if status != http::StatusCode::OK {
                let text = String::from_utf8_lossy(&body);
                return Err(Status::unavailable(format!(
                    "link {endpoint} answered {status}: {text}"
                )));
            }
            answer_of(&body)
        };
        tokio::time::timeout(Duration::from_millis(timeout_ms), exchange)
            .await
            .map_err(|_| Status::deadline_exceeded(format!("link {endpoint} timed out")))?
    }
}

/// The sink's answer: the outcome, or the owner's refusal as the status it gave.
fn answer_of(body: &[u8]) -> Result<ApplyOutcome, Status> {
    let answer = ReplicaLinkAnswer::decode(body)
        .map_err(|err| Status::unavailable(format!("a link answer that does not decode: {err}")))?;
    match answer.answer {
        Some(replica_link_answer::Answer::Applied(applied)) => Ok(applied.outcome()),
        Some(replica_link_answer::Answer::Refused(refused)) => Err(Status::with_details(
            Code::from(refused.code),
            refused.message,
            refused.details.into(),
        )),
        None => Err(Status::unavailable("an empty link answer")),
    }
}

fn link_client() -> Option<Client<LinkConnector, LinkBody>> {
    let identity = strata_util::rpc::process_identity()?;
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(Duration::from_millis(LINK_CONNECT_TIMEOUT_MS)));
    http.set_nodelay(true);
    match strata_util::link::connector(identity.pems(), http) {
        Ok(connector) => Some(Client::builder(TokioExecutor::new()).build(connector)),
        Err(err) => {
            tracing::error!(%err, "replication: the identity makes no link client");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_proto::partition::{ApplyReplicaResponse, ReplicaLinkRefusal};
    use strata_types::error_detail::{from_status, to_status, ErrorDetail, RejectReason};

    #[test]
    fn a_refusal_over_the_link_is_the_owner_status_it_was() {
        let owner = to_status(
            ErrorDetail::Rejected {
                reason: RejectReason::Conflict,
            },
            "another version holds that stamp",
        );
        let answer = ReplicaLinkAnswer {
            answer: Some(replica_link_answer::Answer::Refused(ReplicaLinkRefusal {
                code: owner.code() as i32,
                message: owner.message().to_string(),
                details: owner.details().to_vec(),
            })),
        };
        let status = answer_of(&answer.encode_to_vec()).unwrap_err();
        assert_eq!(status.code(), owner.code());
        assert_eq!(status.message(), owner.message());
        assert_eq!(from_status(&status), from_status(&owner));
        let applied = ReplicaLinkAnswer {
            answer: Some(replica_link_answer::Answer::Applied(ApplyReplicaResponse {
                outcome: ApplyOutcome::NeedBytes as i32,
            })),
        };
        assert_eq!(
            answer_of(&applied.encode_to_vec()).unwrap(),
            ApplyOutcome::NeedBytes
        );
        assert!(answer_of(b"\xff\xff").is_err());
    }

    #[tokio::test]
    async fn without_a_location_group_every_destination_is_here() {
        let destinations = Destinations::new(&StampsConfig::default());
        assert_eq!(destinations.resolve("any").await.unwrap(), Target::Here);
    }
}
