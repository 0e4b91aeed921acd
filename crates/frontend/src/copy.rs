//! CopyObject: `x-amz-copy-source` (s3s parses and url-decodes it), the metadata directive,
//! `x-amz-copy-source-if-*`, and the two ways to copy: the partition server's metadata-only
//! CopyObject when one range holds both keys, otherwise a streamed GET into a PUT (bounded in
//! memory by the GET and PUT channels), whichever ranges and servers own the two keys.

use crate::checksum::{self, show_checksum};
use crate::conditions::{to_s3_etag, Conditions, Outcome};
use crate::error::{FrontendError, Refusal};
use crate::frontend::{
    no_such_key, no_such_version, precondition_failed, shown_version_id, Frontend,
};
use crate::meta::{headers_of, stored_headers_of, timestamp_from_ms, StoredHeaders};
use crate::object::{requested_version, PUT_OBJECT_BYTES_MAX};
use s3s::dto::{
    CopyObjectInput, CopyObjectOutput, CopyObjectResult, CopySource, MetadataDirective,
};
use s3s::S3Result;
use strata_proto::common::ObjectMeta;
use strata_proto::partition::{CopyObjectRequest, PutObjectHeader};
use strata_types::keys;

/// COPY (keep the source's headers) or REPLACE (take them from the request).
pub(crate) fn parse_directive(directive: Option<&MetadataDirective>) -> S3Result<bool> {
    match directive.map(MetadataDirective::as_str) {
        None | Some("COPY") => Ok(false),
        Some("REPLACE") => Ok(true),
        Some(_) => Err(FrontendError::refused(
            Refusal::InvalidArgument,
            "Unknown metadata directive.",
        )
        .into()),
    }
}

/// What a copy reads: a bucket, a key and a version (None: the current one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Source {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
}

/// The source of a copy.
pub(crate) fn source_of(copy_source: &CopySource) -> S3Result<Source> {
    match copy_source {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => {
            let version_id = requested_version(version_id.as_deref())?.map(str::to_string);
            Ok(Source {
                bucket: bucket.to_string(),
                key: key.to_string(),
                version_id,
            })
        }
        _ => Err(FrontendError::refused(
            Refusal::NotImplemented,
            "Access point and outpost copy sources are not implemented",
        )
        .into()),
    }
}

/// Where a copy writes, and what the destination bucket's versioning makes of it.
struct Target<'a> {
    bucket: &'a str,
    key: &'a str,
    versioning: i32,
}

impl Frontend {
    pub(crate) async fn copy_object_op(
        &self,
        input: &CopyObjectInput,
    ) -> S3Result<CopyObjectOutput> {
        let src = source_of(&input.copy_source)?;
        let (src_bucket, src_key) = (src.bucket.clone(), src.key.clone());
        let replace = parse_directive(input.metadata_directive.as_ref())?;
        if src_bucket == input.bucket
            && src_key == input.key
            && src.version_id.is_none()
            && !replace
        {
            let message = "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.";
            return Err(FrontendError::refused(Refusal::InvalidRequest, message).into());
        }
        let destination = self.require_bucket(&input.bucket).await?;
        let source_versioning = if src_bucket != input.bucket {
            self.require_bucket(&src_bucket).await?.versioning
        } else {
            destination.versioning
        };
        let source = self.copy_source_meta(&src).await?;
        let conditions = Conditions::new(
            input.copy_source_if_match.clone(),
            input.copy_source_if_none_match.clone(),
            input.copy_source_if_modified_since.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
        );
        if conditions.evaluate_copy_source(&source.etag, source.last_modified_ms)
            != Outcome::Proceed
        {
            return Err(precondition_failed());
        }
        let headers = if replace {
            stored_headers_of!(input)?
        } else {
            headers_of(&source)
        };
        // x-amz-tagging-directive: COPY keeps the source's tags, REPLACE takes x-amz-tagging.
        let replace_tags = match input.tagging_directive.as_ref().map(|d| d.as_str()) {
            None | Some("COPY") => None,
            Some("REPLACE") => Some(crate::tagging::tags_of_header(input.tagging.as_deref())?),
            Some(_) => {
                return Err(FrontendError::refused(
                    Refusal::InvalidArgument,
                    "Unknown tagging directive.",
                )
                .into())
            }
        };

        if source.size_bytes > PUT_OBJECT_BYTES_MAX {
            let message = format!("The specified copy source is larger than the maximum allowable size for a copy source: {PUT_OBJECT_BYTES_MAX}");
            return Err(FrontendError::refused(Refusal::InvalidRequest, message).into());
        }
        let target = Target {
            bucket: &input.bucket,
            key: &input.key,
            versioning: destination.versioning,
        };
        let meta = self
            .copy_to(&src, &target, &source, headers, replace, replace_tags)
            .await?;
        let mut result = CopyObjectResult {
            e_tag: Some(to_s3_etag(&meta.etag)),
            last_modified: Some(timestamp_from_ms(meta.last_modified_ms)),
            ..Default::default()
        };
        show_checksum!(result, checksum::show(meta.checksum.as_ref()), with_type);
        Ok(CopyObjectOutput {
            copy_object_result: Some(result),
            version_id: shown_version_id(&meta.version_id, destination.versioning),
            // The version actually copied, also when the request named none.
            copy_source_version_id: shown_version_id(&source.version_id, source_versioning),
            ..Default::default()
        })
    }

    /// Copies `source` to `target`: metadata-only on the partition server when one range holds
    /// both keys (the copy then shares the source's chunks, which only that range's data stream
    /// may hold), otherwise the bytes are streamed from the source's owner into a PUT on the
    /// target's owner, whichever ranges and servers those are.
    async fn copy_to(
        &self,
        src: &Source,
        target: &Target<'_>,
        source: &ObjectMeta,
        headers: StoredHeaders,
        replace: bool,
        replace_tags: Option<std::collections::HashMap<String, String>>,
    ) -> S3Result<ObjectMeta> {
        let snapshot = self.router.snapshot().await?;
        let range_of = |bucket: &str, key: &str| {
            snapshot
                .lookup(&keys::object_key(bucket, key))
                .filter(|r| !r.owner_addr.is_empty())
                .map(|r| r.range_id)
        };
        let same_range = matches!(
            (range_of(&src.bucket, &src.key), range_of(target.bucket, target.key)),
            (Some(a), Some(b)) if a == b
        );
        let tags = replace_tags.clone().unwrap_or_else(|| source.tags.clone());
        if same_range {
            match self
                .copy_on_server(src, target, source, headers.clone(), replace, replace_tags)
                .await
            {
                // A split (or merge) between the map lookup and the call put the two keys in
                // different ranges: the owner cannot share chunks across them, so stream.
                Err(FrontendError::Rpc(status))
                    if strata_types::error_detail::from_status(&status)
                        == Some(strata_types::ErrorDetail::Rejected {
                            reason: strata_types::error_detail::RejectReason::NotImplemented,
                        }) =>
                {
                    tracing::debug!(
                        "copy source and target are in different ranges now; streaming it"
                    );
                }
                other => return Ok(other?),
            }
        }
        self.copy_by_streaming(src, target, source, headers, tags)
            .await
    }

    /// The metadata of a copy's source version: NoSuchKey / NoSuchVersion when missing, and
    /// S3's answers for delete markers.
    pub(crate) async fn copy_source_meta(&self, src: &Source) -> S3Result<ObjectMeta> {
        match self
            .head_version(&src.bucket, &src.key, src.version_id.as_deref())
            .await?
        {
            Some(meta) if !meta.delete_marker => Ok(meta),
            Some(_) if src.version_id.is_some() => {
                let message = "The source of a copy request may not specifically refer to a delete marker by version id.";
                Err(FrontendError::refused(Refusal::InvalidRequest, message).into())
            }
            None if src.version_id.is_some() => Err(no_such_version()),
            _ => Err(no_such_key()),
        }
    }

    async fn copy_on_server(
        &self,
        src: &Source,
        target: &Target<'_>,
        source: &ObjectMeta,
        headers: StoredHeaders,
        replace: bool,
        replace_tags: Option<std::collections::HashMap<String, String>>,
    ) -> Result<ObjectMeta, FrontendError> {
        let request = CopyObjectRequest {
            src_bucket: src.bucket.clone(),
            src_key: src.key.clone(),
            dst_bucket: target.bucket.to_string(),
            dst_key: target.key.to_string(),
            replace_meta: replace.then(|| headers.into_meta()),
            replace,
            expected_src_etag: source.etag.clone(),
            replace_tags: replace_tags.is_some(),
            tags: replace_tags.unwrap_or_default(),
            versioning: target.versioning,
            src_version_id: src.version_id.clone().unwrap_or_default(),
        };
        let (response, _) = self
            .router
            .call(
                &keys::object_key(target.bucket, target.key),
                false,
                |mut client, _| {
                    let request = request.clone();
                    async move { client.copy_object(request).await.map(|r| r.into_inner()) }
                },
            )
            .await?;
        response
            .meta
            .ok_or_else(|| FrontendError::Protocol("CopyObject answered without metadata".into()))
    }

    async fn copy_by_streaming(
        &self,
        src: &Source,
        target: &Target<'_>,
        source: &ObjectMeta,
        headers: StoredHeaders,
        tags: std::collections::HashMap<String, String>,
    ) -> S3Result<ObjectMeta> {
        let mut meta = headers.into_meta();
        meta.tags = tags;
        // One id for the copy's write, kept by every internal retry of it (see
        // ObjectMeta.write_id): a retry after a lost answer finds the write, not a second one.
        meta.write_id = hex::encode(rand::random::<[u8; 16]>());
        let decision = crate::object::Decision {
            meta: source.clone(),
            range: None,
        };
        let body = self
            .open_stream(&src.bucket, &src.key, src.version_id.as_deref(), &decision)
            .await?;
        let header = PutObjectHeader {
            bucket: target.bucket.to_string(),
            key: target.key.to_string(),
            versioning: target.versioning,
            meta: Some(meta),
            content_md5: String::new(),
            size_bytes: crate::meta::size_i64(source.size_bytes),
            condition: None,
            // The copy's checksum is computed again over the bytes it stores.
            checksum: Some(strata_proto::partition::BodyChecksum {
                algorithm: source.checksum.as_ref().filter(|c| !c.composite).map_or(
                    strata_proto::common::ChecksumAlgorithm::Crc64nvme as i32,
                    |c| c.algorithm,
                ),
                ..Default::default()
            }),
        };
        crate::put::put_streaming(&self.router, header, Some(body), None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_sources_parse_like_s3() {
        let parse = |header: &str| source_of(&CopySource::parse(header).unwrap());
        let source = |bucket: &str, key: &str, version: Option<&str>| Source {
            bucket: bucket.into(),
            key: key.into(),
            version_id: version.map(str::to_string),
        };
        assert_eq!(
            parse("bkt/dir/a%20b.txt").unwrap(),
            source("bkt", "dir/a b.txt", None)
        );
        assert_eq!(parse("/bkt/key").unwrap(), source("bkt", "key", None));
        assert_eq!(
            parse("bkt/key?versionId=null").unwrap(),
            source("bkt", "key", Some("null"))
        );
        assert_eq!(
            parse("bkt/key?versionId=3HL4kqtJlcpXroDTDmJ").unwrap(),
            source("bkt", "key", Some("3HL4kqtJlcpXroDTDmJ"))
        );
    }

    #[test]
    fn metadata_directives() {
        assert!(!parse_directive(None).unwrap());
        assert!(!parse_directive(Some(&MetadataDirective::from_static("COPY"))).unwrap());
        assert!(parse_directive(Some(&MetadataDirective::from_static("REPLACE"))).unwrap());
        assert!(parse_directive(Some(&MetadataDirective::from_static("MOVE"))).is_err());
    }
}
