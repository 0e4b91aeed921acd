//! The `PartitionManager` gRPC service of one member: partition-server heartbeats, the map and
//! status. (The Raft transport is `strata_raft`'s own service, on the same port.)

use crate::app::App;
use std::sync::Arc;
use std::time::Instant;
use strata_proto::manager as pb;
use strata_proto::manager::partition_manager_server::{PartitionManager, PartitionManagerServer};
use strata_raft::GroupError;
use strata_types::error_detail::{to_status, ErrorDetail, RejectReason, UnavailableReason};
use strata_types::Role;
use tonic::{Request, Response, Status};

/// Bound on confirming leadership with a quorum before answering a heartbeat.
const LEADERSHIP_CHECK_TIMEOUT_MS: u64 = 300;
/// Longest server id or address accepted in a heartbeat.
const HEARTBEAT_FIELD_BYTES_MAX: usize = 512;

/// Who may read the partition map over mutual TLS: the front-ends and partition servers that
/// route by it, manager members, and the operator's tools. (GetStatus is read-only and open to
/// every certificate of the deployment; heartbeats have their own rule.)
pub const MAP_READER_ROLES: [Role; 4] = [
    Role::Frontend,
    Role::PartitionServer,
    Role::PartitionManager,
    Role::Operator,
];

/// The gRPC service; cheap to clone.
#[derive(Clone)]
pub struct ManagerService {
    app: Arc<App>,
}

impl ManagerService {
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }

    /// The tonic server for this service, with Strata's message size limits.
    pub fn into_server(self) -> PartitionManagerServer<Self> {
        PartitionManagerServer::new(self)
            .max_decoding_message_size(strata_proto::GRPC_MESSAGE_SIZE_BYTES_MAX)
            .max_encoding_message_size(strata_proto::GRPC_MESSAGE_SIZE_BYTES_MAX)
    }
}

fn invalid(message: impl Into<String>) -> Status {
    let reason = RejectReason::InvalidArgument;
    to_status(ErrorDetail::Rejected { reason }, message)
}

fn check_field(name: &str, value: &str) -> Result<(), Status> {
    if value.is_empty() {
        return Err(Status::invalid_argument(format!("{name} is empty")));
    }
    if value.len() > HEARTBEAT_FIELD_BYTES_MAX {
        return Err(invalid(format!(
            "{name} is longer than {HEARTBEAT_FIELD_BYTES_MAX} bytes"
        )));
    }
    Ok(())
}

#[tonic::async_trait]
impl PartitionManager for ManagerService {
    async fn heartbeat(
        &self,
        request: Request<pb::ServerHeartbeat>,
    ) -> Result<Response<pb::ServerHeartbeatResponse>, Status> {
        // A heartbeat asks for ranges to serve: partition servers only.
        strata_util::tls::authorize(&request, &[Role::PartitionServer])?;
        let heartbeat = request.into_inner();
        check_field("server_id", &heartbeat.server_id)?;
        check_field("addr", &heartbeat.addr)?;
        if heartbeat.http_addr.len() > HEARTBEAT_FIELD_BYTES_MAX {
            return Err(invalid("http_addr is too long"));
        }
        let view = self.app.leader_view();
        let not_leader = |leader_addr: String| {
            let leader_hint = (!leader_addr.is_empty()).then_some(leader_addr);
            Err(to_status(
                ErrorDetail::NotLeader { leader_hint },
                "this member does not lead; retry on the leader",
            ))
        };
        if view.leader_id != self.app.node_id {
            return not_leader(view.leader_addr);
        }
        // Hand out ownership only as a confirmed leader (a quorum answered just now) whose
        // state machine holds every committed change: a deposed or restarting leader must not
        // answer from a stale map.
        match self
            .app
            .group
            .ensure_leader(LEADERSHIP_CHECK_TIMEOUT_MS)
            .await
        {
            Ok(()) => {}
            Err(GroupError::NotLeader { leader_addr, .. }) => {
                return not_leader(leader_addr.unwrap_or_default());
            }
            Err(err) => {
                tracing::warn!(%err, "cannot confirm leadership for a heartbeat");
                return Err(to_status(
                    ErrorDetail::Unavailable {
                        reason: UnavailableReason::Dependency,
                    },
                    format!("cannot confirm leadership: {err}; retry"),
                ));
            }
        }
        let recorded = self.app.servers().record(
            &heartbeat.server_id,
            &heartbeat.addr,
            &heartbeat.http_addr,
            Instant::now(),
        );
        if !recorded {
            tracing::warn!(server_id = %heartbeat.server_id, "server table full; heartbeat refused");
            // Over the table's bound: the server tries again with its next heartbeat.
            return Err(to_status(
                ErrorDetail::Throttled { retry_after_ms: 0 },
                "too many partition servers",
            ));
        }
        let map = self.app.map();
        {
            // Only reports of ranges this server owns at the reported epoch count.
            let thresholds = self.app.planner.thresholds();
            let now = Instant::now();
            let mut loads = self.app.loads();
            for served in heartbeat.serving {
                let owned = map.ranges.values().any(|range| {
                    range.range_id.get() == served.range_id
                        && range.epoch.get() == served.epoch
                        && range
                            .owner
                            .as_ref()
                            .is_some_and(|o| o.server_id.as_str() == heartbeat.server_id)
                });
                if owned {
                    loads.record(&heartbeat.server_id, served, thresholds, now);
                }
            }
        }
        let assignments = map.to_proto(String::new()).ranges;
        Ok(Response::new(pb::ServerHeartbeatResponse {
            assignments,
            next_range_id: map.next_range_id.get(),
            reserved_range_ids: map.reserved_ids.iter().map(|id| id.get()).collect(),
        }))
    }

    async fn get_partition_map(
        &self,
        request: Request<pb::GetPartitionMapRequest>,
    ) -> Result<Response<pb::PartitionMap>, Status> {
        strata_util::tls::authorize(&request, &MAP_READER_ROLES)?;
        let view = self.app.leader_view();
        Ok(Response::new(self.app.map().to_proto(view.leader_addr)))
    }

    async fn get_status(
        &self,
        _request: Request<pb::ManagerStatusRequest>,
    ) -> Result<Response<pb::ManagerStatusResponse>, Status> {
        let metrics = self.app.metrics();
        let view = strata_raft::group::leader_view(&metrics);
        let members = metrics
            .membership_config
            .nodes()
            .map(|(id, node)| pb::MemberStatus {
                node_id: *id,
                addr: node.addr.clone(),
            })
            .collect();
        let servers = self
            .app
            .servers()
            .to_proto(self.app.server_timeout, Instant::now());
        let last_applied_index = self.app.group.last_applied_index();
        let map = self.app.map();
        Ok(Response::new(pb::ManagerStatusResponse {
            node_id: self.app.node_id,
            leader_id: view.leader_id,
            leader_addr: view.leader_addr.clone(),
            current_term: view.current_term,
            last_applied_index,
            members,
            servers,
            map: Some(map.to_proto(view.leader_addr)),
            range_events: map
                .events
                .iter()
                .map(|note| pb::RangeEvent {
                    at_ms: note.at_ms,
                    kind: note.kind.clone(),
                    detail: note.detail.clone(),
                })
                .collect(),
            splits_total: map.splits_total,
            merges_total: map.merges_total,
            moves_total: map.moves_total,
        }))
    }
}
