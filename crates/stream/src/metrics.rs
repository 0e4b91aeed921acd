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
static DISK_FAILURES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "strata_extent_disk_failures_total",
        "Write or fsync errors after which the node refuses every write.",
    )
});
static WIRE_CHECKSUM_FAILURES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "strata_stream_client_wire_checksum_failures_total",
        "Records received whose payload does not match the CRC the extent node sent.",
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

static SCRUB_BYTES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "strata_extent_scrub_bytes_total",
        "Bytes of sealed replicas the scrubber verified.",
    )
});
static SCRUB_CORRUPT_RECORDS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "strata_extent_scrub_corrupt_records_total",
        "Corrupt records the scrubber found (each reported to the stream manager).",
    )
});
static REPAIR_BYTES_RECEIVED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "strata_extent_repair_bytes_received_total",
        "Bytes this node pulled from other replicas for repair copies.",
    )
});
static EXTENTS_UNDER_REPLICATED: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "strata_stream_manager_extents_under_replicated",
        "Referenced extents with fewer than 3 healthy replicas holding the full sealed length.",
    )
});
static EXTENTS_MISPLACED: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "strata_stream_manager_extents_misplaced",
        "Extents whose replicas share a rack.",
    )
});
static REPAIR_BYTES_LEFT: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "strata_stream_manager_repair_bytes_left",
        "Bytes the repair still has to copy.",
    )
});
static REPAIR_COPIES_IN_FLIGHT: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "strata_stream_manager_repair_copies_in_flight",
        "Replica copies under way.",
    )
});
static EXTENTS_REPAIRED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "strata_stream_manager_extents_repaired_total",
        "Replica copies completed (re-replication, rewrite of bad replicas, moves to a third rack).",
    )
});
static REPAIR_BYTES_COPIED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "strata_stream_manager_repair_bytes_copied_total",
        "Bytes of completed replica copies.",
    )
});
static EXTENTS_DELETED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "strata_stream_manager_extents_deleted_total",
        "Unreferenced extents garbage-collected.",
    )
});
static REPLICAS_DELETED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "strata_stream_manager_replicas_deleted_total",
        "Replicas deleted from nodes (garbage, surplus and unknown replicas).",
    )
});

pub fn scrub_bytes() -> &'static IntCounter {
    &SCRUB_BYTES
}
pub fn scrub_corrupt_records() -> &'static IntCounter {
    &SCRUB_CORRUPT_RECORDS
}
pub fn repair_bytes_received() -> &'static IntCounter {
    &REPAIR_BYTES_RECEIVED
}
pub fn extents_under_replicated() -> &'static IntGauge {
    &EXTENTS_UNDER_REPLICATED
}
pub fn extents_misplaced() -> &'static IntGauge {
    &EXTENTS_MISPLACED
}
pub fn repair_bytes_left() -> &'static IntGauge {
    &REPAIR_BYTES_LEFT
}
pub fn repair_copies_in_flight() -> &'static IntGauge {
    &REPAIR_COPIES_IN_FLIGHT
}
pub fn extents_repaired() -> &'static IntCounter {
    &EXTENTS_REPAIRED
}
pub fn repair_bytes_copied() -> &'static IntCounter {
    &REPAIR_BYTES_COPIED
}
pub fn extents_deleted() -> &'static IntCounter {
    &EXTENTS_DELETED
}
pub fn replicas_deleted() -> &'static IntCounter {
    &REPLICAS_DELETED
}

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
pub fn disk_failures() -> &'static IntCounter {
    &DISK_FAILURES
}
pub fn wire_checksum_failures() -> &'static IntCounter {
    &WIRE_CHECKSUM_FAILURES
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
    LazyLock::force(&DISK_FAILURES);
    LazyLock::force(&SCRUB_BYTES);
    LazyLock::force(&SCRUB_CORRUPT_RECORDS);
    LazyLock::force(&REPAIR_BYTES_RECEIVED);
}

/// Registers the stream-manager metrics so `/metrics` lists them (at zero) before first use.
pub fn init_manager_metrics() {
    LazyLock::force(&NODES_HEALTHY);
    LazyLock::force(&EXTENTS);
    LazyLock::force(&STREAMS);
    LazyLock::force(&EXTENTS_UNDER_REPLICATED);
    LazyLock::force(&EXTENTS_MISPLACED);
    LazyLock::force(&REPAIR_BYTES_LEFT);
    LazyLock::force(&REPAIR_COPIES_IN_FLIGHT);
    LazyLock::force(&EXTENTS_REPAIRED);
    LazyLock::force(&REPAIR_BYTES_COPIED);
    LazyLock::force(&EXTENTS_DELETED);
    LazyLock::force(&REPLICAS_DELETED);
}
