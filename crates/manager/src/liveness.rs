//! Partition-server liveness, kept in memory by the leader from heartbeats.
//!
//! It is not replicated: a new leader starts with an empty table, so it must not declare any
//! server dead before one full `server_timeout_ms` of its own leadership has passed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use strata_proto::manager as pb;

/// Most partition servers tracked at once; heartbeats from more are refused.
pub const TRACKED_SERVERS_MAX: usize = 10_000;

/// What the leader knows about one partition server.
#[derive(Clone, Debug)]
pub struct ServerRecord {
    pub addr: String,
    pub http_addr: String,
    /// Wall-clock time of the last heartbeat (for display).
    pub last_heartbeat_ms: i64,
    /// Monotonic time of the last heartbeat (for liveness decisions).
    pub last_seen: Instant,
}

/// Every partition server heard from, by server id.
#[derive(Debug, Default)]
pub struct ServerTable {
    servers: BTreeMap<String, ServerRecord>,
}

impl ServerTable {
    /// Records a heartbeat. Returns false when the table is full and the server is new.
    pub fn record(&mut self, server_id: &str, addr: &str, http_addr: &str, now: Instant) -> bool {
        if !self.servers.contains_key(server_id) && self.servers.len() >= TRACKED_SERVERS_MAX {
            return false;
        }
        self.servers.insert(
            server_id.to_string(),
            ServerRecord {
                addr: addr.to_string(),
                http_addr: http_addr.to_string(),
                last_heartbeat_ms: strata_util::now_ms(),
                last_seen: now,
            },
        );
        true
    }

    /// Servers alive at `now`, with their gRPC addresses.
    pub fn alive(&self, timeout: Duration, now: Instant) -> Vec<(String, String)> {
        self.servers
            .iter()
            .filter(|(_, record)| now.saturating_duration_since(record.last_seen) < timeout)
            .map(|(id, record)| (id.clone(), record.addr.clone()))
            .collect()
    }

    /// Forgets servers not heard from for `forget_after` (bounds the table).
    pub fn forget_older_than(&mut self, forget_after: Duration, now: Instant) {
        self.servers
            .retain(|_, record| now.saturating_duration_since(record.last_seen) < forget_after);
    }

    /// Forgets everything (on losing leadership: the next term starts from scratch).
    pub fn clear(&mut self) {
        self.servers.clear();
    }

    /// The table as reported by `GetStatus`.
    pub fn to_proto(&self, timeout: Duration, now: Instant) -> Vec<pb::PartitionServerStatus> {
        self.servers
            .iter()
            .map(|(id, record)| pb::PartitionServerStatus {
                server_id: id.clone(),
                addr: record.addr.clone(),
                alive: now.saturating_duration_since(record.last_seen) < timeout,
                last_heartbeat_ms: record.last_heartbeat_ms,
                http_addr: record.http_addr.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_expire_after_the_timeout() {
        let mut table = ServerTable::default();
        let start = Instant::now();
        assert!(table.record("ps-1", "127.0.0.1:1", "", start));
        let timeout = Duration::from_millis(3_000);
        let alive_at = |ms: u64| table.alive(timeout, start + Duration::from_millis(ms));
        assert_eq!(
            alive_at(2_999),
            vec![("ps-1".to_string(), "127.0.0.1:1".to_string())]
        );
        assert!(alive_at(3_000).is_empty());
        table.forget_older_than(timeout, start + timeout);
        assert!(table.alive(timeout, start).is_empty());
    }
}
