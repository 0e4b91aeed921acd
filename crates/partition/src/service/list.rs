//! Listing one bucket's keys inside this server's ranges, with S3's prefix / delimiter /
//! start-after semantics (walked by [`super::walk`]), and counting them for DeleteBucket.

use strata_proto::partition::*;
use strata_types::keys;

use super::walk::{start, Listed, Walk};
use crate::error::PartitionError;
use crate::range::IndexValue;
use crate::records::wire;
use crate::server::PartitionServerState;

/// Upper bound on one ListObjects answer, whatever the caller asked, as the proto types it.
pub const LIST_ITEMS_MAX: u32 = strata_types::limits::LIST_KEYS_MAX as u32;

pub fn list_objects(
    state: &PartitionServerState,
    request: ListObjectsRequest,
) -> Result<ListObjectsResponse, PartitionError> {
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
    let start = start(state, cursor, &request.from)?;
    let walk = Walk {
        state,
        bucket: &request.bucket,
        prefix: &request.prefix,
        delimiter: &request.delimiter,
        marker: &request.start_after,
        limit: request.max_keys.clamp(1, LIST_ITEMS_MAX) as usize,
        skip_after_entry: 0,
    };
    let walked = walk.run(
        &start.run,
        start.cursor,
        prefix_limit,
        |index_key, value| {
            match value {
                // Delete markers are versions, not objects: listings skip them.
                IndexValue::Object(meta) if !meta.delete_marker => {
                    Some(match keys::decode_object_key(index_key) {
                        Some((_, key)) => Ok((key.to_string(), wire::object_meta(meta))),
                        None => Err(PartitionError::Corrupt(
                            "undecodable object key in index".into(),
                        )),
                    })
                }
                _ => None,
            }
        },
    )?;
    let (covered_until, covered_to_end) = walked.coverage(start.run_end);
    let truncated = walked.truncated;
    let items = walked
        .items
        .into_iter()
        .map(|listed| match listed {
            Listed::Entry { key, item } => ListItem {
                entry: Some(ListEntry {
                    key,
                    meta: Some(item),
                }),
                common_prefix: String::new(),
            },
            Listed::CommonPrefix(common_prefix) => ListItem {
                entry: None,
                common_prefix,
            },
        })
        .collect();
    Ok(ListObjectsResponse {
        items,
        truncated,
        covered_until,
        covered_to_end,
    })
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
    let start = start(state, prefix, &request.from)?;
    let limit = if request.limit == 0 {
        u64::MAX
    } else {
        request.limit
    };
    let mut count = 0u64;
    for range in &start.run {
        let _commits = range.lock_commits().await;
        range.scan(&start.cursor, end.as_deref(), |_, value| {
            // A bucket holding only noncurrent versions, delete markers or unfinished
            // multipart uploads is not empty: an upload that outlived its bucket would come
            // back in a new bucket of the same name (its parts are counted with it).
            if matches!(
                value,
                IndexValue::Object(_) | IndexValue::Version(_) | IndexValue::Upload(_)
            ) {
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
        covered_to_end: start.run_end.is_empty(),
        covered_until: start.run_end,
    })
}
