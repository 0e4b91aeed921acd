//! Request-rate limits, as S3 does behind "503 SlowDown": each range has a request budget per
//! second, and each bucket has one on this server (so one hot bucket cannot starve the others
//! served here). A request over either budget is refused at once with
//! [`PartitionError::SlowDown`] (the front-end answers `503 SlowDown` with `Retry-After`)
//! instead of queueing without bound.
//!
//! Limits are token buckets (the `governor` crate, GCRA): a budget of N requests per second
//! also allows a burst of N. They are keyed by range id, so a split (two range ids) or a move
//! (another server) raises the effective limit of a hot key space.

use std::num::NonZeroU32;
use std::sync::LazyLock;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use prometheus::IntCounterVec;

pub use crate::config::ThrottleConfig;
use crate::error::PartitionError;
use strata_types::RangeId;

/// Per-key limiter state is dropped (`retain_recent`) once the maps hold this many keys, which
/// bounds their memory by the number of keys active within about a second.
const LIMITER_KEYS_MAX: usize = 10_000;

static THROTTLED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let counter = IntCounterVec::new(
        prometheus::Opts::new(
            "strata_partition_throttled_total",
            "Requests refused with SlowDown, by the limit that refused them.",
        ),
        &["limit"],
    )
    .expect("metric definition is valid");
    if let Err(err) = prometheus::default_registry().register(Box::new(counter.clone())) {
        tracing::warn!(%err, "metric not registered");
    }
    counter
});

fn limiter<K: std::hash::Hash + Eq + Clone>(per_sec: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(per_sec).map(|n| RateLimiter::keyed(Quota::per_second(n)))
}

/// The limits of one server.
pub struct Throttle {
    ranges: Option<DefaultKeyedRateLimiter<RangeId>>,
    buckets: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

impl Throttle {
    pub fn new(config: &ThrottleConfig) -> Self {
        Self {
            ranges: limiter(config.range_requests_per_sec_max),
            buckets: limiter(config.bucket_requests_per_sec_max),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request from the budgets of `range_id` and `bucket`, or says how long to wait.
    /// The bucket is checked first: a request a hot bucket is refused does not use up its
    /// range's budget (which other buckets in that range share).
    pub fn admit(&self, range_id: RangeId, bucket: &str) -> Result<(), PartitionError> {
        if let Some(buckets) = &self.buckets {
            if buckets.len() > LIMITER_KEYS_MAX {
                buckets.retain_recent();
            }
            if let Err(not_until) = buckets.check_key(&bucket.to_string()) {
                THROTTLED.with_label_values(&["bucket"]).inc();
                return Err(slow_down(
                    not_until.wait_time_from(self.clock.now()),
                    format!("bucket {bucket:?} is over its request rate on this server"),
                ));
            }
        }
        if let Some(ranges) = &self.ranges {
            if ranges.len() > LIMITER_KEYS_MAX {
                ranges.retain_recent();
            }
            if let Err(not_until) = ranges.check_key(&range_id) {
                THROTTLED.with_label_values(&["range"]).inc();
                return Err(slow_down(
                    not_until.wait_time_from(self.clock.now()),
                    format!("{range_id} is over its request rate"),
                ));
            }
        }
        Ok(())
    }
}

fn slow_down(wait: Duration, reason: String) -> PartitionError {
    PartitionError::SlowDown {
        // At least 1 ms, so a caller never retries in a busy loop.
        retry_after_ms: (wait.as_millis() as u64).max(1),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(throttle: &Throttle, range_id: u64, bucket: &str, attempts: usize) -> usize {
        (0..attempts)
            .filter(|_| throttle.admit(RangeId::new(range_id), bucket).is_ok())
            .count()
    }

    #[test]
    fn a_range_over_its_budget_is_told_to_slow_down() {
        let throttle = Throttle::new(&ThrottleConfig {
            range_requests_per_sec_max: 50,
            bucket_requests_per_sec_max: 0,
        });
        // A burst of up to the per-second budget passes; what follows at once is refused.
        let passed = admitted(&throttle, 1, "b", 200);
        assert!((50..=52).contains(&passed), "{passed}");
        match throttle.admit(RangeId::new(1), "b") {
            Err(PartitionError::SlowDown { retry_after_ms, .. }) => {
                assert!((1..=1_000).contains(&retry_after_ms), "{retry_after_ms}")
            }
            other => panic!("expected SlowDown, got {other:?}"),
        }
        // Another range (a split half, say) has its own budget.
        assert!((50..=52).contains(&admitted(&throttle, 2, "b", 200)));
    }

    #[test]
    fn a_hot_bucket_does_not_use_up_the_range_budget_of_others() {
        let throttle = Throttle::new(&ThrottleConfig {
            range_requests_per_sec_max: 100,
            bucket_requests_per_sec_max: 40,
        });
        let hot = admitted(&throttle, 1, "hot", 500);
        assert!((40..=42).contains(&hot), "{hot}");
        // The range still has budget left for another bucket.
        let cold = admitted(&throttle, 1, "cold", 40);
        assert_eq!(cold, 40);
    }

    #[test]
    fn zero_means_no_limit() {
        let throttle = Throttle::new(&ThrottleConfig {
            range_requests_per_sec_max: 0,
            bucket_requests_per_sec_max: 0,
        });
        assert_eq!(admitted(&throttle, 1, "b", 10_000), 10_000);
    }
}
