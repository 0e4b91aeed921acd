//! The one listing walker: visits a bucket's index entries in key order over this server's run
//! of ranges, with S3's prefix / delimiter rules, for ListObjects, ListObjectVersions and
//! ListMultipartUploads. Each listing says which entries it shows (`pick`) and how to turn
//! them into its answer; the walker does the rest: range bounds, rate-limit charges, rolling
//! keys up into common prefixes, skipping past every key under a common prefix at once (so a
//! listing costs O(items returned), not O(keys under the prefix)), and the item limit.

use strata_types::keys;

use crate::error::PartitionError;
use crate::range::{IndexValue, RangeRef};
use crate::server::PartitionServerState;

/// One listed item.
pub(super) enum Listed<T> {
    /// An entry `pick` chose: its object key and what the listing shows of it.
    Entry { key: String, item: T },
    /// Keys rolled up at the delimiter.
    CommonPrefix(String),
}

/// A listing's parameters, as S3 names them.
pub(super) struct Walk<'a> {
    pub state: &'a PartitionServerState,
    pub bucket: &'a str,
    pub prefix: &'a str,
    pub delimiter: &'a str,
    /// A common prefix is shown only when it sorts after this (start-after, key-marker): an
    /// earlier one was on an earlier page.
    pub marker: &'a str,
    /// Items per answer.
    pub limit: usize,
    /// Appended to an entry's index key to make the next cursor: 0 for the next key, 1 to
    /// skip the keys nested under it (an upload's parts).
    pub skip_after_entry: u8,
}

/// What a walk found: the items in key order, and whether more remained (the limit was hit).
pub(super) struct Walked<T> {
    pub items: Vec<Listed<T>>,
    pub truncated: bool,
}

/// `pick`'s answer for one index entry: not listed (None), listed (the decoded object key and
/// the listing's item), or a key that does not decode.
pub(super) type Pick<T> = Option<Result<(String, T), PartitionError>>;

impl Walk<'_> {
    /// Walks `run` from `cursor` up to `end` (None: no end).
    pub fn run<T>(
        &self,
        run: &[RangeRef],
        mut cursor: Vec<u8>,
        end: Option<Vec<u8>>,
        mut pick: impl FnMut(&[u8], &IndexValue) -> Pick<T>,
    ) -> Result<Walked<T>, PartitionError> {
        let mut items = Vec::new();
        let mut last_prefix: Option<String> = None;
        // Each range read counts once against the range's and the bucket's request rates.
        let mut charged_range = None;
        'ranges: for range in run {
            loop {
                if !range.bounds.contains(&cursor) {
                    if cursor < range.bounds.low {
                        cursor = range.bounds.low.clone();
                        if end.as_ref().is_some_and(|end| cursor >= *end) {
                            break 'ranges;
                        }
                        continue;
                    }
                    break; // cursor past this range: next range
                }
                if charged_range != Some(range.bounds.range_id) {
                    self.state.throttle(range.bounds.range_id, self.bucket)?;
                    charged_range = Some(range.bounds.range_id);
                }
                let upper = match (&end, range.bounds.high.is_empty()) {
                    (Some(end), true) => Some(end.clone()),
                    (Some(end), false) => Some(end.clone().min(range.bounds.high.clone())),
                    (None, true) => None,
                    (None, false) => Some(range.bounds.high.clone()),
                };
                // The next listed entry at or after the cursor, within bounds.
                let mut next = None;
                range.scan(&cursor, upper.as_deref(), |index_key, value| {
                    match pick(index_key, value) {
                        None => true,
                        Some(found) => {
                            next = Some(found.map(|found| (index_key.to_vec(), found)));
                            false
                        }
                    }
                });
                let Some((index_key, (key, item))) = next.transpose()? else {
                    break;
                };
                let common = common_prefix(&key, self.prefix, self.delimiter);
                let repeats_prefix = common.is_some() && common == last_prefix;
                if items.len() == self.limit && !repeats_prefix {
                    return Ok(Walked {
                        items,
                        truncated: true,
                    });
                }
                match common {
                    Some(common) => {
                        if !repeats_prefix && common.as_str() > self.marker {
                            items.push(Listed::CommonPrefix(common.clone()));
                        }
                        let encoded = keys::object_key(self.bucket, &common);
                        last_prefix = Some(common);
                        // Skip every key under the common prefix at once.
                        match keys::prefix_end(&encoded) {
                            Some(after) => cursor = after,
                            None => break 'ranges,
                        }
                    }
                    None => {
                        items.push(Listed::Entry { key, item });
                        cursor = index_key;
                        cursor.push(self.skip_after_entry);
                    }
                }
            }
        }
        Ok(Walked {
            items,
            truncated: false,
        })
    }
}

/// Where one call of a listing (or count) starts on this server.
pub(super) struct Start {
    /// The contiguous run of ranges served here from the call's first key.
    pub run: Vec<RangeRef>,
    /// Where the run ends: the high of its last range (empty = +infinity).
    pub run_end: Vec<u8>,
    /// The first key to visit: the listing's own first candidate, or the caller's
    /// continuation position when that is later.
    pub cursor: Vec<u8>,
}

/// Finds the run from `from` (the caller's continuation position: a key in a range served
/// here; empty on a first call, which starts at `first`).
pub(super) fn start(
    state: &PartitionServerState,
    first: Vec<u8>,
    from: &[u8],
) -> Result<Start, PartitionError> {
    let from = if from.is_empty() {
        first.clone()
    } else {
        from.to_vec()
    };
    let run = state.run_from(&from)?;
    let run_end = run
        .last()
        .map(|range| range.bounds.high.clone())
        .unwrap_or_default();
    Ok(Start {
        run,
        run_end,
        cursor: first.max(from),
    })
}

impl<T> Walked<T> {
    /// `(covered_until, covered_to_end)` of the answer: a truncated page covers nothing past
    /// its last item (the caller continues from that), a whole one covers the run.
    pub fn coverage(&self, run_end: Vec<u8>) -> (Vec<u8>, bool) {
        if self.truncated {
            (Vec::new(), false)
        } else {
            let to_end = run_end.is_empty();
            (run_end, to_end)
        }
    }
}

/// The common prefix `key` rolls up into: the part up to and including the first delimiter
/// after `prefix`, when there is one.
pub(super) fn common_prefix(key: &str, prefix: &str, delimiter: &str) -> Option<String> {
    if delimiter.is_empty() {
        return None;
    }
    let rest = key.strip_prefix(prefix)?;
    let at = rest.find(delimiter)?;
    Some(format!("{prefix}{}", &rest[..at + delimiter.len()]))
}

#[cfg(test)]
mod tests {
    use super::common_prefix;

    #[test]
    fn common_prefixes_follow_s3() {
        let rolled = |key, prefix, delimiter| common_prefix(key, prefix, delimiter);
        assert_eq!(rolled("a/b/c", "", "/").as_deref(), Some("a/"));
        assert_eq!(rolled("a/b/c", "a/", "/").as_deref(), Some("a/b/"));
        assert_eq!(rolled("a/b", "a/b", "/"), None);
        assert_eq!(
            rolled("photos2026x", "photos", "20").as_deref(),
            Some("photos20")
        );
        assert_eq!(rolled("abc", "", ""), None);
    }
}
