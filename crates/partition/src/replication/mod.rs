//! The replication shipper (issue 16): each partition server sends the versions its ranges
//! owe (see [`crate::replication_backlog`]) to their destination buckets, and commits how far
//! it got as the ranges' replication cursors ([`crate::replication_cursors`]).
//!
//! One task per loaded range ([`run_replication`] starts and stops them as ranges load and
//! unload), so a destination that answers slowly holds back only the ranges shipping to it.
//!
//! Order: a range's owed versions are taken lowest mark first, and the versions of one key go
//! one after another in that order (their marks follow their commits), while different keys go
//! in parallel (at most [`KEYS_IN_FLIGHT_MAX`]). A version whose key has an earlier version
//! still owed waits for it, so a destination never holds a version of a key without the ones
//! committed before it.
//!
//! Failures: a transient one (destination unreachable, busy, moving) keeps the version owed
//! and pauses the shipping of its bucket in that range (not the range's other buckets),
//! doubling from [`PAUSE_MS_MIN`] to [`PAUSE_MS_MAX`]; a
//! refusal no retry can change marks the version FAILED with its cause. Nothing is lost when
//! this server dies: what it had not confirmed is still PENDING above the committed watermark,
//! and the next owner's scan finds it (and the destination's apply is idempotent).

mod destinations;
pub mod metrics;
mod send;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use strata_proto::common::ReplicationConfig;
use strata_proto::partition::{GetReplicationStateResponse, RangeReplication};
use strata_types::keys;
use strata_types::{Epoch, RangeId};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::range::{RangeRef, FREEZE_OPEN};
use crate::replication_backlog::Owed;
use crate::replication_cursors::watermark_ms;
use crate::server::PartitionServerState;
use destinations::Destinations;
use send::{mark_failed, send, Sent};

/// How often each range's backlog is looked at.
const TICK_MS: u64 = 100;
/// Versions taken from a range's backlog per pass.
const BATCH_MAX: usize = 256;
/// Keys of one range sent at once.
pub const KEYS_IN_FLIGHT_MAX: usize = 8;
/// Pauses of a range after a transient failure.
const PAUSE_MS_MIN: u64 = 200;
const PAUSE_MS_MAX: u64 = 30_000;
/// The per-bucket gauges are rebuilt this often.
const METRICS_REFRESH_MS: u64 = 1_000;
/// Cursors are committed at most this often per range while it ships.
const CURSOR_COMMIT_MS: u64 = 1_000;

#[derive(Clone, Copy)]
struct Pause {
    until: Instant,
    pause_ms: u64,
}

/// The shipper's memory of one loaded range (a reload starts afresh).
#[derive(Default)]
struct RangeShipping {
    /// Source buckets whose shipping from this range waits after a transient failure.
    paused: BTreeMap<String, Pause>,
    last_commit: Option<Instant>,
    /// Per bucket, the highest mark sent since the committed cursors passed it: the cursors
    /// are committed until they do, so a sent version is shown COMPLETED.
    unsettled: BTreeMap<String, i64>,
}

pub async fn run_replication(state: Arc<PartitionServerState>, token: CancellationToken) {
    // One task per loaded range (a reload is a new epoch, so a new task): a destination that
    // answers slowly or not at all holds back only the ranges shipping to it.
    let mut shippers: HashMap<(RangeId, Epoch), CancellationToken> = HashMap::new();
    let tasks = TaskTracker::new();
    let mut last_refresh = Instant::now();
    let destinations = Arc::new(Destinations::new(&state.config.stamps));
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_millis(TICK_MS)) => {}
        }
        let ranges = state.ready_ranges();
        shippers.retain(|(id, epoch), stop| {
            let loaded = ranges
                .iter()
                .any(|r| r.bounds.range_id == *id && r.bounds.epoch == *epoch);
            if !loaded {
                stop.cancel();
            }
            loaded
        });
        if last_refresh.elapsed() >= Duration::from_millis(METRICS_REFRESH_MS) {
            metrics::refresh(&ranges);
            last_refresh = Instant::now();
        }
        for range in ranges {
            let key = (range.bounds.range_id, range.bounds.epoch);
            if shippers.contains_key(&key) {
                continue;
            }
            let stop = token.child_token();
            shippers.insert(key, stop.clone());
            let shipping = ship_range(state.clone(), destinations.clone(), range, stop);
            tasks.spawn(shipping);
        }
    }
    tasks.close();
    tasks.wait().await;
}

/// Ships one loaded range's owed versions until `stop` (the range was unloaded, or the server
/// stops).
async fn ship_range(
    state: Arc<PartitionServerState>,
    destinations: Arc<Destinations>,
    range: RangeRef,
    stop: CancellationToken,
) {
    let mut shipping = RangeShipping::default();
    let mut progressed = false;
    loop {
        // After a pass that sent versions the next one follows at once (more may be owed);
        // otherwise a commit that owes a version wakes the shipper, or the tick does (paused
        // buckets, the cursors' commit, a range that was not open).
        if progressed {
            if stop.is_cancelled() {
                return;
            }
            tokio::task::yield_now().await;
        } else {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = range.owed_noted() => {}
                _ = tokio::time::sleep(Duration::from_millis(TICK_MS)) => {}
            }
        }
        progressed = false;
        if range.is_poisoned() || range.freeze_state() != FREEZE_OPEN {
            continue;
        }
        progressed = pass(&state, &destinations, &range, &mut shipping).await;
    }
}

/// What this server's ranges holding keys of `bucket` report of its replication; for an
/// empty `bucket`, every bucket a range owes versions of.
pub fn state_of(state: &PartitionServerState, bucket: &str) -> GetReplicationStateResponse {
    let mut ranges = Vec::new();
    for range in state.ready_ranges() {
        if bucket.is_empty() {
            let owing: Vec<String> = range.backlog().by_bucket().into_keys().collect();
            ranges.extend(owing.iter().map(|owing| range_state(&range, owing)));
            continue;
        }
        let low = keys::object_prefix(bucket);
        let high = keys::prefix_end(&low).unwrap_or_default();
        let bounds = &range.bounds;
        if keys::ranges_overlap(&bounds.low, &bounds.high, &low, &high) {
            ranges.push(range_state(&range, bucket));
        }
    }
    GetReplicationStateResponse { ranges }
}

/// One range's replication of `bucket`.
fn range_state(range: &RangeRef, bucket: &str) -> RangeReplication {
    let bounds = &range.bounds;
    let committed_watermark_ms = range.replication_watermark_ms(bucket);
    let watermark_ms = range
        .watermarks_for_readers()
        .map_or(0, |live| watermark_ms(&live, bucket));
    let owed = range
        .backlog()
        .by_bucket()
        .remove(bucket)
        .unwrap_or_default();
    let (owed_versions, oldest_owed_mark_ms) = (owed.versions, owed.lowest_mark_ms);
    // A mark above wall time (a range clock pushed ahead by a faster-clocked owner) must
    // still hold the watermark below its version.
    let watermark_ms = if owed_versions > 0 && watermark_ms > 0 {
        watermark_ms.min(oldest_owed_mark_ms)
    } else {
        watermark_ms
    };
    RangeReplication {
        range_id: bounds.range_id.get(),
        epoch: bounds.epoch.get(),
        low: bounds.low.clone(),
        high: bounds.high.clone(),
        watermark_ms,
        committed_watermark_ms,
        owed_versions,
        oldest_owed_mark_ms,
        bucket: bucket.to_string(),
        owed_bytes: owed.bytes,
    }
}

/// One look at a range: scan if needed, send a batch, commit the cursors when due. Answers
/// whether a version left the backlog (arrived, failed for good, or gone).
async fn pass(
    state: &PartitionServerState,
    destinations: &Destinations,
    range: &RangeRef,
    shipping: &mut RangeShipping,
) -> bool {
    if range.backlog().needs_scan() {
        let scanned = range.clone();
        // The scan walks the whole index: off the async workers.
        if tokio::task::spawn_blocking(move || scanned.scan_owed())
            .await
            .is_err()
        {
            return false;
        }
    }
    let now = Instant::now();
    let paused: BTreeSet<String> = shipping
        .paused
        .iter()
        .filter(|(_, pause)| now < pause.until)
        .map(|(bucket, _)| bucket.clone())
        .collect();
    let before = range.backlog().len();
    ship_batch(state, destinations, range, shipping, &paused).await;
    let progressed = range.backlog().len() < before;
    commit_cursors(range, shipping).await;
    progressed
}

/// Sends the lowest-marked owed versions of the buckets not `paused`, key by key.
async fn ship_batch(
    state: &PartitionServerState,
    destinations: &Destinations,
    range: &RangeRef,
    shipping: &mut RangeShipping,
    paused: &BTreeSet<String>,
) {
    let mut batch = range.backlog().lowest_except(BATCH_MAX, paused);
    if batch.is_empty() {
        return;
    }
    let mut configs: HashMap<String, Option<ReplicationConfig>> = HashMap::new();
    let mut unreadable = BTreeSet::new();
    for owed in &batch {
        if configs.contains_key(&owed.bucket) || unreadable.contains(&owed.bucket) {
            continue;
        }
        match state.bucket_record(&owed.bucket).await {
            // A copy this stamp does not serve (moved away, or a move's copy being filled)
            // ships nothing: the home ships what it owes (a move carries the marks there),
            // and what a fail-over left behind was reported lost, so it must not arrive now.
            Ok(Some(record)) if !record.moved_to.is_empty() || record.importing => {
                let cause = format!("bucket {} is not served here", owed.bucket);
                pause(range, shipping, &owed.bucket, &cause);
                unreadable.insert(owed.bucket.clone());
            }
            Ok(record) => {
                configs.insert(owed.bucket.clone(), record.and_then(|r| r.replication));
            }
            Err(err) => {
                let cause = format!("reading bucket {}: {err}", owed.bucket);
                pause(range, shipping, &owed.bucket, &cause);
                unreadable.insert(owed.bucket.clone());
            }
        }
    }
    batch.retain(|owed| !unreadable.contains(&owed.bucket));
    // Per key, in mark order (the batch is): one key's versions go one after another.
    let mut by_key: BTreeMap<(String, String), Vec<Owed>> = BTreeMap::new();
    for owed in batch {
        let key = (owed.bucket.clone(), owed.key.clone());
        by_key.entry(key).or_default().push(owed);
    }
    let buckets: BTreeSet<String> = by_key.keys().map(|(bucket, _)| bucket.clone()).collect();
    let configs = &configs;
    let outcomes: Vec<KeyOutcome> = futures::stream::iter(by_key.into_values())
        .map(|versions| ship_key(state, destinations, range, configs, versions))
        .buffer_unordered(KEYS_IN_FLIGHT_MAX)
        .collect()
        .await;
    let mut retries: BTreeMap<String, String> = BTreeMap::new();
    for (arrived, retry) in outcomes {
        for (mark_ms, bucket) in arrived {
            let highest = shipping.unsettled.entry(bucket).or_insert(mark_ms);
            *highest = (*highest).max(mark_ms);
        }
        if let Some((bucket, cause)) = retry {
            retries.entry(bucket).or_insert(cause);
        }
    }
    for bucket in buckets {
        match retries.get(&bucket) {
            Some(cause) => pause(range, shipping, &bucket, cause),
            None => {
                shipping.paused.remove(&bucket);
            }
        }
    }
}

/// The (mark, bucket) of each version of one key that arrived, and the (bucket, cause) it
/// stopped early for.
type KeyOutcome = (Vec<(i64, String)>, Option<(String, String)>);

/// Sends one key's owed versions in order; stops at the first that must be retried.
async fn ship_key(
    state: &PartitionServerState,
    destinations: &Destinations,
    range: &RangeRef,
    configs: &HashMap<String, Option<ReplicationConfig>>,
    versions: Vec<Owed>,
) -> KeyOutcome {
    let mut arrived = Vec::new();
    for owed in versions {
        let config = configs.get(&owed.bucket).and_then(Option::as_ref);
        match send(state, destinations, range, config, &owed).await {
            Sent::Arrived { size_bytes } => {
                metrics::SHIPPED.inc();
                metrics::SHIPPED_BYTES.inc_by(size_bytes);
                let waited_ms = strata_util::now_ms().saturating_sub(owed.mark_ms).max(0);
                metrics::LATENCY.observe(waited_ms as f64 / 1_000.0);
                arrived.push((owed.mark_ms, owed.bucket.clone()));
                range.backlog().done(&owed);
            }
            Sent::Gone => range.backlog().done(&owed),
            Sent::Failed(cause) => {
                if let Err(err) = mark_failed(state, range, &owed, &cause).await {
                    return (
                        arrived,
                        Some((owed.bucket, format!("marking FAILED: {err}"))),
                    );
                }
                metrics::FAILED.inc();
                tracing::warn!(bucket = %owed.bucket, key = %owed.key, version_id = %owed.version_id, %cause, "replication of a version failed for good");
                range.backlog().done(&owed);
            }
            // The key's later versions wait for this one.
            Sent::Retry(cause) => {
                metrics::RETRIED.inc();
                return (arrived, Some((owed.bucket, cause)));
            }
        }
    }
    (arrived, None)
}

fn pause(range: &RangeRef, shipping: &mut RangeShipping, bucket: &str, cause: &str) {
    let previous_ms = shipping.paused.get(bucket).map_or(0, |p| p.pause_ms);
    let pause_ms = (previous_ms * 2).clamp(PAUSE_MS_MIN, PAUSE_MS_MAX);
    let until = Instant::now() + Duration::from_millis(pause_ms);
    shipping
        .paused
        .insert(bucket.to_string(), Pause { until, pause_ms });
    tracing::info!(range_id = %range.bounds.range_id, bucket, pause_ms, cause, "replication of a bucket paused; retried after the pause");
}

/// Commits the cursors the backlog allows when versions were sent that the committed cursors
/// do not cover yet, at most every [`CURSOR_COMMIT_MS`] while versions are still owed.
async fn commit_cursors(range: &RangeRef, shipping: &mut RangeShipping) {
    if shipping.unsettled.is_empty() {
        return;
    }
    let recently = shipping
        .last_commit
        .is_some_and(|at| at.elapsed() < Duration::from_millis(CURSOR_COMMIT_MS));
    if recently && !range.backlog().is_empty() {
        return;
    }
    let Some(cursors) = range.current_watermarks() else {
        return;
    };
    if let Err(err) = range.commit_replication_cursors(cursors).await {
        tracing::warn!(range_id = %range.bounds.range_id, %err, "committing replication cursors failed; retried");
        return;
    }
    shipping.last_commit = Some(Instant::now());
    let committed = range.replication_cursors();
    shipping
        .unsettled
        .retain(|bucket, mark_ms| *mark_ms >= watermark_ms(&committed, bucket));
}
