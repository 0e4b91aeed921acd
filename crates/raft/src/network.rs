//! Raft transport between members: openraft's messages as JSON bytes in `RaftMessage.data`,
//! over the `strata.raft.Raft` gRPC service (`AppendEntries`, `Vote`, `InstallSnapshot`), each
//! message stamped with the group's cluster name.
//!
//! The reply body is the JSON of `Result<response, RaftError>` so a remote Raft error reaches
//! openraft as `RemoteError`. Transport failures map to openraft's kinds: a peer that cannot be
//! connected to is `Unreachable` (openraft backs off), a call past its deadline is `Timeout`,
//! anything else on the wire is `NetworkError`.

use crate::types::{Machine, MemberId, Types};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;
use strata_proto::raft::raft_client::RaftClient;
use strata_proto::raft::RaftMessage;
use strata_util::rpc::{Channel, ChannelPool};

/// Upper bound of one Raft RPC, whatever openraft asks for (snapshots included).
const RAFT_RPC_TIMEOUT_MS_MAX: u64 = 10_000;

type PeerClient = RaftClient<Channel>;

/// Makes one [`PeerNetwork`] per target; channels are cached per address and reconnect by
/// themselves.
pub struct NetworkFactory<M> {
    source: MemberId,
    cluster: String,
    channels: Arc<ChannelPool>,
    machine: PhantomData<fn() -> M>,
}

impl<M> NetworkFactory<M> {
    pub fn new(source: MemberId, cluster: &str) -> Self {
        Self {
            source,
            cluster: cluster.to_string(),
            channels: Arc::new(ChannelPool::new(Duration::from_millis(
                RAFT_RPC_TIMEOUT_MS_MAX,
            ))),
            machine: PhantomData,
        }
    }

    fn channel(&self, target: MemberId, addr: &str) -> Result<Channel, String> {
        self.channels
            .get(addr)
            .map_err(|err| format!("bad address {addr:?} of member {target}: {}", err.reason))
    }
}

impl<M: Machine> RaftNetworkFactory<Types<M>> for NetworkFactory<M> {
    type Network = PeerNetwork<M>;

    async fn new_client(&mut self, target: MemberId, node: &BasicNode) -> PeerNetwork<M> {
        let client = self.channel(target, &node.addr).map(|channel| {
            RaftClient::new(channel)
                .max_decoding_message_size(strata_proto::GRPC_MESSAGE_SIZE_BYTES_MAX)
                .max_encoding_message_size(strata_proto::GRPC_MESSAGE_SIZE_BYTES_MAX)
        });
        if let Err(err) = &client {
            tracing::warn!(target, %err, "cannot make a raft client");
        }
        PeerNetwork {
            source: self.source,
            cluster: self.cluster.clone(),
            target,
            addr: node.addr.clone(),
            client,
            machine: PhantomData,
        }
    }
}

/// The connection from this member to one peer.
pub struct PeerNetwork<M> {
    source: MemberId,
    cluster: String,
    target: MemberId,
    addr: String,
    client: Result<PeerClient, String>,
    machine: PhantomData<fn() -> M>,
}

/// Error of the transport itself (as opposed to a Raft error from the peer).
#[derive(Debug, thiserror::Error)]
#[error("raft rpc to member {target} at {addr}: {message}")]
struct TransportError {
    target: MemberId,
    addr: String,
    message: String,
}

type RpcResult<T, E> = Result<T, RPCError<MemberId, BasicNode, RaftError<MemberId, E>>>;

impl<M> PeerNetwork<M> {
    async fn call<Req, Resp, E>(
        &mut self,
        kind: RPCTypes,
        request: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let transport_error = |message: String| TransportError {
            target: self.target,
            addr: self.addr.clone(),
            message,
        };
        let mut client = match &self.client {
            Ok(client) => client.clone(),
            Err(err) => {
                return Err(RPCError::Unreachable(Unreachable::new(&transport_error(
                    err.clone(),
                ))))
            }
        };
        let data = serde_json::to_vec(request).map_err(|err| {
            RPCError::Network(NetworkError::new(&transport_error(format!(
                "encoding: {err}"
            ))))
        })?;
        let timeout = option
            .hard_ttl()
            .min(Duration::from_millis(RAFT_RPC_TIMEOUT_MS_MAX));
        let mut message = tonic::Request::new(RaftMessage {
            cluster: self.cluster.clone(),
            data,
        });
        message.set_timeout(timeout);
        let call = async {
            match kind {
                RPCTypes::AppendEntries => client.append_entries(message).await,
                RPCTypes::Vote => client.vote(message).await,
                RPCTypes::InstallSnapshot => client.install_snapshot(message).await,
            }
        };
        let reply = match tokio::time::timeout(timeout, call).await {
            Err(_elapsed) => {
                return Err(RPCError::Timeout(Timeout {
                    action: kind,
                    id: self.source,
                    target: self.target,
                    timeout,
                }))
            }
            Ok(Err(status)) => {
                let err = transport_error(format!("{}: {}", status.code(), status.message()));
                return Err(match status.code() {
                    tonic::Code::Unavailable => RPCError::Unreachable(Unreachable::new(&err)),
                    tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
                        RPCError::Timeout(Timeout {
                            action: kind,
                            id: self.source,
                            target: self.target,
                            timeout,
                        })
                    }
                    _ => RPCError::Network(NetworkError::new(&err)),
                });
            }
            Ok(Ok(reply)) => reply.into_inner(),
        };
        let decoded: Result<Resp, RaftError<MemberId, E>> = serde_json::from_slice(&reply.data)
            .map_err(|err| {
                RPCError::Network(NetworkError::new(&transport_error(format!(
                    "decoding reply: {err}"
                ))))
            })?;
        decoded.map_err(|err| RPCError::RemoteError(RemoteError::new(self.target, err)))
    }
}

impl<M: Machine> RaftNetwork<Types<M>> for PeerNetwork<M> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<Types<M>>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<MemberId>, openraft::error::Infallible> {
        self.call(RPCTypes::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<Types<M>>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<MemberId>, InstallSnapshotError> {
        self.call(RPCTypes::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<MemberId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<MemberId>, openraft::error::Infallible> {
        self.call(RPCTypes::Vote, &rpc, &option).await
    }
}
