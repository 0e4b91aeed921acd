//! Listing one bucket's keys inside this server's ranges, with S3's prefix / delimiter /
//! start-after semantics. Common prefixes are found by skipping past every key under them, so
//! a listing costs O(items returned), not O(keys under the prefix).

use strata_proto::partition::*;
use strata_types::keys;

use crate::error::PartitionError;
use crate::range::IndexValue;
use crate::server::PartitionServerState;

/// Upper bound on one ListObjects answer, whatever the caller asked, as the proto types it.
pub const LIST_ITEMS_MAX: u32 = strata_types::limits::LIST_KEYS_MAX as u32;

pub fn list_objects(
    state: &PartitionServerState,
    request: ListObjectsRequest,
) -> Result<ListObjectsResponse, PartitionError> {
    let max_items = request.max_keys.clamp(1, LIST_ITEMS_MAX) as usize;
    let bucket_prefix = keys::object_prefix(&request.bucket);
    let full_prefix = keys::object_key(&request.bucket, &request.prefix);
    let prefix_limit = keys::prefix_end(&full_prefix);
    // First candidate: the prefix itself, or just after start_after when that is later.
    let mut cursor = full_prefix.clone();
    if !request.start_after.is_empty() {
        let mut after = keys::object_key(&request.bucket, &request.start_after);
        after.push(0); // smallest key strictly greater than start_after
        if after > cursor {
            cursor = after;
        }
    }
    // The caller's start position (a key in a range served here) when later than that.
    let from = if request.from.is_empty() {
        cursor.clone()
    } else {
        request.from.clone()
    };
    let run = state.run_from(&from)?;
    let run_end = run_end(&run);
    cursor = cursor.max(from);
    let start_after = request.start_after.as_str();

    let mut items = Vec::new();
    let mut truncated = false;
    // Each range read counts once against the range's and the bucket's request rates.
    let mut charged_range = None;
    // The run of served ranges in key order; each answers its own part of [cursor, prefix_limit).
    'ranges: for range in &run {
        loop {
            if !range.bounds.contains(&cursor) {
                if cursor < range.bounds.low {
                    cursor = range.bounds.low.clone();
                    if prefix_limit.as_ref().is_some_and(|limit| cursor >= *limit) {
                        break 'ranges;
                    }
                    continue;
                }
                break; // cursor past this range: next range
            }
            if charged_range != Some(range.bounds.range_id) {
                state.throttle(range.bounds.range_id, &request.bucket)?;
                charged_range = Some(range.bounds.range_id);
            }
            let upper = match (&prefix_limit, range.bounds.high.is_empty()) {
                (Some(limit), true) => Some(limit.clone()),
                (Some(limit), false) => Some(limit.clone().min(range.bounds.high.clone())),
                (None, true) => None,
                (None, false) => Some(range.bounds.high.clone()),
            };
            // Next key at or after the cursor, within bounds.
            let mut next = None;
            range.scan(&cursor, upper.as_deref(), |key, value| {
                // Delete markers are versions, not objects: listings skip them.
                if let IndexValue::Object(meta) = value {
                    if !meta.delete_marker {
                        next = Some((key.to_vec(), meta.clone()));
                        return false;
                    }
                }
                true
            });
            let Some((encoded, meta)) = next else { break };
            if items.len() == max_items {
                truncated = true;
                break 'ranges;
            }
            let Some((_, key)) = keys::decode_object_key(&encoded) else {
                return Err(PartitionError::Corrupt(
                    "undecodable object key in index".into(),
                ));
            };
            debug_assert!(encoded.starts_with(&bucket_prefix));
            let common = common_prefix(key, &request.prefix, &request.delimiter);
            match common {
                Some(common) => {
                    let encoded_common = keys::object_key(&request.bucket, common);
                    if common > start_after {
                        items.push(ListItem {
                            entry: None,
                            common_prefix: common.to_string(),
                        });
                    }
                    match keys::prefix_end(&encoded_common) {
                        Some(end) => cursor = end,
                        None => break 'ranges,
                    }
                }
                None => {
                    items.push(ListItem {
                        entry: Some(ListEntry {
                            key: key.to_string(),
                            meta: Some(strip_chunks(meta)),
                        }),
                        common_prefix: String::new(),
                    });
                    cursor = encoded;
                    cursor.push(0);
                }
            }
        }
    }
    Ok(ListObjectsResponse {
        items,
        truncated,
        covered_until: if truncated {
            Vec::new()
        } else {
            run_end.clone()
        },
        covered_to_end: !truncated && run_end.is_empty(),
    })
}

/// Where a run of ranges ends: the high of its last range (empty = +infinity).
pub fn run_end(run: &[crate::range::RangeRef]) -> Vec<u8> {
    run.last()
        .map(|range| range.bounds.high.clone())
        .unwrap_or_default()
}

/// The common prefix `key` rolls up into: the part up to and including the first delimiter
/// after `prefix`, when there is one.
fn common_prefix<'k>(key: &'k str, prefix: &str, delimiter: &str) -> Option<&'k str> {
    if delimiter.is_empty() {
        return None;
    }
    let rest = key.get(prefix.len()..)?;
    let at = rest.find(delimiter)?;
    Some(&key[..prefix.len() + at + delimiter.len()])
}

/// Listing answers carry no chunk locations: the front-end never needs them there.
pub fn strip_chunks(
    mut meta: strata_proto::common::ObjectMeta,
) -> strata_proto::common::ObjectMeta {
    meta.chunks.clear();
    meta
}

/// Counts `request.bucket`'s objects from `request.from` over this server's contiguous run of
/// ranges, each under its commit lock: a commit under way is waited for and counted, which
/// DeleteBucket relies on ([`crate::bucket_gate`]).
pub async fn count_objects(
    state: &PartitionServerState,
    request: CountObjectsRequest,
) -> Result<CountObjectsResponse, PartitionError> {
    let prefix = keys::object_prefix(&request.bucket);
    let end = keys::prefix_end(&prefix);
    let from = if request.from.is_empty() {
        prefix.clone()
    } else {
        request.from.clone()
    };
    let run = state.run_from(&from)?;
    let run_end = run_end(&run);
    let start = prefix.max(from);
    let limit = if request.limit == 0 {
        u64::MAX
    } else {
        request.limit
    };
    let mut count = 0u64;
    for range in &run {
        let _commits = range.lock_commits().await;
        range.scan(&start, end.as_deref(), |_, value| {
            // A bucket holding only noncurrent versions or delete markers is not empty.
            if matches!(value, IndexValue::Object(_) | IndexValue::Version(_)) {
                count += 1;
            }
            count < limit
        });
        if count >= limit {
            break;
        }
    }
    Ok(CountObjectsResponse {
        count,
        covered_to_end: run_end.is_empty(),
        covered_until: run_end,
    })
}

#[cfg(test)]
mod tests {
    use super::common_prefix;

    #[test]
    fn common_prefixes_follow_s3() {
        assert_eq!(common_prefix("a/b/c", "", "/"), Some("a/"));
        assert_eq!(common_prefix("a/b/c", "a/", "/"), Some("a/b/"));
        assert_eq!(common_prefix("a/b", "a/b", "/"), None);
        assert_eq!(
            common_prefix("photos2026x", "photos", "20"),
            Some("photos20")
        );
        assert_eq!(common_prefix("abc", "", ""), None);
    }
}
