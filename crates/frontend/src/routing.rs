//! Routing a key to the partition server that owns it.
//!
//! The front-end keeps a cached copy of the partition map (from any manager member's
//! `GetPartitionMap`), finds the range containing an encoded key, and keeps one pair of gRPC
//! clients per partition server address (a unary channel with a per-request timeout and a
//! streaming channel for object bytes).
//!
//! A request that meets a `NotOwner` or `Unavailable` error detail, a connection refused or
//! broken mid-call (`error::is_transport_failure`) or a range without an owner refreshes the
//! map and retries with exponential backoff, bounded by the retry budget; then it answers 503
//! (`FrontendError::Unavailable`). `Throttled` is not retried: the client is told to slow down.

use crate::error::{is_timeout, is_transport_failure, FrontendError};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use strata_proto::manager::partition_manager_client::PartitionManagerClient;
use strata_proto::manager::{GetPartitionMapRequest, PartitionMap, RangeAssignment};
use strata_proto::partition::partition_server_client::PartitionServerClient;
use strata_proto::GRPC_MESSAGE_SIZE_BYTES_MAX;
use strata_types::error_detail::{self, ErrorDetail};
use strata_types::keys;
use strata_types::{Epoch, RangeId};
use strata_util::rpc::{Channel, ChannelPool};
use tonic::{Code, Status};

pub type PartitionClient = PartitionServerClient<Channel>;

/// Bound on one GetPartitionMap call to one manager member.
const MANAGER_TIMEOUT_MS: u64 = 2_000;
/// Distinct partition server addresses kept in the client pool before it is emptied.
const CLIENT_POOL_SIZE_MAX: usize = 4096;

/// Where one key lives right now, as the cached map says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub range_id: RangeId,
    pub low: Vec<u8>,
    /// Empty means +infinity.
    pub high: Vec<u8>,
    pub epoch: Epoch,
    pub owner_addr: String,
    /// When the map this route came from was fetched (to coalesce refreshes).
    pub map_fetched_at: Instant,
}

/// One fetched copy of the partition map, ranges sorted by `low`.
#[derive(Debug)]
pub struct MapSnapshot {
    pub version: u64,
    pub ranges: Vec<RangeAssignment>,
    pub fetched_at: Instant,
}

impl MapSnapshot {
    pub fn new(map: PartitionMap) -> Self {
        let mut ranges = map.ranges;
        ranges.sort_by(|a, b| a.low.cmp(&b.low));
        Self {
            version: map.version,
            ranges,
            fetched_at: Instant::now(),
        }
    }

    /// The range containing `key`, if the map covers it.
    pub fn lookup(&self, key: &[u8]) -> Option<&RangeAssignment> {
        let after = self.ranges.partition_point(|r| r.low.as_slice() <= key);
        let candidate = self.ranges.get(after.checked_sub(1)?)?;
        keys::range_contains(&candidate.low, &candidate.high, key).then_some(candidate)
    }

    /// The proto boundary: the map's bare integers become typed ids here.
    fn route(&self, range: &RangeAssignment) -> Route {
        Route {
            range_id: RangeId::new(range.range_id),
            low: range.low.clone(),
            high: range.high.clone(),
            epoch: Epoch::new(range.epoch),
            owner_addr: range.owner_addr.clone(),
            map_fetched_at: self.fetched_at,
        }
    }
}

/// What to do after a partition server answered with an error.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Refresh the map and try again (within the budget).
    Retry,
    /// The server is throttling: answer SlowDown.
    SlowDown,
    /// A final answer for the client.
    Fail,
}

pub fn classify(status: &Status) -> Verdict {
    match error_detail::from_status(status) {
        Some(
            ErrorDetail::NotOwner(_)
            | ErrorDetail::Unavailable { .. }
            | ErrorDetail::NotLeader { .. },
        ) => Verdict::Retry,
        Some(ErrorDetail::Throttled { .. }) => Verdict::SlowDown,
        Some(_) => Verdict::Fail,
        // No detail: tonic made the status here. Its RESOURCE_EXHAUSTED (a message over the
        // size limit, a shed load) is answered like a peer's throttling, as it always was.
        None if status.code() == Code::ResourceExhausted => Verdict::SlowDown,
        // A broken connection (the owner died or went away mid-call) is retried on a fresh
        // map; a timeout is not (the owner may still apply the call), it answers 503
        // (`status_to_s3`).
        None if is_transport_failure(status) && !is_timeout(status) => Verdict::Retry,
        None => Verdict::Fail,
    }
}

/// A retry budget for one request: exponential backoff (20 ms doubling to 250 ms) until a
/// deadline, the one helper every layer retries with.
pub use strata_util::retry::Backoff as Retry;

/// The partition map cache and the pool of partition server clients.
pub struct Router {
    managers: Vec<PartitionManagerClient<Channel>>,
    manager_addrs: Vec<String>,
    preferred_manager: AtomicUsize,
    map: RwLock<Option<Arc<MapSnapshot>>>,
    refresh_lock: tokio::sync::Mutex<()>,
    /// Channels to partition servers: per-request timeout, and none for streamed bodies.
    unary_channels: ChannelPool,
    streaming_channels: ChannelPool,
    retry_budget: Duration,
}

impl Router {
    pub fn new(manager_addrs: &[String], retry_budget: Duration) -> Result<Self, FrontendError> {
        let mut managers = Vec::with_capacity(manager_addrs.len());
        for addr in manager_addrs {
            let channel = strata_util::rpc::channel_with_timeout(
                addr,
                Duration::from_millis(MANAGER_TIMEOUT_MS),
            )
            .map_err(|err| FrontendError::Config(format!("manager address {addr:?}: {err}")))?;
            managers.push(
                PartitionManagerClient::new(channel)
                    .max_decoding_message_size(GRPC_MESSAGE_SIZE_BYTES_MAX)
                    .max_encoding_message_size(GRPC_MESSAGE_SIZE_BYTES_MAX),
            );
        }
        Ok(Self {
            managers,
            manager_addrs: manager_addrs.to_vec(),
            preferred_manager: AtomicUsize::new(0),
            map: RwLock::new(None),
            refresh_lock: tokio::sync::Mutex::new(()),
            unary_channels: ChannelPool::with_size_max(
                Duration::from_millis(strata_util::rpc::REQUEST_TIMEOUT_MS),
                CLIENT_POOL_SIZE_MAX,
            ),
            streaming_channels: ChannelPool::with_size_max(
                Duration::from_millis(strata_util::rpc::STREAMING_REQUEST_TIMEOUT_MS),
                CLIENT_POOL_SIZE_MAX,
            ),
            retry_budget,
        })
    }

    pub fn retry_budget(&self) -> Duration {
        self.retry_budget
    }

    /// Installs a map directly (tests, or a map pushed by other means).
    pub fn install(&self, map: PartitionMap) {
        let snapshot = Arc::new(MapSnapshot::new(map));
        if let Ok(mut guard) = self.map.write() {
            *guard = Some(snapshot);
        }
    }

    /// Version of the cached map, None before the first fetch.
    pub fn current_version(&self) -> Option<u64> {
        self.current().map(|snapshot| snapshot.version)
    }

    fn current(&self) -> Option<Arc<MapSnapshot>> {
        self.map.read().ok().and_then(|guard| guard.clone())
    }

    /// The cached map, fetching it first if there is none yet.
    pub async fn snapshot(&self) -> Result<Arc<MapSnapshot>, FrontendError> {
        if let Some(snapshot) = self.current() {
            return Ok(snapshot);
        }
        self.refresh(None).await?;
        self.current()
            .ok_or_else(|| FrontendError::Unavailable("no partition map".into()))
    }

    /// Fetches the map from a manager member. `stale_since` is when the caller's copy was
    /// fetched: when a newer copy arrived meanwhile, no call is made (refreshes coalesce).
    pub async fn refresh(&self, stale_since: Option<Instant>) -> Result<(), FrontendError> {
        let _guard = self.refresh_lock.lock().await;
        if let (Some(stale_since), Some(current)) = (stale_since, self.current()) {
            if current.fetched_at > stale_since {
                return Ok(());
            }
        }
        if self.managers.is_empty() {
            return Err(FrontendError::Config(
                "no manager addresses configured".into(),
            ));
        }
        let start = self.preferred_manager.load(Ordering::Relaxed);
        let mut last_error = String::new();
        for offset in 0..self.managers.len() {
            let index = (start + offset) % self.managers.len();
            let mut client = self.managers[index].clone();
            let call = client.get_partition_map(GetPartitionMapRequest {});
            match tokio::time::timeout(Duration::from_millis(MANAGER_TIMEOUT_MS), call).await {
                Ok(Ok(response)) => {
                    let map = response.into_inner();
                    self.preferred_manager.store(index, Ordering::Relaxed);
                    let fresh = Arc::new(MapSnapshot::new(map));
                    if let Ok(mut guard) = self.map.write() {
                        let keep_old = guard
                            .as_ref()
                            .is_some_and(|old| old.version > fresh.version);
                        if !keep_old {
                            tracing::debug!(
                                version = fresh.version,
                                ranges = fresh.ranges.len(),
                                "partition map refreshed"
                            );
                            *guard = Some(fresh);
                        }
                    }
                    return Ok(());
                }
                Ok(Err(status)) => last_error = format!("{}: {status}", self.manager_addrs[index]),
                Err(_) => last_error = format!("{}: timed out", self.manager_addrs[index]),
            }
            // Each member that fails delays every request waiting on this refresh: say which.
            tracing::info!(%last_error, "GetPartitionMap failed on a manager member; trying the next");
        }
        tracing::warn!(%last_error, "no manager member answered GetPartitionMap");
        Err(FrontendError::Unavailable(format!(
            "partition map: {last_error}"
        )))
    }

    /// The owner of `key`, refreshing the map while the key has no owner (within `retry`).
    pub async fn route(&self, key: &[u8], retry: &mut Retry) -> Result<Route, FrontendError> {
        loop {
            let stale_since = match self.snapshot().await {
                Ok(snapshot) => match snapshot.lookup(key) {
                    Some(range) if !range.owner_addr.is_empty() => return Ok(snapshot.route(range)),
                    _ => Some(snapshot.fetched_at),
                },
                Err(err) => {
                    tracing::debug!(%err, "no partition map yet");
                    None
                }
            };
            if !retry.wait().await {
                return Err(FrontendError::Unavailable("no owner for the key".into()));
            }
            if let Err(err) = self.refresh(stale_since).await {
                tracing::debug!(%err, "map refresh failed, will retry");
            }
        }
    }

    /// Every range overlapping `[low, high)` (`high` empty = +infinity), in key order.
    pub async fn overlapping(&self, low: &[u8], high: &[u8]) -> Result<Vec<Route>, FrontendError> {
        let snapshot = self.snapshot().await?;
        Ok(snapshot
            .ranges
            .iter()
            .filter(|r| keys::ranges_overlap(&r.low, &r.high, low, high))
            .map(|r| snapshot.route(r))
            .collect())
    }

    fn client(pool: &ChannelPool, addr: &str) -> Result<PartitionClient, FrontendError> {
        let channel = pool
            .get(addr)
            .map_err(|err| FrontendError::Unavailable(format!("{addr}: {}", err.reason)))?;
        Ok(PartitionServerClient::new(channel)
            .max_decoding_message_size(GRPC_MESSAGE_SIZE_BYTES_MAX)
            .max_encoding_message_size(GRPC_MESSAGE_SIZE_BYTES_MAX))
    }

    /// A client for unary RPCs (every call bounded by the request timeout).
    pub fn unary_client(&self, addr: &str) -> Result<PartitionClient, FrontendError> {
        Self::client(&self.unary_channels, addr)
    }

    /// A client for the RPCs that stream object bytes.
    pub fn streaming_client(&self, addr: &str) -> Result<PartitionClient, FrontendError> {
        Self::client(&self.streaming_channels, addr)
    }

    /// Calls `f` on the owner of `key`, retrying as the module doc says.
    pub async fn call<T, F, Fut>(
        &self,
        key: &[u8],
        streaming: bool,
        mut f: F,
    ) -> Result<(T, Route), FrontendError>
    where
        F: FnMut(PartitionClient, Route) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let mut retry = Retry::new(self.retry_budget);
        loop {
            let route = self.route(key, &mut retry).await?;
            let client = if streaming {
                self.streaming_client(&route.owner_addr)?
            } else {
                self.unary_client(&route.owner_addr)?
            };
            let status = match f(client, route.clone()).await {
                Ok(value) => return Ok((value, route)),
                Err(status) => status,
            };
            match classify(&status) {
                Verdict::Fail => return Err(FrontendError::Rpc(status)),
                Verdict::SlowDown => {
                    return Err(FrontendError::SlowDown(status.message().to_string()))
                }
                Verdict::Retry => {
                    crate::metrics::METRICS.routing_retries.inc();
                    tracing::debug!(owner = %route.owner_addr, code = ?status.code(), "retrying on a fresh map");
                    if !retry.wait().await {
                        return Err(FrontendError::Unavailable(format!(
                            "{}: {}",
                            route.owner_addr,
                            status.message()
                        )));
                    }
                    if let Err(err) = self.refresh(Some(route.map_fetched_at)).await {
                        tracing::debug!(%err, "map refresh failed, will retry");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(id: u64, low: &[u8], high: &[u8], owner: &str) -> RangeAssignment {
        RangeAssignment {
            range_id: id,
            low: low.to_vec(),
            high: high.to_vec(),
            owner_id: owner.into(),
            owner_addr: owner.into(),
            epoch: 1,
        }
    }

    #[test]
    fn lookup_finds_the_range_containing_a_key() {
        let snapshot = MapSnapshot::new(PartitionMap {
            version: 3,
            ranges: vec![range(2, b"m", b"", "b:1"), range(1, b"", b"m", "a:1")],
            leader_hint: String::new(),
        });
        assert_eq!(snapshot.lookup(b"a").map(|r| r.range_id), Some(1));
        assert_eq!(snapshot.lookup(b"").map(|r| r.range_id), Some(1));
        assert_eq!(snapshot.lookup(b"m").map(|r| r.range_id), Some(2));
        assert_eq!(snapshot.lookup(b"zzz").map(|r| r.range_id), Some(2));

        let gappy = MapSnapshot::new(PartitionMap {
            version: 1,
            ranges: vec![range(1, b"b", b"d", "a:1")],
            leader_hint: String::new(),
        });
        assert!(gappy.lookup(b"a").is_none());
        assert!(gappy.lookup(b"d").is_none());
    }

    #[test]
    fn statuses_are_classified() {
        use strata_types::error_detail::{to_status, NotOwner, UnavailableReason};
        let not_owner = NotOwner {
            range_id: RangeId::new(1),
            epoch: Epoch::new(2),
            owner_hint: None,
        }
        .into_status();
        assert_eq!(classify(&not_owner), Verdict::Retry);
        let loading = ErrorDetail::Unavailable {
            reason: UnavailableReason::Loading,
        };
        assert_eq!(classify(&to_status(loading, "x")), Verdict::Retry);
        assert_eq!(classify(&Status::unavailable("x")), Verdict::Retry);
        let throttled = ErrorDetail::Throttled { retry_after_ms: 5 };
        assert_eq!(classify(&to_status(throttled, "x")), Verdict::SlowDown);
        assert_eq!(
            classify(&Status::resource_exhausted("x")),
            Verdict::SlowDown
        );
        // A connection that broke before or during the call: retried on a fresh map.
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(
            classify(&Status::from_error(Box::new(reset))),
            Verdict::Retry
        );
        assert_eq!(
            classify(&Status::unknown("transport error")),
            Verdict::Retry
        );
        // A timeout may still apply on the owner: not sent again (it answers 503).
        let timeout = Status::from_error(Box::new(tonic::TimeoutExpired(())));
        assert_eq!(timeout.code(), Code::Cancelled);
        assert_eq!(classify(&timeout), Verdict::Fail);
        assert_eq!(
            classify(&Status::cancelled("Timeout expired")),
            Verdict::Fail
        );
        // A peer's verdict is final.
        assert_eq!(
            classify(&to_status(ErrorDetail::Internal, "disk on fire")),
            Verdict::Fail
        );
        assert_eq!(
            classify(&to_status(ErrorDetail::PreconditionFailed, "changed")),
            Verdict::Fail
        );
        assert_eq!(classify(&Status::not_found("x")), Verdict::Fail);
        assert_eq!(
            classify(&Status::failed_precondition("other")),
            Verdict::Fail
        );
    }

    #[tokio::test]
    async fn overlapping_ranges_in_order() {
        let router = Router::new(&[], Duration::from_millis(10)).unwrap();
        router.install(PartitionMap {
            version: 1,
            ranges: vec![
                range(3, b"p", b"", "c:1"),
                range(1, b"", b"f", "a:1"),
                range(2, b"f", b"p", "b:1"),
            ],
            leader_hint: String::new(),
        });
        let ids: Vec<RangeId> = router
            .overlapping(b"g", b"q")
            .await
            .unwrap()
            .iter()
            .map(|r| r.range_id)
            .collect();
        assert_eq!(ids, vec![RangeId::new(2), RangeId::new(3)]);
        let ids: Vec<RangeId> = router
            .overlapping(b"a", b"f")
            .await
            .unwrap()
            .iter()
            .map(|r| r.range_id)
            .collect();
        assert_eq!(ids, vec![RangeId::new(1)]);
    }

    #[tokio::test]
    async fn a_key_without_owner_gives_up_within_the_budget() {
        let router = Router::new(&[], Duration::from_millis(100)).unwrap();
        router.install(PartitionMap {
            version: 1,
            ranges: vec![range(1, b"", b"", "")],
            leader_hint: String::new(),
        });
        let started = Instant::now();
        let mut retry = Retry::new(router.retry_budget());
        let err = router.route(b"key", &mut retry).await.unwrap_err();
        assert!(matches!(err, FrontendError::Unavailable(_)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
