//! ImportRow: writes one row of a bucket being moved here, with its bytes (issue 15, item 5;
//! the other rows RPCs are [`super::moves`]').
//!
//! Invariants:
//! - An imported row points only at bytes this server appended itself, received whole (the
//!   row's length, and its MD5 when its ETag is one); whatever chunk locations the row came
//!   with are dropped. The upload guard keeps compaction off those bytes until the commit.
//! - A row other than the record is written only into a bucket whose record is importing by
//!   the same move and not being dropped, checked under the commit lock of the range it
//!   commits to, right before the commit: a DROP that marked the record first and then counts
//!   every range under its commit lock sees every row imported before the mark (as
//!   DeleteBucket does, see [`crate::bucket_gate`]), and a row checked after it is refused.
//! - The bucket's record is created, or replaced, only as the move's copy (importing): a
//!   record the stamp serves or served is never overwritten (an importing copy left by an
//!   earlier move that was aborted is taken over).

use bytes::BytesMut;
use md5::{Digest, Md5};
use strata_proto::partition::*;
use strata_types::error_detail::RejectReason;
use strata_types::keys;
use strata_types::limits::OBJECT_BYTES_MAX;
use strata_types::CHUNK_SIZE_BYTES;
use tonic::{Status, Streaming};

use super::moves::{
    bytes_of, check_bucket, check_move_id, kind_of, move_conflict, row_kind, with_chunks,
    writable_range,
};
use crate::error::PartitionError;
use crate::range::{Change, IndexValue, Range};
use crate::records::{BucketRecord, ChunkLocation, CommitOrigin};
use crate::server::PartitionServerState;

/// One ImportRow data message at most (the mover sends chunks of `CHUNK_SIZE_BYTES`).
const IMPORT_MESSAGE_BYTES_MAX: usize = 4 * CHUNK_SIZE_BYTES;

/// The MD5 a row's ETag names: objects written whole and parts (`"<32 hex>"`); None for
/// multipart objects (`"<hex>-<parts>"`) and rows without bytes.
pub(super) fn etag_md5(value: &IndexValue) -> Option<Vec<u8>> {
    let etag = match value {
        IndexValue::Object(meta) | IndexValue::Version(meta) if !meta.delete_marker => &meta.etag,
        IndexValue::Part(part) => &part.etag,
        _ => return None,
    };
    let hex_digits = etag.trim().trim_matches('"');
    (hex_digits.len() == 32)
        .then(|| hex::decode(hex_digits).ok())
        .flatten()
}

/// The header of an ImportRow and its row, checked: a row of the header's bucket whose value
/// fits its key, and as many bytes announced as the row declares.
fn imported_row(
    body_first: Option<ImportRowRequest>,
) -> Result<(ImportRowHeader, Vec<u8>, IndexValue), PartitionError> {
    let Some(import_row_request::Part::Header(mut header)) = body_first.and_then(|m| m.part) else {
        return Err(PartitionError::InvalidArgument(
            "the first message must be the header".into(),
        ));
    };
    check_bucket(&header.bucket)?;
    check_move_id(&header.move_id)?;
    let entry = header
        .row
        .take()
        .ok_or_else(|| PartitionError::InvalidArgument("the header carries no row".into()))?;
    let (key, value) = IndexValue::from_index_entry(entry)
        .ok_or_else(|| PartitionError::InvalidArgument("the row has no value".into()))?;
    if row_kind(&header.bucket, &key) != Some(kind_of(&value)) {
        return Err(PartitionError::InvalidArgument(format!(
            "{} is no {:?} row of bucket {}",
            keys::display(&key),
            kind_of(&value),
            header.bucket
        )));
    }
    let (declared_bytes, _) = bytes_of(&value);
    if header.size_bytes != declared_bytes || declared_bytes > OBJECT_BYTES_MAX {
        return Err(PartitionError::InvalidArgument(format!(
            "the row has {declared_bytes} bytes (at most {OBJECT_BYTES_MAX}), the header {}",
            header.size_bytes
        )));
    }
    Ok((header, key, value))
}

pub async fn import_row(
    state: &PartitionServerState,
    mut body: Streaming<ImportRowRequest>,
) -> Result<ImportRowResponse, Status> {
    let (header, key, value) = imported_row(body.message().await?)?;
    let range = writable_range(state, &key)?;
    if let IndexValue::Bucket(record) = value {
        import_bucket(&range, key, record, &header).await?;
        return Ok(ImportRowResponse {});
    }
    // Fail before any byte is stored; decided for good at the commit below.
    require_importing(state, &header.bucket, &header.move_id).await?;
    // Until the commit below, compaction keeps the extents these bytes land in.
    let _upload = range.begin_upload();
    let chunks = receive_row_bytes(&range, &mut body, header.size_bytes, etag_md5(&value)).await?;
    let value = with_chunks(value, chunks);
    let guard = range.lock_commits().await;
    require_importing(state, &header.bucket, &header.move_id).await?;
    range
        .commit_locked_as(guard, vec![(key, Some(value))], CommitOrigin::MoveImport)
        .await?;
    Ok(ImportRowResponse {})
}

/// Creates or replaces the bucket's record here, marked importing by the header's move.
/// Refused when a record is there that is not that move's copy (AlreadyExists), or while a
/// DROP holds it.
async fn import_bucket(
    range: &Range,
    key: Vec<u8>,
    mut record: BucketRecord,
    header: &ImportRowHeader,
) -> Result<(), PartitionError> {
    if record.name != header.bucket {
        return Err(PartitionError::InvalidArgument(format!(
            "the bucket row names {:?}, not {}",
            record.name, header.bucket
        )));
    }
    record.importing = true;
    record.move_id = header.move_id.clone();
    record.fenced_until_ms = 0;
    record.moved_to.clear();
    record.deleting_until_ms = 0;
    record.deletion_id.clear();
    let guard = range.lock_commits().await;
    if let Some(IndexValue::Bucket(existing)) = range.get(&key) {
        // Another move's copy is a leftover of a move that ended without switching here (the
        // location group lets one move copy at a time): never served, so the new move takes
        // it over, and its sync passes remove the rows the source does not hold.
        if !existing.importing {
            return Err(PartitionError::rejected(
                RejectReason::AlreadyExists,
                format!(
                    "bucket {} exists here and is not a move's copy",
                    header.bucket
                ),
            ));
        }
        if crate::bucket_gate::deleting(&existing, strata_util::now_ms()) {
            return Err(move_conflict(format!(
                "bucket {} is being dropped",
                header.bucket
            )));
        }
    }
    let changes: Vec<Change> = vec![(key, Some(IndexValue::Bucket(record)))];
    range
        .commit_locked_as(guard, changes, CommitOrigin::MoveImport)
        .await
}

/// Refuses unless `bucket`'s record (here or on its owner) is importing by `move_id` and no
/// DROP holds it.
pub(super) async fn require_importing(
    state: &PartitionServerState,
    bucket: &str,
    move_id: &str,
) -> Result<(), PartitionError> {
    let (record, deleting) = state.bucket_record_with_lease(bucket, false).await?;
    let record = record.ok_or_else(|| PartitionError::NoSuchBucket(bucket.to_string()))?;
    if !record.importing || record.move_id != move_id {
        return Err(move_conflict(format!(
            "bucket {bucket} is not being imported by move {move_id}"
        )));
    }
    if deleting {
        return Err(move_conflict(format!("bucket {bucket} is being dropped")));
    }
    Ok(())
}

/// The data messages that follow a header (ImportRow's, ApplyReplica's).
pub(super) trait DataMessages {
    /// The next data message; None at the end of the stream; an error for anything else.
    fn next_data(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<Vec<u8>>, Status>> + Send;
}

impl DataMessages for Streaming<ImportRowRequest> {
    async fn next_data(&mut self) -> Result<Option<Vec<u8>>, Status> {
        match self.message().await? {
            None => Ok(None),
            Some(ImportRowRequest {
                part: Some(import_row_request::Part::Data(data)),
            }) => Ok(Some(data)),
            Some(_) => Err(PartitionError::InvalidArgument(
                "only data may follow the header".into(),
            )
            .into()),
        }
    }
}

/// Receives a row's bytes until the mover ends the stream, appending chunks of at most
/// `CHUNK_SIZE_BYTES` to the range's data stream as they fill; checks the length and, when the
/// row's ETag is an MD5, the digest. Call holding an upload guard.
pub(super) async fn receive_row_bytes(
    range: &Range,
    body: &mut impl DataMessages,
    size_bytes: u64,
    md5_expected: Option<Vec<u8>>,
) -> Result<Vec<ChunkLocation>, Status> {
    let mut md5 = md5_expected.as_ref().map(|_| Md5::new());
    let mut received = 0u64;
    let mut chunks = Vec::new();
    let mut pending = BytesMut::with_capacity(CHUNK_SIZE_BYTES.min(size_bytes as usize));
    while let Some(data) = body.next_data().await? {
        if data.len() > IMPORT_MESSAGE_BYTES_MAX {
            return Err(PartitionError::InvalidArgument("data message too large".into()).into());
        }
        received += data.len() as u64;
        if received > size_bytes {
            break; // refused below, without storing what is too much
        }
        if let Some(md5) = md5.as_mut() {
            md5.update(&data);
        }
        pending.extend_from_slice(&data);
        while pending.len() >= CHUNK_SIZE_BYTES {
            let chunk = pending.split_to(CHUNK_SIZE_BYTES).freeze();
            chunks.push(range.append_data(chunk).await?);
        }
    }
    if received != size_bytes {
        return Err(PartitionError::IncompleteBody {
            expected: size_bytes,
            received,
        }
        .into());
    }
    if !pending.is_empty() {
        chunks.push(range.append_data(pending.freeze()).await?);
    }
    if let (Some(md5), Some(expected)) = (md5, md5_expected) {
        if md5.finalize().as_slice() != expected.as_slice() {
            return Err(PartitionError::BadDigest.into());
        }
    }
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::ObjectRecord;

    #[test]
    fn only_md5_etags_are_checked() {
        let md5_of_abc = "900150983cd24fb0d6963f7d28e17f72";
        let object = IndexValue::Object(ObjectRecord {
            size_bytes: 3,
            etag: format!("\"{md5_of_abc}\""),
            ..Default::default()
        });
        assert_eq!(etag_md5(&object), hex::decode(md5_of_abc).ok());
        let multipart = IndexValue::Version(ObjectRecord {
            size_bytes: 3,
            etag: format!("\"{md5_of_abc}-2\""),
            ..Default::default()
        });
        assert_eq!(etag_md5(&multipart), None);
        let marker = IndexValue::Object(ObjectRecord {
            delete_marker: true,
            etag: format!("\"{md5_of_abc}\""),
            ..Default::default()
        });
        assert_eq!(etag_md5(&marker), None);
    }

    #[test]
    fn a_header_must_announce_the_row_s_own_bytes() {
        let header = |key: Vec<u8>, size_bytes| ImportRowRequest {
            part: Some(import_row_request::Part::Header(ImportRowHeader {
                bucket: "b".into(),
                move_id: "m".into(),
                row: Some(crate::records::IndexEntry {
                    key,
                    value: Some(crate::records::index_entry::Value::Object(ObjectRecord {
                        size_bytes: 3,
                        ..Default::default()
                    })),
                }),
                size_bytes,
            })),
        };
        let object = keys::object_key("b", "k");
        assert!(imported_row(Some(header(object.clone(), 3))).is_ok());
        assert!(imported_row(Some(header(object, 4))).is_err());
        assert!(imported_row(Some(header(keys::version_key("b", "k", 1), 3))).is_err());
        assert!(imported_row(None).is_err());
    }
}
