//! Prometheus metrics of the front-end, in the default registry (served by the admin server).

use prometheus::{HistogramVec, IntCounter, IntCounterVec, IntGaugeVec};
use std::sync::LazyLock;

pub struct Metrics {
    /// Requests by S3 operation and status class ("2xx", "4xx", "5xx", ...).
    pub requests: IntCounterVec,
    /// Time to the response head, by operation.
    pub latency: HistogramVec,
    /// Object bytes received from clients (PUT bodies).
    pub bytes_in: IntCounter,
    /// Object bytes sent to clients (GET bodies).
    pub bytes_out: IntCounter,
    /// Partition map refreshes and retried partition calls.
    pub routing_retries: IntCounter,
    /// Requests forwarded to another stamp, by home stamp and outcome ("answered": the home
    /// answered, whatever it said; "unreachable"; "busy": refused here, too many in flight;
    /// "not-implemented": the home serves HTTPS only).
    pub forwarded: IntCounterVec,
    /// Buckets' homes learnt from a location member's applied state, the leader not answering.
    pub applied_lookups: IntCounter,
    /// Replicas relayed from other stamps' partition servers (`replica_sink.rs`), by outcome
    /// ("applied", "present", "need-bytes", "refused", "failed").
    pub replicas: IntCounterVec,
    /// Destination buckets' `x-strata-replicated-through` as last computed here (ms since the
    /// epoch; 0: not known then).
    pub replicated_through_ms: IntGaugeVec,
}

impl Metrics {
    pub fn forwarded(&self, stamp: &str, outcome: &str) {
        self.forwarded.with_label_values(&[stamp, outcome]).inc();
    }

    pub fn replicated_through(&self, bucket: &str, through_ms: Option<i64>) {
        self.replicated_through_ms
            .with_label_values(&[bucket])
            .set(through_ms.unwrap_or(0));
    }
}

fn build() -> Metrics {
    let requests = IntCounterVec::new(
        prometheus::Opts::new(
            "strata_frontend_requests_total",
            "S3 requests by operation and status class",
        ),
        &["operation", "status_class"],
    );
    let latency = HistogramVec::new(
        prometheus::HistogramOpts::new(
            "strata_frontend_request_duration_seconds",
            "Time from request to response head, by operation",
        )
        .buckets(vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]),
        &["operation"],
    );
    let bytes_in = IntCounter::new(
        "strata_frontend_bytes_in_total",
        "Object bytes received from clients",
    );
    let bytes_out = IntCounter::new(
        "strata_frontend_bytes_out_total",
        "Object bytes sent to clients",
    );
    let routing_retries = IntCounter::new(
        "strata_frontend_routing_retries_total",
        "Partition calls retried after NotOwner or an unavailable owner",
    );
    let forwarded = IntCounterVec::new(
        prometheus::Opts::new(
            "strata_frontend_forwarded_requests_total",
            "Requests forwarded to the bucket's home stamp, by stamp and outcome",
        ),
        &["stamp", "outcome"],
    );
    let applied_lookups = IntCounter::new(
        "strata_frontend_applied_lookups_total",
        "Bucket homes learnt from a location member's applied state while the leader did not answer",
    );
    let replicas = IntCounterVec::new(
        prometheus::Opts::new(
            "strata_frontend_replicas_total",
            "Replicated versions relayed from other stamps to their destination owner, by outcome",
        ),
        &["outcome"],
    );
    let replicated_through_ms = IntGaugeVec::new(
        prometheus::Opts::new(
            "strata_frontend_replicated_through_ms",
            "A destination bucket's x-strata-replicated-through as last computed (ms; 0 unknown)",
        ),
        &["bucket"],
    );
    // The names are constant and valid, so construction cannot fail; registration fails only
    // when a metric of that name already exists, which is logged and tolerated.
    let metrics = Metrics {
        requests: requests.unwrap_or_else(|err| panic!("metric definition: {err}")),
        latency: latency.unwrap_or_else(|err| panic!("metric definition: {err}")),
        bytes_in: bytes_in.unwrap_or_else(|err| panic!("metric definition: {err}")),
        bytes_out: bytes_out.unwrap_or_else(|err| panic!("metric definition: {err}")),
        routing_retries: routing_retries.unwrap_or_else(|err| panic!("metric definition: {err}")),
        forwarded: forwarded.unwrap_or_else(|err| panic!("metric definition: {err}")),
        applied_lookups: applied_lookups.unwrap_or_else(|err| panic!("metric definition: {err}")),
        replicas: replicas.unwrap_or_else(|err| panic!("metric definition: {err}")),
        replicated_through_ms: replicated_through_ms
            .unwrap_or_else(|err| panic!("metric definition: {err}")),
    };
    let registry = prometheus::default_registry();
    let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
        Box::new(metrics.requests.clone()),
        Box::new(metrics.latency.clone()),
        Box::new(metrics.bytes_in.clone()),
        Box::new(metrics.bytes_out.clone()),
        Box::new(metrics.routing_retries.clone()),
        Box::new(metrics.forwarded.clone()),
        Box::new(metrics.applied_lookups.clone()),
        Box::new(metrics.replicas.clone()),
        Box::new(metrics.replicated_through_ms.clone()),
    ];
    for collector in collectors {
        if let Err(err) = registry.register(collector) {
            tracing::warn!(%err, "metric not registered");
        }
    }
    metrics
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(build);

/// "2xx", "4xx", ... for a status code.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
