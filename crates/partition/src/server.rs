//! The set of ranges this partition server serves, kept in step with the partition manager.
//!
//! Every heartbeat interval the server tells the manager's leader which ranges it serves (and
//! under which epoch); the answer lists the ranges it must serve. New or re-epoched ranges are
//! loaded from their streams in the background (requests meanwhile get "loading", which the
//! front-end retries), ranges no longer assigned are dropped at once, and poisoned ranges (a
//! failed log append) are reloaded.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use strata_proto::manager::partition_manager_client::PartitionManagerClient;
use strata_proto::manager::{
    RangeAssignment, ServedRange, ServerHeartbeat, ServerHeartbeatResponse,
};
use strata_proto::partition::partition_server_client::PartitionServerClient;
use strata_stream::StreamClient;
use strata_types::error_detail::NotOwner;
use strata_types::{Epoch, RangeId};
use strata_util::rpc::{Channel, ChannelPool};
use tokio_util::sync::CancellationToken;

pub use crate::config::PartitionServerConfig;
use crate::error::PartitionError;
use crate::range::{Range, RangeBounds, RangeRef};
use crate::throttle::Throttle;

enum Slot {
    Loading(RangeBounds),
    Ready(RangeRef),
}

impl Slot {
    fn bounds(&self) -> &RangeBounds {
        match self {
            Slot::Loading(bounds) => bounds,
            Slot::Ready(range) => &range.bounds,
        }
    }
}

pub struct PartitionServerState {
    pub config: PartitionServerConfig,
    pub streams: StreamClient,
    ranges: RwLock<BTreeMap<RangeId, Slot>>,
    throttle: Throttle,
    /// The whole partition map as the manager's last heartbeat answer listed it (every range,
    /// every owner): where bucket records of other servers' ranges are read.
    map: RwLock<Vec<RangeAssignment>>,
    /// When the last heartbeat the manager's leader answered was sent (the lease's start).
    lease_from: RwLock<Option<Instant>>,
    /// Write leases on buckets, held and granted ([`crate::bucket_gate`]).
    pub buckets: crate::bucket_gate::BucketGate,
    /// The range ids of the last heartbeat's map, all from that one answer
    /// ([`crate::leftovers`]).
    known_ids: RwLock<crate::streams::KnownIds>,
    /// Channels to other partition servers (bucket records and object counts of their
    /// ranges), reused: the same few owners are asked again and again.
    peers: ChannelPool,
}

/// Whether a call takes one request from the range's and bucket's budgets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charge {
    /// A request of its own (every call but the one below).
    Request,
    /// The second half of one S3 request whose first half was charged (a GET's read after
    /// its HeadObject): S3 counts the GET once.
    AlreadyCharged,
}

impl PartitionServerState {
    pub fn new(config: PartitionServerConfig, streams: StreamClient) -> Arc<Self> {
        Arc::new(Self {
            throttle: Throttle::new(&config.throttle),
            config,
            streams,
            ranges: RwLock::new(BTreeMap::new()),
            map: RwLock::new(Vec::new()),
            lease_from: RwLock::new(None),
            buckets: Default::default(),
            known_ids: Default::default(),
            peers: ChannelPool::unary(),
        })
    }

    /// Refuses to serve once the lease ran out (see [`PartitionServerConfig::lease_ms`]).
    fn check_lease(&self) -> Result<(), PartitionError> {
        let from = *self
            .lease_from
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        let silent = from.map(|from| from.elapsed()).unwrap_or(Duration::MAX);
        if silent >= Duration::from_millis(self.config.lease_ms) {
            return Err(PartitionError::LeaseExpired {
                silent_ms: u64::try_from(silent.as_millis()).unwrap_or(u64::MAX),
            });
        }
        Ok(())
    }

    /// Where the map of the last heartbeat says `key` lives (for NotOwner answers).
    fn owner_hint(&self, key: &[u8]) -> NotOwner {
        let map = self.map.read().unwrap_or_else(|poison| poison.into_inner());
        match map
            .iter()
            .find(|a| strata_types::keys::range_contains(&a.low, &a.high, key))
        {
            Some(a) => NotOwner {
                range_id: RangeId::new(a.range_id),
                epoch: Epoch::new(a.epoch),
                owner_hint: (!a.owner_addr.is_empty()).then(|| a.owner_addr.clone()),
            },
            None => NotOwner {
                range_id: RangeId::new(0),
                epoch: Epoch::ZERO,
                owner_hint: None,
            },
        }
    }

    /// The range that owns `key` for a client request on `bucket`, once the request is within
    /// the range's and the bucket's request-rate limits (else [`PartitionError::SlowDown`]).
    pub fn admit(&self, key: &[u8], bucket: &str) -> Result<RangeRef, PartitionError> {
        self.admit_as(key, bucket, Charge::Request)
    }

    /// [`Self::admit`], charging the request budgets only for [`Charge::Request`].
    pub fn admit_as(
        &self,
        key: &[u8],
        bucket: &str,
        charge: Charge,
    ) -> Result<RangeRef, PartitionError> {
        let range = self.range_for(key)?;
        if range.freeze_state() != crate::range::FREEZE_OPEN {
            return Err(PartitionError::Frozen {
                range_id: range.bounds.range_id,
            });
        }
        range.load.record_request(key, Instant::now());
        if charge == Charge::Request {
            self.throttle.admit(range.bounds.range_id, bucket)?;
        }
        Ok(range)
    }

    /// Takes one request of `bucket` on range `range_id` from the request-rate budgets.
    pub fn throttle(&self, range_id: RangeId, bucket: &str) -> Result<(), PartitionError> {
        self.throttle.admit(range_id, bucket)
    }

    /// The loaded range that owns `key`, or why there is none.
    pub fn range_for(&self, key: &[u8]) -> Result<RangeRef, PartitionError> {
        self.check_lease()?;
        let ranges = self
            .ranges
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        for slot in ranges.values() {
            if !slot.bounds().contains(key) {
                continue;
            }
            return match slot {
                Slot::Ready(range) if !range.is_poisoned() => Ok(range.clone()),
                Slot::Ready(range) => Err(PartitionError::Loading {
                    range_id: range.bounds.range_id,
                }),
                Slot::Loading(bounds) => Err(PartitionError::Loading {
                    range_id: bounds.range_id,
                }),
            };
        }
        drop(ranges);
        Err(PartitionError::NotOwner(self.owner_hint(key)))
    }

    /// A ready range this server serves, by id (for the manager's reshape calls).
    pub fn ready_range(&self, range_id: RangeId) -> Option<RangeRef> {
        let ranges = self
            .ranges
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        match ranges.get(&range_id) {
            Some(Slot::Ready(range)) if !range.is_poisoned() => Some(range.clone()),
            _ => None,
        }
    }

    /// Every ready range, in key order.
    pub fn ready_ranges(&self) -> Vec<RangeRef> {
        let ranges = self
            .ranges
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        let mut ready: Vec<RangeRef> = ranges
            .values()
            .filter_map(|slot| match slot {
                Slot::Ready(range) => Some(range.clone()),
                Slot::Loading(_) => None,
            })
            .collect();
        ready.sort_by(|a, b| a.bounds.low.cmp(&b.bounds.low));
        ready
    }

    /// The contiguous run of ready ranges this server serves from the one containing `key` on
    /// (each next range starts at the previous one's high), in key order: what a listing
    /// starting at `key` may scan before the next range, served elsewhere, breaks the run.
    /// NotOwner (with the map's range id and epoch for `key`) or Loading like [`Self::range_for`].
    pub fn run_from(&self, key: &[u8]) -> Result<Vec<RangeRef>, PartitionError> {
        let first = match self.range_for(key) {
            Ok(range) => range,
            Err(PartitionError::NotOwner(_)) => {
                let map = self.map.read().unwrap_or_else(|poison| poison.into_inner());
                let known = map
                    .iter()
                    .find(|a| strata_types::keys::range_contains(&a.low, &a.high, key));
                return Err(PartitionError::NotOwner(NotOwner {
                    range_id: RangeId::new(known.map_or(0, |a| a.range_id)),
                    epoch: Epoch::new(known.map_or(0, |a| a.epoch)),
                    owner_hint: known
                        .map(|a| a.owner_addr.clone())
                        .filter(|addr| !addr.is_empty()),
                }));
            }
            Err(err) => return Err(err),
        };
        let ready = self.ready_ranges();
        let mut run = vec![first];
        loop {
            let high = run[run.len() - 1].bounds.high.clone();
            if high.is_empty() {
                break;
            }
            match ready
                .iter()
                .find(|r| r.bounds.low == high && !r.is_poisoned())
            {
                Some(next) => run.push(next.clone()),
                None => break,
            }
        }
        Ok(run)
    }

    /// Serves the given assignments as the manager's heartbeat answer would (loads the ranges
    /// assigned to this server from their streams in the background): for tests and tools.
    pub fn assign(self: &Arc<Self>, assignments: Vec<RangeAssignment>) {
        // As a heartbeat answer does: it also starts a lease.
        *self
            .lease_from
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = Some(Instant::now());
        self.reconcile(assignments);
    }

    fn serving(&self) -> Vec<ServedRange> {
        let now = Instant::now();
        self.ready_ranges()
            .into_iter()
            .map(|range| {
                let load = range.load.report(now);
                let size = range.load.size(now, || range.size_report());
                ServedRange {
                    range_id: range.bounds.range_id.get(),
                    epoch: range.bounds.epoch.get(),
                    requests_per_sec: load.requests_per_sec,
                    bytes_per_sec: load.bytes_per_sec,
                    keys: size.keys,
                    size_bytes: size.bytes,
                    middle_key: size.middle_key,
                    sampled_keys: load.sampled_keys,
                    frozen_for_ms: u64::try_from(range.frozen_for().as_millis())
                        .unwrap_or(u64::MAX),
                }
            })
            .collect()
    }

    /// A bucket's record, from this server's own range when it holds it, else from its owner
    /// (through the partition map of the last heartbeat). None when there is no such bucket.
    pub async fn bucket_record(
        &self,
        bucket: &str,
    ) -> Result<Option<strata_proto::common::BucketMeta>, PartitionError> {
        Ok(self.bucket_record_with_lease(bucket, false).await?.0)
    }

    /// [`Self::bucket_record`] and whether a DeleteBucket holds it (on the owner's clock);
    /// `lease`: the caller takes a write lease on the answer ([`crate::bucket_gate`]).
    pub async fn bucket_record_with_lease(
        &self,
        bucket: &str,
        lease: bool,
    ) -> Result<(Option<strata_proto::common::BucketMeta>, bool), PartitionError> {
        let key = strata_types::keys::bucket_key(bucket);
        match self.range_for(&key) {
            Ok(range) => {
                if lease {
                    self.buckets.note_grant(bucket);
                }
                let record = match range.get(&key) {
                    Some(crate::range::IndexValue::Bucket(record)) => Some(record),
                    _ => None,
                };
                let now_ms = strata_util::now_ms();
                let deleting = record
                    .as_ref()
                    .is_some_and(|r| crate::bucket_gate::deleting(r, now_ms));
                return Ok((record.map(crate::records::wire::bucket_meta), deleting));
            }
            Err(PartitionError::NotOwner(_)) => {}
            Err(err) => return Err(err),
        }
        let owner = self.owner_of(&key).ok_or(PartitionError::Loading {
            range_id: RangeId::new(0),
        })?;
        let response = self
            .peer(&owner)
            .map_err(|err| PartitionError::Stream(format!("bucket record owner {owner}: {err}")))?
            .get_bucket(strata_proto::partition::GetBucketRequest {
                name: bucket.to_string(),
                lease,
            })
            .await
            .map_err(|status| {
                PartitionError::Stream(format!("reading bucket record from {owner}: {status}"))
            })?
            .into_inner();
        Ok((response.bucket, response.deleting))
    }

    /// The address of the server the last heartbeat's map says owns `key`, if any.
    pub(crate) fn owner_of(&self, key: &[u8]) -> Option<String> {
        let map = self.map.read().unwrap_or_else(|poison| poison.into_inner());
        map.iter()
            .find(|a| strata_types::keys::range_contains(&a.low, &a.high, key))
            .map(|a| a.owner_addr.clone())
            .filter(|addr| !addr.is_empty())
    }

    /// A client of the partition server at `addr` (another owner), on a pooled channel.
    pub(crate) fn peer(
        &self,
        addr: &str,
    ) -> Result<PartitionServerClient<Channel>, strata_util::rpc::BadAddress> {
        Ok(PartitionServerClient::new(self.peers.get(addr)?))
    }

    /// The range ids of the map of the last heartbeat answer ([`crate::leftovers`]).
    pub fn known_ids(&self) -> crate::streams::KnownIds {
        self.known_ids
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    /// Brings the served set in line with the manager's assignments.
    fn reconcile(self: &Arc<Self>, assignments: Vec<RangeAssignment>) {
        *self
            .map
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = assignments.clone();
        let wanted: BTreeMap<RangeId, RangeBounds> = assignments
            .into_iter()
            .filter(|a| a.owner_id == self.config.server_id)
            .map(|a| {
                let range_id = RangeId::new(a.range_id);
                let bounds = RangeBounds {
                    range_id,
                    low: a.low,
                    high: a.high,
                    epoch: Epoch::new(a.epoch),
                };
                (range_id, bounds)
            })
            .collect();
        let mut to_load = Vec::new();
        {
            let mut ranges = self
                .ranges
                .write()
                .unwrap_or_else(|poison| poison.into_inner());
            ranges.retain(|range_id, slot| {
                let keep = wanted.get(range_id) == Some(slot.bounds());
                if !keep {
                    tracing::info!(
                        %range_id,
                        "range no longer assigned here under this epoch; dropped"
                    );
                }
                keep
            });
            for (range_id, bounds) in wanted {
                let reload = match ranges.get(&range_id) {
                    None => true,
                    Some(Slot::Ready(range)) => range.is_poisoned(),
                    Some(Slot::Loading(_)) => false,
                };
                if reload {
                    ranges.insert(range_id, Slot::Loading(bounds.clone()));
                    to_load.push(bounds);
                }
            }
        }
        for bounds in to_load {
            let state = self.clone();
            tokio::spawn(async move { state.load(bounds).await });
        }
    }

    async fn load(self: Arc<Self>, bounds: RangeBounds) {
        let range_id = bounds.range_id;
        let result = Range::load(self.streams.clone(), bounds.clone()).await;
        let mut ranges = self
            .ranges
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        // Only install the result if the assignment did not change while we were loading.
        let still_wanted = matches!(ranges.get(&range_id), Some(Slot::Loading(b)) if *b == bounds);
        match result {
            Ok(range) if still_wanted => {
                ranges.insert(range_id, Slot::Ready(Arc::new(range)));
            }
            Ok(_) => tracing::info!(%range_id, "assignment changed while loading; load discarded"),
            Err(err) => {
                tracing::warn!(%range_id, %err, "loading range failed; retrying on the next heartbeat");
                if still_wanted {
                    ranges.remove(&range_id);
                }
            }
        }
    }

    /// Checkpoints every range that has logged enough since its last checkpoint (or every
    /// range with anything new when `force`).
    pub async fn checkpoint_due(&self, force: bool) {
        for range in self.ready_ranges() {
            let due = range.entries_since_checkpoint();
            if due == 0 || (!force && due < self.config.checkpoint_every_entries) {
                continue;
            }
            if let Err(err) = range.checkpoint().await {
                tracing::warn!(range_id = %range.bounds.range_id, %err, "checkpoint failed");
            }
        }
    }
}

/// Bound on one heartbeat call (a member that does not answer this fast is skipped).
const HEARTBEAT_CALL_TIMEOUT_MS: u64 = 500;

/// Talks to whichever manager member leads, following leader hints.
struct ManagerLink {
    addrs: Vec<String>,
    current: usize,
    /// One channel per member, every call bounded by [`HEARTBEAT_CALL_TIMEOUT_MS`]: short, so
    /// a heartbeat stuck on a paused or partitioned member does not outlast the lease while
    /// another member could answer.
    channels: ChannelPool,
}

impl ManagerLink {
    async fn heartbeat(&mut self, beat: ServerHeartbeat) -> Option<ServerHeartbeatResponse> {
        // Each member once, plus one hop to a hinted leader per member: bounded.
        for _ in 0..(2 * self.addrs.len()).max(1) {
            let addr = self.addrs[self.current % self.addrs.len()].clone();
            let channel = match self.channels.get(&addr) {
                Ok(channel) => channel,
                Err(_) => {
                    self.current += 1;
                    continue;
                }
            };
            let mut client = PartitionManagerClient::new(channel);
            match client.heartbeat(beat.clone()).await {
                Ok(response) => return Some(response.into_inner()),
                Err(status) if not_leader_hint(&status).is_some() => {
                    let hint = not_leader_hint(&status).flatten();
                    match self.addrs.iter().position(|a| Some(a) == hint.as_ref()) {
                        Some(leader) => self.current = leader,
                        None => self.current += 1,
                    }
                }
                Err(status) => {
                    tracing::debug!(%addr, %status, "manager heartbeat failed");
                    self.current += 1;
                }
            }
        }
        None
    }
}

/// When a manager member answered that it does not lead: the leader it named, if any.
fn not_leader_hint(status: &tonic::Status) -> Option<Option<String>> {
    match strata_types::error_detail::from_status(status)? {
        strata_types::ErrorDetail::NotLeader { leader_hint } => Some(leader_hint),
        _ => None,
    }
}

/// Heartbeats until `token` is cancelled, reconciling ranges with each answer. Checkpoints run
/// in their own task ([`run_checkpoints`]) so a large one never delays a heartbeat past the
/// manager's server timeout.
pub async fn run_heartbeats(state: Arc<PartitionServerState>, token: CancellationToken) {
    let mut link = ManagerLink {
        addrs: state.config.manager_addrs.clone(),
        current: 0,
        channels: ChannelPool::new(Duration::from_millis(HEARTBEAT_CALL_TIMEOUT_MS)),
    };
    let interval = Duration::from_millis(state.config.heartbeat_interval_ms.max(50));
    loop {
        let beat = ServerHeartbeat {
            server_id: state.config.server_id.clone(),
            addr: state.config.advertise_addr.clone(),
            serving: state.serving(),
            http_addr: state.config.http_addr.clone(),
        };
        let sent = Instant::now();
        if let Some(answer) = link.heartbeat(beat).await {
            *state
                .lease_from
                .write()
                .unwrap_or_else(|poison| poison.into_inner()) = Some(sent);
            // One snapshot of one committed map: live ranges, next id and reservations agree.
            *state
                .known_ids
                .write()
                .unwrap_or_else(|poison| poison.into_inner()) = crate::streams::KnownIds {
                live: answer
                    .assignments
                    .iter()
                    .map(|a| RangeId::new(a.range_id))
                    .collect(),
                next_range_id: RangeId::new(answer.next_range_id),
                reserved: answer
                    .reserved_range_ids
                    .iter()
                    .copied()
                    .map(RangeId::new)
                    .collect(),
            };
            state.reconcile(answer.assignments);
        }
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// How often ranges are checked for a due checkpoint.
const CHECKPOINT_CHECK_INTERVAL_MS: u64 = 1_000;

/// Writes checkpoints when due until `token` is cancelled, then one last checkpoint of what was
/// logged since, so the next load replays little.
pub async fn run_checkpoints(state: Arc<PartitionServerState>, token: CancellationToken) {
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_millis(CHECKPOINT_CHECK_INTERVAL_MS)) => {}
        }
        state.checkpoint_due(false).await;
    }
    state.checkpoint_due(true).await;
}

/// Runs a compaction pass over every ready range each `compaction.interval_ms`, one range at
/// a time (each pass bounded in bytes and paced), until `token` is cancelled. Its own task, so
/// neither heartbeats nor checkpoints wait for it.
pub async fn run_compaction(state: Arc<PartitionServerState>, token: CancellationToken) {
    let config = state.config.compaction.clone();
    let interval = Duration::from_millis(config.interval_ms.max(100));
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
        for range in state.ready_ranges() {
            if token.is_cancelled() || range.is_poisoned() {
                continue;
            }
            let pass = range.compact(&config);
            let result = tokio::select! {
                _ = token.cancelled() => break,
                result = pass => result,
            };
            if let Err(err) = result {
                tracing::warn!(range_id = %range.bounds.range_id, %err, "compaction pass failed; retried next interval");
            }
        }
    }
}
