//! Client of the manager group, for partition servers, front-ends and the CLI.
//!
//! It knows every member's address, remembers the leader it last found, follows the leader a
//! member names (a `NotLeader` error detail, or the map's `leader_hint`),
//! and tries each member at most a bounded number of times per call. Every call has a timeout.

use crate::error::{ManagerError, Result};
use std::sync::Mutex;
use std::time::Duration;
use strata_proto::manager as pb;
use strata_proto::manager::partition_manager_client::PartitionManagerClient;
use strata_util::retry::Backoff;
use strata_util::rpc::{Channel, ChannelPool};

/// Bound of one call to one member.
pub const CALL_TIMEOUT_MS: u64 = 2_000;
/// Pause between two rounds of a heartbeat over every member (an election may be in progress).
const HEARTBEAT_ROUND_PAUSE_MS: u64 = 100;

/// Talks to whichever member can answer. Cheap to share (`&self` methods); clone the `Arc`.
pub struct ManagerClient {
    members: Vec<String>,
    leader: Mutex<Option<String>>,
    channels: ChannelPool,
    call_timeout: Duration,
}

impl ManagerClient {
    /// A client of the group whose members serve gRPC at `member_addrs` ("host:port").
    pub fn new(member_addrs: Vec<String>) -> Self {
        Self::with_timeout(member_addrs, Duration::from_millis(CALL_TIMEOUT_MS))
    }

    /// Like [`ManagerClient::new`] with another per-call timeout.
    pub fn with_timeout(member_addrs: Vec<String>, call_timeout: Duration) -> Self {
        let mut members: Vec<String> = Vec::new();
        for addr in member_addrs {
            let addr = addr.trim().to_string();
            if !addr.is_empty() && !members.contains(&addr) {
                members.push(addr);
            }
        }
        Self {
            members,
            leader: Mutex::new(None),
            channels: ChannelPool::new(call_timeout),
            call_timeout,
        }
    }

    /// The member addresses this client knows.
    pub fn members(&self) -> &[String] {
        &self.members
    }

    /// The leader found last, if any.
    pub fn known_leader(&self) -> Option<String> {
        lock(&self.leader).clone()
    }

    fn remember_leader(&self, leader: Option<String>) {
        *lock(&self.leader) = leader.filter(|addr| !addr.is_empty());
    }

    fn client(&self, addr: &str) -> Result<PartitionManagerClient<Channel>> {
        let channel = self.channels.get(addr).map_err(|err| {
            ManagerError::Config(format!("manager address {addr:?}: {}", err.reason))
        })?;
        Ok(PartitionManagerClient::new(channel)
            .max_decoding_message_size(strata_proto::GRPC_MESSAGE_SIZE_BYTES_MAX)
            .max_encoding_message_size(strata_proto::GRPC_MESSAGE_SIZE_BYTES_MAX))
    }

    /// Members in the order to try: the known leader first, then the others.
    fn candidates(&self) -> Vec<String> {
        let mut order = Vec::with_capacity(self.members.len() + 1);
        if let Some(leader) = self.known_leader() {
            order.push(leader);
        }
        for addr in &self.members {
            if !order.contains(addr) {
                order.push(addr.clone());
            }
        }
        order
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.call_timeout);
        request
    }

    async fn get_map_from(&self, addr: &str) -> Result<pb::PartitionMap> {
        let mut client = self.client(addr)?;
        let call = client.get_partition_map(self.request(pb::GetPartitionMapRequest {}));
        bounded(addr, self.call_timeout, call).await
    }

    async fn get_status_from(&self, addr: &str) -> Result<pb::ManagerStatusResponse> {
        let mut client = self.client(addr)?;
        let call = client.get_status(self.request(pb::ManagerStatusRequest {}));
        bounded(addr, self.call_timeout, call).await
    }

    async fn heartbeat_to(
        &self,
        addr: &str,
        heartbeat: pb::ServerHeartbeat,
    ) -> Result<pb::ServerHeartbeatResponse> {
        let mut client = self.client(addr)?;
        let call = client.heartbeat(self.request(heartbeat));
        bounded(addr, self.call_timeout, call).await
    }

    /// The partition map, preferably from the leader; any member's applied map if the leader
    /// cannot be reached.
    pub async fn partition_map(&self) -> Result<pb::PartitionMap> {
        let mut last_error = String::from("no members configured");
        let mut attempts = 0;
        for addr in self.candidates() {
            attempts += 1;
            match self.get_map_from(&addr).await {
                Ok(map) if map.leader_hint.is_empty() || map.leader_hint == addr => {
                    self.remember_leader(Some(map.leader_hint.clone()));
                    return Ok(map);
                }
                Ok(map) => {
                    // A follower answered; ask the leader it names once, else use this copy.
                    let leader = map.leader_hint.clone();
                    match self.get_map_from(&leader).await {
                        Ok(fresh) => {
                            self.remember_leader(Some(leader));
                            return Ok(fresh);
                        }
                        Err(err) => {
                            tracing::debug!(%err, %leader, "leader did not answer; using a follower's map");
                            return Ok(map);
                        }
                    }
                }
                Err(err) => {
                    tracing::debug!(%err, %addr, "manager member did not answer GetPartitionMap");
                    last_error = err.to_string();
                }
            }
        }
        self.remember_leader(None);
        Err(ManagerError::NoMemberAnswered {
            attempts,
            last_error,
        })
    }

    /// Sends a partition server's heartbeat to the leader (following `NotLeader` hints); answers
    /// the ranges that server must serve.
    pub async fn heartbeat(
        &self,
        heartbeat: pb::ServerHeartbeat,
    ) -> Result<pb::ServerHeartbeatResponse> {
        let attempts_max = self.members.len() * 2 + 1;
        // The attempts bound the call; the budget is the most they can take (each attempt
        // bounded by the call timeout, each round followed by a pause), so it never cuts one
        // short.
        let pause = Duration::from_millis(HEARTBEAT_ROUND_PAUSE_MS);
        let budget = (self.call_timeout + pause)
            .saturating_mul(u32::try_from(attempts_max).unwrap_or(u32::MAX));
        let mut backoff = Backoff::new(budget).with_pauses(pause, pause);
        let mut queue = self.candidates();
        let mut last_error = String::from("no members configured");
        let mut attempts = 0;
        while attempts < attempts_max && !queue.is_empty() {
            let addr = queue.remove(0);
            attempts += 1;
            match self.heartbeat_to(&addr, heartbeat.clone()).await {
                Ok(response) => {
                    self.remember_leader(Some(addr));
                    return Ok(response);
                }
                Err(err) if err.not_leader_hint().is_some() => {
                    let hint = err.not_leader_hint().flatten();
                    last_error = format!("{addr} is not the leader (hint {hint:?})");
                    if let Some(leader) = hint.filter(|leader| *leader != addr) {
                        queue.insert(0, leader);
                    }
                }
                Err(err) => {
                    tracing::debug!(%err, %addr, "heartbeat to a manager member failed");
                    last_error = err.to_string();
                }
            }
            if queue.is_empty() && attempts < attempts_max {
                // Everyone tried once (an election may be in progress): go round again.
                queue = self.members.clone();
                if !backoff.wait().await {
                    break;
                }
            }
        }
        self.remember_leader(None);
        Err(ManagerError::NoMemberAnswered {
            attempts,
            last_error,
        })
    }

    /// The group's status, from the leader when it answers, else from any member.
    pub async fn status(&self) -> Result<pb::ManagerStatusResponse> {
        let mut last_error = String::from("no members configured");
        let mut attempts = 0;
        for addr in self.candidates() {
            attempts += 1;
            match self.get_status_from(&addr).await {
                Ok(status) if status.leader_addr.is_empty() || status.leader_addr == addr => {
                    return Ok(status)
                }
                Ok(status) => {
                    let leader = status.leader_addr.clone();
                    return match self.get_status_from(&leader).await {
                        Ok(fresh) => {
                            self.remember_leader(Some(leader));
                            Ok(fresh)
                        }
                        Err(err) => {
                            tracing::debug!(%err, %leader, "leader did not answer; using a follower's status");
                            Ok(status)
                        }
                    };
                }
                Err(err) => {
                    tracing::debug!(%err, %addr, "manager member did not answer GetStatus");
                    last_error = err.to_string();
                }
            }
        }
        Err(ManagerError::NoMemberAnswered {
            attempts,
            last_error,
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

async fn bounded<T>(
    addr: &str,
    timeout: Duration,
    call: impl std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(ManagerError::Rpc {
            addr: addr.to_string(),
            status,
        }),
        Err(_) => Err(ManagerError::Rpc {
            addr: addr.to_string(),
            status: tonic::Status::deadline_exceeded(format!(
                "no answer within {} ms",
                timeout.as_millis()
            )),
        }),
    }
}
