//! ListMultipartUploads: unfinished uploads of a bucket in (key, upload id) order, with prefix,
//! delimiter, key-marker / upload-id-marker paging and common prefixes.
//!
//! Upload records sit right after their object's key, so a bucket's uploads can be spread over
//! several ranges and servers: the listing walks them in key order (`stretches.rs`), each
//! server answering for its contiguous run of ranges (a common prefix spanning two runs is
//! listed once).

use crate::bucket::owner;
use crate::checksum;
use crate::error::{FrontendError, Refusal};
use crate::frontend::Frontend;
use crate::list::{url_encode, wants_url};
use crate::marker_walk::{walk_owners, MarkerQuery};
use crate::meta::timestamp_from_ms;
use s3s::dto::{
    CommonPrefix, Initiator, ListMultipartUploadsInput, ListMultipartUploadsOutput,
    MultipartUpload, StorageClass,
};
use s3s::S3Result;
use strata_proto::partition::{ListMultipartUploadsRequest, ListedUpload};

/// S3's default and largest page.
pub const MAX_UPLOADS_DEFAULT: i32 = strata_types::limits::LIST_UPLOADS_MAX as i32;

impl Frontend {
    pub(crate) async fn list_multipart_uploads_op(
        &self,
        input: &ListMultipartUploadsInput,
        requester: &str,
    ) -> S3Result<ListMultipartUploadsOutput> {
        let max = match input.max_uploads {
            None => MAX_UPLOADS_DEFAULT,
            Some(n) if n < 0 => {
                return Err(FrontendError::refused(
                    Refusal::InvalidArgument,
                    "max-uploads must be a non-negative integer",
                )
                .into())
            }
            Some(n) => n.min(MAX_UPLOADS_DEFAULT),
        };
        let url = wants_url(input.encoding_type.as_ref())?;
        self.require_bucket(&input.bucket).await?;
        let key_marker = input.key_marker.clone().unwrap_or_default();
        let bucket = input.bucket.as_str();
        let prefix = input.prefix.clone().unwrap_or_default();
        // S3 ignores the upload id marker without a key marker.
        let upload_id_marker = if key_marker.is_empty() {
            String::new()
        } else {
            input.upload_id_marker.clone().unwrap_or_default()
        };
        let limit = usize::try_from(max).unwrap_or(0);
        let delimiter = input.delimiter.clone().unwrap_or_default();
        let query = MarkerQuery {
            bucket,
            prefix: &prefix,
            key_marker: &key_marker,
            second_marker: upload_id_marker,
            limit,
        };
        let (items, truncated) = walk_owners(
            &self.router,
            query,
            |call| ListMultipartUploadsRequest {
                bucket: bucket.to_string(),
                prefix: prefix.clone(),
                delimiter: delimiter.clone(),
                key_marker: call.key_marker,
                upload_id_marker: call.second_marker,
                max_uploads: call.items_max,
                from: call.from,
            },
            |mut client, request| async move { client.list_multipart_uploads(request).await },
        )
        .await?;
        Ok(uploads_output(
            input, &items, truncated, max, url, requester,
        ))
    }
}

/// The S3 answer for one page of uploads.
fn uploads_output(
    input: &ListMultipartUploadsInput,
    items: &[ListedUpload],
    truncated: bool,
    max: i32,
    url: bool,
    requester: &str,
) -> ListMultipartUploadsOutput {
    let key_marker = input.key_marker.clone().unwrap_or_default();
    let show = |value: &str| {
        if url {
            url_encode(value)
        } else {
            value.to_string()
        }
    };
    let requester = owner(requester);
    let mut uploads = Vec::new();
    let mut prefixes = Vec::new();
    for item in items {
        if !item.common_prefix.is_empty() {
            prefixes.push(CommonPrefix {
                prefix: Some(show(&item.common_prefix)),
            });
            continue;
        }
        let upload = item.upload.clone().unwrap_or_default();
        uploads.push(MultipartUpload {
            key: Some(show(&item.key)),
            upload_id: Some(upload.upload_id.clone()),
            initiated: Some(timestamp_from_ms(upload.initiated_ms)),
            initiator: Some(Initiator {
                display_name: requester.display_name.clone(),
                id: requester.id.clone(),
            }),
            owner: Some(requester.clone()),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            checksum_algorithm: checksum::s3_algorithm(upload.checksum_algorithm),
            ..Default::default()
        });
    }
    let last = items.last();
    let (next_key_marker, next_upload_id_marker) = match last {
        Some(item) if truncated && item.common_prefix.is_empty() => (
            Some(show(&item.key)),
            item.upload.as_ref().map(|u| u.upload_id.clone()),
        ),
        Some(item) if truncated => (Some(show(&item.common_prefix)), None),
        _ => (None, None),
    };
    ListMultipartUploadsOutput {
        bucket: Some(input.bucket.clone()),
        prefix: input.prefix.as_deref().map(show),
        delimiter: input.delimiter.as_deref().map(show),
        key_marker: Some(show(&key_marker)),
        upload_id_marker: Some(input.upload_id_marker.clone().unwrap_or_default()),
        next_key_marker,
        next_upload_id_marker,
        max_uploads: Some(max),
        is_truncated: Some(truncated),
        uploads: (!uploads.is_empty()).then_some(uploads),
        common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
        encoding_type: input.encoding_type.clone(),
        ..Default::default()
    }
}
