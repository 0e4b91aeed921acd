//! Replication's metrics on the partition server's `/metrics` (issue 16, "lag you can
//! watch"): what this server's ranges still owe per source bucket (versions, bytes, the age of the
//! oldest), and what its shipper sent, failed and how long versions took from their commit to
//! their arrival. The per-bucket gauges are rebuilt from the backlogs about once a second, so
//! a bucket that owes nothing here drops out (the label set stays bounded by the buckets
//! owing versions on this server).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGaugeVec, Opts};

use crate::range::RangeRef;
use crate::replication_backlog::BucketOwed;

fn registered<M: prometheus::core::Collector + Clone + 'static>(metric: M) -> M {
    if let Err(err) = prometheus::default_registry().register(Box::new(metric.clone())) {
        tracing::warn!(%err, "metric not registered");
    }
    metric
}

fn counter(name: &str, help: &str) -> IntCounter {
    registered(IntCounter::new(name, help).expect("metric definition is valid"))
}

fn gauge_by_bucket(name: &str, help: &str) -> IntGaugeVec {
    registered(
        IntGaugeVec::new(Opts::new(name, help), &["bucket"]).expect("metric definition is valid"),
    )
}

pub static SHIPPED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "strata_partition_replication_shipped_total",
        "Versions that arrived at their destination (applied, or found there).",
    )
});
pub static SHIPPED_BYTES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "strata_partition_replication_shipped_bytes_total",
        "Object bytes of the versions that arrived at their destination.",
    )
});
pub static FAILED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "strata_partition_replication_failed_total",
        "Versions marked FAILED (a refusal no retry changes).",
    )
});
pub static RETRIED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "strata_partition_replication_retries_total",
        "Sends that failed for a transient cause (the range paused, the version kept).",
    )
});
pub static LATENCY: LazyLock<Histogram> = LazyLock::new(|| {
    let opts = HistogramOpts::new(
        "strata_partition_replication_latency_seconds",
        "From a version's mark (its commit) to its arrival at the destination.",
    )
    .buckets(vec![
        0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0,
    ]);
    registered(Histogram::with_opts(opts).expect("metric definition is valid"))
});
static OWED: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_by_bucket(
        "strata_partition_replication_owed_versions",
        "Versions this server's ranges still owe their destination, by source bucket.",
    )
});
static OWED_BYTES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_by_bucket(
        "strata_partition_replication_owed_bytes",
        "Object bytes of the versions this server's ranges still owe, by source bucket.",
    )
});
static OLDEST_OWED_AGE: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_by_bucket(
        "strata_partition_replication_oldest_owed_age_ms",
        "Age of the oldest version still owed (now minus its mark), by source bucket.",
    )
});

/// What `ranges` owe, per bucket.
pub fn owed_by_bucket(ranges: &[RangeRef]) -> BTreeMap<String, BucketOwed> {
    let mut owed: BTreeMap<String, BucketOwed> = BTreeMap::new();
    for range in ranges {
        for (bucket, of_range) in range.backlog().by_bucket() {
            owed.entry(bucket).or_default().add(of_range);
        }
    }
    owed
}

/// Rebuilds the per-bucket gauges from `ranges`' backlogs.
pub fn refresh(ranges: &[RangeRef]) {
    let now_ms = strata_util::now_ms();
    OWED.reset();
    OWED_BYTES.reset();
    OLDEST_OWED_AGE.reset();
    for (bucket, owed) in owed_by_bucket(ranges) {
        let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        OWED.with_label_values(&[&bucket]).set(gauge(owed.versions));
        OWED_BYTES
            .with_label_values(&[&bucket])
            .set(gauge(owed.bytes));
        OLDEST_OWED_AGE
            .with_label_values(&[&bucket])
            .set(now_ms.saturating_sub(owed.lowest_mark_ms).max(0));
    }
}
