//! Objects: streaming put and get, head, delete, metadata-only copy.

use bytes::Bytes;
use futures::StreamExt;
use strata_proto::common::{ObjectMeta, WriteCondition};
use strata_proto::partition::*;
use strata_types::keys;
use strata_types::limits::OBJECT_KEY_BYTES_MAX;
use tonic::{Status, Streaming};

use super::body::{first_header, receive_body};
use super::{versions, GetObjectStream, Write};
use crate::error::PartitionError;
use crate::range::{IndexValue, Range};
use crate::records::{chunk_extent, wire, ChunkLocation, ObjectRecord};
use crate::server::{Charge, PartitionServerState};
use strata_stream::StreamClient;
use strata_types::error_detail::RejectReason;

/// Chunk reads in flight per GET: enough to overlap the next read with sending.
const GET_READ_AHEAD_CHUNKS: usize = 2;

pub use strata_types::limits::USER_METADATA_BYTES_MAX;

/// MetadataTooLarge, as S3 answers, for metadata over [`USER_METADATA_BYTES_MAX`]: refused
/// before anything is stored.
pub(super) fn check_user_metadata(meta: Option<&ObjectMeta>) -> Result<(), PartitionError> {
    let bytes: usize = meta
        .map(|m| m.user_metadata.iter().map(|(k, v)| k.len() + v.len()).sum())
        .unwrap_or(0);
    if bytes as u64 > USER_METADATA_BYTES_MAX {
        return Err(PartitionError::rejected(
            RejectReason::MetadataTooLarge,
            format!("Your metadata headers exceed the maximum allowed metadata size ({bytes} > {USER_METADATA_BYTES_MAX} bytes)."),
        ));
    }
    Ok(())
}

pub(super) fn object_key(bucket: &str, key: &str) -> Result<Vec<u8>, PartitionError> {
    if key.is_empty() {
        return Err(PartitionError::InvalidArgument(
            "object keys cannot be empty".into(),
        ));
    }
    if key.len() as u64 > OBJECT_KEY_BYTES_MAX {
        return Err(PartitionError::rejected(
            RejectReason::KeyTooLong,
            format!("object keys are 1 to {OBJECT_KEY_BYTES_MAX} bytes"),
        ));
    }
    if key.as_bytes().contains(&0) {
        return Err(PartitionError::InvalidArgument(
            "object keys cannot contain U+0000".into(),
        ));
    }
    if bucket.is_empty() || bucket.as_bytes().contains(&0) {
        return Err(PartitionError::InvalidArgument(
            "invalid bucket name".into(),
        ));
    }
    Ok(keys::object_key(bucket, key))
}

/// The requested version of a key (empty id: the current one), delete markers included.
fn lookup(
    state: &PartitionServerState,
    bucket: &str,
    key: &str,
    version_id: &str,
    charge: Charge,
) -> Result<(crate::range::RangeRef, ObjectRecord), PartitionError> {
    let encoded = object_key(bucket, key)?;
    let range = state.admit_as(&encoded, bucket, charge)?;
    match versions::find(&range, bucket, key, version_id) {
        Some(found) => Ok((range, found.meta)),
        None if version_id.is_empty() => Err(PartitionError::NoSuchKey),
        None => Err(no_such_version()),
    }
}

pub(super) fn no_such_version() -> PartitionError {
    PartitionError::NoSuchVersion
}

/// Decides an S3 conditional write against the key's current object: `If-None-Match: *`
/// fails when an object exists, `If-Match` when none exists (NoSuchKey, as S3 answers) or its
/// ETag differs. Called with the range's commit lock held, it is atomic with the write.
pub(super) fn check_write_condition(
    range: &Range,
    key: &[u8],
    condition: Option<&WriteCondition>,
) -> Result<(), PartitionError> {
    let Some(condition) = condition else {
        return Ok(());
    };
    // A delete marker is no object: the key is absent for a condition.
    let current = match range.get(key) {
        Some(IndexValue::Object(meta)) if !meta.delete_marker => Some(meta),
        _ => None,
    };
    if condition.if_none_match_any && current.is_some() {
        return Err(PartitionError::PreconditionFailed);
    }
    if !condition.if_match_etag.is_empty() {
        let Some(current) = current else {
            return Err(PartitionError::NoSuchKey);
        };
        if condition.if_match_etag != "*" && condition.if_match_etag != current.etag {
            return Err(PartitionError::PreconditionFailed);
        }
    }
    Ok(())
}

/// The answer to a retried PutObject whose first attempt already committed: the key's current
/// version carries the request's write id (see `ObjectMeta.write_id`), or the range committed
/// or replayed that write recently (another write may have replaced it since).
pub(super) fn already_written(
    range: &Range,
    key: &[u8],
    write_id: &str,
) -> Option<PutObjectResponse> {
    if write_id.is_empty() {
        return None;
    }
    match range.get(key) {
        Some(IndexValue::Object(meta)) if meta.write_id == write_id => {
            tracing::info!(
                write_id,
                "a retried write found its own commit; answered it"
            );
            Some(PutObjectResponse {
                meta: Some(wire::object_meta(&meta)),
            })
        }
        _ => range
            .recent_write(key, write_id)
            .map(|meta| PutObjectResponse {
                meta: Some(wire::object_meta(&meta)),
            }),
    }
}

/// Logs (at debug: most refusals are ordinary contention) a conditional write refused by its
/// condition, with what the range knew of recent writes: a refused write whose first attempt
/// committed is the case the recent-writes table exists for, so the log says which range
/// object decided and how much it remembered. The front-end logs, at info, each retried write
/// that ends refused, under the same request id.
fn note_refused_retry(
    range: &Range,
    key: &[u8],
    write_id: &str,
    err: &PartitionError,
    stage: &str,
) {
    if matches!(err, PartitionError::PreconditionFailed) {
        tracing::debug!(
            key = %String::from_utf8_lossy(key),
            range_id = %range.bounds.range_id,
            epoch = range.bounds.epoch.get(),
            loaded_ms_ago = range.loaded_at.elapsed().as_millis() as u64,
            recent_writes = range.recent_writes_len(),
            write_id,
            stage,
            "conditional write refused: its condition failed and its write id is not remembered"
        );
    }
}

pub async fn put(
    state: &PartitionServerState,
    mut body: Streaming<PutObjectRequest>,
) -> Result<PutObjectResponse, Status> {
    let header = first_header(&mut body).await?;
    let encoded = object_key(&header.bucket, &header.key)?;
    check_user_metadata(header.meta.as_ref())?;
    let range = state.admit(&encoded, &header.bucket)?;
    let write_id = header
        .meta
        .as_ref()
        .map(|m| m.write_id.clone())
        .unwrap_or_default();
    if let Some(done) = already_written(&range, &encoded, &write_id) {
        return Ok(done);
    }
    let condition = header.condition.as_ref();
    // Fail fast, before any byte is stored; decided for good at the commit below.
    check_write_condition(&range, &encoded, condition).inspect_err(|err| {
        note_refused_retry(&range, &encoded, &write_id, err, "before the body")
    })?;
    // Until the commit below, compaction keeps the extents this body lands in.
    let _upload = range.begin_upload();
    let received = receive_body(
        &range,
        &mut body,
        header.size_bytes,
        &header.content_md5,
        header.checksum.as_ref(),
    )
    .await?;
    let mut meta = wire::object_record(header.meta.unwrap_or_default());
    meta.size_bytes = received.size_bytes;
    meta.etag = format!("\"{}\"", hex::encode(received.md5));
    meta.last_modified_ms = strata_util::now_ms();
    meta.chunks = received.chunks;
    meta.checksum = received.checksum;
    meta.delete_marker = false;
    let versioning = versions::versioning_of(header.versioning)?;
    let guard = range.lock_commits().await;
    if let Some(done) = already_written(&range, &encoded, &write_id) {
        return Ok(done);
    }
    match check_write_condition(&range, &encoded, condition)
        .inspect_err(|err| note_refused_retry(&range, &encoded, &write_id, err, "at the commit"))
    {
        // The object If-Match named was there when the body started and was deleted while it
        // streamed: S3 calls that a conflicting operation (409), not a missing key.
        Err(PartitionError::NoSuchKey) => {
            return Err(PartitionError::rejected(
                RejectReason::Conflict,
                "A conflicting operation occurred during the conditional write; retry it.",
            )
            .into())
        }
        other => other?,
    }
    let rules = super::require_writable(state, &header.bucket, Write::AddsKeys).await?;
    let mut changes =
        versions::write_changes(&range, &header.bucket, &header.key, &mut meta, versioning);
    super::mark_new_version(&range, &rules, &header.bucket, &header.key, &mut changes);
    range.commit_locked(guard, changes).await?;
    Ok(PutObjectResponse {
        meta: Some(wire::object_meta(&meta)),
    })
}

pub fn head(
    state: &PartitionServerState,
    request: HeadObjectRequest,
) -> Result<HeadObjectResponse, PartitionError> {
    match lookup(
        state,
        &request.bucket,
        &request.key,
        &request.version_id,
        Charge::Request,
    ) {
        Ok((range, meta)) => Ok(HeadObjectResponse {
            meta: Some(super::shown_meta(&range, &request.bucket, &meta)),
        }),
        Err(PartitionError::NoSuchKey) => Ok(HeadObjectResponse { meta: None }),
        Err(PartitionError::NoSuchVersion) => Ok(HeadObjectResponse { meta: None }),
        Err(err) => Err(err),
    }
}

pub fn get(
    state: &PartitionServerState,
    request: GetObjectRequest,
) -> Result<GetObjectStream, PartitionError> {
    let charge = if request.budget_taken {
        Charge::AlreadyCharged
    } else {
        Charge::Request
    };
    let (range, meta) = lookup(
        state,
        &request.bucket,
        &request.key,
        &request.version_id,
        charge,
    )?;
    if meta.delete_marker {
        return Err(PartitionError::NoSuchKey);
    }
    if !request.expected_etag.is_empty() && request.expected_etag != meta.etag {
        return Err(PartitionError::PreconditionFailed);
    }
    let start = request.range_start.min(meta.size_bytes);
    let end = if request.range_end == 0 {
        meta.size_bytes
    } else {
        request.range_end.min(meta.size_bytes)
    };
    if start > end {
        return Err(PartitionError::InvalidArgument(
            "range start after range end".into(),
        ));
    }

    // (chunk, first byte wanted inside it, bytes wanted) for every chunk overlapping [start, end).
    let mut wanted = Vec::new();
    let mut chunk_start = 0u64;
    for chunk in &meta.chunks {
        let chunk_end = chunk_start + chunk.length;
        if chunk_end > start && chunk_start < end {
            let from = start.saturating_sub(chunk_start);
            let to = end.min(chunk_end) - chunk_start;
            wanted.push((*chunk, from, to));
        }
        chunk_start = chunk_end;
    }
    let chunks = read_chunks(range.stream_client().clone(), wanted).map(|bytes| {
        Ok(GetObjectResponse {
            part: Some(get_object_response::Part::Chunk(bytes?.to_vec())),
        })
    });
    let shown = super::shown_meta(&range, &request.bucket, &meta);
    let first = futures::stream::once(async move {
        Ok(GetObjectResponse {
            part: Some(get_object_response::Part::Meta(shown)),
        })
    });
    Ok(Box::pin(first.chain(chunks)))
}

/// The bytes `[from, to)` of each of `wanted`'s chunks, in order, read a few chunks ahead;
/// each record is checked to be as long as the index says.
pub(crate) fn read_chunks(
    client: StreamClient,
    wanted: Vec<(ChunkLocation, u64, u64)>,
) -> impl futures::Stream<Item = Result<Bytes, Status>> + Send + 'static {
    futures::stream::iter(wanted)
        .map(move |(chunk, from, to)| {
            let client = client.clone();
            async move {
                let record = client
                    .read_record(chunk_extent(&chunk), chunk.offset)
                    .await
                    .map_err(|err| {
                        Status::from(PartitionError::Stream(format!("reading chunk: {err}")))
                    })?;
                // Assert after reading: the record is the one the index points at.
                if record.len() as u64 != chunk.length {
                    tracing::error!(
                        extent_id = chunk.extent_id,
                        offset = chunk.offset,
                        "chunk length mismatch"
                    );
                    return Err(PartitionError::Corrupt(
                        "chunk length does not match the index".into(),
                    )
                    .into());
                }
                Ok(record.slice(from as usize..to as usize))
            }
        })
        .buffered(GET_READ_AHEAD_CHUNKS)
}

pub async fn delete(
    state: &PartitionServerState,
    request: DeleteObjectRequest,
) -> Result<DeleteObjectResponse, PartitionError> {
    let encoded = object_key(&request.bucket, &request.key)?;
    let range = state.admit(&encoded, &request.bucket)?;
    let versioning = versions::versioning_of(request.versioning)?;
    let guard = range.lock_commits().await;
    let (mut changes, deleted) = versions::delete_changes(
        &range,
        &request.bucket,
        &request.key,
        &request.version_id,
        versioning,
    );
    if changes.is_empty() {
        drop(guard);
    } else {
        // A delete marker is a key of the bucket, like an object; a removal must pass a fence.
        let write = Write::of_changes(&changes);
        let rules = super::require_writable(state, &request.bucket, write).await?;
        // Only a new delete marker is a new version; a version deleted by id is not
        // replicated (S3), and one it promotes to current keeps its own mark.
        if deleted.delete_marker && request.version_id.is_empty() {
            super::mark_new_version(&range, &rules, &request.bucket, &request.key, &mut changes);
        }
        range.commit_locked(guard, changes).await?;
    }
    Ok(DeleteObjectResponse {
        existed: deleted.existed,
        version_id: deleted.version_id,
        delete_marker: deleted.delete_marker,
    })
}

/// Replaces an object's tags under the commit lock; its bytes, ETag and modification time stay.
pub async fn put_tags(
    state: &PartitionServerState,
    request: PutObjectTagsRequest,
) -> Result<PutObjectTagsResponse, PartitionError> {
    let encoded = object_key(&request.bucket, &request.key)?;
    let range = state.admit(&encoded, &request.bucket)?;
    let guard = range.lock_commits().await;
    let Some(found) = versions::find(&range, &request.bucket, &request.key, &request.version_id)
    else {
        return Err(if request.version_id.is_empty() {
            PartitionError::NoSuchKey
        } else {
            no_such_version()
        });
    };
    if found.meta.delete_marker {
        return Err(PartitionError::rejected(
            RejectReason::MethodNotAllowed,
            "The specified method is not allowed against this resource.",
        ));
    }
    let mut meta = found.meta;
    meta.tags = request.tags;
    // A tag change of a version replication covers is shipped again; a FAILED one retried.
    crate::replication_rules::mark_tag_change(&mut meta, range.mark_clock_ms());
    let value = if found.is_current {
        IndexValue::Object(meta.clone())
    } else {
        IndexValue::Version(meta.clone())
    };
    super::require_writable(state, &request.bucket, Write::ChangesKeys).await?;
    range
        .commit_locked(guard, vec![(found.index_key, Some(value))])
        .await?;
    Ok(PutObjectTagsResponse {
        meta: Some(wire::object_meta(&meta)),
    })
}

/// Metadata-only copy: the destination entry points at the source's chunks. The source is
/// read under the destination range's commit lock, so compaction cannot move (and trim) its
/// chunks between the lookup and the commit.
pub async fn copy(
    state: &PartitionServerState,
    request: CopyObjectRequest,
) -> Result<CopyObjectResponse, PartitionError> {
    let source_key = object_key(&request.src_bucket, &request.src_key)?;
    let source_range = state.range_for(&source_key)?;
    let destination = object_key(&request.dst_bucket, &request.dst_key)?;
    check_user_metadata(request.replace_meta.as_ref())?;
    let range = state.admit(&destination, &request.dst_bucket)?;
    if !std::sync::Arc::ptr_eq(&source_range, &range) {
        // Chunks are only ever shared within a range's data stream: each range compacts its
        // own stream knowing every reference to it. Ranges are never split today.
        return Err(PartitionError::rejected(
            RejectReason::NotImplemented,
            "copying between range partitions is not supported",
        ));
    }
    let guard = range.lock_commits().await;
    let source = match versions::find(
        &range,
        &request.src_bucket,
        &request.src_key,
        &request.src_version_id,
    ) {
        Some(found) if !found.meta.delete_marker => found.meta,
        _ => return Err(PartitionError::NoSuchKey),
    };
    if !request.expected_src_etag.is_empty() && request.expected_src_etag != source.etag {
        return Err(PartitionError::PreconditionFailed);
    }
    let mut meta = if request.replace {
        let mut replaced = wire::object_record(request.replace_meta.unwrap_or_default());
        replaced.size_bytes = source.size_bytes;
        replaced.etag = source.etag.clone();
        replaced.chunks = source.chunks.clone();
        // Same bytes, same checksum; tags follow the tagging directive, below.
        replaced.checksum = source.checksum.clone();
        replaced.tags = source.tags.clone();
        replaced
    } else {
        source
    };
    if request.replace_tags {
        meta.tags = request.tags;
    }
    meta.last_modified_ms = strata_util::now_ms();
    let versioning = versions::versioning_of(request.versioning)?;
    let rules = super::require_writable(state, &request.dst_bucket, Write::AddsKeys).await?;
    let mut changes = versions::write_changes(
        &range,
        &request.dst_bucket,
        &request.dst_key,
        &mut meta,
        versioning,
    );
    super::mark_new_version(
        &range,
        &rules,
        &request.dst_bucket,
        &request.dst_key,
        &mut changes,
    );
    range.commit_locked(guard, changes).await?;
    Ok(CopyObjectResponse {
        meta: Some(wire::object_meta(&meta)),
    })
}
