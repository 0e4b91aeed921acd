//! Object operations: PutObject, GetObject, HeadObject, DeleteObject (CopyObject is in
//! `copy.rs`).
//!
//! GET and HEAD decide conditions and the range on the metadata (HeadObject) first; GET then
//! streams the range with `expected_etag`, so a concurrent overwrite is noticed (ABORTED) and
//! the decision is made again on the new version.

use crate::checksum;
use crate::conditions::{content_range, resolve_range, to_s3_etag, Conditions, Outcome};
use crate::error::{FrontendError, Refusal};
use crate::frontend::{
    is_no_such_key, no_such_key, no_such_version, precondition_failed, shown_version_id, Frontend,
};
use crate::meta::{non_empty, parse_http_date, size_i64, stored_headers_of, timestamp_from_ms};
use s3s::dto::{
    DeleteObjectInput, DeleteObjectOutput, GetObjectInput, GetObjectOutput, HeadObjectInput,
    HeadObjectOutput, PutObjectInput, PutObjectOutput, Range,
};
use s3s::{S3Error, S3Result};
use strata_proto::common::{BucketMeta, ChecksumAlgorithm, ObjectMeta};
use strata_proto::partition::get_object_response::Part;
use strata_proto::partition::{
    DeleteObjectRequest, DeleteObjectResponse, GetObjectRequest, PutObjectHeader,
};
use strata_types::error_detail::{from_status, to_status, ErrorDetail};
use strata_types::keys;

pub use strata_types::limits::PUT_OBJECT_BYTES_MAX;
/// Times a GET re-decides after the object changed between HEAD and the data stream.
const GET_ATTEMPTS_MAX: u32 = 3;

/// What a GET or HEAD decided before any byte moves.
pub(crate) struct Decision {
    pub meta: ObjectMeta,
    pub range: Option<std::ops::Range<u64>>,
}

/// A requested version id: None for the current version; an empty one is InvalidArgument.
pub(crate) fn requested_version(version_id: Option<&str>) -> S3Result<Option<&str>> {
    match version_id {
        Some("") => Err(FrontendError::refused(
            Refusal::InvalidArgument,
            "Version id cannot be the empty string",
        )
        .into()),
        other => Ok(other),
    }
}

/// The answer for a delete marker: 404 NoSuchKey for the current version, 405
/// MethodNotAllowed when the marker was asked for by version id; both say what it is.
fn delete_marker_error(meta: &ObjectMeta, by_version: bool) -> S3Error {
    FrontendError::DeleteMarker {
        version_id: meta.version_id.clone(),
        last_modified_ms: meta.last_modified_ms,
        by_version,
    }
    .into()
}

/// The announced body size of a PUT or an UploadPart (S3 caps both at 5 GiB).
pub(crate) fn check_content_length(content_length: Option<i64>) -> S3Result<()> {
    match content_length {
        Some(length) if length > PUT_OBJECT_BYTES_MAX as i64 => Err(FrontendError::refused(
            Refusal::EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed object size.",
        )
        .into()),
        Some(length) if length < 0 => Err(FrontendError::refused(
            Refusal::InvalidArgument,
            "Content-Length must not be negative",
        )
        .into()),
        _ => Ok(()),
    }
}

/// KeyTooLongError for a key S3 would not store.
pub(crate) fn check_key_length(key: &str) -> S3Result<()> {
    if key.len() as u64 > strata_types::limits::OBJECT_KEY_BYTES_MAX {
        return Err(FrontendError::refused(Refusal::KeyTooLong, "Your key is too long").into());
    }
    Ok(())
}

fn check_part_number(part_number: Option<i32>) -> S3Result<()> {
    match part_number {
        None | Some(1) => Ok(()),
        Some(_) => Err(FrontendError::refused(
            Refusal::NotImplemented,
            "partNumber is not implemented",
        )
        .into()),
    }
}

/// Applies conditions and range to an existing object's metadata.
pub(crate) fn decide(
    meta: ObjectMeta,
    conditions: &Conditions,
    range: Option<&Range>,
) -> S3Result<Decision> {
    match conditions.evaluate(&meta.etag, meta.last_modified_ms) {
        Outcome::Proceed => {}
        Outcome::NotModified => {
            return Err(FrontendError::NotModified {
                etag: meta.etag,
                last_modified_ms: meta.last_modified_ms,
            }
            .into())
        }
        Outcome::PreconditionFailed => return Err(precondition_failed()),
    }
    let range =
        resolve_range(range, meta.size_bytes).map_err(|()| FrontendError::RangeNotSatisfiable {
            size_bytes: meta.size_bytes,
        })?;
    Ok(Decision { meta, range })
}

/// Whether a GET or HEAD asked for the stored checksum (`x-amz-checksum-mode: ENABLED`).
pub(crate) fn wants_checksum(mode: Option<&s3s::dto::ChecksumMode>) -> bool {
    mode.is_some_and(|m| {
        m.as_str()
            .eq_ignore_ascii_case(s3s::dto::ChecksumMode::ENABLED)
    })
}

/// The response headers of a GET or HEAD. The stored checksum is shown only when asked for
/// and only for the whole object (it says nothing about a range).
pub(crate) fn head_output(decision: &Decision, with_checksum: bool) -> HeadObjectOutput {
    let meta = &decision.meta;
    let (content_length, content_range) = match &decision.range {
        Some(range) => (
            range.end - range.start,
            Some(content_range(range, meta.size_bytes)),
        ),
        None => (meta.size_bytes, None),
    };
    let mut output = HeadObjectOutput {
        accept_ranges: Some("bytes".into()),
        cache_control: non_empty(&meta.cache_control),
        content_disposition: non_empty(&meta.content_disposition),
        content_encoding: non_empty(&meta.content_encoding),
        content_language: non_empty(&meta.content_language),
        content_length: Some(size_i64(content_length)),
        content_range,
        content_type: non_empty(&meta.content_type),
        e_tag: Some(to_s3_etag(&meta.etag)),
        expires: parse_http_date(&meta.expires),
        last_modified: Some(timestamp_from_ms(meta.last_modified_ms)),
        metadata: (!meta.user_metadata.is_empty()).then(|| meta.user_metadata.clone()),
        replication_status: replication_status(meta.replication_status),
        ..Default::default()
    };
    if with_checksum && decision.range.is_none() {
        checksum::show_checksum!(output, checksum::show(meta.checksum.as_ref()), with_type);
    }
    output
}

/// x-amz-replication-status of a version (none when no rule covers it).
fn replication_status(stored: i32) -> Option<s3s::dto::ReplicationStatus> {
    use s3s::dto::ReplicationStatus as Shown;
    use strata_proto::common::ReplicationStatus as Stored;
    let shown = match Stored::try_from(stored).ok()? {
        Stored::None => return None,
        Stored::Pending => Shown::PENDING,
        Stored::Completed => Shown::COMPLETED,
        Stored::Failed => Shown::FAILED,
        Stored::Replica => Shown::REPLICA,
    };
    Some(Shown::from_static(shown))
}

/// GET's `response-*` query parameters replace the stored headers in this answer only.
fn apply_response_overrides(output: &mut GetObjectOutput, input: &GetObjectInput) {
    if let Some(value) = &input.response_content_type {
        output.content_type = Some(value.clone());
    }
    if let Some(value) = &input.response_content_disposition {
        output.content_disposition = Some(value.clone());
    }
    if let Some(value) = &input.response_cache_control {
        output.cache_control = Some(value.clone());
    }
    if let Some(value) = &input.response_content_encoding {
        output.content_encoding = Some(value.clone());
    }
    if let Some(value) = &input.response_content_language {
        output.content_language = Some(value.clone());
    }
    if let Some(value) = &input.response_expires {
        output.expires = Some(value.clone());
    }
}

impl Frontend {
    async fn decide_object(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        conditions: &Conditions,
        range: Option<&Range>,
    ) -> S3Result<Decision> {
        let meta = match self.head_version(bucket, key, version_id).await? {
            Some(meta) => meta,
            None if version_id.is_some() => return Err(no_such_version()),
            None => return Err(no_such_key()),
        };
        if meta.delete_marker {
            return Err(delete_marker_error(&meta, version_id.is_some()));
        }
        decide(meta, conditions, range)
    }

    pub(crate) async fn head_object_op(
        &self,
        input: &HeadObjectInput,
    ) -> S3Result<HeadObjectOutput> {
        let version_id = requested_version(input.version_id.as_deref())?;
        check_part_number(input.part_number)?;
        let bucket = self.require_bucket(&input.bucket).await?;
        let conditions = Conditions::new(
            input.if_match.clone(),
            input.if_none_match.clone(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        );
        let decision = self
            .decide_object(
                &input.bucket,
                &input.key,
                version_id,
                &conditions,
                input.range.as_ref(),
            )
            .await?;
        let mut output = head_output(&decision, wants_checksum(input.checksum_mode.as_ref()));
        output.version_id = shown_version_id(&decision.meta.version_id, bucket.versioning);
        Ok(output)
    }

    pub(crate) async fn get_object_op(&self, input: &GetObjectInput) -> S3Result<GetObjectOutput> {
        let version_id = requested_version(input.version_id.as_deref())?;
        check_part_number(input.part_number)?;
        let bucket = self.require_bucket(&input.bucket).await?;
        let conditions = Conditions::new(
            input.if_match.clone(),
            input.if_none_match.clone(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        );
        let mut attempts = 0;
        loop {
            attempts += 1;
            let decision = self
                .decide_object(
                    &input.bucket,
                    &input.key,
                    version_id,
                    &conditions,
                    input.range.as_ref(),
                )
                .await?;
            match self
                .open_stream(&input.bucket, &input.key, version_id, &decision)
                .await
            {
                Ok(body) => {
                    let head = head_output(&decision, false);
                    let mut output = GetObjectOutput {
                        body: Some(body),
                        accept_ranges: head.accept_ranges,
                        cache_control: head.cache_control,
                        content_disposition: head.content_disposition,
                        content_encoding: head.content_encoding,
                        content_language: head.content_language,
                        content_length: head.content_length,
                        content_range: head.content_range,
                        content_type: head.content_type,
                        e_tag: head.e_tag,
                        expires: head.expires,
                        last_modified: head.last_modified,
                        metadata: head.metadata,
                        replication_status: head.replication_status,
                        version_id: shown_version_id(&decision.meta.version_id, bucket.versioning),
                        tag_count: (!decision.meta.tags.is_empty())
                            .then(|| i32::try_from(decision.meta.tags.len()).unwrap_or(i32::MAX)),
                        ..Default::default()
                    };
                    apply_response_overrides(&mut output, input);
                    if wants_checksum(input.checksum_mode.as_ref()) && decision.range.is_none() {
                        let shown = checksum::show(decision.meta.checksum.as_ref());
                        checksum::show_checksum!(output, shown, with_type);
                    }
                    return Ok(output);
                }
                Err(FrontendError::Rpc(status))
                    if from_status(&status) == Some(ErrorDetail::PreconditionFailed)
                        && attempts < GET_ATTEMPTS_MAX =>
                {
                    tracing::debug!(bucket = %input.bucket, "object changed during GET, deciding again");
                }
                Err(FrontendError::Rpc(status)) if is_no_such_key(&status) => {
                    return Err(no_such_key())
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Opens the data stream of the decided range and checks its first (metadata) message.
    pub(crate) async fn open_stream(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        decision: &Decision,
    ) -> Result<s3s::dto::StreamingBlob, FrontendError> {
        let (start, end) = match &decision.range {
            Some(range) => (range.start, range.end),
            None => (0, decision.meta.size_bytes),
        };
        let request = GetObjectRequest {
            bucket: bucket.to_string(),
            key: key.to_string(),
            range_start: start,
            range_end: end,
            expected_etag: decision.meta.etag.clone(),
            version_id: version_id.unwrap_or_default().to_string(),
            // The HeadObject behind `decision` was charged: S3 counts this GET once.
            budget_taken: true,
        };
        let (mut stream, _) = self
            .router
            .call(&keys::object_key(bucket, key), true, |mut client, _| {
                let request = request.clone();
                async move { client.get_object(request).await.map(|r| r.into_inner()) }
            })
            .await?;
        match stream.message().await? {
            Some(first) => match first.part {
                Some(Part::Meta(meta)) if meta.etag == decision.meta.etag => {}
                Some(Part::Meta(_)) => {
                    // Read as the owner's own "the object changed" is: decided again.
                    let changed = to_status(ErrorDetail::PreconditionFailed, "object changed");
                    return Err(FrontendError::Rpc(changed));
                }
                _ => {
                    return Err(FrontendError::Protocol(
                        "GetObject stream did not start with metadata".into(),
                    ))
                }
            },
            None => return Err(FrontendError::Protocol("GetObject stream was empty".into())),
        }
        Ok(crate::get_stream::forward(stream, end - start))
    }

    pub(crate) async fn put_object_op(
        &self,
        input: PutObjectInput,
        headers: &http::HeaderMap,
        trailers: Option<&s3s::TrailingHeaders>,
    ) -> S3Result<PutObjectOutput> {
        check_content_length(input.content_length)?;
        check_key_length(&input.key)?;
        let checksum = checksum::plan(
            &checksum::sent_checksums_of!(input),
            input.checksum_algorithm.as_ref(),
            headers,
            trailers,
            ChecksumAlgorithm::Crc64nvme,
        )?;
        let bucket = self.require_bucket(&input.bucket).await?;
        let mut meta = stored_headers_of!(input)?.into_meta();
        meta.tags = crate::tagging::tags_of_header(input.tagging.as_deref())?;
        // One id for this request, kept by every internal retry (see ObjectMeta.write_id).
        meta.write_id = hex::encode(rand::random::<[u8; 16]>());
        let header = PutObjectHeader {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            meta: Some(meta),
            content_md5: input.content_md5.clone().unwrap_or_default(),
            size_bytes: input.content_length.unwrap_or(-1),
            condition: crate::conditions::write_condition(
                input.if_match.as_ref(),
                input.if_none_match.as_ref(),
            )?,
            checksum: Some(checksum.body),
            versioning: bucket.versioning,
        };
        let meta =
            crate::put::put_streaming(&self.router, header, input.body, checksum.trailer).await?;
        let mut output = PutObjectOutput {
            e_tag: Some(to_s3_etag(&meta.etag)),
            size: Some(size_i64(meta.size_bytes)),
            version_id: shown_version_id(&meta.version_id, bucket.versioning),
            ..Default::default()
        };
        checksum::show_checksum!(output, checksum::show(meta.checksum.as_ref()), with_type);
        Ok(output)
    }

    /// Deletes a key (or one version of it) as the bucket's versioning state says.
    pub(crate) async fn delete_key(
        &self,
        bucket: &BucketMeta,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<DeleteObjectResponse, FrontendError> {
        let request = DeleteObjectRequest {
            bucket: bucket.name.clone(),
            key: key.to_string(),
            version_id: version_id.unwrap_or_default().to_string(),
            versioning: bucket.versioning,
        };
        let bucket = bucket.name.as_str();
        let result = self
            .router
            .call(&keys::object_key(bucket, key), false, |mut client, _| {
                let request = request.clone();
                async move { client.delete_object(request).await.map(|r| r.into_inner()) }
            })
            .await;
        match result {
            Ok((response, _)) => Ok(response),
            // S3 answers 204 for a missing key.
            Err(FrontendError::Rpc(status)) if is_no_such_key(&status) => {
                Ok(DeleteObjectResponse::default())
            }
            Err(err) => Err(err),
        }
    }

    pub(crate) async fn delete_object_op(
        &self,
        input: &DeleteObjectInput,
    ) -> S3Result<DeleteObjectOutput> {
        let version_id = requested_version(input.version_id.as_deref())?;
        let bucket = self.require_bucket(&input.bucket).await?;
        let deleted = self.delete_key(&bucket, &input.key, version_id).await?;
        Ok(DeleteObjectOutput {
            delete_marker: deleted.delete_marker.then_some(true),
            version_id: (!deleted.version_id.is_empty()).then_some(deleted.version_id),
            ..Default::default()
        })
    }
}
