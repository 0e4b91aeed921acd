//! Bucket moves between stamps (issue 15, item 5): the rows RPCs the operator's mover (`strata
//! bucket move`) pages, reads and removes a bucket's rows with. ImportRow is in
//! [`super::move_import`]; SetMoveState, which marks the bucket's record, in
//! [`super::move_state`].
//!
//! A row is one index entry of the bucket: its record (`keys::bucket_key`) or one of its object
//! rows (objects, noncurrent versions, delete markers, uploads, parts: `keys::object_prefix`),
//! under the same encoded key on every stamp. The mover pages through the source's rows
//! (ScanRows), reads each with its bytes (ReadRow), writes it on the target (ImportRow) and,
//! when a move is undone or finished, removes rows (RemoveRows).
//!
//! Invariants:
//! - Chunk locations never leave a server: rows are answered without them. ReadRow reads a
//!   row's chunks after its index entry, as GET does (a compaction trimming them meanwhile is
//!   covered by the stream manager's GC delay).
//! - ScanRows reads a range under its commit lock: after a FENCE answered, a page holds every
//!   write the gate let through before the fence ([`crate::bucket_gate`]).
//! - These calls bypass the write gate (an importing or moved record refuses clients' writes)
//!   and the bucket's request budget (the mover bounds its own traffic); they are the
//!   operator's only.

use futures::StreamExt;
use strata_proto::partition::*;
use strata_types::error_detail::RejectReason;
use strata_types::keys;

use super::ReadRowStream;
use crate::error::PartitionError;
use crate::range::{Change, IndexValue, Range, RangeRef, FREEZE_OPEN};
use crate::records::ChunkLocation;
use crate::server::PartitionServerState;

/// Rows in one ScanRows page at most.
const SCAN_ROWS_MAX: u32 = 1_000;
/// Encoded rows in one ScanRows page at most (a page stops after the row that reaches it),
/// well under every client's default 4 MiB message limit: a row may carry 2 KiB of user
/// metadata, tags and a 1 KiB key.
const SCAN_PAGE_BYTES_MAX: usize = 2 * 1024 * 1024;
/// Keys in one RemoveRows request at most.
const REMOVE_KEYS_MAX: usize = 1_000;
/// Longest move id (the mover's are UUIDs).
const MOVE_ID_BYTES_MAX: usize = 128;

/// What kind of row an encoded key of a bucket is, by its shape (see `strata_types::keys`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RowKind {
    Bucket,
    Object,
    Upload,
    Part,
    Version,
}

/// The kind of row `key` is in `bucket`, None when it is no row of the bucket.
pub(super) fn row_kind(bucket: &str, key: &[u8]) -> Option<RowKind> {
    if key == keys::bucket_key(bucket) {
        return Some(RowKind::Bucket);
    }
    let rest = key.strip_prefix(keys::object_prefix(bucket).as_slice())?;
    let (object, tail) = match rest.iter().position(|&b| b == 0) {
        None => (rest, None),
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
    };
    if object.is_empty() || std::str::from_utf8(object).is_err() {
        return None;
    }
    let Some(tail) = tail else {
        return Some(RowKind::Object);
    };
    match tail.split_first() {
        Some((b'v', stamp)) if stamp.len() == 8 => Some(RowKind::Version),
        Some((b'u', upload)) => match upload.iter().position(|&b| b == 0) {
            None if !upload.is_empty() => Some(RowKind::Upload),
            Some(at) if at > 0 && upload.len() == at + 5 => Some(RowKind::Part),
            _ => None,
        },
        _ => None,
    }
}

pub(super) fn kind_of(value: &IndexValue) -> RowKind {
    match value {
        IndexValue::Bucket(_) => RowKind::Bucket,
        IndexValue::Object(_) => RowKind::Object,
        IndexValue::Upload(_) => RowKind::Upload,
        IndexValue::Part(_) => RowKind::Part,
        IndexValue::Version(_) => RowKind::Version,
    }
}

/// `value` without chunk locations (what leaves the server), or with `chunks` instead.
pub(super) fn with_chunks(value: IndexValue, chunks: Vec<ChunkLocation>) -> IndexValue {
    match value {
        IndexValue::Object(mut meta) => {
            meta.chunks = chunks;
            IndexValue::Object(meta)
        }
        IndexValue::Version(mut meta) => {
            meta.chunks = chunks;
            IndexValue::Version(meta)
        }
        IndexValue::Part(mut part) => {
            part.chunks = chunks;
            IndexValue::Part(part)
        }
        IndexValue::Upload(mut upload) => {
            // An upload's bytes are its parts'; its metadata never has chunks.
            if let Some(meta) = upload.meta.as_mut() {
                meta.chunks.clear();
            }
            IndexValue::Upload(upload)
        }
        IndexValue::Bucket(bucket) => IndexValue::Bucket(bucket),
    }
}

/// The bytes a row carries, as its record declares them, and their chunks.
pub(super) fn bytes_of(value: &IndexValue) -> (u64, &[ChunkLocation]) {
    match value {
        IndexValue::Object(meta) | IndexValue::Version(meta) if !meta.delete_marker => {
            (meta.size_bytes, &meta.chunks)
        }
        IndexValue::Part(part) => (part.size_bytes, &part.chunks),
        _ => (0, &[]),
    }
}

pub(super) fn check_bucket(bucket: &str) -> Result<(), PartitionError> {
    if bucket.is_empty() || bucket.as_bytes().contains(&0) {
        return Err(PartitionError::InvalidArgument(
            "invalid bucket name".into(),
        ));
    }
    Ok(())
}

pub(super) fn check_move_id(move_id: &str) -> Result<(), PartitionError> {
    if move_id.is_empty()
        || move_id.len() > MOVE_ID_BYTES_MAX
        || !move_id.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(PartitionError::InvalidArgument(format!(
            "a move id is 1 to {MOVE_ID_BYTES_MAX} printable ASCII characters"
        )));
    }
    Ok(())
}

/// The range of this server holding `key`, open for writes (Frozen while a split or merge is
/// prepared: the mover retries). Not charged to the bucket's request budget.
pub(super) fn writable_range(
    state: &PartitionServerState,
    key: &[u8],
) -> Result<RangeRef, PartitionError> {
    let range = state.range_for(key)?;
    if range.freeze_state() != FREEZE_OPEN {
        return Err(PartitionError::Frozen {
            range_id: range.bounds.range_id,
        });
    }
    Ok(range)
}

/// A refusal because of where the bucket's move stands.
pub(super) fn move_conflict(message: String) -> PartitionError {
    PartitionError::rejected(RejectReason::OperationAborted, message)
}

/// Where a ScanRows page starts: at or just after `start_after`, never before the bucket.
fn scan_start(request: &ScanRowsRequest, prefix: Vec<u8>) -> Vec<u8> {
    let start = if request.start_inclusive {
        request.start_after.clone()
    } else if request.start_after.is_empty() {
        prefix.clone()
    } else {
        // The smallest key after `start_after`.
        let mut after = request.start_after.clone();
        after.push(0);
        after
    };
    start.max(prefix)
}

pub async fn scan_rows(
    state: &PartitionServerState,
    request: ScanRowsRequest,
) -> Result<ScanRowsResponse, PartitionError> {
    check_bucket(&request.bucket)?;
    if !(1..=SCAN_ROWS_MAX).contains(&request.limit) {
        return Err(PartitionError::InvalidArgument(format!(
            "a page is 1 to {SCAN_ROWS_MAX} rows"
        )));
    }
    let prefix = keys::object_prefix(&request.bucket);
    let bucket_end = keys::prefix_end(&prefix);
    let start = scan_start(&request, prefix);
    if bucket_end.as_ref().is_some_and(|end| start >= *end) {
        return Ok(ScanRowsResponse::default());
    }
    let range = state.range_for(&start)?;
    let high = &range.bounds.high;
    // The range ends inside the bucket's keys: the next page starts at its high bound.
    let range_ends_first = !high.is_empty() && bucket_end.as_ref().is_none_or(|end| high < end);
    let end = if range_ends_first {
        Some(high.clone())
    } else {
        bucket_end
    };
    // Under the commit lock: a commit under way is waited for (see the module doc).
    let (rows, more) = {
        let _commits = range.lock_commits().await;
        page(&range, &start, end.as_deref(), request.limit as usize)
    };
    let (next_after, next_inclusive) = match rows.last() {
        Some(last) if more => (last.key.clone(), false),
        _ if range_ends_first => (high.clone(), true),
        _ => (Vec::new(), false),
    };
    Ok(ScanRowsResponse {
        rows,
        next_after,
        next_inclusive,
    })
}

/// Up to `limit` rows (and [`SCAN_PAGE_BYTES_MAX`]) of `[start, end)` without chunk
/// locations, and whether more rows follow in that span.
fn page(
    range: &Range,
    start: &[u8],
    end: Option<&[u8]>,
    limit: usize,
) -> (Vec<crate::records::IndexEntry>, bool) {
    use prost::Message;
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    let mut more = false;
    range.scan(start, end, |key, value| {
        if rows.len() >= limit || bytes >= SCAN_PAGE_BYTES_MAX {
            more = true;
            return false;
        }
        let row = with_chunks(value.clone(), Vec::new()).into_index_entry(key.to_vec());
        bytes += row.encoded_len();
        rows.push(row);
        true
    });
    (rows, more)
}

pub fn read_row(
    state: &PartitionServerState,
    request: ReadRowRequest,
) -> Result<ReadRowStream, PartitionError> {
    check_bucket(&request.bucket)?;
    if row_kind(&request.bucket, &request.key).is_none() {
        return Err(PartitionError::InvalidArgument(format!(
            "{} is no row of bucket {}",
            keys::display(&request.key),
            request.bucket
        )));
    }
    let range = state.range_for(&request.key)?;
    let value = range.get(&request.key).ok_or(PartitionError::NoSuchKey)?;
    let (size_bytes, chunks) = bytes_of(&value);
    if chunks.iter().map(|c| c.length).sum::<u64>() != size_bytes {
        return Err(PartitionError::Corrupt(format!(
            "row {} declares {size_bytes} bytes, its chunks hold another count",
            keys::display(&request.key)
        )));
    }
    let wanted = chunks.iter().map(|c| (*c, 0, c.length)).collect();
    let data = super::objects::read_chunks(range.stream_client().clone(), wanted).map(|bytes| {
        Ok(ReadRowResponse {
            part: Some(read_row_response::Part::Data(bytes?.to_vec())),
        })
    });
    let row = with_chunks(value, Vec::new()).into_index_entry(request.key);
    let first = futures::stream::once(async move {
        Ok(ReadRowResponse {
            part: Some(read_row_response::Part::Row(row)),
        })
    });
    Ok(Box::pin(first.chain(data)))
}

pub async fn remove_rows(
    state: &PartitionServerState,
    request: RemoveRowsRequest,
) -> Result<RemoveRowsResponse, PartitionError> {
    check_bucket(&request.bucket)?;
    check_move_id(&request.move_id)?;
    if request.keys.len() > REMOVE_KEYS_MAX {
        return Err(PartitionError::InvalidArgument(format!(
            "at most {REMOVE_KEYS_MAX} keys per call"
        )));
    }
    let prefix = keys::object_prefix(&request.bucket);
    if let Some(key) = request
        .keys
        .iter()
        .find(|key| !key.starts_with(&prefix) || key.len() == prefix.len())
    {
        return Err(PartitionError::InvalidArgument(format!(
            "{} is no object row of bucket {}",
            keys::display(key),
            request.bucket
        )));
    }
    let groups = by_range(state, request.keys)?;
    require_removable(state, &request.bucket, &request.move_id).await?;
    let mut removed = 0u32;
    for (range, keys) in groups {
        let guard = range.lock_commits().await;
        let changes: Vec<Change> = keys
            .into_iter()
            .filter(|key| range.get(key).is_some())
            .map(|key| (key, None))
            .collect();
        removed += changes.len() as u32;
        range.commit_locked(guard, changes).await?;
    }
    Ok(RemoveRowsResponse { removed })
}

/// Keys of one range, removed in one commit.
type RangeKeys = (RangeRef, Vec<Vec<u8>>);

/// `keys` grouped by the range of this server holding them (NotOwner for a key none holds).
fn by_range(
    state: &PartitionServerState,
    keys: Vec<Vec<u8>>,
) -> Result<Vec<RangeKeys>, PartitionError> {
    let mut groups: Vec<RangeKeys> = Vec::new();
    for key in keys {
        let range = writable_range(state, &key)?;
        match groups
            .iter_mut()
            .find(|(r, _)| r.bounds.range_id == range.bounds.range_id)
        {
            Some((_, group)) => group.push(key),
            None => groups.push((range, vec![key])),
        }
    }
    Ok(groups)
}

/// Refuses unless `bucket`'s record is importing by `move_id` or moved away by it.
async fn require_removable(
    state: &PartitionServerState,
    bucket: &str,
    move_id: &str,
) -> Result<(), PartitionError> {
    let record = state
        .bucket_record(bucket)
        .await?
        .ok_or_else(|| PartitionError::NoSuchBucket(bucket.to_string()))?;
    let held = record.importing || !record.moved_to.is_empty();
    if !held || record.move_id != move_id {
        return Err(move_conflict(format!(
            "bucket {bucket} is neither being imported nor moved away by move {move_id}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{ObjectRecord, PartRecord};

    #[test]
    fn row_kinds_follow_the_key_shapes() {
        let b = "bkt";
        assert_eq!(row_kind(b, &keys::bucket_key(b)), Some(RowKind::Bucket));
        assert_eq!(
            row_kind(b, &keys::object_key(b, "a/b")),
            Some(RowKind::Object)
        );
        assert_eq!(
            row_kind(b, &keys::upload_key(b, "a", "u1")),
            Some(RowKind::Upload)
        );
        assert_eq!(
            row_kind(b, &keys::part_key(b, "a", "u1", 7)),
            Some(RowKind::Part)
        );
        assert_eq!(
            row_kind(b, &keys::version_key(b, "a", 9)),
            Some(RowKind::Version)
        );
        // Other buckets, the bare prefix and malformed tails are no rows of `b`.
        assert_eq!(row_kind(b, &keys::object_key("bk", "t")), None);
        assert_eq!(row_kind(b, &keys::bucket_key("bk")), None);
        assert_eq!(row_kind(b, &keys::object_prefix(b)), None);
        let mut short_version = keys::version_prefix(b, "a");
        short_version.push(1);
        assert_eq!(row_kind(b, &short_version), None);
        let mut short_part = keys::upload_key(b, "a", "u1");
        short_part.extend_from_slice(&[0, 1]);
        assert_eq!(row_kind(b, &short_part), None);
    }

    #[test]
    fn rows_leave_without_chunks_and_come_back_with_the_new_ones() {
        let chunk = ChunkLocation {
            extent_id: 4,
            offset: 0,
            length: 3,
        };
        let object = IndexValue::Object(ObjectRecord {
            size_bytes: 3,
            etag: "\"900150983cd24fb0d6963f7d28e17f72\"".into(),
            chunks: vec![chunk],
            ..Default::default()
        });
        assert_eq!(bytes_of(&object), (3, &[chunk][..]));
        let bare = with_chunks(object.clone(), Vec::new());
        assert_eq!(bytes_of(&bare), (3, &[][..]));
        assert_eq!(with_chunks(bare, vec![chunk]), object);
        let marker = IndexValue::Object(ObjectRecord {
            delete_marker: true,
            size_bytes: 3,
            ..Default::default()
        });
        assert_eq!(bytes_of(&marker).0, 0);
        let part = IndexValue::Part(PartRecord {
            size_bytes: 3,
            chunks: vec![chunk],
            ..Default::default()
        });
        assert_eq!(bytes_of(&part), (3, &[chunk][..]));
    }

    #[test]
    fn pages_start_after_their_key_or_at_it_and_never_before_the_bucket() {
        let prefix = keys::object_prefix("b");
        let request = |start_after: &[u8], start_inclusive| ScanRowsRequest {
            bucket: "b".into(),
            start_after: start_after.to_vec(),
            limit: 1,
            start_inclusive,
        };
        assert_eq!(scan_start(&request(b"", false), prefix.clone()), prefix);
        let key = keys::object_key("b", "k");
        let mut after = key.clone();
        after.push(0);
        assert_eq!(scan_start(&request(&key, false), prefix.clone()), after);
        assert_eq!(scan_start(&request(&key, true), prefix.clone()), key);
        assert_eq!(scan_start(&request(b"a", true), prefix.clone()), prefix);
    }

    #[test]
    fn move_ids_are_bounded_printable_ascii() {
        assert!(check_move_id("0123abcd-ef").is_ok());
        assert!(check_move_id("").is_err());
        assert!(check_move_id("a b").is_err());
        assert!(check_move_id(&"m".repeat(MOVE_ID_BYTES_MAX + 1)).is_err());
    }
}
