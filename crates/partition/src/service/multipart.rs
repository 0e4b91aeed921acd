//! Multipart uploads. The upload record and its parts live right after the object's key in
//! the same range (`keys::upload_key`, `keys::part_key`); parts stream into the data stream
//! like PutObject bodies; completing is one atomic log entry that writes the object (whose
//! chunk list is the parts' chunk lists in order) and deletes the upload and every part
//! record. No object byte is copied. Completing or aborting 10,000 parts of a 1,024-byte key
//! makes an entry over one stream record: it is written as several, applied only whole.

use md5::{Digest, Md5};
use strata_proto::common::ChecksumAlgorithm;
use strata_proto::partition::*;
use strata_types::keys;
use tonic::{Status, Streaming};

use super::body::{algorithm_of, first_header, receive_body, BodyPart, StreamedMessage};
use super::objects::object_key;
use super::walk::{start, Listed, Walk};
use super::Write;
use crate::checksum;
use crate::error::PartitionError;
use crate::range::{Change, IndexValue, Range};
use crate::records::{wire, ObjectRecord, PartRecord, UploadRecord};
use crate::server::PartitionServerState;
use strata_types::error_detail::RejectReason;

pub use strata_types::limits::{OBJECT_BYTES_MAX, PART_NUMBER_MAX, PART_SIZE_BYTES_MIN};
/// Parts (and uploads) in one page, as the proto types it.
const LIST_PARTS_MAX: u32 = strata_types::limits::LIST_PARTS_MAX as u32;

fn no_such_upload() -> PartitionError {
    PartitionError::NoSuchUpload
}

fn upload_id_valid(upload_id: &str) -> bool {
    !upload_id.is_empty()
        && upload_id.len() <= 64
        && upload_id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The range and the upload record, or NoSuchUpload.
fn upload_of(
    state: &PartitionServerState,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<(std::sync::Arc<Range>, Vec<u8>), PartitionError> {
    let object = object_key(bucket, key)?;
    if !upload_id_valid(upload_id) {
        return Err(no_such_upload());
    }
    let range = state.admit(&object, bucket)?;
    Ok((range, keys::upload_key(bucket, key, upload_id)))
}

fn upload_record(range: &Range, upload_key: &[u8]) -> Result<UploadRecord, PartitionError> {
    match range.get(upload_key) {
        Some(IndexValue::Upload(upload)) => Ok(upload),
        _ => Err(no_such_upload()),
    }
}

/// Every part record of an upload, in part-number order.
fn parts_of(
    range: &Range,
    upload_key: &[u8],
    after_part: u32,
    limit: usize,
) -> Vec<(Vec<u8>, PartRecord)> {
    let mut prefix = upload_key.to_vec();
    prefix.push(0);
    let mut from = prefix.clone();
    from.extend_from_slice(&(after_part.saturating_add(1)).to_be_bytes());
    let end = keys::prefix_end(&prefix);
    let mut parts = Vec::new();
    range.scan(&from, end.as_deref(), |key, value| {
        if let IndexValue::Part(part) = value {
            parts.push((key.to_vec(), part.clone()));
        }
        parts.len() < limit
    });
    parts
}

pub async fn create(
    state: &PartitionServerState,
    request: CreateMultipartUploadRequest,
) -> Result<CreateMultipartUploadResponse, PartitionError> {
    let object = object_key(&request.bucket, &request.key)?;
    super::objects::check_user_metadata(request.meta.as_ref())?;
    let range = state.admit(&object, &request.bucket)?;
    let upload_id = uuid::Uuid::new_v4().simple().to_string();
    let algorithm = ChecksumAlgorithm::try_from(request.checksum_algorithm)
        .map_err(|_| PartitionError::InvalidArgument("unknown checksum algorithm".into()))?;
    let is_crc = matches!(
        algorithm,
        ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c | ChecksumAlgorithm::Crc64nvme
    );
    // S3: CRC64NVME is full-object only; SHA-1 and SHA-256 are composite only.
    let full_object_invalid = (request.checksum_full_object && !is_crc)
        || (!request.checksum_full_object && algorithm == ChecksumAlgorithm::Crc64nvme);
    if full_object_invalid {
        return Err(PartitionError::rejected(
            RejectReason::InvalidRequest,
            format!(
                "The {} checksum algorithm does not support this checksum type",
                checksum::algorithm_name(algorithm).to_ascii_uppercase()
            ),
        ));
    }
    let upload = UploadRecord {
        upload_id: upload_id.clone(),
        initiated_ms: strata_util::now_ms(),
        meta: request.meta.map(wire::object_record),
        checksum_algorithm: algorithm as i32,
        checksum_full_object: request.checksum_full_object,
    };
    let key = keys::upload_key(&request.bucket, &request.key, &upload_id);
    let guard = range.lock_commits().await;
    super::require_writable(state, &request.bucket, Write::AddsKeys).await?;
    range
        .commit_locked(guard, vec![(key, Some(IndexValue::Upload(upload)))])
        .await?;
    Ok(CreateMultipartUploadResponse { upload_id })
}

pub async fn upload_part(
    state: &PartitionServerState,
    mut body: Streaming<UploadPartRequest>,
) -> Result<UploadPartResponse, Status> {
    let header = first_header(&mut body).await?;
    if !(1..=PART_NUMBER_MAX).contains(&header.part_number) {
        return Err(PartitionError::InvalidArgument(format!(
            "part numbers are 1 to {PART_NUMBER_MAX}"
        ))
        .into());
    }
    let (range, upload_key) = upload_of(state, &header.bucket, &header.key, &header.upload_id)?;
    let upload = upload_record(&range, &upload_key)?;
    let checksum = part_checksum(&upload, header.checksum.clone())?;
    // Until the commit below, compaction keeps the extents this body lands in.
    let _upload = range.begin_upload();
    let received = receive_body(
        &range,
        &mut body,
        header.size_bytes,
        &header.content_md5,
        checksum.as_ref(),
    )
    .await?;
    let part = PartRecord {
        part_number: header.part_number,
        etag: format!("\"{}\"", hex::encode(received.md5)),
        size_bytes: received.size_bytes,
        last_modified_ms: strata_util::now_ms(),
        chunks: received.chunks,
        checksum: received.checksum,
    };
    // The upload must still exist when the part is recorded (not aborted meanwhile).
    let guard = range.lock_commits().await;
    upload_record(&range, &upload_key)?;
    super::require_writable(state, &header.bucket, Write::AddsKeys).await?;
    let part_key = keys::part_key(
        &header.bucket,
        &header.key,
        &header.upload_id,
        header.part_number,
    );
    range
        .commit_locked(
            guard,
            vec![(part_key, Some(IndexValue::Part(part.clone())))],
        )
        .await?;
    Ok(UploadPartResponse {
        part: Some(wire::part_meta(&part)),
    })
}

/// The checksum to compute over a part: the upload's algorithm when it has one (the client's
/// value, if any, must be of that algorithm), else whatever the client sent.
fn part_checksum(
    upload: &UploadRecord,
    sent: Option<BodyChecksum>,
) -> Result<Option<BodyChecksum>, Status> {
    let upload_algorithm = ChecksumAlgorithm::try_from(upload.checksum_algorithm)
        .map_err(|_| PartitionError::Corrupt("unknown checksum algorithm in an upload".into()))?;
    if upload_algorithm == ChecksumAlgorithm::None {
        return Ok(sent);
    }
    let sent_algorithm = algorithm_of(sent.as_ref())?;
    if sent_algorithm != ChecksumAlgorithm::None && sent_algorithm != upload_algorithm {
        return Err(PartitionError::rejected(
            RejectReason::InvalidRequest,
            format!(
                "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                checksum::algorithm_name(upload_algorithm),
                checksum::algorithm_name(sent_algorithm)
            ),
        )
        .into());
    }
    let mut checksum = sent.unwrap_or_default();
    checksum.algorithm = upload_algorithm as i32;
    Ok(Some(checksum))
}

impl StreamedMessage for UploadPartRequest {
    type Header = UploadPartHeader;
    fn into_header(self) -> Option<UploadPartHeader> {
        match self.part {
            Some(upload_part_request::Part::Header(header)) => Some(header),
            _ => None,
        }
    }
    fn into_body_part(self) -> Option<BodyPart> {
        match self.part {
            Some(upload_part_request::Part::Chunk(data)) => Some(BodyPart::Chunk(data)),
            Some(upload_part_request::Part::Trailer(trailer)) => Some(BodyPart::Trailer(trailer)),
            _ => None,
        }
    }
}

/// The write id of the version an upload completes to: unique per upload, and the same on every
/// retry of its completion (see `ObjectRecord.write_id`).
fn completion_write_id(upload_id: &str) -> String {
    format!("upload:{upload_id}")
}

fn normalize_etag(etag: &str) -> &str {
    etag.trim().trim_matches('"')
}

/// The stored parts a completion names, in its order, checked as S3 does: at least one, in
/// ascending order, each uploaded with the named ETag (and checksum, when given), all but the
/// last at least 5 MiB.
fn chosen_parts<'a>(
    request: &CompleteMultipartUploadRequest,
    stored: &'a [(Vec<u8>, PartRecord)],
) -> Result<Vec<&'a PartRecord>, PartitionError> {
    if request.parts.is_empty() {
        return Err(PartitionError::rejected(
            RejectReason::InvalidRequest,
            "you must specify at least one part",
        ));
    }
    if request
        .parts
        .windows(2)
        .any(|pair| pair[0].part_number >= pair[1].part_number)
    {
        return Err(PartitionError::rejected(
            RejectReason::InvalidPartOrder,
            "the list of parts was not in ascending order",
        ));
    }
    let mut chosen = Vec::with_capacity(request.parts.len());
    for (index, wanted) in request.parts.iter().enumerate() {
        let Some((_, part)) = stored
            .iter()
            .find(|(_, p)| p.part_number == wanted.part_number)
        else {
            return Err(PartitionError::rejected(
                RejectReason::InvalidPart,
                format!("part {} was not uploaded", wanted.part_number),
            ));
        };
        if normalize_etag(&part.etag) != normalize_etag(&wanted.etag) {
            return Err(PartitionError::rejected(
                RejectReason::InvalidPart,
                format!("part {} has another ETag", wanted.part_number),
            ));
        }
        let stored_checksum = part.checksum.as_ref().map(|c| c.value.as_slice());
        if !wanted.checksum.is_empty() && stored_checksum != Some(wanted.checksum.as_slice()) {
            return Err(PartitionError::rejected(
                RejectReason::InvalidPart,
                format!("part {} has another checksum", wanted.part_number),
            ));
        }
        let is_last = index + 1 == request.parts.len();
        if !is_last && part.size_bytes < PART_SIZE_BYTES_MIN {
            return Err(PartitionError::rejected(
                RejectReason::EntityTooSmall,
                format!(
                    "part {} is smaller than 5 MiB and is not the last part",
                    wanted.part_number
                ),
            ));
        }
        chosen.push(part);
    }
    Ok(chosen)
}

pub async fn complete(
    state: &PartitionServerState,
    request: CompleteMultipartUploadRequest,
) -> Result<CompleteMultipartUploadResponse, PartitionError> {
    let (range, upload_key) = upload_of(state, &request.bucket, &request.key, &request.upload_id)?;
    let guard = range.lock_commits().await;
    let object = keys::object_key(&request.bucket, &request.key);
    let write_id = completion_write_id(&request.upload_id);
    let upload = match upload_record(&range, &upload_key) {
        Ok(upload) => upload,
        // A retried completion (the front-end's after a lost answer, or the client's) whose
        // first attempt committed: answer that commit, not NoSuchUpload or a failed condition.
        Err(no_upload) => {
            return match super::objects::already_written(&range, &object, &write_id) {
                Some(done) => Ok(CompleteMultipartUploadResponse { meta: done.meta }),
                None => Err(no_upload),
            }
        }
    };
    // A failed condition leaves the upload in place (the client may complete it later).
    super::objects::check_write_condition(&range, &object, request.condition.as_ref())?;
    let stored = parts_of(&range, &upload_key, 0, usize::MAX);
    let chosen = chosen_parts(&request, &stored)?;
    // ETag of a multipart object: MD5 of the parts' binary MD5s, then "-<count>".
    let mut etag_md5 = Md5::new();
    let mut meta: ObjectRecord = upload.meta.clone().unwrap_or_default();
    meta.size_bytes = 0;
    meta.chunks.clear();
    for part in &chosen {
        let binary = hex::decode(normalize_etag(&part.etag)).map_err(|_| {
            PartitionError::Corrupt(format!("part {} has a malformed ETag", part.part_number))
        })?;
        etag_md5.update(&binary);
        meta.size_bytes += part.size_bytes;
        meta.chunks.extend(part.chunks.iter().cloned());
    }
    if meta.size_bytes > OBJECT_BYTES_MAX {
        return Err(PartitionError::rejected(
            RejectReason::EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed object size (5 TiB).",
        ));
    }
    meta.etag = format!("\"{}-{}\"", hex::encode(etag_md5.finalize()), chosen.len());
    meta.checksum = object_checksum(
        upload.checksum_algorithm,
        upload.checksum_full_object,
        &chosen,
        request.expected_checksum.as_ref(),
    )?;
    meta.last_modified_ms = strata_util::now_ms();
    meta.write_id = write_id;
    meta.delete_marker = false;
    let versioning = super::versions::versioning_of(request.versioning)?;
    let mut changes: Vec<Change> = super::versions::write_changes(
        &range,
        &request.bucket,
        &request.key,
        &mut meta,
        versioning,
    );
    changes.push((upload_key, None));
    // Every part record goes, listed or not; unlisted parts' bytes become garbage.
    changes.extend(stored.into_iter().map(|(key, _)| (key, None)));
    let rules = super::require_writable(state, &request.bucket, Write::AddsKeys).await?;
    super::mark_new_version(&range, &rules, &request.bucket, &request.key, &mut changes);
    range.commit_locked(guard, changes).await?;
    Ok(CompleteMultipartUploadResponse {
        meta: Some(wire::object_meta(&meta)),
    })
}

/// The completed object's checksum from its parts' (None when the upload has no algorithm),
/// checked against the whole-object value the client sent, if any (BadDigest).
fn object_checksum(
    algorithm: i32,
    full_object: bool,
    parts: &[&PartRecord],
    expected: Option<&strata_proto::common::Checksum>,
) -> Result<Option<strata_proto::common::Checksum>, PartitionError> {
    let algorithm = ChecksumAlgorithm::try_from(algorithm)
        .map_err(|_| PartitionError::Corrupt("unknown checksum algorithm in an upload".into()))?;
    if algorithm == ChecksumAlgorithm::None {
        return Ok(None);
    }
    let mut sums = Vec::with_capacity(parts.len());
    for part in parts {
        let value = part
            .checksum
            .as_ref()
            .filter(|c| c.algorithm == algorithm as i32)
            .map(|c| c.value.as_slice())
            .ok_or_else(|| {
                PartitionError::rejected(
                    RejectReason::InvalidPart,
                    format!(
                        "part {} has no {} checksum",
                        part.part_number,
                        checksum::algorithm_name(algorithm)
                    ),
                )
            })?;
        sums.push((value, part.size_bytes));
    }
    let combined = checksum::multipart_checksum(algorithm, full_object, &sums)?;
    if let Some(expected) = expected.filter(|e| !e.value.is_empty()) {
        if expected.algorithm != algorithm as i32 || expected.value != combined.value {
            return Err(PartitionError::rejected(
                RejectReason::BadDigest,
                format!(
                    "The {} you specified did not match the calculated checksum.",
                    checksum::algorithm_name(algorithm).to_ascii_uppercase()
                ),
            ));
        }
    }
    Ok(Some(combined))
}

pub async fn abort(
    state: &PartitionServerState,
    request: AbortMultipartUploadRequest,
) -> Result<AbortMultipartUploadResponse, PartitionError> {
    let (range, upload_key) = upload_of(state, &request.bucket, &request.key, &request.upload_id)?;
    let guard = range.lock_commits().await;
    upload_record(&range, &upload_key)?;
    let mut changes: Vec<Change> = vec![(upload_key.clone(), None)];
    changes.extend(
        parts_of(&range, &upload_key, 0, usize::MAX)
            .into_iter()
            .map(|(key, _)| (key, None)),
    );
    super::require_writable(state, &request.bucket, Write::ChangesKeys).await?;
    range.commit_locked(guard, changes).await?;
    Ok(AbortMultipartUploadResponse {})
}

pub fn list_parts(
    state: &PartitionServerState,
    request: ListPartsRequest,
) -> Result<ListPartsResponse, PartitionError> {
    let (range, upload_key) = upload_of(state, &request.bucket, &request.key, &request.upload_id)?;
    let upload = upload_record(&range, &upload_key)?;
    let limit = request.max_parts.clamp(1, LIST_PARTS_MAX) as usize;
    let mut parts: Vec<strata_proto::common::PartMeta> =
        parts_of(&range, &upload_key, request.part_number_marker, limit + 1)
            .into_iter()
            .map(|(_, part)| wire::part_meta(&part))
            .collect();
    let truncated = parts.len() > limit;
    parts.truncate(limit);
    Ok(ListPartsResponse {
        upload: Some(wire::upload_meta(&upload)),
        parts,
        truncated,
    })
}

/// Where ListMultipartUploads starts: the first upload record after the markers, at or after
/// `prefix_start`.
fn uploads_start(request: &ListMultipartUploadsRequest, prefix_start: Vec<u8>) -> Vec<u8> {
    if request.key_marker.is_empty() {
        return prefix_start;
    }
    let marker = if request.upload_id_marker.is_empty() {
        // Every upload of key_marker is skipped: start after all its records.
        let mut after = keys::object_key(&request.bucket, &request.key_marker);
        after.push(1);
        after
    } else {
        let mut after = keys::upload_key(
            &request.bucket,
            &request.key_marker,
            &request.upload_id_marker,
        );
        after.push(1); // past its parts too
        after
    };
    prefix_start.max(marker)
}

/// Unfinished uploads of one bucket in this server's ranges, in (key, upload id) order, with
/// S3's prefix, delimiter and marker rules (walked by [`super::walk`]). Uploads sit between
/// the objects in the index, so this visits the keys after the marker (skipping whole common
/// prefixes at once).
pub fn list_uploads(
    state: &PartitionServerState,
    request: ListMultipartUploadsRequest,
) -> Result<ListMultipartUploadsResponse, PartitionError> {
    let bucket_end = keys::prefix_end(&keys::object_prefix(&request.bucket));
    let prefix_start = keys::object_key(&request.bucket, &request.prefix);
    let prefix_end = keys::prefix_end(&prefix_start);
    let end = match (&prefix_end, &bucket_end) {
        (Some(p), _) => Some(p.clone()),
        (None, b) => b.clone(),
    };
    let start = start(state, uploads_start(&request, prefix_start), &request.from)?;
    let walk = Walk {
        state,
        bucket: &request.bucket,
        prefix: &request.prefix,
        delimiter: &request.delimiter,
        marker: &request.key_marker,
        limit: request.max_uploads.clamp(1, LIST_PARTS_MAX) as usize,
        // Past the upload's parts, which sit right after its record.
        skip_after_entry: 1,
    };
    let walked = walk.run(&start.run, start.cursor, end, |index_key, value| {
        let IndexValue::Upload(upload) = value else {
            return None;
        };
        Some(match keys::decode_upload_key(index_key) {
            Some((_, key, _)) => Ok((key.to_string(), wire::upload_meta(upload))),
            None => Err(PartitionError::Corrupt("undecodable upload key".into())),
        })
    })?;
    let (covered_until, covered_to_end) = walked.coverage(start.run_end);
    let truncated = walked.truncated;
    let items = walked
        .items
        .into_iter()
        .map(|listed| match listed {
            Listed::Entry { key, item } => ListedUpload {
                key,
                upload: Some(item),
                common_prefix: String::new(),
            },
            Listed::CommonPrefix(common_prefix) => ListedUpload {
                common_prefix,
                ..Default::default()
            },
        })
        .collect();
    Ok(ListMultipartUploadsResponse {
        items,
        truncated,
        covered_until,
        covered_to_end,
    })
}
