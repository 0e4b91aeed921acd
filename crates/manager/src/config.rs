//! Configuration of one manager member.

use crate::error::ManagerError;
use crate::types::MemberId;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Default time after a partition server's last heartbeat at which it counts as dead.
pub const SERVER_TIMEOUT_MS_DEFAULT: u64 = 3_000;

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
            balance_interval_ms: 500,
            raft_heartbeat_interval_ms: 250,
            election_timeout_min_ms: 1_000,
            election_timeout_max_ms: 2_000,
            snapshot_logs_since_last: 1_000,
            logs_kept_after_snapshot: 100,
        }
    }

    /// Checks the config is usable.
    pub fn validate(&self) -> Result<(), ManagerError> {
        if !self.members.contains_key(&self.node_id) {
            return Err(ManagerError::Config(format!(
                "node id {} is not one of the members {:?}",
                self.node_id,
                self.members.keys().collect::<Vec<_>>()
            )));
        }
        if self.members.contains_key(&0) {
            return Err(ManagerError::Config(
                "member id 0 is reserved for 'unknown'".into(),
            ));
        }
        if self.election_timeout_min_ms <= self.raft_heartbeat_interval_ms
            || self.election_timeout_max_ms <= self.election_timeout_min_ms
        {
            return Err(ManagerError::Config(
                "need raft heartbeat < election timeout min < election timeout max".into(),
            ));
        }
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
    let mut members = BTreeMap::new();
    for item in text
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let (id, addr) = item
            .split_once('=')
            .ok_or_else(|| ManagerError::Config(format!("member {item:?} is not id=host:port")))?;
        let id: MemberId = id
            .trim()
            .parse()
            .map_err(|err| ManagerError::Config(format!("member id {id:?}: {err}")))?;
        let addr = addr.trim();
        if addr.is_empty() || !addr.contains(':') {
            return Err(ManagerError::Config(format!(
                "member {id} address {addr:?} is not host:port"
            )));
        }
        if members.insert(id, addr.to_string()).is_some() {
            return Err(ManagerError::Config(format!("member {id} is listed twice")));
        }
    }
    if members.is_empty() {
        return Err(ManagerError::Config("no members given".into()));
    }
    Ok(members)
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
