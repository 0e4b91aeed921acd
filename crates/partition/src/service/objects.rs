//! Objects: streaming put and get, head, delete, metadata-only copy.

use base64::Engine;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use md5::{Digest, Md5};
use strata_proto::common::{Checksum, ChecksumAlgorithm, ChunkRef, ObjectMeta, WriteCondition};
use strata_proto::partition::*;
use strata_types::limits::{OBJECT_KEY_BYTES_MAX, PUT_OBJECT_BYTES_MAX};
use strata_types::{keys, CHUNK_SIZE_BYTES};
use tonic::{Status, Streaming};

use super::list::strip_chunks;
use super::{versions, GetObjectStream};
use crate::checksum;
use crate::error::PartitionError;
use crate::range::{IndexValue, Range};
use crate::server::PartitionServerState;

/// A single incoming message may not exceed this (the front-end sends at most one chunk).
const PUT_MESSAGE_BYTES_MAX: usize = 4 * CHUNK_SIZE_BYTES;
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
        return Err(PartitionError::s3(
            tonic::Code::InvalidArgument,
            "MetadataTooLarge",
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
        return Err(PartitionError::s3(
            tonic::Code::InvalidArgument,
            "KeyTooLongError",
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
) -> Result<(Vec<u8>, ObjectMeta), PartitionError> {
    let encoded = object_key(bucket, key)?;
    let range = state.admit(&encoded, bucket)?;
    match versions::find(&range, bucket, key, version_id) {
        Some(found) => Ok((encoded, found.meta)),
        None if version_id.is_empty() => Err(PartitionError::NoSuchKey),
        None => Err(no_such_version()),
    }
}

pub(super) fn no_such_version() -> PartitionError {
    PartitionError::s3(
        tonic::Code::NotFound,
        "NoSuchVersion",
        "The specified version does not exist.",
    )
}

/// What follows the header of a client-streaming write.
pub(super) enum BodyPart {
    Chunk(Vec<u8>),
    /// The checksum that came as an HTTP trailer; only ever the last message.
    Trailer(ChecksumTrailer),
}

/// A message of a client-streaming write: the header first, then data chunks, then at most
/// one checksum trailer.
pub(super) trait StreamedMessage: Sized {
    type Header;
    fn into_header(self) -> Option<Self::Header>;
    fn into_body_part(self) -> Option<BodyPart>;
}

impl StreamedMessage for PutObjectRequest {
    type Header = PutObjectHeader;
    fn into_header(self) -> Option<PutObjectHeader> {
        match self.part {
            Some(put_object_request::Part::Header(header)) => Some(header),
            _ => None,
        }
    }
    fn into_body_part(self) -> Option<BodyPart> {
        match self.part {
            Some(put_object_request::Part::Chunk(data)) => Some(BodyPart::Chunk(data)),
            Some(put_object_request::Part::Trailer(trailer)) => Some(BodyPart::Trailer(trailer)),
            _ => None,
        }
    }
}

/// The header that must open a streamed write.
pub(super) async fn first_header<M: StreamedMessage>(
    body: &mut Streaming<M>,
) -> Result<M::Header, Status> {
    body.message()
        .await?
        .and_then(M::into_header)
        .ok_or_else(|| {
            PartitionError::InvalidArgument("the first message must be the header".into()).into()
        })
}

/// What arrived in a streamed body, after every chunk is durable in the data stream.
pub(super) struct ReceivedBody {
    pub chunks: Vec<ChunkRef>,
    pub size_bytes: u64,
    pub md5: [u8; 16],
    /// The body's checksum in the requested algorithm (None when none was asked for).
    pub checksum: Option<Checksum>,
}

/// The checksum algorithm of a write, or InvalidArgument for a value this server does not know.
pub(super) fn algorithm_of(checksum: Option<&BodyChecksum>) -> Result<ChecksumAlgorithm, Status> {
    let raw = checksum.map_or(0, |c| c.algorithm);
    ChecksumAlgorithm::try_from(raw).map_err(|_| {
        PartitionError::InvalidArgument(format!("unknown checksum algorithm {raw}")).into()
    })
}

fn checksum_mismatch(algorithm: ChecksumAlgorithm) -> Status {
    PartitionError::s3(
        tonic::Code::InvalidArgument,
        "BadDigest",
        format!(
            "The {} you specified did not match the calculated checksum.",
            checksum::algorithm_name(algorithm).to_ascii_uppercase()
        ),
    )
    .into()
}

/// Receives data messages until the client ends the stream, appending chunks of at most
/// `CHUNK_SIZE_BYTES` to the range's data stream as they fill; then checks the length, the
/// Content-MD5 and the requested checksum (its expected value from the header or from the
/// trailer message). An error (including the client going away) leaves no index entry behind.
pub(super) async fn receive_body<M: StreamedMessage>(
    range: &Range,
    body: &mut Streaming<M>,
    expected_size: i64,
    content_md5: &str,
    checksum: Option<&BodyChecksum>,
) -> Result<ReceivedBody, Status> {
    if expected_size > PUT_OBJECT_BYTES_MAX as i64 {
        return Err(s3_too_large());
    }
    let algorithm = algorithm_of(checksum)?;
    let mut hasher = checksum::Hasher::new(algorithm);
    let mut expected_checksum = checksum.map(|c| c.expected.clone()).unwrap_or_default();
    let wants_trailer = checksum.is_some_and(|c| c.in_trailer);
    let mut trailer_seen = false;
    let mut md5 = Md5::new();
    let mut size_bytes = 0u64;
    let mut chunks = Vec::new();
    let mut pending = BytesMut::with_capacity(CHUNK_SIZE_BYTES);
    while let Some(message) = body.message().await? {
        let data =
            match message.into_body_part() {
                Some(BodyPart::Chunk(data)) if !trailer_seen => data,
                Some(BodyPart::Trailer(trailer)) if wants_trailer && !trailer_seen => {
                    trailer_seen = true;
                    expected_checksum = trailer.expected;
                    continue;
                }
                _ => return Err(PartitionError::InvalidArgument(
                    "only data chunks, then at most one announced trailer, may follow the header"
                        .into(),
                )
                .into()),
            };
        if data.len() > PUT_MESSAGE_BYTES_MAX {
            return Err(PartitionError::InvalidArgument("data message too large".into()).into());
        }
        md5.update(&data);
        if let Some(hasher) = hasher.as_mut() {
            hasher.update(&data);
        }
        size_bytes += data.len() as u64;
        if size_bytes > PUT_OBJECT_BYTES_MAX {
            return Err(s3_too_large());
        }
        pending.extend_from_slice(&data);
        while pending.len() >= CHUNK_SIZE_BYTES {
            let chunk = pending.split_to(CHUNK_SIZE_BYTES).freeze();
            chunks.push(range.append_data(chunk).await?);
        }
    }
    if wants_trailer && !trailer_seen {
        return Err(PartitionError::s3(
            tonic::Code::InvalidArgument,
            "MalformedTrailerError",
            "the announced checksum trailer did not arrive",
        )
        .into());
    }
    if !pending.is_empty() {
        chunks.push(range.append_data(pending.freeze()).await?);
    }
    if expected_size >= 0 && size_bytes != expected_size as u64 {
        return Err(PartitionError::IncompleteBody {
            expected: expected_size as u64,
            received: size_bytes,
        }
        .into());
    }
    let md5: [u8; 16] = md5.finalize().into();
    if !content_md5.is_empty() {
        let expected = base64::engine::general_purpose::STANDARD
            .decode(content_md5.trim())
            .map_err(|_| {
                PartitionError::s3(
                    tonic::Code::InvalidArgument,
                    "InvalidDigest",
                    "Content-MD5 is not base64",
                )
            })?;
        if expected.as_slice() != md5.as_slice() {
            return Err(PartitionError::BadDigest.into());
        }
    }
    let checksum = match hasher {
        Some(hasher) => {
            let value = hasher.finalize();
            if !expected_checksum.is_empty() && expected_checksum != value {
                return Err(checksum_mismatch(algorithm));
            }
            Some(Checksum {
                algorithm: algorithm as i32,
                value,
                composite: false,
                part_count: 0,
            })
        }
        None if !expected_checksum.is_empty() => {
            return Err(PartitionError::InvalidArgument(
                "a checksum value without an algorithm".into(),
            )
            .into())
        }
        None => None,
    };
    Ok(ReceivedBody {
        chunks,
        size_bytes,
        md5,
        checksum,
    })
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
                meta: Some(strip_chunks(meta)),
            })
        }
        _ => range
            .recent_write(key, write_id)
            .map(|meta| PutObjectResponse { meta: Some(meta) }),
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
    check_write_condition(&range, &encoded, condition)?;
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
    let mut meta = header.meta.unwrap_or_default();
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
    match check_write_condition(&range, &encoded, condition) {
        // The object If-Match named was there when the body started and was deleted while it
        // streamed: S3 calls that a conflicting operation (409), not a missing key.
        Err(PartitionError::NoSuchKey) => {
            return Err(PartitionError::s3(
                tonic::Code::Aborted,
                "ConditionalRequestConflict",
                "A conflicting operation occurred during the conditional write; retry it.",
            )
            .into())
        }
        other => other?,
    }
    crate::bucket_gate::require_writable(state, &header.bucket).await?;
    let changes =
        versions::write_changes(&range, &header.bucket, &header.key, &mut meta, versioning);
    range.commit_locked(guard, changes).await?;
    Ok(PutObjectResponse {
        meta: Some(strip_chunks(meta)),
    })
}

fn s3_too_large() -> Status {
    PartitionError::s3(
        tonic::Code::InvalidArgument,
        "EntityTooLarge",
        "objects and parts are at most 5 GiB",
    )
    .into()
}

pub fn head(
    state: &PartitionServerState,
    request: HeadObjectRequest,
) -> Result<HeadObjectResponse, PartitionError> {
    match lookup(state, &request.bucket, &request.key, &request.version_id) {
        Ok((_, meta)) => Ok(HeadObjectResponse {
            meta: Some(strip_chunks(meta)),
        }),
        Err(PartitionError::NoSuchKey) => Ok(HeadObjectResponse { meta: None }),
        Err(PartitionError::S3 {
            code: "NoSuchVersion",
            ..
        }) => Ok(HeadObjectResponse { meta: None }),
        Err(err) => Err(err),
    }
}

pub fn get(
    state: &PartitionServerState,
    request: GetObjectRequest,
) -> Result<GetObjectStream, PartitionError> {
    let (encoded, meta) = lookup(state, &request.bucket, &request.key, &request.version_id)?;
    if meta.delete_marker {
        return Err(PartitionError::NoSuchKey);
    }
    if !request.expected_etag.is_empty() && request.expected_etag != meta.etag {
        return Err(PartitionError::PreconditionFailed);
    }
    let range = state.range_for(&encoded)?;
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
    let client = range.stream_client().clone();
    let chunks = futures::stream::iter(wanted)
        .map(move |(chunk, from, to)| {
            let client = client.clone();
            async move {
                let record = client
                    .read_record(chunk.extent_id, chunk.offset)
                    .await
                    .map_err(|err| Status::unavailable(format!("reading chunk: {err}")))?;
                // Assert after reading: the record is the one the index points at.
                if record.len() as u64 != chunk.length {
                    tracing::error!(
                        extent_id = chunk.extent_id,
                        offset = chunk.offset,
                        "chunk length mismatch"
                    );
                    return Err(Status::data_loss("chunk length does not match the index"));
                }
                let bytes: Bytes = record.slice(from as usize..to as usize);
                Ok(GetObjectResponse {
                    part: Some(get_object_response::Part::Chunk(bytes.to_vec())),
                })
            }
        })
        .buffered(GET_READ_AHEAD_CHUNKS);
    let first = futures::stream::once(async move {
        Ok(GetObjectResponse {
            part: Some(get_object_response::Part::Meta(strip_chunks(meta))),
        })
    });
    Ok(Box::pin(first.chain(chunks)))
}

pub async fn delete(
    state: &PartitionServerState,
    request: DeleteObjectRequest,
) -> Result<DeleteObjectResponse, PartitionError> {
    let encoded = object_key(&request.bucket, &request.key)?;
    let range = state.admit(&encoded, &request.bucket)?;
    let versioning = versions::versioning_of(request.versioning)?;
    let guard = range.lock_commits().await;
    let (changes, deleted) = versions::delete_changes(
        &range,
        &request.bucket,
        &request.key,
        &request.version_id,
        versioning,
    );
    if changes.is_empty() {
        drop(guard);
    } else {
        if changes.iter().any(|(_, value)| value.is_some()) {
            // A delete marker is a key of the bucket, like an object.
            crate::bucket_gate::require_writable(state, &request.bucket).await?;
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
        return Err(PartitionError::s3(
            tonic::Code::InvalidArgument,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
        ));
    }
    let mut meta = found.meta;
    meta.tags = request.tags;
    let value = if found.is_current {
        IndexValue::Object(meta.clone())
    } else {
        IndexValue::Version(meta.clone())
    };
    range
        .commit_locked(guard, vec![(found.index_key, Some(value))])
        .await?;
    Ok(PutObjectTagsResponse {
        meta: Some(strip_chunks(meta)),
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
        return Err(PartitionError::s3(
            tonic::Code::Unimplemented,
            "NotImplemented",
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
        let mut replaced = request.replace_meta.unwrap_or_default();
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
    crate::bucket_gate::require_writable(state, &request.dst_bucket).await?;
    let changes = versions::write_changes(
        &range,
        &request.dst_bucket,
        &request.dst_key,
        &mut meta,
        versioning,
    );
    range.commit_locked(guard, changes).await?;
    Ok(CopyObjectResponse {
        meta: Some(strip_chunks(meta)),
    })
}
