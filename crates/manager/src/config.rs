//! Configuration of one manager member.

use crate::error::ManagerError;
use crate::types::MemberId;
use std::collections::BTreeMap;
use std::path::PathBuf;
use strata_raft::GroupConfig;

/// The Raft group's name: members refuse messages of another group.
pub const CLUSTER_NAME: &str = "strata-partition-manager";

/// Default time after a partition server's last heartbeat at which it counts as dead.
pub const SERVER_TIMEOUT_MS_DEFAULT: u64 = 1_500;

/// How one member runs. Build it with [`ManagerConfig::new`] and adjust the public fields.
#[derive(Clone, Debug)]
pub struct ManagerConfig {
    /// This member's Raft node id; must be a key of `members`.
    pub node_id: MemberId,
    /// Every member of the group (this one included): node id -> gRPC "host:port".
    pub members: BTreeMap<MemberId, String>,
    /// Folder of this member's sled database.
    pub data_dir: PathBuf,
    /// A partition server silent for this long is dead and its ranges move.
    pub server_timeout_ms: u64,
    /// Period of the leader's assignment loop.
    pub balance_interval_ms: u64,
    /// Raft leader heartbeat period.
    pub raft_heartbeat_interval_ms: u64,
    /// Raft election timeout, drawn in `[min, max)`.
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// A snapshot is built (and the log purged) after this many entries since the last one.
    pub snapshot_logs_since_last: u64,
    /// Log entries kept behind a snapshot, so a briefly lagging member catches up from the log
    /// rather than a whole snapshot.
    pub logs_kept_after_snapshot: u64,
    /// When ranges split, merge and move (see [`crate::planner`]).
    pub planner: crate::planner::PlannerConfig,
}

impl ManagerConfig {
    /// A config with the defaults for loopback or a LAN.
    pub fn new(
        node_id: MemberId,
        members: BTreeMap<MemberId, String>,
        data_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            node_id,
            members,
            data_dir: data_dir.into(),
            server_timeout_ms: SERVER_TIMEOUT_MS_DEFAULT,
            balance_interval_ms: 200,
            // As `strata_raft::GroupConfig::new`: failover in ~1.5-2 s.
            raft_heartbeat_interval_ms: 100,
            election_timeout_min_ms: 500,
            election_timeout_max_ms: 1_000,
            snapshot_logs_since_last: 1_000,
            logs_kept_after_snapshot: 100,
            planner: crate::planner::PlannerConfig::default(),
        }
    }

    /// The Raft part of this config.
    pub fn group_config(&self) -> GroupConfig {
        let mut group = GroupConfig::new(
            CLUSTER_NAME,
            self.node_id,
            self.members.clone(),
            self.data_dir.clone(),
        );
        group.heartbeat_interval_ms = self.raft_heartbeat_interval_ms;
        group.election_timeout_min_ms = self.election_timeout_min_ms;
        group.election_timeout_max_ms = self.election_timeout_max_ms;
        group.snapshot_logs_since_last = self.snapshot_logs_since_last;
        group.logs_kept_after_snapshot = self.logs_kept_after_snapshot;
        // With mutual TLS, only partition managers' Raft messages are taken.
        group.member_role = Some(strata_types::Role::PartitionManager);
        group
    }

    /// Checks the config is usable.
    pub fn validate(&self) -> Result<(), ManagerError> {
        self.group_config().validate()?;
        if self.server_timeout_ms == 0 || self.balance_interval_ms == 0 {
            return Err(ManagerError::Config(
                "timeouts and intervals must be > 0".into(),
            ));
        }
        Ok(())
    }

    /// This member's own gRPC address.
    pub fn own_addr(&self) -> Option<&str> {
        self.members.get(&self.node_id).map(String::as_str)
    }
}

/// Parses `"1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103"`.
pub fn parse_members(text: &str) -> Result<BTreeMap<MemberId, String>, ManagerError> {
    Ok(strata_raft::parse_members(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_parse() {
        let members = parse_members("1=127.0.0.1:7101, 2=127.0.0.1:7102,3=127.0.0.1:7103").unwrap();
        assert_eq!(members.len(), 3);
        assert_eq!(members[&2], "127.0.0.1:7102");
        assert!(parse_members("1=a:1,1=b:2").is_err());
        assert!(parse_members("x=a:1").is_err());
        assert!(parse_members("1").is_err());
        assert!(parse_members("").is_err());
        let config = ManagerConfig::new(4, members, "/tmp/x");
        assert!(config.validate().is_err());
    }
}
