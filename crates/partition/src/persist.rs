//! Reading and writing a range's commit log and checkpoint streams: appending one commit (one
//! or several records, see [`crate::format`]), writing a whole checkpoint, finding the newest
//! complete checkpoint, and replaying the log after it.

use std::collections::BTreeMap;

use crate::records::{
    checkpoint_record::Part, CheckpointBatch, CheckpointBegin, CheckpointEnd, CheckpointRecord,
    IndexEntry, LogEntry, RecentWrite, ReplicationCursors,
};
use futures::StreamExt;
use strata_stream::{RecordPos, StreamClient, StreamWriter};

use crate::error::PartitionError;
use crate::format::{self, Reassembler};
use crate::index::{apply_changes, IndexValue};
use crate::recent_writes::RecentWrites;
use crate::streams::stream_error;
use strata_types::error_detail::RejectReason;
use strata_types::ExtentId;

/// Checkpoint batches stay under this many encoded bytes, far below the stream record limit
/// (a single larger entry, such as a huge chunk list, makes a batch of its own, fragmented).
const CHECKPOINT_BATCH_BYTES_MAX: usize = 512 * 1024;

/// A message the encoder refuses: larger than any commit S3 allows. Refused before anything is
/// written, so the range stays healthy.
fn too_large(err: format::FormatError) -> PartitionError {
    PartitionError::rejected(
        RejectReason::EntityTooLarge,
        format!("the change is too large to commit: {err}"),
    )
}

/// The records of one log entry, encoded before anything is appended.
pub(crate) fn log_records(entry: &LogEntry) -> Result<Vec<bytes::Bytes>, PartitionError> {
    format::encode_log_records(entry).map_err(too_large)
}

/// Appends a log entry's records in order; the position of the last one (where a replay after
/// a checkpoint covering it starts: reading from there sees only that last fragment, which the
/// reassembler drops).
pub(crate) async fn append_records(
    writer: &StreamWriter,
    records: Vec<bytes::Bytes>,
) -> Result<RecordPos, strata_stream::StreamError> {
    let mut last = None;
    for record in records {
        last = Some(writer.append(record).await?);
    }
    Ok(last.expect("an entry has at least one record"))
}

async fn append_checkpoint_record(
    writer: &StreamWriter,
    part: Part,
) -> Result<RecordPos, PartitionError> {
    let record = CheckpointRecord { part: Some(part) };
    let records = format::encode_checkpoint_records(&record).map_err(too_large)?;
    append_records(writer, records).await.map_err(stream_error)
}

/// Appends one whole checkpoint to `writer`: Begin, batches of entries in key order, batches of
/// recent writes, End. Returns where its Begin record is.
pub(crate) async fn write_checkpoint(
    writer: &StreamWriter,
    begin: CheckpointBegin,
    entries: impl IntoIterator<Item = (Vec<u8>, IndexValue)>,
    recent_writes: Vec<RecentWrite>,
) -> Result<RecordPos, PartitionError> {
    let checkpoint_id = begin.checkpoint_id;
    let begin_pos = append_checkpoint_record(writer, Part::Begin(begin)).await?;
    let batch_of = |entries, recent_writes| {
        Part::Batch(CheckpointBatch {
            checkpoint_id,
            entries,
            recent_writes,
        })
    };
    let mut batch = Vec::new();
    let mut batch_bytes = 0usize;
    let mut total = 0u64;
    for (key, value) in entries {
        let entry = value.into_index_entry(key);
        batch_bytes += prost::Message::encoded_len(&entry);
        batch.push(entry);
        total += 1;
        if batch_bytes >= CHECKPOINT_BATCH_BYTES_MAX {
            batch_bytes = 0;
            let part = batch_of(std::mem::take(&mut batch), Vec::new());
            append_checkpoint_record(writer, part).await?;
        }
    }
    if !batch.is_empty() {
        append_checkpoint_record(writer, batch_of(batch, Vec::new())).await?;
    }
    // Recent writes in batches of their own, with no index entries: a reader that predates
    // them sees empty batches.
    let mut writes = Vec::new();
    let mut writes_bytes = 0usize;
    for write in recent_writes {
        writes_bytes += prost::Message::encoded_len(&write);
        writes.push(write);
        if writes_bytes >= CHECKPOINT_BATCH_BYTES_MAX {
            writes_bytes = 0;
            let part = batch_of(Vec::new(), std::mem::take(&mut writes));
            append_checkpoint_record(writer, part).await?;
        }
    }
    if !writes.is_empty() {
        append_checkpoint_record(writer, batch_of(Vec::new(), writes)).await?;
    }
    let end = Part::End(CheckpointEnd {
        checkpoint_id,
        entries: total,
    });
    append_checkpoint_record(writer, end).await?;
    Ok(begin_pos)
}

/// Where a range's applied log ends: what replay resumes after.
pub struct CommitState {
    /// Sequence of the last applied log entry.
    pub(crate) sequence: u64,
    /// Position of the last applied log record (where replay after a checkpoint starts).
    pub(crate) last_log_pos: Option<(ExtentId, u64)>,
    /// The range's clock: the highest `committed_ms` applied (see `LogEntry.committed_ms`).
    pub(crate) committed_ms: i64,
    /// The replication cursors as of the last applied entry that set them (see
    /// [`crate::replication_cursors`]).
    pub(crate) replication: ReplicationCursors,
}

/// A complete checkpoint as read back.
pub(crate) struct LoadedCheckpoint {
    pub begin: CheckpointBegin,
    pub entries: Vec<IndexEntry>,
    pub recent_writes: Vec<RecentWrite>,
}

/// Reads the checkpoint stream and returns the newest checkpoint whose End arrived.
pub(crate) async fn newest_checkpoint(
    client: &StreamClient,
    name: &str,
) -> Result<Option<LoadedCheckpoint>, PartitionError> {
    let mut newest: Option<LoadedCheckpoint> = None;
    let mut building: Option<LoadedCheckpoint> = None;
    let mut reassembler = Reassembler::default();
    let records = client.read_stream(name, None);
    futures::pin_mut!(records);
    while let Some(item) = records.next().await {
        let (_, payload) = item.map_err(stream_error)?;
        let corrupt = |err: format::FormatError| PartitionError::Corrupt(err.to_string());
        let Some(payload) = reassembler.push(payload).map_err(corrupt)? else {
            continue; // a fragment of a record still being gathered
        };
        let record = format::decode_checkpoint(&payload).map_err(corrupt)?;
        match record.part {
            Some(Part::Begin(begin)) => {
                building = Some(LoadedCheckpoint {
                    begin,
                    entries: Vec::new(),
                    recent_writes: Vec::new(),
                })
            }
            Some(Part::Batch(batch)) => match &mut building {
                Some(checkpoint) if checkpoint.begin.checkpoint_id == batch.checkpoint_id => {
                    // Batches hold keys in ascending order; a batch that does not start after
                    // the last key gathered is a duplicate left by a retried append.
                    let is_duplicate = match (checkpoint.entries.last(), batch.entries.first()) {
                        (Some(last), Some(first)) => first.key <= last.key,
                        _ => false,
                    };
                    if !is_duplicate {
                        checkpoint.entries.extend(batch.entries);
                    }
                    // A duplicate batch of recent writes repeats ids, which restoring ignores.
                    checkpoint.recent_writes.extend(batch.recent_writes);
                }
                _ => building = None, // a batch without its Begin: part of an abandoned checkpoint
            },
            Some(Part::End(end)) => {
                if let Some(checkpoint) = building.take() {
                    let complete = checkpoint.begin.checkpoint_id == end.checkpoint_id
                        && checkpoint.entries.len() as u64 == end.entries;
                    // The newest is the one covering the most log, wherever it sits.
                    let newer = newest
                        .as_ref()
                        .is_none_or(|best| checkpoint.begin.sequence >= best.begin.sequence);
                    if complete && newer {
                        newest = Some(checkpoint);
                    }
                }
            }
            None => return Err(PartitionError::Corrupt("empty checkpoint record".into())),
        }
    }
    Ok(newest)
}

/// Replays log records after `state.sequence` into `index`. Returns how many were applied.
pub(crate) async fn replay_log(
    client: &StreamClient,
    name: &str,
    index: &mut BTreeMap<Vec<u8>, IndexValue>,
    state: &mut CommitState,
    recent_writes: &mut RecentWrites,
) -> Result<u64, PartitionError> {
    let records = client.read_stream(name, state.last_log_pos);
    futures::pin_mut!(records);
    let mut applied = 0;
    // An entry written as several records is applied only once all of them arrived (a commit
    // that stopped part-way was never acknowledged), at the position of its last record.
    let mut reassembler = Reassembler::default();
    while let Some(item) = records.next().await {
        let (pos, payload) = item.map_err(stream_error)?;
        let corrupt = |err: format::FormatError| PartitionError::Corrupt(err.to_string());
        let Some(payload) = reassembler.push(payload).map_err(corrupt)? else {
            continue;
        };
        let entry = format::decode_log_entry(&payload).map_err(corrupt)?;
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
        recent_writes.remember_changes(&changes, strata_util::now_ms());
        apply_changes(index, changes);
        state.sequence = entry.sequence;
        state.last_log_pos = Some((pos.extent_id, pos.offset));
        state.committed_ms = state.committed_ms.max(entry.committed_ms);
        if let Some(cursors) = entry.replication {
            state.replication = cursors;
        }
        applied += 1;
    }
    Ok(applied)
}
