//! Bucket versioning: Put/GetBucketVersioning and ListObjectVersions.
//!
//! The state lives in the bucket record; every write and delete carries it to the key's owner,
//! which decides what happens to the key's versions (see the partition server's
//! `service/versions.rs`). ListObjectVersions merges the pages of every server owning part of
//! the bucket, like ListMultipartUploads: a key's versions always live in one range.

use crate::bucket::owner;
use crate::frontend::Frontend;
use crate::list::url_encode;
use crate::meta::{size_i64, timestamp_from_ms};
use s3s::dto::{
    BucketVersioningStatus, CommonPrefix, DeleteMarkerEntry, GetBucketVersioningOutput,
    ListObjectVersionsInput, ListObjectVersionsOutput, ObjectVersion, ObjectVersionStorageClass,
    PutBucketVersioningInput,
};
use s3s::{s3_error, S3Result};
use std::collections::HashSet;
use strata_proto::common::VersioningState;
use strata_proto::partition::{update_bucket_request, ListObjectVersionsRequest, ListedVersion};
use strata_types::keys;

/// S3's default and largest page.
pub const MAX_KEYS_DEFAULT: i32 = 1000;

/// Merges the servers' pages in key order (each key's versions stay in their order, as one
/// server sent them), each common prefix once, cut at `max`; returns (items, truncated).
pub fn merge_pages(
    pages: Vec<(Vec<ListedVersion>, bool)>,
    max: usize,
) -> (Vec<ListedVersion>, bool) {
    let mut truncated = pages.iter().any(|(_, t)| *t);
    let mut items: Vec<ListedVersion> = pages.into_iter().flat_map(|(items, _)| items).collect();
    // Stable: versions of one key keep their newest-first order.
    items.sort_by(|a, b| name(a).cmp(name(b)));
    let mut seen = HashSet::new();
    items.retain(|item| item.common_prefix.is_empty() || seen.insert(item.common_prefix.clone()));
    if items.len() > max {
        items.truncate(max);
        truncated = true;
    }
    (items, truncated)
}

fn name(item: &ListedVersion) -> &str {
    if item.common_prefix.is_empty() {
        &item.key
    } else {
        &item.common_prefix
    }
}

fn shown(version_id: &str) -> String {
    if version_id.is_empty() {
        "null".to_string()
    } else {
        version_id.to_string()
    }
}

impl Frontend {
    pub(crate) async fn put_bucket_versioning_op(
        &self,
        input: &PutBucketVersioningInput,
    ) -> S3Result<()> {
        let config = &input.versioning_configuration;
        if config
            .mfa_delete
            .as_ref()
            .is_some_and(|m| m.as_str() == "Enabled")
        {
            return Err(s3_error!(NotImplemented, "MFA delete is not implemented"));
        }
        let state = match config.status.as_ref().map(|s| s.as_str()) {
            Some(BucketVersioningStatus::ENABLED) => VersioningState::Enabled,
            Some(BucketVersioningStatus::SUSPENDED) => VersioningState::Suspended,
            None => {
                // S3 keeps the state when the configuration names none.
                self.require_bucket(&input.bucket).await?;
                return Ok(());
            }
            Some(_) => {
                return Err(s3_error!(
                    MalformedXML,
                    "The XML you provided was not well-formed or did not validate against our published schema"
                ))
            }
        };
        self.update_bucket(
            &input.bucket,
            update_bucket_request::Change::Versioning(state as i32),
        )
        .await?;
        tracing::info!(bucket = %input.bucket, ?state, "bucket versioning changed");
        Ok(())
    }

    pub(crate) async fn get_bucket_versioning_op(
        &self,
        bucket: &str,
    ) -> S3Result<GetBucketVersioningOutput> {
        let bucket = self.require_bucket(bucket).await?;
        let status = match VersioningState::try_from(bucket.versioning) {
            Ok(VersioningState::Enabled) => Some(BucketVersioningStatus::ENABLED),
            Ok(VersioningState::Suspended) => Some(BucketVersioningStatus::SUSPENDED),
            _ => None,
        };
        Ok(GetBucketVersioningOutput {
            status: status.map(BucketVersioningStatus::from_static),
            mfa_delete: None,
        })
    }

    pub(crate) async fn list_object_versions_op(
        &self,
        input: &ListObjectVersionsInput,
        requester: &str,
    ) -> S3Result<ListObjectVersionsOutput> {
        let max = match input.max_keys {
            None => MAX_KEYS_DEFAULT,
            Some(n) if n < 0 => {
                return Err(s3_error!(InvalidArgument, "max-keys must not be negative"))
            }
            Some(n) => n.min(MAX_KEYS_DEFAULT),
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
        let key_marker = input.key_marker.clone().unwrap_or_default();
        let version_id_marker = input.version_id_marker.clone().unwrap_or_default();
        if !version_id_marker.is_empty() && key_marker.is_empty() {
            return Err(s3_error!(
                InvalidArgument,
                "A version-id marker cannot be specified without a key marker."
            ));
        }
        self.require_bucket(&input.bucket).await?;
        let request = ListObjectVersionsRequest {
            bucket: input.bucket.clone(),
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone().unwrap_or_default(),
            key_marker: key_marker.clone(),
            version_id_marker: version_id_marker.clone(),
            max_keys: max.max(1).unsigned_abs(),
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
                            .list_object_versions(request)
                            .await
                            .map(|r| r.into_inner())
                    }
                })
                .await?;
            pages.push((response.items, response.truncated));
        }
        let (items, truncated) = if max == 0 {
            let any = pages.iter().any(|(items, t)| *t || !items.is_empty());
            (Vec::new(), any)
        } else {
            merge_pages(pages, usize::try_from(max).unwrap_or(0))
        };
        let show = |value: &str| {
            if url {
                url_encode(value)
            } else {
                value.to_string()
            }
        };
        let owner = owner(requester);
        let mut versions = Vec::new();
        let mut markers = Vec::new();
        let mut prefixes = Vec::new();
        for item in &items {
            if !item.common_prefix.is_empty() {
                prefixes.push(CommonPrefix {
                    prefix: Some(show(&item.common_prefix)),
                });
                continue;
            }
            let meta = item.meta.clone().unwrap_or_default();
            if meta.delete_marker {
                markers.push(DeleteMarkerEntry {
                    key: Some(show(&item.key)),
                    version_id: Some(shown(&meta.version_id)),
                    is_latest: Some(item.is_latest),
                    last_modified: Some(timestamp_from_ms(meta.last_modified_ms)),
                    owner: Some(owner.clone()),
                });
            } else {
                versions.push(ObjectVersion {
                    key: Some(show(&item.key)),
                    version_id: Some(shown(&meta.version_id)),
                    is_latest: Some(item.is_latest),
                    last_modified: Some(timestamp_from_ms(meta.last_modified_ms)),
                    e_tag: Some(crate::conditions::to_s3_etag(&meta.etag)),
                    size: Some(size_i64(meta.size_bytes)),
                    storage_class: Some(ObjectVersionStorageClass::from_static(
                        ObjectVersionStorageClass::STANDARD,
                    )),
                    owner: Some(owner.clone()),
                    ..Default::default()
                });
            }
        }
        let (next_key_marker, next_version_id_marker) = match items.last() {
            Some(item) if truncated && item.common_prefix.is_empty() => (
                Some(show(&item.key)),
                item.meta.as_ref().map(|m| shown(&m.version_id)),
            ),
            Some(item) if truncated => (Some(show(&item.common_prefix)), None),
            _ => (None, None),
        };
        Ok(ListObjectVersionsOutput {
            name: Some(input.bucket.clone()),
            prefix: Some(show(input.prefix.as_deref().unwrap_or_default())),
            delimiter: input.delimiter.as_deref().map(show),
            key_marker: Some(show(&key_marker)),
            version_id_marker: Some(version_id_marker),
            next_key_marker,
            next_version_id_marker,
            max_keys: Some(max),
            is_truncated: Some(truncated),
            versions: (!versions.is_empty()).then_some(versions),
            delete_markers: (!markers.is_empty()).then_some(markers),
            common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
            encoding_type: input.encoding_type.clone(),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_proto::common::ObjectMeta;

    fn version(key: &str, id: &str) -> ListedVersion {
        ListedVersion {
            key: key.into(),
            meta: Some(ObjectMeta {
                version_id: id.into(),
                ..Default::default()
            }),
            is_latest: false,
            common_prefix: String::new(),
        }
    }

    #[test]
    fn merged_pages_keep_each_keys_order() {
        let a = vec![version("a", "3"), version("a", "1"), version("c", "9")];
        let b = vec![version("b", "5")];
        let (items, truncated) = merge_pages(vec![(a, false), (b, true)], 3);
        let order: Vec<(String, String)> = items
            .iter()
            .map(|i| (i.key.clone(), i.meta.clone().unwrap().version_id))
            .collect();
        assert_eq!(
            order,
            [("a", "3"), ("a", "1"), ("b", "5")].map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert!(truncated);
    }
}
