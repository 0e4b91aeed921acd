//! ListObjectVersions inside this server's ranges: every key's current version (or delete
//! marker) followed by its noncurrent versions, newest first, in key order, with S3's prefix,
//! delimiter and key-marker / version-id-marker rules.

use strata_proto::common::ObjectMeta;
use strata_proto::partition::*;
use strata_types::keys;

use super::list::strip_chunks;
use super::versions;
use crate::error::PartitionError;
use crate::range::IndexValue;
use crate::server::PartitionServerState;

/// Upper bound on one answer, whatever the caller asked.
const LIST_VERSIONS_MAX: u32 = strata_types::limits::LIST_KEYS_MAX as u32;

fn invalid_marker() -> PartitionError {
    PartitionError::s3(
        tonic::Code::InvalidArgument,
        "InvalidArgument",
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

/// One entry the listing can show: (index key, object key, meta, is_latest).
type Candidate = (Vec<u8>, String, ObjectMeta, bool);

pub fn list_versions(
    state: &PartitionServerState,
    request: ListObjectVersionsRequest,
) -> Result<ListObjectVersionsResponse, PartitionError> {
    let limit = request.max_keys.clamp(1, LIST_VERSIONS_MAX) as usize;
    let prefix_start = keys::object_key(&request.bucket, &request.prefix);
    let end = keys::prefix_end(&prefix_start);
    let (from, mut cursor) = if request.from.is_empty() {
        let start = start_after_markers(state, &request)?;
        (start.clone(), start)
    } else {
        // A marker key wholly before `from` (a continuation on the next run) needs no lookup.
        let mut marker_end = keys::object_key(&request.bucket, &request.key_marker);
        marker_end.push(1);
        let start = if !request.key_marker.is_empty() && marker_end <= request.from {
            prefix_start.clone()
        } else {
            start_after_markers(state, &request)?
        };
        (request.from.clone(), start.max(request.from.clone()))
    };
    let run = state.run_from(&from)?;
    let run_end = super::list::run_end(&run);
    let mut items: Vec<ListedVersion> = Vec::new();
    let mut last_prefix: Option<String> = None;
    for range in &run {
        state.throttle(range.bounds.range_id, &request.bucket)?;
        loop {
            let mut next: Option<Candidate> = None;
            let mut corrupt = false;
            range.scan(&cursor, end.as_deref(), |index_key, value| {
                let candidate = match value {
                    IndexValue::Object(meta) => keys::decode_object_key(index_key)
                        .map(|(_, key)| (key.to_string(), meta, true)),
                    IndexValue::Version(meta) => keys::decode_version_key(index_key)
                        .map(|(_, key, _)| (key.to_string(), meta, false)),
                    _ => return true,
                };
                match candidate {
                    Some((key, meta, latest)) => {
                        next = Some((index_key.to_vec(), key, meta.clone(), latest));
                    }
                    None => corrupt = true,
                }
                false
            });
            if corrupt {
                return Err(PartitionError::Corrupt("undecodable version key".into()));
            }
            let Some((index_key, key, meta, is_latest)) = next else {
                break;
            };
            let common = common_prefix(&key, &request.prefix, &request.delimiter);
            let repeats_prefix = common.is_some() && common == last_prefix;
            if items.len() == limit && !repeats_prefix {
                return Ok(ListObjectVersionsResponse {
                    items,
                    truncated: true,
                    ..Default::default()
                });
            }
            match common {
                Some(common) => {
                    if !repeats_prefix && common.as_str() > request.key_marker.as_str() {
                        items.push(ListedVersion {
                            common_prefix: common.clone(),
                            ..Default::default()
                        });
                    }
                    let encoded = keys::object_key(&request.bucket, &common);
                    last_prefix = Some(common);
                    match keys::prefix_end(&encoded) {
                        Some(after) => cursor = after,
                        None => break,
                    }
                }
                None => {
                    items.push(ListedVersion {
                        key,
                        meta: Some(strip_chunks(meta)),
                        is_latest,
                        common_prefix: String::new(),
                    });
                    cursor = index_key;
                    cursor.push(0);
                }
            }
        }
    }
    Ok(ListObjectVersionsResponse {
        items,
        truncated: false,
        covered_to_end: run_end.is_empty(),
        covered_until: run_end,
    })
}

fn common_prefix(key: &str, prefix: &str, delimiter: &str) -> Option<String> {
    if delimiter.is_empty() {
        return None;
    }
    let rest = key.strip_prefix(prefix)?;
    let at = rest.find(delimiter)?;
    Some(format!("{prefix}{}", &rest[..at + delimiter.len()]))
}
