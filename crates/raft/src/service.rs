//! The server side of the transport: the `strata.raft.Raft` gRPC service of one member.

use crate::types::{Machine, MemberId, RaftOf};
use openraft::error::RaftError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use strata_proto::raft::raft_server::{Raft as RaftRpc, RaftServer};
use strata_proto::raft::RaftMessage;
use strata_types::error_detail::{to_status, ErrorDetail, RejectReason};
use strata_types::Role;
use tonic::{Request, Response, Status};

/// Hands the members' Raft messages to this member's openraft. Cheap to clone.
pub struct RaftService<M: Machine> {
    raft: RaftOf<M>,
    cluster: String,
    /// With mutual TLS, only callers of this role (the members') are served.
    member_role: Option<Role>,
}

impl<M: Machine> Clone for RaftService<M> {
    fn clone(&self) -> Self {
        Self {
            raft: self.raft.clone(),
            cluster: self.cluster.clone(),
            member_role: self.member_role,
        }
    }
}

impl<M: Machine> RaftService<M> {
    pub fn new(raft: RaftOf<M>, cluster: &str, member_role: Option<Role>) -> Self {
        Self {
            raft,
            cluster: cluster.to_string(),
            member_role,
        }
    }

    /// The tonic server for this service, with Strata's message size limits.
    pub fn into_server(self) -> RaftServer<Self> {
        RaftServer::new(self)
            .max_decoding_message_size(strata_proto::GRPC_MESSAGE_SIZE_BYTES_MAX)
            .max_encoding_message_size(strata_proto::GRPC_MESSAGE_SIZE_BYTES_MAX)
    }

    /// The message of `request`, once its caller may send it: a member (by the role its
    /// certificate names, with mutual TLS) of this group (by name).
    fn decode<T: DeserializeOwned>(&self, request: &Request<RaftMessage>) -> Result<T, Status> {
        if let Some(role) = self.member_role {
            strata_util::tls::authorize(request, &[role])?;
        }
        let message = request.get_ref();
        if message.cluster != self.cluster {
            tracing::warn!(from = %message.cluster, ours = %self.cluster, "raft message for another group refused");
            return Err(to_status(
                ErrorDetail::Rejected {
                    reason: RejectReason::InvalidRequest,
                },
                format!(
                    "this member belongs to group {:?}, not {:?}",
                    self.cluster, message.cluster
                ),
            ));
        }
        serde_json::from_slice(&message.data).map_err(|err| {
            tracing::warn!(%err, "undecodable raft message");
            let reason = RejectReason::InvalidArgument;
            to_status(
                ErrorDetail::Rejected { reason },
                format!("decoding raft message: {err}"),
            )
        })
    }

    fn encode<T: Serialize, E: Serialize + std::error::Error>(
        &self,
        result: Result<T, RaftError<MemberId, E>>,
    ) -> Result<Response<RaftMessage>, Status> {
        let data = serde_json::to_vec(&result).map_err(|err| {
            to_status(ErrorDetail::Internal, format!("encoding raft reply: {err}"))
        })?;
        Ok(Response::new(RaftMessage {
            cluster: self.cluster.clone(),
            data,
        }))
    }
}

#[tonic::async_trait]
impl<M: Machine> RaftRpc for RaftService<M> {
    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.decode(&request)?;
        self.encode(self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.decode(&request)?;
        self.encode(self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.decode(&request)?;
        self.encode(self.raft.install_snapshot(rpc).await)
    }
}
