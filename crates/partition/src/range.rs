//! One loaded range partition: its sorted index and the streams that make it durable.
//!
//! Commit path: `commit()` takes the range's commit lock, appends one `LogEntry` (next
//! sequence) to the log stream, and only after the stream layer acknowledged it (durable on
//! every replica) applies it to the in-memory index. A failed append poisons the range: the
//! in-memory index may now differ from what the log holds, so the server reloads the range
//! from its streams before serving it again. So does a commit whose caller went away during the
//! append (a front-end killed mid-request drops the RPC's future): the record may land in the
//! log while the index never hears of it, and the next commit would reuse its sequence.
//!
//! Load path: seal the log's open extent (fencing any previous owner's writer), read the newest
//! complete checkpoint, then replay every log record after it, in sequence order.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use futures::StreamExt;
use strata_proto::common::{BucketMeta, ChunkRef, ObjectMeta, PartMeta, UploadMeta};
use strata_proto::partition::{
    checkpoint_record::Part, index_entry, mutation, CheckpointBatch, CheckpointBegin,
    CheckpointEnd, CheckpointRecord, IndexEntry, LogEntry, Mutation,
};
use strata_stream::{RecordPos, StreamClient, StreamWriter};
use strata_types::Epoch;

use crate::error::PartitionError;
use crate::format;
use crate::load::LoadMeter;
use crate::recent_writes::RecentWrites;

/// What one index key maps to.
#[derive(Clone, Debug, PartialEq)]
pub enum IndexValue {
    Object(ObjectMeta),
    Bucket(BucketMeta),
    Upload(UploadMeta),
    Part(PartMeta),
    /// A noncurrent object version (`keys::version_key`).
    Version(ObjectMeta),
}

impl IndexValue {
    fn into_mutation_value(value: Option<IndexValue>) -> mutation::Value {
        match value {
            Some(IndexValue::Object(meta)) => mutation::Value::Object(meta),
            Some(IndexValue::Bucket(bucket)) => mutation::Value::Bucket(bucket),
            Some(IndexValue::Upload(upload)) => mutation::Value::Upload(upload),
            Some(IndexValue::Part(part)) => mutation::Value::Part(part),
            Some(IndexValue::Version(meta)) => mutation::Value::Version(meta),
            None => mutation::Value::Tombstone(true),
        }
    }

    /// None for a tombstone.
    fn from_mutation_value(value: mutation::Value) -> Option<IndexValue> {
        match value {
            mutation::Value::Object(meta) => Some(IndexValue::Object(meta)),
            mutation::Value::Bucket(bucket) => Some(IndexValue::Bucket(bucket)),
            mutation::Value::Upload(upload) => Some(IndexValue::Upload(upload)),
            mutation::Value::Part(part) => Some(IndexValue::Part(part)),
            mutation::Value::Version(meta) => Some(IndexValue::Version(meta)),
            mutation::Value::Tombstone(_) => None,
        }
    }

    fn into_index_entry(self, key: Vec<u8>) -> IndexEntry {
        let value = match self {
            IndexValue::Object(meta) => index_entry::Value::Object(meta),
            IndexValue::Bucket(bucket) => index_entry::Value::Bucket(bucket),
            IndexValue::Upload(upload) => index_entry::Value::Upload(upload),
            IndexValue::Part(part) => index_entry::Value::Part(part),
            IndexValue::Version(meta) => index_entry::Value::Version(meta),
        };
        IndexEntry {
            key,
            value: Some(value),
        }
    }

    fn from_index_entry(entry: IndexEntry) -> Option<(Vec<u8>, IndexValue)> {
        let value = match entry.value? {
            index_entry::Value::Object(meta) => IndexValue::Object(meta),
            index_entry::Value::Bucket(bucket) => IndexValue::Bucket(bucket),
            index_entry::Value::Upload(upload) => IndexValue::Upload(upload),
            index_entry::Value::Part(part) => IndexValue::Part(part),
            index_entry::Value::Version(meta) => IndexValue::Version(meta),
        };
        Some((entry.key, value))
    }
}

/// One change to apply: the key and its new value (None deletes it).
pub type Change = (Vec<u8>, Option<IndexValue>);

/// Most changes one commit may carry (completing a 10,000-part upload deletes every part).
pub const CHANGES_PER_COMMIT_MAX: usize = 10_002;

/// Checkpoint batches stay under this many encoded bytes, far below the stream record limit.
const CHECKPOINT_BATCH_BYTES_MAX: usize = 512 * 1024;

/// Where the range's three streams live, by name.
pub fn stream_names(range_id: u64) -> (String, String, String) {
    (
        format!("range-{range_id}/log"),
        format!("range-{range_id}/data"),
        format!("range-{range_id}/checkpoint"),
    )
}

/// The assignment a range is loaded under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeBounds {
    pub range_id: u64,
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

pub struct CommitState {
    /// Sequence of the last applied log entry.
    sequence: u64,
    /// Position of the last applied log record (where replay after a checkpoint starts).
    last_log_pos: Option<(u64, u64)>,
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
}

/// Serving normally.
pub const FREEZE_OPEN: u8 = 0;
/// New requests are refused (retried by front-ends); admitted ones may still commit.
pub const FREEZE_DRAINING: u8 = 1;
/// Nothing commits any more: the index is final until the range is replaced or renewed.
pub const FREEZE_FROZEN: u8 = 2;

/// Uploads in flight (chunks appended, index entry not yet committed). Each registers the data
/// extent its chunks can land in at the earliest, so compaction never trims an extent that may
/// hold a chunk an upload is about to commit.
#[derive(Default)]
pub struct UploadRegistry {
    /// A lower bound of the data extent any append starting now lands in: the extent of the
    /// newest acknowledged data append (extents only move forward), or the stream's last
    /// extent when the range was loaded.
    data_extent_floor: AtomicU64,
    next_id: AtomicU64,
    /// upload id -> the floor when it began.
    active: Mutex<BTreeMap<u64, u64>>,
}

impl UploadRegistry {
    /// The data extents uploads in flight may have written to start at one of these.
    pub(crate) fn floors(&self) -> Vec<u64> {
        let active = self
            .active
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        active.values().copied().collect()
    }
}

/// Held by an upload from before its first data append until after its commit: while it lives,
/// compaction keeps every data extent the upload may have written to.
pub struct UploadGuard {
    registry: Arc<UploadRegistry>,
    id: u64,
}

impl Drop for UploadGuard {
    fn drop(&mut self) {
        let mut active = self
            .registry
            .active
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        active.remove(&self.id);
    }
}

impl Range {
    /// Loads a range from its streams: fence, newest checkpoint, log replay.
    pub async fn load(client: StreamClient, bounds: RangeBounds) -> Result<Range, PartitionError> {
        let (log_name, data_name, checkpoint_name) = stream_names(bounds.range_id);
        let log = client.open(&log_name).await.map_err(stream_error)?;
        // Fence: whoever wrote this log before can no longer append to its open extent.
        log.seal_current().await.map_err(stream_error)?;
        let data = client.open(&data_name).await.map_err(stream_error)?;
        let checkpoints = client.open(&checkpoint_name).await.map_err(stream_error)?;
        // Fence checkpoints too: a previous owner must not write (or trim after) a checkpoint
        // once we serve the range.
        checkpoints.seal_current().await.map_err(stream_error)?;

        let mut derived_from = Vec::new();
        let (mut index, mut state) = match newest_checkpoint(&client, &checkpoint_name).await? {
            Some((begin, entries)) => {
                let index: BTreeMap<Vec<u8>, IndexValue> = entries
                    .into_iter()
                    .filter_map(IndexValue::from_index_entry)
                    .collect();
                // A child's first checkpoint (log_extent_id 0): its own log is read whole.
                let state = CommitState {
                    sequence: begin.sequence,
                    last_log_pos: (begin.log_extent_id != 0)
                        .then_some((begin.log_extent_id, begin.log_offset)),
                };
                derived_from = begin.derived_from;
                (index, state)
            }
            None => (
                BTreeMap::new(),
                CommitState {
                    sequence: 0,
                    last_log_pos: None,
                },
            ),
        };
        let checkpoint_sequence = state.sequence;
        let uploads = Arc::new(UploadRegistry::default());
        if let Some(last) = data.info().await.extents.last() {
            uploads
                .data_extent_floor
                .store(last.extent_id, Ordering::Release);
        }
        let mut recent_writes = RecentWrites::default();
        let replayed = replay_log(
            &client,
            &log_name,
            &mut index,
            &mut state,
            &mut recent_writes,
        )
        .await?;
        tracing::info!(
            range_id = bounds.range_id,
            epoch = bounds.epoch.get(),
            keys = index.len(),
            checkpoint_sequence,
            replayed,
            "range loaded"
        );
        if !derived_from.is_empty() {
            crate::reshape::release_parents(&client, bounds.range_id, &derived_from).await;
        }
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
    pub(crate) async fn seal_data(&self) -> Result<Vec<u64>, PartitionError> {
        self.data.seal_current().await.map_err(stream_error)?;
        let info = self.data.info().await;
        Ok(info
            .extents
            .iter()
            .filter(|extent| extent.sealed)
            .map(|extent| extent.extent_id)
            .collect())
    }

    /// The last applied log sequence.
    pub(crate) async fn sequence(&self) -> u64 {
        self.commit.lock().await.sequence
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
        active.insert(id, registry.data_extent_floor.load(Ordering::Acquire));
        UploadGuard {
            registry: registry.clone(),
            id,
        }
    }

    /// Appends one chunk of object bytes to the data stream. Callers that commit the chunk
    /// later hold an [`UploadGuard`] (from [`Range::begin_upload`]) across append and commit.
    pub async fn append_data(&self, chunk: Bytes) -> Result<ChunkRef, PartitionError> {
        let length = chunk.len() as u64;
        let pos: RecordPos = match self.data.append(chunk).await {
            Ok(pos) => pos,
            Err(err) => {
                if err.is_fenced() {
                    // Another writer took the data stream: this server may no longer own the
                    // range. A reload finds out (and fences afresh if it still does).
                    self.poisoned.store(true, Ordering::Release);
                    tracing::warn!(range_id = self.bounds.range_id, %err, "data stream writer fenced; range will reload");
                }
                return Err(stream_error(err));
            }
        };
        debug_assert_eq!(pos.length, length);
        self.load.record_bytes(length, std::time::Instant::now());
        self.uploads
            .data_extent_floor
            .fetch_max(pos.extent_id, Ordering::AcqRel);
        Ok(ChunkRef {
            extent_id: pos.extent_id,
            offset: pos.offset,
            length,
        })
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

    /// Commits under a guard from [`Range::lock_commits`].
    pub async fn commit_locked(
        &self,
        mut state: tokio::sync::MutexGuard<'_, CommitState>,
        changes: Vec<Change>,
    ) -> Result<(), PartitionError> {
        assert!(!changes.is_empty() && changes.len() <= CHANGES_PER_COMMIT_MAX);
        debug_assert!(changes.iter().all(|(key, _)| self.bounds.contains(key)));
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
        let sequence = state.sequence + 1;
        let entry = LogEntry {
            sequence,
            mutations: changes
                .iter()
                .map(|(key, value)| Mutation {
                    key: key.clone(),
                    value: Some(IndexValue::into_mutation_value(value.clone())),
                })
                .collect(),
        };
        let unfinished = PoisonUnlessFinished(&self.poisoned);
        let appended = self.log.append(format::encode_log_entry(&entry)).await;
        std::mem::forget(unfinished);
        match appended {
            Ok(pos) => {
                state.sequence = sequence;
                state.last_log_pos = Some((pos.extent_id, pos.offset));
                self.remember_writes(&changes);
                self.apply(changes);
                self.entries_since_checkpoint
                    .fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(err) => {
                // The record may or may not be in the log now; only a reload tells.
                self.poisoned.store(true, Ordering::Release);
                tracing::warn!(range_id = self.bounds.range_id, %err, "log append failed; range will reload");
                Err(stream_error(err))
            }
        }
    }

    fn remember_writes(&self, changes: &[Change]) {
        self.recent_writes
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .remember_changes(changes);
    }

    /// The object version that write `write_id` made at `key`, if this range committed or
    /// replayed it recently (see [`crate::recent_writes`]), without chunk locations.
    pub fn recent_write(&self, key: &[u8], write_id: &str) -> Option<ObjectMeta> {
        self.recent_writes
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .find(key, write_id)
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
        let (sequence, log_pos, snapshot, counted) = {
            let state = self.commit.lock().await;
            let index = self
                .index
                .read()
                .unwrap_or_else(|poison| poison.into_inner());
            (
                state.sequence,
                state.last_log_pos,
                index.clone(),
                self.entries_since_checkpoint.load(Ordering::Relaxed),
            )
        };
        let Some((log_extent_id, log_offset)) = log_pos else {
            return Ok(()); // nothing was ever logged: nothing to checkpoint
        };
        let begin = CheckpointBegin {
            checkpoint_id: sequence,
            sequence,
            log_extent_id,
            log_offset,
            range_id: self.bounds.range_id,
            low: self.bounds.low.clone(),
            high: self.bounds.high.clone(),
            derived_from: Vec::new(),
        };
        let total = snapshot.len() as u64;
        let begin_pos = write_checkpoint(&self.checkpoints, begin, snapshot).await?;
        self.entries_since_checkpoint
            .fetch_sub(counted, Ordering::Relaxed);
        tracing::info!(
            range_id = self.bounds.range_id,
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

/// Appends one whole checkpoint (Begin, batches of entries in key order, End) to `writer`.
/// Returns where its Begin record is.
pub(crate) async fn write_checkpoint(
    writer: &StreamWriter,
    begin: CheckpointBegin,
    entries: impl IntoIterator<Item = (Vec<u8>, IndexValue)>,
) -> Result<RecordPos, PartitionError> {
    let checkpoint_id = begin.checkpoint_id;
    let append = |part: Part| {
        let record = CheckpointRecord { part: Some(part) };
        writer.append(format::encode_checkpoint(&record))
    };
    let begin_pos = append(Part::Begin(begin)).await.map_err(stream_error)?;
    let mut batch = Vec::new();
    let mut batch_bytes = 0usize;
    let mut total = 0u64;
    for (key, value) in entries {
        let entry = value.into_index_entry(key);
        batch_bytes += prost::Message::encoded_len(&entry);
        batch.push(entry);
        total += 1;
        if batch_bytes >= CHECKPOINT_BATCH_BYTES_MAX {
            let entries = std::mem::take(&mut batch);
            batch_bytes = 0;
            append(Part::Batch(CheckpointBatch {
                checkpoint_id,
                entries,
            }))
            .await
            .map_err(stream_error)?;
        }
    }
    if !batch.is_empty() {
        append(Part::Batch(CheckpointBatch {
            checkpoint_id,
            entries: batch,
        }))
        .await
        .map_err(stream_error)?;
    }
    append(Part::End(CheckpointEnd {
        checkpoint_id,
        entries: total,
    }))
    .await
    .map_err(stream_error)?;
    Ok(begin_pos)
}

pub(crate) fn stream_error(err: impl std::fmt::Display) -> PartitionError {
    PartitionError::Stream(err.to_string())
}

fn apply_changes(index: &mut BTreeMap<Vec<u8>, IndexValue>, changes: Vec<Change>) {
    for (key, value) in changes {
        match value {
            Some(value) => {
                index.insert(key, value);
            }
            None => {
                index.remove(&key);
            }
        }
    }
}

/// Reads the checkpoint stream and returns the newest checkpoint whose End arrived.
async fn newest_checkpoint(
    client: &StreamClient,
    name: &str,
) -> Result<Option<(CheckpointBegin, Vec<IndexEntry>)>, PartitionError> {
    let mut newest = None;
    let mut building: Option<(CheckpointBegin, Vec<IndexEntry>)> = None;
    let records = client.read_stream(name, None);
    futures::pin_mut!(records);
    while let Some(item) = records.next().await {
        let (_, payload) = item.map_err(stream_error)?;
        let record = format::decode_checkpoint(&payload)
            .map_err(|err| PartitionError::Corrupt(err.to_string()))?;
        match record.part {
            Some(Part::Begin(begin)) => building = Some((begin, Vec::new())),
            Some(Part::Batch(batch)) => match &mut building {
                Some((begin, entries)) if begin.checkpoint_id == batch.checkpoint_id => {
                    // Batches hold keys in ascending order; a batch that does not start after
                    // the last key gathered is a duplicate left by a retried append.
                    let is_duplicate = match (entries.last(), batch.entries.first()) {
                        (Some(last), Some(first)) => first.key <= last.key,
                        _ => false,
                    };
                    if !is_duplicate {
                        entries.extend(batch.entries);
                    }
                }
                _ => building = None, // a batch without its Begin: part of an abandoned checkpoint
            },
            Some(Part::End(end)) => {
                if let Some((begin, entries)) = building.take() {
                    let complete = begin.checkpoint_id == end.checkpoint_id
                        && entries.len() as u64 == end.entries;
                    // The newest is the one covering the most log, wherever it sits.
                    let newer = newest.as_ref().is_none_or(
                        |(best, _): &(CheckpointBegin, Vec<IndexEntry>)| {
                            begin.sequence >= best.sequence
                        },
                    );
                    if complete && newer {
                        newest = Some((begin, entries));
                    }
                }
            }
            None => return Err(PartitionError::Corrupt("empty checkpoint record".into())),
        }
    }
    Ok(newest)
}

/// Replays log records after `state.sequence` into `index`. Returns how many were applied.
async fn replay_log(
    client: &StreamClient,
    name: &str,
    index: &mut BTreeMap<Vec<u8>, IndexValue>,
    state: &mut CommitState,
    recent_writes: &mut RecentWrites,
) -> Result<u64, PartitionError> {
    let records = client.read_stream(name, state.last_log_pos);
    futures::pin_mut!(records);
    let mut applied = 0;
    while let Some(item) = records.next().await {
        let (pos, payload) = item.map_err(stream_error)?;
        let entry = format::decode_log_entry(&payload)
            .map_err(|err| PartitionError::Corrupt(err.to_string()))?;
        // Equal sequences are applied again, not skipped: a writer's retried append leaves an
        // identical copy right after the first (applying it twice changes nothing), and no
        // two different entries share a sequence (an abandoned append poisons the range) but,
        // if some log held two, both are durable and the later one is what was acknowledged.
        if entry.sequence < state.sequence {
            tracing::warn!(
                sequence = entry.sequence,
                applied = state.sequence,
                "log entry older than one already applied; skipped"
            );
            continue;
        }
        if entry.sequence > state.sequence + 1 {
            tracing::warn!(
                expected = state.sequence + 1,
                found = entry.sequence,
                "gap in the commit log sequence (an append that failed for good)"
            );
        }
        let mut changes = Vec::with_capacity(entry.mutations.len());
        for mutation in entry.mutations {
            let Some(value) = mutation.value else {
                return Err(PartitionError::Corrupt(format!(
                    "log entry {} has an empty mutation",
                    entry.sequence
                )));
            };
            changes.push((mutation.key, IndexValue::from_mutation_value(value)));
        }
        recent_writes.remember_changes(&changes);
        apply_changes(index, changes);
        state.sequence = entry.sequence;
        state.last_log_pos = Some((pos.extent_id, pos.offset));
        applied += 1;
    }
    Ok(applied)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_value_survives_the_log_and_checkpoint_encodings() {
        let meta = ObjectMeta {
            version_id: "0000000000000001abcdef01".into(),
            version_stamp: 1,
            ..Default::default()
        };
        let values = [
            IndexValue::Object(meta.clone()),
            IndexValue::Version(meta),
            IndexValue::Bucket(BucketMeta::default()),
            IndexValue::Upload(UploadMeta::default()),
            IndexValue::Part(PartMeta::default()),
        ];
        for value in values {
            let logged = IndexValue::into_mutation_value(Some(value.clone()));
            assert_eq!(IndexValue::from_mutation_value(logged), Some(value.clone()));
            let entry = value.clone().into_index_entry(b"k".to_vec());
            assert_eq!(
                IndexValue::from_index_entry(entry),
                Some((b"k".to_vec(), value))
            );
        }
        assert_eq!(
            IndexValue::from_mutation_value(IndexValue::into_mutation_value(None)),
            None
        );
    }
}
