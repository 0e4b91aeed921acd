//! One loaded range partition: its sorted index and the streams that make it durable.
//!
//! Commit path: `commit()` takes the range's commit lock, appends one `LogEntry` (next
//! sequence) to the log stream (as one record, or as several when it exceeds one: see
//! [`crate::format`]), and only after the stream layer acknowledged it (durable on every
//! replica) applies it to the in-memory index. A failed append poisons the range: the
//! in-memory index may now differ from what the log holds, so the server reloads the range
//! from its streams before serving it again. So does a commit whose caller went away during the
//! append (a front-end killed mid-request drops the RPC's future): the record may land in the
//! log while the index never hears of it, and the next commit would reuse its sequence.
//!
//! Load path: seal the log's open extent (fencing any previous owner's writer), read the newest
//! complete checkpoint, then replay every log record after it, in sequence order.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::records::{
    chunk_location, CheckpointBegin, ChunkLocation, CommitOrigin, LogEntry, Mutation, ObjectRecord,
    RecentWrite, ReplicationCursors,
};
use bytes::Bytes;
use strata_stream::{RecordPos, StreamClient, StreamWriter};
use strata_types::{Epoch, ExtentId, RangeId};

use crate::error::PartitionError;
use crate::index::apply_changes;
use crate::load::LoadMeter;
use crate::persist::{
    append_records, log_records, newest_checkpoint, replay_log, write_checkpoint,
};
use crate::recent_writes::RecentWrites;

mod replication;

pub use crate::index::{Change, IndexValue};
pub use crate::persist::CommitState;
use crate::streams::stream_error;
pub use crate::streams::stream_names;
pub use crate::uploads::{UploadGuard, UploadRegistry};

/// Changes per commit that background work (lifecycle) batches up to. Not a limit of a
/// commit: one carries any number of changes (completing a 10,000-part upload over a versioned
/// key makes 10,003), in several log records when they exceed one (see [`crate::format`]).
pub const CHANGES_PER_COMMIT_MAX: usize = 10_002;

/// The assignment a range is loaded under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeBounds {
    pub range_id: RangeId,
    pub low: Vec<u8>,
    /// Empty means +infinity.
    pub high: Vec<u8>,
    pub epoch: Epoch,
}

impl RangeBounds {
    pub fn contains(&self, key: &[u8]) -> bool {
        strata_types::keys::range_contains(&self.low, &self.high, key)
    }
}

pub struct Range {
    pub bounds: RangeBounds,
    index: RwLock<BTreeMap<Vec<u8>, IndexValue>>,
    commit: tokio::sync::Mutex<CommitState>,
    checkpoint_lock: tokio::sync::Mutex<()>,
    log: StreamWriter,
    data: StreamWriter,
    checkpoints: StreamWriter,
    client: StreamClient,
    entries_since_checkpoint: AtomicU64,
    poisoned: AtomicBool,
    /// Recent object writes by write id (see [`crate::recent_writes`]).
    recent_writes: Mutex<RecentWrites>,
    /// Uploads whose chunks are in the data stream but not (yet) in the index.
    pub(crate) uploads: Arc<UploadRegistry>,
    /// At most one compaction pass at a time (see [`crate::compaction`]).
    pub(crate) compaction_lock: tokio::sync::Mutex<()>,
    /// Requests, bytes and key samples reported to the manager ([`crate::load`]).
    pub load: LoadMeter,
    /// [`FREEZE_OPEN`], [`FREEZE_DRAINING`] or [`FREEZE_FROZEN`] (a split or merge in
    /// preparation, see [`crate::reshape`]).
    freeze: AtomicU8,
    frozen_at: Mutex<Option<std::time::Instant>>,
    /// When this server loaded the range: write leases on bucket records it holds may have
    /// been granted by the previous owner until about then (see [`crate::bucket_gate`]).
    pub loaded_at: std::time::Instant,
    /// The range's clock as of the last commit (`CommitState::committed_ms`), readable
    /// without the commit lock by code that holds it (version stamps never fall below it).
    clock_ms: AtomicI64,
    /// A copy of `CommitState::replication`, readable without the commit lock (HEAD and GET
    /// show COMPLETED from it, see [`crate::replication_cursors`]).
    replication: RwLock<ReplicationCursors>,
    /// The versions the range still owes its destinations ([`crate::replication_backlog`]).
    backlog: Mutex<crate::replication_backlog::Backlog>,
    /// Signalled when a commit adds owed versions: the range's shipper wakes at once rather
    /// than at its next tick (a permit is kept when it is not waiting, so none is lost).
    owed_noted: tokio::sync::Notify,
}

/// Serving normally.
pub const FREEZE_OPEN: u8 = 0;
/// New requests are refused (retried by front-ends); admitted ones may still commit.
pub const FREEZE_DRAINING: u8 = 1;
/// Nothing commits any more: the index is final until the range is replaced or renewed.
pub const FREEZE_FROZEN: u8 = 2;

impl Range {
    /// Loads a range from its streams: fence, newest checkpoint, log replay.
    pub async fn load(client: StreamClient, bounds: RangeBounds) -> Result<Range, PartitionError> {
        let (log_name, data_name, checkpoint_name) = stream_names(bounds.range_id);
        let log = client.open(&log_name).await.map_err(stream_error)?;
        // Fence: whoever wrote this log before can no longer append to its open extent.
        log.seal_current().await.map_err(stream_error)?;
        let data = client.open(&data_name).await.map_err(stream_error)?;
        // Fence the data stream as well: uploads still streaming on a previous owner (after a
        // move, a pause that is later resumed, or a reload) must not go on appending to the
        // extent this owner appends to, or one writer's full-extent seal could cut the other's
        // acknowledged chunks. Their next append fails (fenced); they were never committed.
        data.seal_current().await.map_err(stream_error)?;
        let checkpoints = client.open(&checkpoint_name).await.map_err(stream_error)?;
        // Fence checkpoints too: a previous owner must not write (or trim after) a checkpoint
        // once we serve the range.
        checkpoints.seal_current().await.map_err(stream_error)?;

        let mut derived_from = Vec::new();
        let mut recent_writes = RecentWrites::default();
        let (mut index, mut state) = match newest_checkpoint(&client, &checkpoint_name).await? {
            Some(checkpoint) => {
                let now_ms = strata_util::now_ms();
                for write in checkpoint.recent_writes {
                    recent_writes.restore(write, now_ms);
                }
                let begin = checkpoint.begin;
                let index: BTreeMap<Vec<u8>, IndexValue> = checkpoint
                    .entries
                    .into_iter()
                    .filter_map(IndexValue::from_index_entry)
                    .collect();
                // A child's first checkpoint (log_extent_id 0): its own log is read whole.
                let state = CommitState {
                    sequence: begin.sequence,
                    last_log_pos: (begin.log_extent_id != 0)
                        .then_some((ExtentId::new(begin.log_extent_id), begin.log_offset)),
                    committed_ms: begin.committed_ms,
                    replication: begin.replication.unwrap_or_default(),
                };
                derived_from = begin.derived_from.into_iter().map(RangeId::new).collect();
                (index, state)
            }
            None => (
                BTreeMap::new(),
                CommitState {
                    sequence: 0,
                    last_log_pos: None,
                    committed_ms: 0,
                    replication: Default::default(),
                },
            ),
        };
        let checkpoint_sequence = state.sequence;
        let uploads = Arc::new(UploadRegistry::default());
        if let Some(last) = data.info().await.extents.last() {
            uploads.raise_floor(ExtentId::new(last.extent_id));
        }
        let replayed = replay_log(
            &client,
            &log_name,
            &mut index,
            &mut state,
            &mut recent_writes,
        )
        .await?;
        tracing::info!(
            range_id = %bounds.range_id,
            epoch = bounds.epoch.get(),
            keys = index.len(),
            checkpoint_sequence,
            replayed,
            recent_writes = recent_writes.len(),
            "range loaded"
        );
        if !derived_from.is_empty() {
            crate::streams::release_parents(&client, bounds.range_id, &derived_from).await;
        }
        let clock_ms = AtomicI64::new(state.committed_ms);
        let replication = RwLock::new(state.replication.clone());
        Ok(Range {
            bounds,
            index: RwLock::new(index),
            commit: tokio::sync::Mutex::new(state),
            checkpoint_lock: tokio::sync::Mutex::new(()),
            log,
            data,
            checkpoints,
            client,
            entries_since_checkpoint: AtomicU64::new(replayed),
            poisoned: AtomicBool::new(false),
            recent_writes: Mutex::new(recent_writes),
            uploads,
            compaction_lock: tokio::sync::Mutex::new(()),
            load: LoadMeter::default(),
            freeze: AtomicU8::new(FREEZE_OPEN),
            frozen_at: Mutex::new(None),
            loaded_at: std::time::Instant::now(),
            clock_ms,
            replication,
            backlog: Mutex::new(Default::default()),
            owed_noted: tokio::sync::Notify::new(),
        })
    }

    /// Where the range is in a reshape: [`FREEZE_OPEN`], [`FREEZE_DRAINING`], [`FREEZE_FROZEN`].
    pub fn freeze_state(&self) -> u8 {
        self.freeze.load(Ordering::Acquire)
    }

    /// Moves the range to `state` (see the `FREEZE_*` constants).
    pub(crate) fn set_freeze(&self, state: u8) {
        self.freeze.store(state, Ordering::Release);
        let mut at = self
            .frozen_at
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        match state {
            FREEZE_OPEN => *at = None,
            _ => {
                at.get_or_insert_with(std::time::Instant::now);
            }
        }
    }

    /// How long the range has been (being) frozen; zero when open.
    pub fn frozen_for(&self) -> std::time::Duration {
        let at = self
            .frozen_at
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        at.map(|at| at.elapsed()).unwrap_or_default()
    }

    /// Uploads in flight (chunks appended, not committed yet).
    pub(crate) fn uploads_in_flight(&self) -> usize {
        self.uploads
            .active
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .len()
    }

    /// Seals the data stream's open extent: every data extent the index may reference is then
    /// sealed (the writer continues on a fresh one). Returns the sealed extents' ids.
    pub(crate) async fn seal_data(&self) -> Result<Vec<ExtentId>, PartitionError> {
        self.data.seal_current().await.map_err(stream_error)?;
        let info = self.data.info().await;
        Ok(info
            .extents
            .iter()
            .filter(|extent| extent.sealed)
            .map(|extent| ExtentId::new(extent.extent_id))
            .collect())
    }

    /// The last applied log sequence.
    pub(crate) async fn sequence(&self) -> u64 {
        self.commit.lock().await.sequence
    }

    /// The range's clock (see `LogEntry.committed_ms`): the last commit's, or the parents'
    /// for a reshape's child that committed nothing yet.
    pub fn clock_ms(&self) -> i64 {
        self.clock_ms.load(Ordering::Acquire)
    }

    /// Every index entry with a key in `[low, high)` (`high` empty = to the end), in order.
    pub(crate) fn entries_between(&self, low: &[u8], high: &[u8]) -> Vec<(Vec<u8>, IndexValue)> {
        let mut entries = Vec::new();
        let to = (!high.is_empty()).then_some(high);
        self.scan(low, to, |key, value| {
            entries.push((key.to_vec(), value.clone()));
            true
        });
        entries
    }

    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    pub fn entries_since_checkpoint(&self) -> u64 {
        self.entries_since_checkpoint.load(Ordering::Relaxed)
    }

    pub fn stream_client(&self) -> &StreamClient {
        &self.client
    }

    /// Registers an upload about to append chunks that it commits later. Keep the guard until
    /// the commit returned: compaction treats data extents an upload may have written to as
    /// live while it exists (their chunks are not in the index yet).
    pub fn begin_upload(&self) -> UploadGuard {
        let registry = &self.uploads;
        let id = registry.next_id.fetch_add(1, Ordering::Relaxed);
        let mut active = registry
            .active
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        // Read under the lock, so a compaction pass that saw no upload also sees the floor any
        // later one gets.
        active.insert(id, registry.floor());
        UploadGuard {
            registry: registry.clone(),
            id,
        }
    }

    /// Appends one chunk of object bytes to the data stream. Callers that commit the chunk
    /// later hold an [`UploadGuard`] (from [`Range::begin_upload`]) across append and commit.
    pub async fn append_data(&self, chunk: Bytes) -> Result<ChunkLocation, PartitionError> {
        let length = chunk.len() as u64;
        let pos: RecordPos = match self.data.append(chunk).await {
            Ok(pos) => pos,
            Err(err) => {
                if err.is_fenced() {
                    // Another writer took the data stream: this server may no longer own the
                    // range. A reload finds out (and fences afresh if it still does).
                    self.poisoned.store(true, Ordering::Release);
                    tracing::warn!(range_id = %self.bounds.range_id, %err, "data stream writer fenced; range will reload");
                }
                return Err(stream_error(err));
            }
        };
        debug_assert_eq!(pos.length, length);
        self.load.record_bytes(length, std::time::Instant::now());
        self.uploads.raise_floor(pos.extent_id);
        Ok(chunk_location(pos))
    }

    /// Makes one index update durable, then visible. `None` deletes the key.
    pub async fn commit(
        &self,
        key: Vec<u8>,
        value: Option<IndexValue>,
    ) -> Result<(), PartitionError> {
        self.commit_batch(vec![(key, value)]).await
    }

    /// Makes several index updates durable in one log record, then visible together.
    pub async fn commit_batch(&self, changes: Vec<Change>) -> Result<(), PartitionError> {
        let guard = self.commit.lock().await;
        self.commit_locked(guard, changes).await
    }

    /// Takes the commit lock, so a caller can decide on the current index (a precondition)
    /// and commit with no other write in between.
    pub async fn lock_commits(&self) -> tokio::sync::MutexGuard<'_, CommitState> {
        self.commit.lock().await
    }

    /// Commits a client's change under a guard from [`Range::lock_commits`].
    pub async fn commit_locked(
        &self,
        state: tokio::sync::MutexGuard<'_, CommitState>,
        changes: Vec<Change>,
    ) -> Result<(), PartitionError> {
        self.commit_locked_as(state, changes, CommitOrigin::Client)
            .await
    }

    /// Commits under a guard from [`Range::lock_commits`], saying what made the change.
    pub async fn commit_locked_as(
        &self,
        mut state: tokio::sync::MutexGuard<'_, CommitState>,
        changes: Vec<Change>,
        origin: CommitOrigin,
    ) -> Result<(), PartitionError> {
        if changes.is_empty() {
            return Ok(()); // nothing to make durable
        }
        debug_assert!(changes.iter().all(|(key, _)| self.bounds.contains(key)));
        let mutations = changes
            .iter()
            .map(|(key, value)| Mutation {
                key: key.clone(),
                value: Some(IndexValue::into_mutation_value(value.clone())),
            })
            .collect();
        let entry = LogEntry {
            mutations,
            origin: origin as i32,
            // A move's imported versions may be owed below this range's watermarks.
            replication: self.cursors_owing(&state.replication, &changes, origin),
            ..Default::default()
        };
        self.append_entry(&mut state, entry, changes).await
    }

    /// Appends `entry` (its sequence and clock filled in here) and, once it is durable,
    /// applies it: `changes` to the index, its replication cursors to the state.
    async fn append_entry(
        &self,
        state: &mut CommitState,
        mut entry: LogEntry,
        changes: Vec<Change>,
    ) -> Result<(), PartitionError> {
        if self.is_poisoned() {
            return Err(PartitionError::Loading {
                range_id: self.bounds.range_id,
            });
        }
        if self.freeze_state() == FREEZE_FROZEN {
            return Err(PartitionError::Frozen {
                range_id: self.bounds.range_id,
            });
        }
        entry.sequence = state.sequence + 1;
        // The range's clock only rises, whatever the wall clock does.
        entry.committed_ms = strata_util::now_ms().max(state.committed_ms);
        // Encoded (and refused if absurdly large) before anything is appended: a refusal
        // leaves the range as it was. Several records when the entry exceeds one.
        let records = log_records(&entry)?;
        let unfinished = PoisonUnlessFinished(&self.poisoned);
        let appended = append_records(&self.log, records).await;
        std::mem::forget(unfinished);
        match appended {
            Ok(pos) => {
                state.sequence = entry.sequence;
                state.last_log_pos = Some((pos.extent_id, pos.offset));
                state.committed_ms = entry.committed_ms;
                if let Some(cursors) = entry.replication {
                    self.show_replication(&cursors);
                    state.replication = cursors;
                }
                self.remember_writes(&changes);
                let owed = self.owed_in(&changes, entry.origin);
                self.apply(changes);
                // In this order: a version is in the index before the shipper can take it
                // from the backlog (else it would find nothing and drop it), and in the
                // backlog before the clock passes its mark (a watermark read from the new
                // clock must see it owed; see `crate::replication_backlog`).
                self.note_owed(owed);
                self.clock_ms.store(entry.committed_ms, Ordering::Release);
                self.entries_since_checkpoint
                    .fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(err) => {
                // The record may or may not be in the log now; only a reload tells.
                self.poisoned.store(true, Ordering::Release);
                tracing::warn!(range_id = %self.bounds.range_id, %err, "log append failed; range will reload");
                Err(stream_error(err))
            }
        }
    }

    fn remember_writes(&self, changes: &[Change]) {
        self.recent_writes
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .remember_changes(changes, strata_util::now_ms());
    }

    /// The recent writes (see [`crate::recent_writes`]) with keys in `[low, high)` (`high`
    /// empty = to the end), for a checkpoint of this range or of a split's or merge's child.
    pub(crate) fn recent_writes_between(&self, low: &[u8], high: &[u8]) -> Vec<RecentWrite> {
        self.recent_writes
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .snapshot(low, high, strata_util::now_ms())
    }

    /// The object version that write `write_id` made at `key`, if this range committed or
    /// replayed it recently (see [`crate::recent_writes`]), without chunk locations.
    pub fn recent_write(&self, key: &[u8], write_id: &str) -> Option<ObjectRecord> {
        self.recent_writes
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .find(key, write_id)
    }

    /// How many writes the recent-writes table holds (for diagnostics).
    pub fn recent_writes_len(&self) -> usize {
        self.recent_writes
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .len()
    }

    fn apply(&self, changes: Vec<Change>) {
        let mut index = self
            .index
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        apply_changes(&mut index, changes);
    }

    pub fn get(&self, key: &[u8]) -> Option<IndexValue> {
        let index = self
            .index
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        index.get(key).cloned()
    }

    /// Calls `visit` on entries with keys in `[from, to)` (`to` None = to the end of the range)
    /// in key order, until it returns false.
    pub fn scan(
        &self,
        from: &[u8],
        to: Option<&[u8]>,
        mut visit: impl FnMut(&[u8], &IndexValue) -> bool,
    ) {
        use std::ops::Bound;
        let index = self
            .index
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        let upper = match to {
            Some(to) => Bound::Excluded(to.to_vec()),
            None => Bound::Unbounded,
        };
        for (key, value) in index.range((Bound::Included(from.to_vec()), upper)) {
            if !visit(key, value) {
                break;
            }
        }
    }

    /// Number of keys and bytes of object data in the range.
    pub fn stats(&self) -> (u64, u64) {
        let index = self
            .index
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        let bytes = index
            .values()
            .map(|value| match value {
                IndexValue::Object(meta) | IndexValue::Version(meta) => meta.size_bytes,
                IndexValue::Part(part) => part.size_bytes,
                IndexValue::Bucket(_) | IndexValue::Upload(_) => 0,
            })
            .sum();
        (index.len() as u64, bytes)
    }

    /// Keys, object bytes and the middle key (for the manager's split decisions).
    pub fn size_report(&self) -> crate::load::SizeReport {
        let (keys, bytes) = self.stats();
        let index = self
            .index
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        let middle_key = index
            .keys()
            .nth(index.len() / 2)
            .cloned()
            .unwrap_or_default();
        crate::load::SizeReport {
            keys,
            bytes,
            middle_key,
        }
    }

    /// Writes a checkpoint of the whole index to the checkpoint stream.
    pub async fn checkpoint(&self) -> Result<(), PartitionError> {
        let _only_one = self.checkpoint_lock.lock().await;
        let (sequence, log_pos, committed_ms, replication, snapshot, recent, counted) = {
            let state = self.commit.lock().await;
            let index = self
                .index
                .read()
                .unwrap_or_else(|poison| poison.into_inner());
            (
                state.sequence,
                state.last_log_pos,
                state.committed_ms,
                state.replication.clone(),
                index.clone(),
                // The load after this checkpoint replays only later log records: the writes
                // it covers travel in it, so their retries are still recognized.
                self.recent_writes_between(b"", b""),
                self.entries_since_checkpoint.load(Ordering::Relaxed),
            )
        };
        let Some((log_extent_id, log_offset)) = log_pos else {
            return Ok(()); // nothing was ever logged: nothing to checkpoint
        };
        let begin = CheckpointBegin {
            checkpoint_id: sequence,
            sequence,
            log_extent_id: log_extent_id.get(),
            log_offset,
            range_id: self.bounds.range_id.get(),
            low: self.bounds.low.clone(),
            high: self.bounds.high.clone(),
            derived_from: Vec::new(),
            committed_ms,
            replication: Some(replication),
        };
        let total = snapshot.len() as u64;
        let begin_pos = write_checkpoint(&self.checkpoints, begin, snapshot, recent).await?;
        self.entries_since_checkpoint
            .fetch_sub(counted, Ordering::Relaxed);
        tracing::info!(
            range_id = %self.bounds.range_id,
            sequence,
            keys = total,
            "checkpoint written"
        );
        // Release what no load will read again: log extents before the checkpoint's replay
        // position, checkpoint extents before this checkpoint. A failed trim only delays that.
        let (log_name, _, checkpoint_name) = stream_names(self.bounds.range_id);
        for (name, keep_from) in [
            (log_name, log_extent_id),
            (checkpoint_name, begin_pos.extent_id),
        ] {
            if let Err(err) = self.client.trim_stream(&name, keep_from).await {
                tracing::warn!(stream = %name, %err, "trimming after a checkpoint failed; retried after the next one");
            }
        }
        Ok(())
    }
}

/// Poisons the range when dropped: armed around a log append, and forgotten once the append
/// returned, so it fires only when the commit's future is dropped mid-append (its caller went
/// away). Dropped before the commit lock is released (a local drops before the guard passed in
/// as a parameter), so no later commit can run on the stale index.
struct PoisonUnlessFinished<'a>(&'a AtomicBool);

impl Drop for PoisonUnlessFinished<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
        tracing::warn!("a commit was abandoned during its log append; range will reload");
    }
}

/// Shared handle to a loaded range.
pub type RangeRef = Arc<Range>;
