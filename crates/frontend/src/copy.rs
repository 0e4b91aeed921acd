//! CopyObject: `x-amz-copy-source` (s3s parses and url-decodes it), the metadata directive,
//! `x-amz-copy-source-if-*`, and the two ways to copy: the partition server's metadata-only
//! CopyObject when one server owns both keys, otherwise a streamed GET into a PUT.

use crate::conditions::{to_s3_etag, Conditions, Outcome};
use crate::frontend::{no_such_key, Frontend};
use crate::meta::{headers_of, stored_headers_of, timestamp_from_ms, StoredHeaders};
use crate::object::check_version;
use s3s::dto::{
    CopyObjectInput, CopyObjectOutput, CopyObjectResult, CopySource, MetadataDirective,
};
use s3s::{s3_error, S3Result};
use strata_proto::common::ObjectMeta;
use strata_proto::partition::{CopyObjectRequest, PutObjectHeader};
use strata_types::keys;

/// COPY (keep the source's headers) or REPLACE (take them from the request).
pub(crate) fn parse_directive(directive: Option<&MetadataDirective>) -> S3Result<bool> {
    match directive.map(MetadataDirective::as_str) {
        None | Some("COPY") => Ok(false),
        Some("REPLACE") => Ok(true),
        Some(_) => Err(s3_error!(InvalidArgument, "Unknown metadata directive.")),
    }
}

/// The source bucket and key of a copy.
pub(crate) fn source_of(copy_source: &CopySource) -> S3Result<(String, String)> {
    match copy_source {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => {
            check_version(version_id.as_deref())?;
            Ok((bucket.to_string(), key.to_string()))
        }
        _ => Err(s3_error!(
            NotImplemented,
            "Access point and outpost copy sources are not implemented"
        )),
    }
}

impl Frontend {
    pub(crate) async fn copy_object_op(
        &self,
        input: &CopyObjectInput,
    ) -> S3Result<CopyObjectOutput> {
        let (src_bucket, src_key) = source_of(&input.copy_source)?;
        let replace = parse_directive(input.metadata_directive.as_ref())?;
        if src_bucket == input.bucket && src_key == input.key && !replace {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
            ));
        }
        self.require_bucket(&input.bucket).await?;
        if src_bucket != input.bucket {
            self.require_bucket(&src_bucket).await?;
        }
        let source = self
            .head_meta(&src_bucket, &src_key)
            .await?
            .ok_or_else(no_such_key)?;
        let conditions = Conditions::new(
            input.copy_source_if_match.clone(),
            input.copy_source_if_none_match.clone(),
            input.copy_source_if_modified_since.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
        );
        if conditions.evaluate_copy_source(&source.etag, source.last_modified_ms)
            != Outcome::Proceed
        {
            return Err(s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold"
            ));
        }
        let headers = if replace {
            stored_headers_of!(input)
        } else {
            headers_of(&source)
        };
        // x-amz-tagging-directive: COPY keeps the source's tags, REPLACE takes x-amz-tagging.
        let replace_tags = match input.tagging_directive.as_ref().map(|d| d.as_str()) {
            None | Some("COPY") => None,
            Some("REPLACE") => Some(crate::tagging::tags_of_header(input.tagging.as_deref())?),
            Some(_) => return Err(s3_error!(InvalidArgument, "Unknown tagging directive.")),
        };

        let snapshot = self.router.snapshot().await?;
        let src_owner = snapshot
            .lookup(&keys::object_key(&src_bucket, &src_key))
            .map(|r| r.owner_addr.clone());
        let dst_owner = snapshot
            .lookup(&keys::object_key(&input.bucket, &input.key))
            .map(|r| r.owner_addr.clone());
        let same_owner =
            matches!((&src_owner, &dst_owner), (Some(a), Some(b)) if a == b && !a.is_empty());

        let meta = if same_owner {
            self.copy_on_server(
                &src_bucket,
                &src_key,
                input,
                &source,
                headers,
                replace,
                replace_tags,
            )
            .await?
        } else {
            let tags = replace_tags.unwrap_or_else(|| source.tags.clone());
            self.copy_by_streaming(&src_bucket, &src_key, input, &source, headers, tags)
                .await?
        };
        Ok(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(to_s3_etag(&meta.etag)),
                last_modified: Some(timestamp_from_ms(meta.last_modified_ms)),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn copy_on_server(
        &self,
        src_bucket: &str,
        src_key: &str,
        input: &CopyObjectInput,
        source: &ObjectMeta,
        headers: StoredHeaders,
        replace: bool,
        replace_tags: Option<std::collections::HashMap<String, String>>,
    ) -> S3Result<ObjectMeta> {
        let request = CopyObjectRequest {
            src_bucket: src_bucket.to_string(),
            src_key: src_key.to_string(),
            dst_bucket: input.bucket.clone(),
            dst_key: input.key.clone(),
            replace_meta: replace.then(|| headers.into_meta()),
            replace,
            expected_src_etag: source.etag.clone(),
            replace_tags: replace_tags.is_some(),
            tags: replace_tags.unwrap_or_default(),
        };
        let (response, _) = self
            .router
            .call(
                &keys::object_key(&input.bucket, &input.key),
                false,
                |mut client, _| {
                    let request = request.clone();
                    async move { client.copy_object(request).await.map(|r| r.into_inner()) }
                },
            )
            .await?;
        response
            .meta
            .ok_or_else(|| s3_error!(InternalError, "CopyObject answered without metadata"))
    }

    async fn copy_by_streaming(
        &self,
        src_bucket: &str,
        src_key: &str,
        input: &CopyObjectInput,
        source: &ObjectMeta,
        headers: StoredHeaders,
        tags: std::collections::HashMap<String, String>,
    ) -> S3Result<ObjectMeta> {
        let mut meta = headers.into_meta();
        meta.tags = tags;
        let decision = crate::object::Decision {
            meta: source.clone(),
            range: None,
        };
        let body = self.open_stream(src_bucket, src_key, &decision).await?;
        let header = PutObjectHeader {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
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
        assert_eq!(
            parse("bkt/dir/a%20b.txt").unwrap(),
            ("bkt".into(), "dir/a b.txt".into())
        );
        assert_eq!(parse("/bkt/key").unwrap(), ("bkt".into(), "key".into()));
        assert_eq!(
            parse("bkt/key?versionId=null").unwrap(),
            ("bkt".into(), "key".into())
        );
        let err = parse("bkt/key?versionId=3HL4kqtJlcpXroDTDmJ").unwrap_err();
        assert_eq!(err.code(), &s3s::S3ErrorCode::NotImplemented);
    }

    #[test]
    fn metadata_directives() {
        assert!(!parse_directive(None).unwrap());
        assert!(!parse_directive(Some(&MetadataDirective::from_static("COPY"))).unwrap());
        assert!(parse_directive(Some(&MetadataDirective::from_static("REPLACE"))).unwrap());
        assert!(parse_directive(Some(&MetadataDirective::from_static("MOVE"))).is_err());
    }
}
