//! What an operator sets for one partition manager member (file / environment / flags, see
//! [`strata_util::config`]); the keys are `strata-partition-manager`'s long flag names with
//! `_`. [`ManagerOptions::manager_config`] turns them into the [`ManagerConfig`] that
//! [`crate::start`] takes.

use crate::config::{parse_members, ManagerConfig, SERVER_TIMEOUT_MS_DEFAULT};
use crate::planner::PlannerConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use strata_types::NodeId;

/// One member's options; the defaults are [`ManagerConfig::new`]'s and [`PlannerConfig`]'s.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ManagerOptions {
    /// This member's Raft id (stored as its bare number, like every typed id).
    pub node_id: NodeId,
    /// Every member, this one included: "1=127.0.0.1:7101,2=...".
    pub members: String,
    /// Default: this member's address in `members`.
    pub listen: Option<SocketAddr>,
    pub http_listen: SocketAddr,
    /// Default: `strata-data/manager-<node_id>`.
    pub data_dir: Option<PathBuf>,
    pub server_timeout_ms: u64,
    pub split_requests_per_sec: f64,
    pub split_bytes_per_sec: f64,
    pub split_sustain_ms: u64,
    pub split_keys_max: u64,
    pub split_size_bytes_max: u64,
    pub merge_requests_per_sec: f64,
    pub merge_sustain_ms: u64,
    pub move_requests_per_sec_min: f64,
    pub reshape_cooldown_ms: u64,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        let planner = PlannerConfig::default();
        let ms = |d: Duration| d.as_millis() as u64;
        Self {
            node_id: NodeId::new(1),
            members: "1=127.0.0.1:7101".into(),
            listen: None,
            http_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: None,
            server_timeout_ms: SERVER_TIMEOUT_MS_DEFAULT,
            split_requests_per_sec: planner.split_requests_per_sec,
            split_bytes_per_sec: planner.split_bytes_per_sec,
            split_sustain_ms: ms(planner.split_sustain),
            split_keys_max: planner.split_keys_max,
            split_size_bytes_max: planner.split_size_bytes_max,
            merge_requests_per_sec: planner.merge_requests_per_sec,
            merge_sustain_ms: ms(planner.merge_sustain),
            move_requests_per_sec_min: planner.move_requests_per_sec_min,
            reshape_cooldown_ms: ms(planner.cooldown),
        }
    }
}

impl ManagerOptions {
    /// The member's validated config and the address to listen on.
    pub fn manager_config(&self) -> anyhow::Result<(ManagerConfig, SocketAddr)> {
        // The Raft boundary: openraft knows members by their bare number.
        let node_id = self.node_id.get();
        let members = parse_members(&self.members)?;
        let data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("strata-data/manager-{node_id}")));
        let mut manager = ManagerConfig::new(node_id, members, data_dir);
        manager.server_timeout_ms = self.server_timeout_ms;
        let planner = &mut manager.planner;
        planner.split_requests_per_sec = self.split_requests_per_sec;
        planner.split_bytes_per_sec = self.split_bytes_per_sec;
        planner.split_sustain = Duration::from_millis(self.split_sustain_ms);
        planner.split_keys_max = self.split_keys_max;
        planner.split_size_bytes_max = self.split_size_bytes_max;
        planner.merge_requests_per_sec = self.merge_requests_per_sec;
        planner.merge_sustain = Duration::from_millis(self.merge_sustain_ms);
        planner.move_requests_per_sec_min = self.move_requests_per_sec_min;
        planner.cooldown = Duration::from_millis(self.reshape_cooldown_ms);
        manager.validate()?;
        let listen = match (self.listen, manager.own_addr().map(str::parse)) {
            (Some(listen), _) => listen,
            (None, Some(Ok(own))) => own,
            (None, _) => SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        Ok((manager, listen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_config_defaults() {
        let (config, listen) = ManagerOptions::default().manager_config().unwrap();
        let planner = PlannerConfig::default();
        assert_eq!(config.server_timeout_ms, SERVER_TIMEOUT_MS_DEFAULT);
        assert_eq!(config.planner.split_sustain, planner.split_sustain);
        assert_eq!(config.planner.merge_sustain, planner.merge_sustain);
        assert_eq!(config.planner.cooldown, planner.cooldown);
        assert_eq!(config.data_dir, PathBuf::from("strata-data/manager-1"));
        assert_eq!(listen, "127.0.0.1:7101".parse::<SocketAddr>().unwrap());
    }
}
