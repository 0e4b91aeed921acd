//! ListObjectVersions inside this server's ranges: every key's current version (or delete
//! marker) followed by its noncurrent versions, newest first, in key order, with S3's prefix,
//! delimiter and key-marker / version-id-marker rules.

use strata_proto::partition::*;
use strata_types::keys;

use super::versions;
use super::walk::{start, Listed, Walk};
use crate::error::PartitionError;
use crate::range::IndexValue;
use crate::records::wire;
use crate::server::PartitionServerState;
use strata_types::error_detail::RejectReason;

/// Upper bound on one answer, whatever the caller asked.
const LIST_VERSIONS_MAX: u32 = strata_types::limits::LIST_KEYS_MAX as u32;

fn invalid_marker() -> PartitionError {
    PartitionError::rejected(
        RejectReason::InvalidArgument,
        "Invalid version id specified",
    )
}

/// The first index key the listing may return, after the markers.
fn start_after_markers(
    state: &PartitionServerState,
    request: &ListObjectVersionsRequest,
) -> Result<Vec<u8>, PartitionError> {
    let start = keys::object_key(&request.bucket, &request.prefix);
    if request.key_marker.is_empty() {
        return Ok(start);
    }
    let after = if request.version_id_marker.is_empty() {
        // Every version of key_marker is skipped: past all its records.
        let mut after = keys::object_key(&request.bucket, &request.key_marker);
        after.push(1);
        after
    } else {
        let object = keys::object_key(&request.bucket, &request.key_marker);
        let range = state.range_for(&object)?;
        let found = versions::find(
            &range,
            &request.bucket,
            &request.key_marker,
            &request.version_id_marker,
        )
        .ok_or_else(invalid_marker)?;
        if found.is_current {
            keys::version_prefix(&request.bucket, &request.key_marker)
        } else {
            let mut after = found.index_key;
            after.push(0);
            after
        }
    };
    Ok(start.max(after))
}

pub fn list_versions(
    state: &PartitionServerState,
    request: ListObjectVersionsRequest,
) -> Result<ListObjectVersionsResponse, PartitionError> {
    let prefix_start = keys::object_key(&request.bucket, &request.prefix);
    let end = keys::prefix_end(&prefix_start);
    // A marker key wholly before `from` (a continuation on the next run) needs no lookup.
    let mut marker_end = keys::object_key(&request.bucket, &request.key_marker);
    marker_end.push(1);
    let first =
        if !request.from.is_empty() && !request.key_marker.is_empty() && marker_end <= request.from
        {
            prefix_start.clone()
        } else {
            start_after_markers(state, &request)?
        };
    let start = start(state, first, &request.from)?;
    let walk = Walk {
        state,
        bucket: &request.bucket,
        prefix: &request.prefix,
        delimiter: &request.delimiter,
        marker: &request.key_marker,
        limit: request.max_keys.clamp(1, LIST_VERSIONS_MAX) as usize,
        skip_after_entry: 0,
    };
    // A key's current version (or delete marker), then its noncurrent versions.
    let walked = walk.run(&start.run, start.cursor, end, |index_key, value| {
        let decoded = match value {
            IndexValue::Object(meta) => keys::decode_object_key(index_key)
                .map(|(_, key)| (key.to_string(), (wire::object_meta(meta), true))),
            IndexValue::Version(meta) => keys::decode_version_key(index_key)
                .map(|(_, key, _)| (key.to_string(), (wire::object_meta(meta), false))),
            _ => return None,
        };
        Some(decoded.ok_or_else(|| PartitionError::Corrupt("undecodable version key".into())))
    })?;
    let (covered_until, covered_to_end) = walked.coverage(start.run_end);
    let truncated = walked.truncated;
    let items = walked
        .items
        .into_iter()
        .map(|listed| match listed {
            Listed::Entry {
                key,
                item: (meta, is_latest),
            } => ListedVersion {
                key,
                meta: Some(meta),
                is_latest,
                common_prefix: String::new(),
            },
            Listed::CommonPrefix(common_prefix) => ListedVersion {
                common_prefix,
                ..Default::default()
            },
        })
        .collect();
    Ok(ListObjectVersionsResponse {
        items,
        truncated,
        covered_until,
        covered_to_end,
    })
}
