//! ListMultipartUploads: unfinished uploads of a bucket in (key, upload id) order, with prefix,
//! delimiter, key-marker / upload-id-marker paging and common prefixes.
//!
//! Upload records sit right after their object's key, so a bucket's uploads can be spread over
//! several ranges and servers: every server owning part of the bucket answers one page of its
//! own, and the pages are merged in order (a common prefix spanning two servers counted once).

use crate::bucket::owner;
use crate::checksum;
use crate::frontend::Frontend;
use crate::list::url_encode;
use crate::meta::timestamp_from_ms;
use s3s::dto::{
    CommonPrefix, Initiator, ListMultipartUploadsInput, ListMultipartUploadsOutput,
    MultipartUpload, StorageClass,
};
use s3s::{s3_error, S3Result};
use std::collections::HashSet;
use strata_proto::partition::{ListMultipartUploadsRequest, ListedUpload};
use strata_types::keys;

/// S3's default and largest page.
pub const MAX_UPLOADS_DEFAULT: i32 = 1000;

/// Merges the servers' pages in (name, upload id) order, each common prefix once, and cuts
/// the result at `max` items; returns (items, truncated).
pub fn merge_pages(pages: Vec<(Vec<ListedUpload>, bool)>, max: usize) -> (Vec<ListedUpload>, bool) {
    let mut truncated = pages.iter().any(|(_, t)| *t);
    let mut items: Vec<ListedUpload> = pages.into_iter().flat_map(|(items, _)| items).collect();
    let name = |item: &ListedUpload| {
        if item.common_prefix.is_empty() {
            item.key.clone()
        } else {
            item.common_prefix.clone()
        }
    };
    let upload_id = |item: &ListedUpload| {
        item.upload
            .as_ref()
            .map(|u| u.upload_id.clone())
            .unwrap_or_default()
    };
    items.sort_by_key(|item| (name(item), upload_id(item)));
    let mut seen_prefixes = HashSet::new();
    items.retain(|item| {
        item.common_prefix.is_empty() || seen_prefixes.insert(item.common_prefix.clone())
    });
    if items.len() > max {
        items.truncate(max);
        truncated = true;
    }
    (items, truncated)
}

impl Frontend {
    pub(crate) async fn list_multipart_uploads_op(
        &self,
        input: &ListMultipartUploadsInput,
        requester: &str,
    ) -> S3Result<ListMultipartUploadsOutput> {
        let max = match input.max_uploads {
            None => MAX_UPLOADS_DEFAULT,
            Some(n) if n < 0 => {
                return Err(s3_error!(
                    InvalidArgument,
                    "max-uploads must be a non-negative integer"
                ))
            }
            Some(n) => n.min(MAX_UPLOADS_DEFAULT),
        };
        let url = match input.encoding_type.as_ref().map(|e| e.as_str()) {
            None => false,
            Some("url") => true,
            Some(_) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "Invalid Encoding Method specified in Request"
                ))
            }
        };
        self.require_bucket(&input.bucket).await?;
        let key_marker = input.key_marker.clone().unwrap_or_default();
        let request = ListMultipartUploadsRequest {
            bucket: input.bucket.clone(),
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone().unwrap_or_default(),
            key_marker: key_marker.clone(),
            // S3 ignores the upload id marker without a key marker.
            upload_id_marker: if key_marker.is_empty() {
                String::new()
            } else {
                input.upload_id_marker.clone().unwrap_or_default()
            },
            max_uploads: max.max(1).unsigned_abs(),
        };
        let low = keys::object_prefix(&input.bucket);
        let high = keys::prefix_end(&low).unwrap_or_default();
        let mut pages = Vec::new();
        let mut asked = HashSet::new();
        for route in self.router.overlapping(&low, &high).await? {
            if !asked.insert(route.owner_addr.clone()) && !route.owner_addr.is_empty() {
                continue;
            }
            let position = std::cmp::max(route.low.clone(), low.clone());
            let (response, _) = self
                .router
                .call(&position, false, |mut client, _| {
                    let request = request.clone();
                    async move {
                        client
                            .list_multipart_uploads(request)
                            .await
                            .map(|r| r.into_inner())
                    }
                })
                .await?;
            pages.push((response.items, response.truncated));
        }
        let (items, truncated) = merge_pages(pages, usize::try_from(max).unwrap_or(0));
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
        for item in &items {
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
        Ok(ListMultipartUploadsOutput {
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_proto::common::UploadMeta;

    fn upload(key: &str, id: &str) -> ListedUpload {
        ListedUpload {
            key: key.into(),
            upload: Some(UploadMeta {
                upload_id: id.into(),
                ..Default::default()
            }),
            common_prefix: String::new(),
        }
    }

    fn prefix(p: &str) -> ListedUpload {
        ListedUpload {
            common_prefix: p.into(),
            ..Default::default()
        }
    }

    #[test]
    fn pages_merge_in_order_with_prefixes_once() {
        let a = vec![upload("a", "2"), prefix("d/"), upload("z", "1")];
        let b = vec![upload("a", "1"), prefix("d/"), upload("m", "1")];
        let (items, truncated) = merge_pages(vec![(a, false), (b, false)], 10);
        let names: Vec<String> = items
            .iter()
            .map(|i| format!("{}{}", i.key, i.common_prefix))
            .collect();
        assert_eq!(names, ["a", "a", "d/", "m", "z"]);
        assert_eq!(items[0].upload.as_ref().unwrap().upload_id, "1");
        assert!(!truncated);
        let (items, truncated) =
            merge_pages(vec![(vec![upload("a", "1"), upload("b", "1")], false)], 1);
        assert_eq!(items.len(), 1);
        assert!(truncated);
    }
}
