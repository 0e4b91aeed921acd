//! Bucket versioning: Put/GetBucketVersioning and ListObjectVersions.
//!
//! The state lives in the bucket record; every write and delete carries it to the key's owner,
//! which decides what happens to the key's versions (see the partition server's
//! `service/versions.rs`). ListObjectVersions walks the bucket's ranges in key order
//! (`stretches.rs`), like ListObjectsV2: a key's versions always live in one range.

use crate::bucket::owner;
use crate::error::{FrontendError, Refusal};
use crate::frontend::{malformed_xml, Frontend};
use crate::list::{url_encode, wants_url};
use crate::marker_walk::{walk_owners, MarkedItem, MarkerQuery};
use crate::meta::{size_i64, timestamp_from_ms};
use s3s::dto::{
    BucketVersioningStatus, CommonPrefix, DeleteMarkerEntry, GetBucketVersioningOutput,
    ListObjectVersionsInput, ListObjectVersionsOutput, ObjectVersion, ObjectVersionStorageClass,
    PutBucketVersioningInput,
};
use s3s::S3Result;
use strata_proto::common::VersioningState;
use strata_proto::partition::{update_bucket_request, ListObjectVersionsRequest, ListedVersion};

/// S3's default and largest page.
pub const MAX_KEYS_DEFAULT: i32 = strata_types::limits::LIST_KEYS_MAX as i32;

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
            return Err(FrontendError::refused(
                Refusal::NotImplemented,
                "MFA delete is not implemented",
            )
            .into());
        }
        let state = match config.status.as_ref().map(|s| s.as_str()) {
            Some(BucketVersioningStatus::ENABLED) => VersioningState::Enabled,
            Some(BucketVersioningStatus::SUSPENDED) => VersioningState::Suspended,
            None => {
                // S3 keeps the state when the configuration names none.
                self.require_bucket(&input.bucket).await?;
                return Ok(());
            }
            Some(_) => return Err(malformed_xml()),
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
                return Err(FrontendError::refused(
                    Refusal::InvalidArgument,
                    "max-keys must not be negative",
                )
                .into())
            }
            Some(n) => n.min(MAX_KEYS_DEFAULT),
        };
        let url = wants_url(input.encoding_type.as_ref())?;
        let key_marker = input.key_marker.clone().unwrap_or_default();
        let version_id_marker = input.version_id_marker.clone().unwrap_or_default();
        if !version_id_marker.is_empty() && key_marker.is_empty() {
            return Err(FrontendError::refused(
                Refusal::InvalidArgument,
                "A version-id marker cannot be specified without a key marker.",
            )
            .into());
        }
        self.require_bucket(&input.bucket).await?;
        let bucket = input.bucket.as_str();
        let prefix = input.prefix.clone().unwrap_or_default();
        let limit = usize::try_from(max).unwrap_or(0);
        let delimiter = input.delimiter.clone().unwrap_or_default();
        let query = MarkerQuery {
            bucket,
            prefix: &prefix,
            key_marker: &key_marker,
            second_marker: version_id_marker.clone(),
            limit,
        };
        let (items, truncated) = walk_owners(
            &self.router,
            query,
            |call| ListObjectVersionsRequest {
                bucket: bucket.to_string(),
                prefix: prefix.clone(),
                delimiter: delimiter.clone(),
                key_marker: call.key_marker,
                version_id_marker: call.second_marker,
                max_keys: call.items_max,
                from: call.from,
            },
            |mut client, request| async move { client.list_object_versions(request).await },
        )
        .await?;
        Ok(versions_output(
            input, &items, truncated, max, url, requester,
        ))
    }
}

impl MarkedItem for ListedVersion {
    fn key(&self) -> &str {
        &self.key
    }
    fn common_prefix(&self) -> &str {
        &self.common_prefix
    }
    fn second_marker(&self) -> String {
        let version = self.meta.as_ref().map(|m| m.version_id.as_str());
        shown(version.unwrap_or_default())
    }
}

/// The S3 answer for one page of versions.
fn versions_output(
    input: &ListObjectVersionsInput,
    items: &[ListedVersion],
    truncated: bool,
    max: i32,
    url: bool,
    requester: &str,
) -> ListObjectVersionsOutput {
    let key_marker = input.key_marker.clone().unwrap_or_default();
    let version_id_marker = input.version_id_marker.clone().unwrap_or_default();
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
    for item in items {
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
    ListObjectVersionsOutput {
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
    }
}
