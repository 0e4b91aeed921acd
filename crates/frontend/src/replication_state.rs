//! GetReplicationState asked of the partition servers owning a bucket's ranges, and what their
//! reports say of the bucket as a whole: the one fan-out behind a destination's
//! `x-strata-replicated-through` (`replicated_through.rs`), `strata replication status` and
//! the replication lines of `strata status`. It works over the partition map's ranges, so a
//! front-end (its cached map) and the CLI (a map just fetched) share it; each caller says how
//! its owners are reached and how long and how many at once they are asked ([`Ask`]).
//!
//! Invariant: a report counts for a range only when it names the range and the epoch the map
//! names (an owner that lost the range, or answers for an older assignment, says nothing of
//! it), and a bucket's watermark is known only when every range spanning the bucket's keys
//! reported one; an owner that did not answer makes it unknown, never higher.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{Stream, StreamExt};
use strata_proto::manager::RangeAssignment;
use strata_proto::partition::{GetReplicationStateRequest, RangeReplication};
use strata_types::keys;

use crate::routing::PartitionClient;

/// For [`Ask::concurrency`]: every owner at once.
pub const ALL_AT_ONCE: usize = usize::MAX;

/// How the owners are asked.
#[derive(Clone, Copy, Debug)]
pub struct Ask {
    /// Bound of one owner's answer (a paused server must not hold its caller up longer).
    pub timeout_ms: u64,
    /// Owners asked at once (1: one after another).
    pub concurrency: usize,
    /// [`BucketReplication::ask`] stops at the first owner that does not answer: the bucket's
    /// watermark is unknown then, so a caller that wants only it gains nothing by waiting on
    /// the rest.
    pub stop_at_silence: bool,
}

/// The ranges of `ranges` (a partition map's) holding `bucket`'s object keys, in their order.
pub fn bucket_span<'m>(ranges: &'m [RangeAssignment], bucket: &str) -> Vec<&'m RangeAssignment> {
    let low = keys::object_prefix(bucket);
    let high = keys::prefix_end(&low).unwrap_or_default();
    ranges
        .iter()
        .filter(|r| keys::ranges_overlap(&r.low, &r.high, &low, &high))
        .collect()
}

/// The distinct owners of `ranges`, sorted; a range without an owner names none.
pub fn owners<'m>(ranges: impl IntoIterator<Item = &'m RangeAssignment>) -> Vec<&'m str> {
    let mut owners: Vec<&str> = ranges
        .into_iter()
        .map(|r| r.owner_addr.as_str())
        .filter(|o| !o.is_empty())
        .collect();
    owners.sort_unstable();
    owners.dedup();
    owners
}

/// Each owner's GetReplicationState for `bucket` (empty: every bucket it owes versions of), in
/// the order of `owners`; None when `connect` gives no client or no answer came within
/// `ask.timeout_ms`. At most `ask.concurrency` calls are in flight, and the stream is lazy:
/// dropping it asks no more owners.
pub fn ask_owners<'a, C>(
    owners: Vec<&'a str>,
    bucket: &'a str,
    ask: Ask,
    connect: &'a C,
) -> impl Stream<Item = Option<Vec<RangeReplication>>> + 'a
where
    C: Fn(&str) -> Option<PartitionClient>,
{
    let timeout = Duration::from_millis(ask.timeout_ms);
    futures::stream::iter(owners)
        .map(move |owner| async move {
            let mut client = connect(owner)?;
            let request = GetReplicationStateRequest {
                bucket: bucket.to_string(),
            };
            let call = client.get_replication_state(request);
            let answer = tokio::time::timeout(timeout, call).await.ok()?.ok()?;
            Some(answer.into_inner().ranges)
        })
        // 0 would never start a call.
        .buffered(ask.concurrency.max(1))
}

/// One bucket's ranges (as the map names them) and what their owners reported of it.
pub struct BucketReplication<'m> {
    span: Vec<&'m RangeAssignment>,
    /// By (range_id, epoch): the key a report must match to count for a range of the span.
    reports: BTreeMap<(u64, u64), RangeReplication>,
}

impl<'m> BucketReplication<'m> {
    /// Asks the owners of `bucket`'s ranges in `ranges` (a partition map's).
    pub async fn ask<C>(
        ranges: &'m [RangeAssignment],
        bucket: &str,
        ask: Ask,
        connect: &C,
    ) -> BucketReplication<'m>
    where
        C: Fn(&str) -> Option<PartitionClient>,
    {
        let span = bucket_span(ranges, bucket);
        let mut reports = BTreeMap::new();
        let answers = ask_owners(owners(span.iter().copied()), bucket, ask, connect);
        let mut answers = std::pin::pin!(answers);
        while let Some(answer) = answers.next().await {
            match answer {
                Some(ranges) => {
                    for range in ranges {
                        reports.insert((range.range_id, range.epoch), range);
                    }
                }
                None if ask.stop_at_silence => break,
                None => {}
            }
        }
        BucketReplication { span, reports }
    }

    /// Each range of the bucket's span, in map order, with its owner's report (None when none
    /// names that range and epoch).
    pub fn ranges(&self) -> impl Iterator<Item = (&'m RangeAssignment, Option<&RangeReplication>)> {
        self.span
            .iter()
            .map(|range| (*range, self.reports.get(&(range.range_id, range.epoch))))
    }

    /// The bucket's watermark: the lowest over its ranges, when every one reported a known
    /// one (> 0); None otherwise, and for a span without ranges.
    pub fn watermark_ms(&self) -> Option<i64> {
        let mut lowest: Option<i64> = None;
        for (_, report) in self.ranges() {
            match report.map(|r| r.watermark_ms) {
                Some(ms) if ms > 0 => lowest = Some(lowest.map_or(ms, |l| l.min(ms))),
                _ => return None,
            }
        }
        lowest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(id: u64, epoch: u64, low: &[u8], high: &[u8], owner: &str) -> RangeAssignment {
        RangeAssignment {
            range_id: id,
            epoch,
            low: low.to_vec(),
            high: high.to_vec(),
            owner_addr: owner.to_string(),
            ..Default::default()
        }
    }

    fn report(id: u64, epoch: u64, watermark_ms: i64) -> RangeReplication {
        RangeReplication {
            range_id: id,
            epoch,
            watermark_ms,
            ..Default::default()
        }
    }

    /// Two ranges split inside bucket b's keys, one beyond them.
    fn map() -> Vec<RangeAssignment> {
        let middle = keys::object_key("b", "m");
        let end = keys::prefix_end(&keys::object_prefix("b")).unwrap();
        vec![
            range(1, 4, b"", &middle, "s2"),
            range(2, 7, &middle, &end, "s1"),
            range(3, 1, &end, b"", "s1"),
        ]
    }

    fn state<'m>(
        ranges: &'m [RangeAssignment],
        reports: &[RangeReplication],
    ) -> BucketReplication<'m> {
        BucketReplication {
            span: bucket_span(ranges, "b"),
            reports: reports
                .iter()
                .map(|r| ((r.range_id, r.epoch), r.clone()))
                .collect(),
        }
    }

    #[test]
    fn the_span_is_the_ranges_holding_the_bucket_and_their_owners() {
        let ranges = map();
        let span = bucket_span(&ranges, "b");
        let ids: Vec<u64> = span.iter().map(|r| r.range_id).collect();
        assert_eq!(ids, [1, 2]);
        let mut unowned = ranges.clone();
        unowned[0].owner_addr.clear();
        assert_eq!(owners(&ranges), ["s1", "s2"], "sorted, each once");
        assert_eq!(owners(&unowned), ["s1"], "a range without owner names none");
    }

    #[test]
    fn the_watermark_is_the_lowest_when_every_range_reported_its_epoch() {
        let ranges = map();
        let all = state(&ranges, &[report(1, 4, 50), report(2, 7, 30)]);
        assert_eq!(all.watermark_ms(), Some(30));
        let stale = state(&ranges, &[report(1, 4, 50), report(2, 6, 30)]);
        assert_eq!(stale.watermark_ms(), None, "an older epoch tells nothing");
        assert!(stale.ranges().nth(1).unwrap().1.is_none());
        let missing = state(&ranges, &[report(1, 4, 50)]);
        assert_eq!(missing.watermark_ms(), None, "a range did not answer");
        let unknown = state(&ranges, &[report(1, 4, 50), report(2, 7, 0)]);
        assert_eq!(unknown.watermark_ms(), None, "a range not scanned yet");
        let none: Vec<RangeAssignment> = Vec::new();
        assert_eq!(
            state(&none, &[]).watermark_ms(),
            None,
            "no range, no watermark"
        );
    }
}
