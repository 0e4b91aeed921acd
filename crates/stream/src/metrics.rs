//! Prometheus metrics of the stream layer, registered once in the default registry (which the
//! admin server's `/metrics` exports). Several nodes in one process (tests) share them.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge};
use std::sync::LazyLock;

fn register<T: prometheus::core::Collector + Clone + 'static>(metric: T) -> T {
    if let Err(err) = prometheus::default_registry().register(Box::new(metric.clone())) {
        tracing::warn!(%err, "metric not registered");
    }
    metric
}

fn counter(name: &str, help: &str) -> IntCounter {
    register(IntCounter::new(name, help).expect("metric name is valid"))
}

fn gauge(name: &str, help: &str) -> IntGauge {
    register(IntGauge::new(name, help).expect("metric name is valid"))
}

static APPENDS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "strata_extent_appends_total",
        "Records appended (primary and secondary).",
    )
});
static APPEND_BYTES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "strata_extent_append_bytes_total",
        "Payload bytes appended.",
    )
});
static APPEND_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    let opts = HistogramOpts::new(
        "strata_extent_append_seconds",
        "Primary append latency, replication included.",
    )
    .buckets(vec![
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ]);
    register(Histogram::with_opts(opts).expect("histogram options are valid"))
});
static READS: LazyLock<IntCounter> =
    LazyLock::new(|| counter("strata_extent_reads_total", "Read requests served."));
static CHECKSUM_FAILURES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "strata_extent_checksum_failures_total",
        "Records that failed their length or CRC check on read.",
    )
});
static NODES_HEALTHY: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "strata_stream_manager_nodes_healthy",
        "Extent nodes heard from within the timeout.",
    )
});
static EXTENTS: LazyLock<IntGauge> =
    LazyLock::new(|| gauge("strata_stream_manager_extents", "Extents known."));
static STREAMS: LazyLock<IntGauge> =
    LazyLock::new(|| gauge("strata_stream_manager_streams", "Streams known."));

pub fn appends() -> &'static IntCounter {
    &APPENDS
}
pub fn append_bytes() -> &'static IntCounter {
    &APPEND_BYTES
}
pub fn append_seconds() -> &'static Histogram {
    &APPEND_SECONDS
}
pub fn reads() -> &'static IntCounter {
    &READS
}
pub fn checksum_failures() -> &'static IntCounter {
    &CHECKSUM_FAILURES
}
pub fn nodes_healthy() -> &'static IntGauge {
    &NODES_HEALTHY
}
pub fn extents() -> &'static IntGauge {
    &EXTENTS
}
pub fn streams() -> &'static IntGauge {
    &STREAMS
}

/// Registers the extent-node metrics so `/metrics` lists them (at zero) before first use.
pub fn init_extent_node_metrics() {
    LazyLock::force(&APPENDS);
    LazyLock::force(&APPEND_BYTES);
    LazyLock::force(&APPEND_SECONDS);
    LazyLock::force(&READS);
    LazyLock::force(&CHECKSUM_FAILURES);
}
