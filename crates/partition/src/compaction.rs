//! Data-stream compaction: frees the disk held by object bytes nobody references any more
//! (deleted or overwritten objects, aborted uploads, unlisted parts).
//!
//! Prefix compaction, as in Windows Azure Storage: the data stream `range-<id>/data` is only
//! ever trimmed from its front (`TrimStream`). A pass looks at the stream's sealed extents from
//! the oldest; while an extent holds little live data (live bytes / sealed length below
//! `live_ratio_max`, or nothing live at all) it copies that extent's live chunks to the
//! stream's tail and points every index entry at the copies, one bounded commit at a time.
//! Once no index entry references any chunk before extent K, the stream is trimmed up to K and
//! the stream manager deletes the dropped extents after its GC safety delay.
//!
//! Correctness:
//! - The open (last) extent is never moved nor trimmed.
//! - Re-pointing happens under the range's commit lock, matching on the exact old chunk
//!   reference: an object overwritten or deleted since its chunk was copied is left alone (the
//!   copy becomes garbage for a later pass), and every entry sharing the chunk (CopyObject
//!   shares chunks, completed multipart objects share their parts' chunks) is updated in the
//!   same commit.
//! - Uploads in flight (chunks appended, not yet committed) hold an
//!   [`crate::range::UploadGuard`]; extents they may have written to are never trimmed.
//! - A GET that looked up chunk references just before they were moved still reads the old
//!   extents: the stream manager keeps trimmed extents for `--gc-delay-ms` (60 s by default).
//!   **That delay must exceed the longest GET** (and the longest time between a GET's index
//!   lookup and its last chunk read); a GET slower than that may fail once its extents are gone.
//! - The trim decision (nothing references an extent before K, no upload may have written
//!   there) is taken under the commit lock, so no commit can slip a reference in between.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use crate::records::{chunk_extent, chunk_pos, ChunkLocation, CommitOrigin};
use prometheus::IntCounter;
use strata_types::ExtentId;

pub use crate::config::CompactionConfig;
use crate::error::PartitionError;
use crate::range::{Change, IndexValue, Range};
use crate::streams::stream_names;

/// Index entries re-pointed per commit (each commit is one log record).
const CHANGES_PER_COMPACTION_COMMIT_MAX: usize = 1_000;

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// Live chunk bytes copied to the stream's tail.
    pub bytes_moved: u64,
    /// Index entries re-pointed at copies.
    pub entries_updated: u64,
    /// Extents dropped from the data stream.
    pub extents_released: u64,
}

fn register(name: &str, help: &str) -> IntCounter {
    let counter = IntCounter::new(name, help).expect("metric name is valid");
    if let Err(err) = prometheus::default_registry().register(Box::new(counter.clone())) {
        tracing::warn!(%err, "metric not registered");
    }
    counter
}

static BYTES_MOVED: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        "strata_partition_compaction_bytes_moved_total",
        "Live object bytes copied by data-stream compaction.",
    )
});
static EXTENTS_RELEASED: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        "strata_partition_compaction_extents_released_total",
        "Data-stream extents trimmed by compaction (deleted after the GC delay).",
    )
});

/// The extents a pass empties: qualifying sealed extents (`(id, length)`, oldest first) from
/// the oldest, while their live bytes fit the pass's byte budget.
fn prefix_to_empty(
    sealed: &[(ExtentId, u64)],
    live_bytes: &HashMap<ExtentId, u64>,
    config: &CompactionConfig,
) -> Vec<ExtentId> {
    let mut prefix = Vec::new();
    let mut budget = 0u64;
    for &(extent_id, length) in sealed {
        let live = live_bytes.get(&extent_id).copied().unwrap_or(0);
        let qualifies = live == 0 || (live as f64) < config.live_ratio_max * length as f64;
        if !qualifies || (live > 0 && budget + live > config.bytes_per_pass_max) {
            break;
        }
        budget += live;
        prefix.push(extent_id);
    }
    prefix
}

/// The chunk references of an index value (objects and parts hold object bytes).
fn chunks_of(value: &IndexValue) -> &[ChunkLocation] {
    match value {
        IndexValue::Object(meta) | IndexValue::Version(meta) => &meta.chunks,
        IndexValue::Part(part) => &part.chunks,
        IndexValue::Bucket(_) | IndexValue::Upload(_) => &[],
    }
}

fn chunks_of_mut(value: &mut IndexValue) -> Option<&mut Vec<ChunkLocation>> {
    match value {
        IndexValue::Object(meta) | IndexValue::Version(meta) => Some(&mut meta.chunks),
        IndexValue::Part(part) => Some(&mut part.chunks),
        IndexValue::Bucket(_) | IndexValue::Upload(_) => None,
    }
}

/// A chunk by its place: (data extent, offset).
type ChunkKey = (ExtentId, u64);

fn chunk_key(chunk: &ChunkLocation) -> ChunkKey {
    (chunk_extent(chunk), chunk.offset)
}

impl Range {
    /// Live bytes per data extent and the distinct live chunks of the extents in `wanted`.
    fn live_data(
        &self,
        wanted: &HashSet<ExtentId>,
    ) -> (HashMap<ExtentId, u64>, BTreeMap<ChunkKey, ChunkLocation>) {
        let mut live_bytes: HashMap<ExtentId, u64> = HashMap::new();
        let mut chunks = BTreeMap::new();
        let mut seen = HashSet::new();
        self.scan(b"", None, |_, value| {
            for chunk in chunks_of(value) {
                // Shared chunks (copies) count once.
                let (extent_id, offset) = chunk_key(chunk);
                if seen.insert((extent_id, offset)) {
                    *live_bytes.entry(extent_id).or_default() += chunk.length;
                    if wanted.contains(&extent_id) {
                        chunks.insert((extent_id, offset), *chunk);
                    }
                }
            }
            true
        });
        (live_bytes, chunks)
    }

    /// One compaction pass over this range's data stream (see the module doc). Returns at once
    /// when another pass is running.
    pub async fn compact(
        &self,
        config: &CompactionConfig,
    ) -> Result<CompactionReport, PartitionError> {
        let Ok(_only_one) = self.compaction_lock.try_lock() else {
            return Ok(CompactionReport::default());
        };
        let mut report = CompactionReport::default();
        let (_, data_name, _) = stream_names(self.bounds.range_id);
        let info = self
            .stream_client()
            .stream_info(&data_name)
            .await
            .map_err(|err| PartitionError::Stream(err.to_string()))?;
        // Sealed extents, oldest first, never the last (open) one.
        let sealed: Vec<(ExtentId, u64)> = match info.extents.split_last() {
            Some((_, older)) => older
                .iter()
                .take_while(|e| e.sealed)
                .map(|e| (ExtentId::new(e.extent_id), e.sealed_length))
                .collect(),
            None => Vec::new(),
        };
        let ids: HashSet<ExtentId> = sealed.iter().map(|(id, _)| *id).collect();
        let (live_bytes, live_chunks) = self.live_data(&ids);

        let prefix = prefix_to_empty(&sealed, &live_bytes, config);
        if prefix.is_empty() {
            return Ok(report);
        }

        // Copy the prefix's live chunks to the tail, paced.
        let started = Instant::now();
        let mut moved: HashMap<ChunkKey, ChunkLocation> = HashMap::new();
        for (key, chunk) in &live_chunks {
            let pos = chunk_pos(chunk);
            if !prefix.contains(&pos.extent_id) {
                continue;
            }
            let record = self
                .stream_client()
                .read_record(pos.extent_id, pos.offset)
                .await
                .map_err(|err| PartitionError::Stream(err.to_string()))?;
            if record.len() as u64 != chunk.length {
                return Err(PartitionError::Corrupt(format!(
                    "chunk at {} offset {} has {} bytes, the index says {}",
                    pos.extent_id,
                    chunk.offset,
                    record.len(),
                    chunk.length
                )));
            }
            let copy = self.append_data(record).await?;
            moved.insert(*key, copy);
            report.bytes_moved += chunk.length;
            BYTES_MOVED.inc_by(chunk.length);
            pace(started, report.bytes_moved, config.bytes_per_sec_max).await;
        }

        // Re-point every entry still referencing a moved chunk, in bounded commits; then, with
        // the commit lock still held, decide how far the stream can be trimmed.
        let keep_from = loop {
            let guard = self.lock_commits().await;
            let changes = self.repointing_changes(&moved, CHANGES_PER_COMPACTION_COMMIT_MAX);
            if changes.is_empty() {
                break self.trim_point(&info.extents, &prefix);
            }
            report.entries_updated += changes.len() as u64;
            self.commit_locked_as(guard, changes, CommitOrigin::Compaction)
                .await?;
        };
        if self.is_poisoned() {
            // Fenced or failed meanwhile: this index may be stale; the next owner decides.
            return Err(PartitionError::Loading {
                range_id: self.bounds.range_id,
            });
        }
        let first = info.extents.first().map(|e| ExtentId::new(e.extent_id));
        if let Some(keep_from) = keep_from.filter(|k| Some(*k) != first) {
            let before = info.extents.len();
            let trimmed = self
                .stream_client()
                .trim_stream(&data_name, keep_from)
                .await
                .map_err(|err| PartitionError::Stream(err.to_string()))?;
            let released = before.saturating_sub(trimmed.extents.len()) as u64;
            report.extents_released = released;
            EXTENTS_RELEASED.inc_by(released);
        }
        tracing::info!(
            range_id = %self.bounds.range_id,
            bytes_moved = report.bytes_moved,
            entries_updated = report.entries_updated,
            extents_released = report.extents_released,
            "data stream compacted"
        );
        Ok(report)
    }

    /// Up to `limit` changes pointing entries that reference moved chunks at their copies.
    fn repointing_changes(
        &self,
        moved: &HashMap<ChunkKey, ChunkLocation>,
        limit: usize,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        if moved.is_empty() {
            return changes;
        }
        self.scan(b"", None, |key, value| {
            let references = chunks_of(value)
                .iter()
                .any(|c| moved.contains_key(&chunk_key(c)));
            if references {
                let mut updated = value.clone();
                if let Some(chunks) = chunks_of_mut(&mut updated) {
                    for chunk in chunks.iter_mut() {
                        if let Some(copy) = moved.get(&chunk_key(chunk)) {
                            *chunk = *copy;
                        }
                    }
                }
                changes.push((key.to_vec(), Some(updated)));
            }
            changes.len() < limit
        });
        changes
    }

    /// The extent the data stream can be trimmed up to: the first extent that is not in the
    /// emptied `prefix`, is still referenced by the index, or may hold an in-flight upload's
    /// chunks. Call with the commit lock held. None when the stream has no extents.
    fn trim_point(
        &self,
        extents: &[strata_proto::stream::ExtentInfo],
        prefix: &[ExtentId],
    ) -> Option<ExtentId> {
        let upload_floor = self.uploads.floors().into_iter().min();
        let mut referenced = HashSet::new();
        self.scan(b"", None, |_, value| {
            referenced.extend(chunks_of(value).iter().map(chunk_extent));
            true
        });
        extents
            .iter()
            .map(|e| ExtentId::new(e.extent_id))
            .find(|id| {
                !prefix.contains(id)
                    || referenced.contains(id)
                    || upload_floor.is_some_and(|floor| *id >= floor)
            })
    }
}

/// Sleeps as long as needed to keep `bytes` since `started` under `bytes_per_sec_max`.
async fn pace(started: Instant, bytes: u64, bytes_per_sec_max: u64) {
    if bytes_per_sec_max == 0 {
        return;
    }
    let due = Duration::from_secs_f64(bytes as f64 / bytes_per_sec_max as f64);
    if let Some(wait) = due.checked_sub(started.elapsed()) {
        tokio::time::sleep(wait).await;
    }
}
