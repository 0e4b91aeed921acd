//! A started member of a group: its store, its openraft, and what applications ask of it
//! (propose a command, confirm leadership, who leads).

use crate::error::GroupError;
use crate::network::NetworkFactory;
use crate::service::RaftService;
use crate::state::{StateMachineStore, StateReader};
use crate::types::{Machine, MemberId, RaftOf};
use crate::LogStore;
use openraft::error::{
    CheckIsLeaderError, ClientWriteError, ForwardToLeader, InitializeError, RaftError,
};
use openraft::{BasicNode, RaftMetrics, ServerState, SnapshotPolicy};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strata_proto::raft::raft_server::RaftServer;

/// How long opening waits for a previous instance in this process to release the database.
const OPEN_WAIT_MS: u64 = 5_000;
/// Trees of the layout before this crate existed (one JSON record per state); refused.
const OLD_LAYOUT_TREE: &[u8] = b"state_machine";

/// How one member runs. Build it with [`GroupConfig::new`] and adjust the public fields.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    /// The group's name; members refuse messages of another group.
    pub cluster: String,
    /// This member's Raft node id; must be a key of `members`.
    pub node_id: MemberId,
    /// Every member of the group (this one included): node id -> gRPC "host:port".
    pub members: BTreeMap<MemberId, String>,
    /// Folder of this member's sled database.
    pub data_dir: PathBuf,
    /// Raft leader heartbeat period.
    pub heartbeat_interval_ms: u64,
    /// Raft election timeout, drawn in `[min, max)`.
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// A snapshot is built (and the log purged) after this many entries since the last one.
    pub snapshot_logs_since_last: u64,
    /// Log entries kept behind a snapshot, so a briefly lagging member catches up from the log
    /// rather than a whole snapshot.
    pub logs_kept_after_snapshot: u64,
    /// With mutual TLS: the role every member's certificate names; Raft messages from any
    /// other role are refused (PermissionDenied). None: no role check.
    pub member_role: Option<strata_types::Role>,
}

impl GroupConfig {
    /// A config with the defaults for loopback or a LAN.
    pub fn new(
        cluster: &str,
        node_id: MemberId,
        members: BTreeMap<MemberId, String>,
        data_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            cluster: cluster.to_string(),
            node_id,
            members,
            data_dir: data_dir.into(),
            // openraft waits a leader lease (= election_timeout_max) plus the election timeout
            // after the last heartbeat before a follower stands: ~1.5-2 s to fail over here.
            heartbeat_interval_ms: 100,
            election_timeout_min_ms: 500,
            election_timeout_max_ms: 1_000,
            snapshot_logs_since_last: 1_000,
            logs_kept_after_snapshot: 100,
            member_role: None,
        }
    }

    /// Checks the config is usable.
    pub fn validate(&self) -> Result<(), GroupError> {
        if !self.members.contains_key(&self.node_id) {
            return Err(GroupError::Config(format!(
                "node id {} is not one of the members {:?}",
                self.node_id,
                self.members.keys().collect::<Vec<_>>()
            )));
        }
        if self.members.contains_key(&0) {
            return Err(GroupError::Config(
                "member id 0 is reserved for 'unknown'".into(),
            ));
        }
        if self.election_timeout_min_ms <= self.heartbeat_interval_ms
            || self.election_timeout_max_ms <= self.election_timeout_min_ms
        {
            return Err(GroupError::Config(
                "need raft heartbeat < election timeout min < election timeout max".into(),
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
pub fn parse_members(text: &str) -> Result<BTreeMap<MemberId, String>, GroupError> {
    let mut members = BTreeMap::new();
    for item in text
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let (id, addr) = item
            .split_once('=')
            .ok_or_else(|| GroupError::Config(format!("member {item:?} is not id=host:port")))?;
        let id: MemberId = id
            .trim()
            .parse()
            .map_err(|err| GroupError::Config(format!("member id {id:?}: {err}")))?;
        let addr = addr.trim();
        if addr.is_empty() || !addr.contains(':') {
            return Err(GroupError::Config(format!(
                "member {id} address {addr:?} is not host:port"
            )));
        }
        if members.insert(id, addr.to_string()).is_some() {
            return Err(GroupError::Config(format!("member {id} is listed twice")));
        }
    }
    if members.is_empty() {
        return Err(GroupError::Config("no members given".into()));
    }
    Ok(members)
}

/// Opens (or creates) a member's database in `dir`. sled holds an exclusive lock on it; when a
/// previous instance in this process is still shutting down, this retries for a bounded time.
pub async fn open_db(dir: &Path) -> Result<sled::Db, GroupError> {
    std::fs::create_dir_all(dir)?;
    let deadline = Instant::now() + Duration::from_millis(OPEN_WAIT_MS);
    let db = loop {
        match sled::Config::new().path(dir).open() {
            Ok(db) => break db,
            Err(err) if Instant::now() < deadline => {
                tracing::debug!(%err, dir = %dir.display(), "sled database busy; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => {
                return Err(GroupError::Storage(format!(
                    "opening {}: {err}",
                    dir.display()
                )));
            }
        }
    };
    if db.tree_names().iter().any(|name| name == OLD_LAYOUT_TREE) {
        return Err(GroupError::Config(format!(
            "{} holds a Raft store of an older Strata layout; start from an empty folder",
            dir.display()
        )));
    }
    Ok(db)
}

/// Opens the log store and the state machine store of a member in `dir`.
pub async fn open_stores<M: Machine>(
    dir: &Path,
    machine: Arc<M>,
) -> Result<(LogStore<M>, StateMachineStore<M>), GroupError> {
    let db = open_db(dir).await?;
    Ok((LogStore::open(&db)?, StateMachineStore::open(&db, machine)?))
}

/// Who leads, as one member sees it.
#[derive(Clone, Debug, Default)]
pub struct LeaderView {
    /// 0 when unknown.
    pub leader_id: MemberId,
    /// Empty when unknown.
    pub leader_addr: String,
    pub current_term: u64,
}

/// A running member. Cheap to clone.
pub struct Group<M: Machine> {
    node_id: MemberId,
    cluster: String,
    member_role: Option<strata_types::Role>,
    raft: RaftOf<M>,
    reader: StateReader,
    machine: Arc<M>,
}

impl<M: Machine> Clone for Group<M> {
    fn clone(&self) -> Self {
        Self {
            node_id: self.node_id,
            cluster: self.cluster.clone(),
            member_role: self.member_role,
            raft: self.raft.clone(),
            reader: self.reader.clone(),
            machine: self.machine.clone(),
        }
    }
}

impl<M: Machine> Group<M> {
    /// Opens the member's store and starts its openraft. Serve [`Group::service`] on the
    /// member's address, then call [`Group::initialize_if_first`].
    pub async fn start(config: &GroupConfig, machine: Arc<M>) -> Result<Self, GroupError> {
        config.validate()?;
        let (log_store, state_machine) = open_stores(&config.data_dir, machine.clone()).await?;
        let reader = state_machine.reader();
        let raft_config = openraft::Config {
            cluster_name: config.cluster.clone(),
            heartbeat_interval: config.heartbeat_interval_ms,
            election_timeout_min: config.election_timeout_min_ms,
            election_timeout_max: config.election_timeout_max_ms,
            install_snapshot_timeout: 5_000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_logs_since_last),
            max_in_snapshot_log_to_keep: config.logs_kept_after_snapshot,
            ..Default::default()
        }
        .validate()
        .map_err(|err| GroupError::Config(format!("raft config: {err}")))?;
        let raft = openraft::Raft::new(
            config.node_id,
            Arc::new(raft_config),
            NetworkFactory::<M>::new(config.node_id, &config.cluster),
            log_store,
            state_machine,
        )
        .await
        .map_err(|err| GroupError::Raft(format!("starting raft: {err}")))?;
        Ok(Self {
            node_id: config.node_id,
            cluster: config.cluster.clone(),
            member_role: config.member_role,
            raft,
            reader,
            machine,
        })
    }

    /// The gRPC service other members send this member's Raft messages to.
    pub fn service(&self) -> RaftServer<RaftService<M>> {
        RaftService::new(self.raft.clone(), &self.cluster, self.member_role).into_server()
    }

    /// Initializes the group with every member if this is the lowest-id member and its log is
    /// empty; a group that is already initialized is not an error.
    pub async fn initialize_if_first(
        &self,
        members: &BTreeMap<MemberId, String>,
    ) -> Result<(), GroupError> {
        if members.keys().next() != Some(&self.node_id) {
            return Ok(());
        }
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|err| GroupError::Raft(format!("checking initialization: {err}")))?;
        if initialized {
            return Ok(());
        }
        let nodes: BTreeMap<MemberId, BasicNode> = members
            .iter()
            .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
            .collect();
        match self.raft.initialize(nodes).await {
            Ok(()) => {
                tracing::info!(cluster = %self.cluster, members = ?members, "initialized the raft group");
                Ok(())
            }
            Err(RaftError::APIError(InitializeError::NotAllowed(err))) => {
                tracing::info!(%err, "raft group already initialized");
                Ok(())
            }
            Err(err) => Err(GroupError::Raft(format!("initializing: {err}"))),
        }
    }

    pub fn node_id(&self) -> MemberId {
        self.node_id
    }

    pub fn raft(&self) -> &RaftOf<M> {
        &self.raft
    }

    pub fn machine(&self) -> &Arc<M> {
        &self.machine
    }

    /// The application's records as this member last applied them.
    pub fn reader(&self) -> &StateReader {
        &self.reader
    }

    pub fn metrics(&self) -> RaftMetrics<MemberId, BasicNode> {
        self.raft.metrics().borrow().clone()
    }

    pub fn leader_view(&self) -> LeaderView {
        leader_view(&self.metrics())
    }

    /// Whether this member believes it leads (unconfirmed; see [`Group::ensure_leader`]).
    pub fn is_leader(&self) -> bool {
        let metrics = self.metrics();
        metrics.state == ServerState::Leader && metrics.current_leader == Some(self.node_id)
    }

    /// Whether this member leads and has applied an entry of its own term, so its state
    /// machine holds every committed change.
    pub fn is_ready_leader(&self) -> bool {
        let metrics = self.metrics();
        metrics.state == ServerState::Leader
            && metrics.current_leader == Some(self.node_id)
            && metrics
                .last_applied
                .is_some_and(|log_id| log_id.leader_id.term == metrics.current_term)
    }

    /// Index of the last entry applied here (0 when none).
    pub fn last_applied_index(&self) -> u64 {
        self.metrics().last_applied.map_or(0, |log_id| log_id.index)
    }

    /// Confirms with a quorum that this member still leads and that its state machine holds
    /// every change committed before the call: reads after this are linearizable.
    pub async fn ensure_leader(&self, timeout_ms: u64) -> Result<(), GroupError> {
        let confirm = tokio::time::timeout(
            Duration::from_millis(timeout_ms),
            self.raft.ensure_linearizable(),
        );
        match confirm.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward)))) => {
                Err(not_leader(forward))
            }
            Ok(Err(err)) => Err(GroupError::Raft(format!("confirming leadership: {err}"))),
            Err(_) => Err(GroupError::Timeout {
                what: "confirming leadership",
                timeout_ms,
            }),
        }
    }

    /// Proposes `command` and waits until it is committed and applied here; returns what
    /// applying it answered.
    pub async fn propose(
        &self,
        command: M::Command,
        timeout_ms: u64,
    ) -> Result<M::Response, GroupError> {
        let write = tokio::time::timeout(
            Duration::from_millis(timeout_ms),
            self.raft.client_write(command),
        );
        match write.await {
            Ok(Ok(written)) => Ok(written.data),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
                Err(not_leader(forward))
            }
            Ok(Err(err)) => Err(GroupError::Raft(format!("proposing: {err}"))),
            Err(_) => Err(GroupError::Timeout {
                what: "a raft proposal",
                timeout_ms,
            }),
        }
    }

    /// Stops openraft (the gRPC server is the caller's).
    pub async fn shutdown(&self) {
        if let Err(err) = self.raft.shutdown().await {
            tracing::warn!(%err, "raft did not stop cleanly");
        }
    }
}

fn not_leader(forward: ForwardToLeader<MemberId, BasicNode>) -> GroupError {
    GroupError::NotLeader {
        leader_id: forward.leader_id,
        leader_addr: forward.leader_node.map(|node| node.addr),
    }
}

/// The leader view from a metrics sample.
pub fn leader_view(metrics: &RaftMetrics<MemberId, BasicNode>) -> LeaderView {
    let leader_id = metrics.current_leader.unwrap_or(0);
    let leader_addr = metrics
        .current_leader
        .and_then(|id| {
            metrics
                .membership_config
                .membership()
                .get_node(&id)
                .map(|node| node.addr.clone())
        })
        .unwrap_or_default();
    LeaderView {
        leader_id,
        leader_addr,
        current_term: metrics.current_term,
    }
}

/// What changed in this member's leadership since the last look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leadership {
    /// Not leading; `just_lost` when it led at the last look.
    Follower { just_lost: bool },
    /// Leading since `since` (the first look in this term); `just_gained` on that first look.
    Leader { since: Instant, just_gained: bool },
}

/// Remembers when this member's current leadership began, so a new leader can wait (for
/// example one liveness timeout) before acting on what it has not observed yet.
#[derive(Default)]
pub struct LeadershipClock {
    led: Mutex<Option<(u64, Instant)>>,
}

impl LeadershipClock {
    pub fn observe<M: Machine>(&self, group: &Group<M>) -> Leadership {
        let metrics = group.metrics();
        let leading =
            metrics.state == ServerState::Leader && metrics.current_leader == Some(group.node_id());
        let mut led = match self.led.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !leading {
            return Leadership::Follower {
                just_lost: led.take().is_some(),
            };
        }
        match *led {
            Some((term, since)) if term == metrics.current_term => Leadership::Leader {
                since,
                just_gained: false,
            },
            _ => {
                let since = Instant::now();
                *led = Some((metrics.current_term, since));
                Leadership::Leader {
                    since,
                    just_gained: true,
                }
            }
        }
    }
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
        let config = GroupConfig::new("test", 4, members, "/tmp/x");
        assert!(config.validate().is_err());
    }
}
