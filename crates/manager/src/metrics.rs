//! Prometheus metrics of the manager, in the default registry (served on `/metrics`).
//!
//! Several members in one process (tests) share these series.

use prometheus::{IntCounter, IntGauge};
use std::sync::OnceLock;

pub struct Metrics {
    /// 1 while this member leads.
    pub is_leader: IntGauge,
    /// Current Raft term.
    pub term: IntGauge,
    /// Version of the applied partition map.
    pub map_version: IntGauge,
    /// Range assignments the leader committed.
    pub assignments: IntCounter,
    /// Partition servers alive in the leader's table.
    pub servers_alive: IntGauge,
    /// Splits, merges and load-balancing moves this member committed as leader.
    pub splits: IntCounter,
    pub merges: IntCounter,
    pub moves: IntCounter,
    /// Ranges in the applied map.
    pub ranges: IntGauge,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(metric: T) -> T {
    if let Err(err) = prometheus::register(Box::new(metric.clone())) {
        tracing::debug!(%err, "metric already registered");
    }
    metric
}

fn make() -> Result<Metrics, prometheus::Error> {
    Ok(Metrics {
        is_leader: register(IntGauge::new(
            "strata_manager_is_leader",
            "1 while this member leads the Raft group",
        )?),
        term: register(IntGauge::new("strata_manager_term", "current Raft term")?),
        map_version: register(IntGauge::new(
            "strata_manager_map_version",
            "version of the applied partition map",
        )?),
        assignments: register(IntCounter::new(
            "strata_manager_assignments_total",
            "range assignments committed by the leader",
        )?),
        servers_alive: register(IntGauge::new(
            "strata_manager_servers_alive",
            "partition servers that heartbeated within the server timeout",
        )?),
        splits: register(IntCounter::new(
            "strata_manager_splits_total",
            "range splits committed by this member as leader",
        )?),
        merges: register(IntCounter::new(
            "strata_manager_merges_total",
            "range merges committed by this member as leader",
        )?),
        moves: register(IntCounter::new(
            "strata_manager_moves_total",
            "load-balancing range moves proposed by this member as leader",
        )?),
        ranges: register(IntGauge::new(
            "strata_manager_ranges",
            "ranges in the applied partition map",
        )?),
    })
}

/// The process-wide metrics; None only if the metric definitions are invalid.
pub fn metrics() -> Option<&'static Metrics> {
    static METRICS: OnceLock<Option<Metrics>> = OnceLock::new();
    METRICS
        .get_or_init(|| match make() {
            Ok(metrics) => Some(metrics),
            Err(err) => {
                tracing::error!(%err, "defining metrics failed");
                None
            }
        })
        .as_ref()
}
