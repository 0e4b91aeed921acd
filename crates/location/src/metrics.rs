//! Per-stamp gauges on `/metrics` (issue 15, item 7): every member publishes its own applied
//! view of the stamps (a follower's may lag the leader's by a few entries), refreshed by the
//! duties loop every [`PUBLISH_INTERVAL_MS`].

use crate::fill::fill_ratio;
use crate::namespace::StampSummary;
use prometheus::{GaugeVec, IntGaugeVec, Opts};
use std::sync::LazyLock;

/// How often the gauges are refreshed (each refresh counts every bucket record once).
pub const PUBLISH_INTERVAL_MS: u64 = 5_000;

fn register<T: prometheus::core::Collector + Clone + 'static>(metric: T) -> T {
    if let Err(err) = prometheus::default_registry().register(Box::new(metric.clone())) {
        tracing::warn!(%err, "metric not registered");
    }
    metric
}

fn int_gauges(name: &str, help: &str) -> IntGaugeVec {
    register(IntGaugeVec::new(Opts::new(name, help), &["stamp"]).expect("metric name is valid"))
}

static FILL: LazyLock<GaugeVec> = LazyLock::new(|| {
    let opts = Opts::new(
        "strata_location_stamp_fill_ratio",
        "Bytes a stamp stores over the bytes it offers (every replica counted); absent until its stream manager reports.",
    );
    register(GaugeVec::new(opts, &["stamp"]).expect("metric name is valid"))
});
static CAPACITY: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    int_gauges(
        "strata_location_stamp_capacity_bytes",
        "Raw bytes a stamp's extent nodes offer, as its stream manager last reported.",
    )
});
static STORED: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    int_gauges(
        "strata_location_stamp_stored_bytes",
        "Raw bytes a stamp's extent nodes hold, as its stream manager last reported.",
    )
});
static BUCKETS: LazyLock<IntGaugeVec> =
    LazyLock::new(|| int_gauges("strata_location_stamp_buckets", "Buckets homed on a stamp."));
static OPEN: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    int_gauges(
        "strata_location_stamp_open",
        "1 when a stamp takes new buckets, 0 when it is draining.",
    )
});

fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Sets every gauge from `stamps`.
pub fn publish(stamps: &[StampSummary]) {
    for summary in stamps {
        let stamp = &summary.stamp;
        let label = [stamp.name.as_str()];
        if let Some(ratio) = fill_ratio(stamp.capacity_bytes, stamp.stored_bytes) {
            FILL.with_label_values(&label).set(ratio);
        }
        CAPACITY
            .with_label_values(&label)
            .set(clamp(stamp.capacity_bytes));
        STORED
            .with_label_values(&label)
            .set(clamp(stamp.stored_bytes));
        BUCKETS
            .with_label_values(&label)
            .set(clamp(summary.buckets));
        let open = stamp.state == crate::machine::StampState::Open;
        OPEN.with_label_values(&label).set(i64::from(open));
    }
}
