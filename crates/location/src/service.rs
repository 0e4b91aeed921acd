//! The `Location` gRPC service over one member's [`Namespace`]: checks the caller's role and
//! the request's bounds, and maps the namespace's answers and errors to the wire once.

use crate::machine::{BucketRecord, MoveRecord, StampState};
use crate::namespace::{Namespace, NamespaceError, Reservation};
use strata_proto::location::location_server::Location;
use strata_proto::location::*;
use strata_types::error_detail::{to_status, ErrorDetail, RejectReason, UnavailableReason};
use strata_types::Role;
use strata_util::tls::authorize_any_stamp;
use tonic::{Request, Response, Status};

/// Who may reserve or release a bucket name over mutual TLS: the front-ends, which do it for
/// CreateBucket and DeleteBucket after authenticating the S3 caller.
pub const NAME_WRITER_ROLES: [Role; 1] = [Role::Frontend];
/// Who may look names and stamps up: the front-ends, the operator's tools and partition
/// servers (replication finds a destination bucket's stamp and that stamp's links).
pub const NAME_READER_ROLES: [Role; 3] = [Role::Frontend, Role::Operator, Role::PartitionServer];
/// Who may report a stamp: its front-ends.
pub const STAMP_REPORTER_ROLES: [Role; 1] = [Role::Frontend];
/// Who may report a stamp's capacity and usage: its stream manager group's leader.
pub const FILL_REPORTER_ROLES: [Role; 1] = [Role::StreamManager];
/// Who may move buckets between stamps: the operator's tools (`strata bucket move`).
pub const MOVER_ROLES: [Role; 1] = [Role::Operator];
/// Who may abort a move: its mover, and a front-end that found the move's fence on the source
/// outliving its deadline (crates/frontend/src/move_fence.rs).
pub const MOVE_ABORTER_ROLES: [Role; 2] = [Role::Operator, Role::Frontend];
/// Most buckets one ListOwnedBuckets answer lists (AWS's default quota of buckets per
/// account).
pub const OWNED_BUCKETS_LISTED_MAX: usize = 10_000;
/// Longest bucket name S3 allows.
const BUCKET_NAME_BYTES_MAX: usize = 63;

pub struct LocationService {
    namespace: Namespace,
}

impl LocationService {
    pub fn new(namespace: Namespace) -> Self {
        Self { namespace }
    }
}

/// The one mapping of namespace errors to statuses.
fn status(err: NamespaceError) -> Status {
    let message = err.to_string();
    let detail = match err {
        NamespaceError::NotLeader { leader_hint } => ErrorDetail::NotLeader { leader_hint },
        NamespaceError::Importing => ErrorDetail::Unavailable {
            reason: UnavailableReason::Loading,
        },
        NamespaceError::Rejected(_) => ErrorDetail::Rejected {
            reason: RejectReason::InvalidArgument,
        },
        NamespaceError::Group(group) => {
            tracing::warn!(err = %group, "location group could not answer");
            match group {
                strata_raft::GroupError::Corrupt { .. } => ErrorDetail::Corrupt,
                // This member cannot answer now (stopping, storage failing, no quorum in
                // time): another member may.
                _ => ErrorDetail::Unavailable {
                    reason: UnavailableReason::Dependency,
                },
            }
        }
    };
    to_status(detail, message)
}

fn valid_name(bucket: &str) -> Result<(), Status> {
    if bucket.is_empty() || bucket.len() > BUCKET_NAME_BYTES_MAX {
        return Err(to_status(
            ErrorDetail::Rejected {
                reason: RejectReason::InvalidArgument,
            },
            format!("bucket name must be 1 to {BUCKET_NAME_BYTES_MAX} bytes"),
        ));
    }
    Ok(())
}

/// Longest move id a mover may choose.
const MOVE_ID_BYTES_MAX: usize = 64;

fn valid_move_id(move_id: &str) -> Result<(), Status> {
    if move_id.is_empty() || move_id.len() > MOVE_ID_BYTES_MAX {
        return Err(to_status(
            ErrorDetail::Rejected {
                reason: RejectReason::InvalidArgument,
            },
            format!("move id must be 1 to {MOVE_ID_BYTES_MAX} bytes"),
        ));
    }
    Ok(())
}

fn to_proto(record: BucketRecord) -> BucketLocation {
    BucketLocation {
        bucket: record.bucket,
        stamp: record.stamp,
        owner_access_key: record.owner_access_key,
        created_ms: record.created_ms,
        region: String::new(),
        last_move: record.last_move.map(move_to_proto),
    }
}

fn move_to_proto(record: MoveRecord) -> BucketMove {
    let state = match record.state {
        crate::machine::MoveState::Copying => MoveState::Copying,
        crate::machine::MoveState::Completed => MoveState::Completed,
        crate::machine::MoveState::Aborted => MoveState::Aborted,
    };
    BucketMove {
        move_id: record.move_id,
        from: record.from,
        to: record.to,
        started_ms: record.started_ms,
        state: state as i32,
        fence_ms: record.fence_ms,
    }
}

/// A move command's answer: accepted with the record, or refused with the reason (and the
/// bucket as it stands, when it exists).
async fn move_answer(
    namespace: &Namespace,
    bucket: &str,
    result: Result<BucketRecord, NamespaceError>,
) -> Result<MoveResponse, Status> {
    match result {
        Ok(record) => Ok(MoveResponse {
            accepted: true,
            reason: String::new(),
            location: Some(to_proto(record)),
        }),
        Err(NamespaceError::Rejected(reason)) => Ok(MoveResponse {
            accepted: false,
            reason,
            location: namespace
                .lookup(bucket)
                .await
                .map_err(status)?
                .map(to_proto),
        }),
        Err(err) => Err(status(err)),
    }
}

#[tonic::async_trait]
impl Location for LocationService {
    async fn reserve_bucket(
        &self,
        request: Request<ReserveBucketRequest>,
    ) -> Result<Response<ReserveBucketResponse>, Status> {
        authorize_any_stamp(&request, &NAME_WRITER_ROLES)?;
        let request = request.into_inner();
        valid_name(&request.bucket)?;
        let stamp = Some(request.stamp.as_str()).filter(|stamp| !stamp.is_empty());
        let reservation = self
            .namespace
            .reserve(&request.bucket, &request.owner_access_key, stamp)
            .await
            .map_err(status)?;
        let answer = match reservation {
            Reservation::Reserved(held) => {
                tracing::info!(bucket = %held.bucket, stamp = %held.stamp, "bucket name reserved");
                ReserveBucketResponse {
                    reserved: true,
                    location: Some(to_proto(held)),
                }
            }
            Reservation::Taken(held) => ReserveBucketResponse {
                reserved: false,
                location: Some(to_proto(held)),
            },
        };
        Ok(Response::new(answer))
    }

    async fn lookup_bucket(
        &self,
        request: Request<LookupBucketRequest>,
    ) -> Result<Response<LookupBucketResponse>, Status> {
        authorize_any_stamp(&request, &NAME_READER_ROLES)?;
        let LookupBucketRequest { bucket, applied_ok } = request.into_inner();
        valid_name(&bucket)?;
        let location = if applied_ok {
            self.namespace.lookup_applied(&bucket).await
        } else {
            self.namespace.lookup(&bucket).await
        };
        let location = location.map_err(status)?;
        Ok(Response::new(LookupBucketResponse {
            location: location.map(to_proto),
        }))
    }

    async fn release_bucket(
        &self,
        request: Request<ReleaseBucketRequest>,
    ) -> Result<Response<ReleaseBucketResponse>, Status> {
        authorize_any_stamp(&request, &NAME_WRITER_ROLES)?;
        let request = request.into_inner();
        valid_name(&request.bucket)?;
        let released = self
            .namespace
            .release(&request.bucket, &request.owner_access_key)
            .await
            .map_err(status)?;
        if released {
            tracing::info!(bucket = %request.bucket, "bucket name released");
        }
        Ok(Response::new(ReleaseBucketResponse { released }))
    }

    async fn list_stamps(
        &self,
        request: Request<ListStampsRequest>,
    ) -> Result<Response<ListStampsResponse>, Status> {
        authorize_any_stamp(&request, &NAME_READER_ROLES)?;
        let stamps = self
            .namespace
            .stamps()
            .await
            .map_err(status)?
            .into_iter()
            .map(|summary| {
                let stamp = summary.stamp;
                Stamp {
                    name: stamp.name,
                    frontend_endpoint: stamp.endpoints.first().cloned().unwrap_or_default(),
                    buckets: summary.buckets,
                    region: stamp.region,
                    state: match stamp.state {
                        StampState::Open => "open".into(),
                        StampState::Draining => "draining".into(),
                    },
                    endpoints: stamp.endpoints,
                    capacity_bytes: stamp.capacity_bytes,
                    stored_bytes: stamp.stored_bytes,
                }
            })
            .collect();
        Ok(Response::new(ListStampsResponse { stamps }))
    }

    async fn report_stamp(
        &self,
        request: Request<ReportStampRequest>,
    ) -> Result<Response<ReportStampResponse>, Status> {
        authorize_any_stamp(&request, &STAMP_REPORTER_ROLES)?;
        let request = request.into_inner();
        let endpoint = Some(request.endpoint.as_str()).filter(|e| !e.is_empty());
        let changed = self
            .namespace
            .report_stamp(&request.stamp, &request.region, endpoint)
            .await
            .map_err(status)?;
        Ok(Response::new(ReportStampResponse { changed }))
    }

    async fn report_fill(
        &self,
        request: Request<ReportFillRequest>,
    ) -> Result<Response<ReportFillResponse>, Status> {
        authorize_any_stamp(&request, &FILL_REPORTER_ROLES)?;
        let request = request.into_inner();
        let changed = self
            .namespace
            .report_fill(&request.stamp, request.capacity_bytes, request.stored_bytes)
            .await
            .map_err(status)?;
        Ok(Response::new(ReportFillResponse { changed }))
    }

    async fn begin_move(
        &self,
        request: Request<BeginMoveRequest>,
    ) -> Result<Response<MoveResponse>, Status> {
        authorize_any_stamp(&request, &MOVER_ROLES)?;
        let request = request.into_inner();
        valid_name(&request.bucket)?;
        valid_move_id(&request.move_id)?;
        let result = self
            .namespace
            .begin_move(&request.bucket, &request.to, &request.move_id)
            .await;
        let answer = move_answer(&self.namespace, &request.bucket, result).await?;
        if answer.accepted {
            tracing::info!(bucket = %request.bucket, to = %request.to, move_id = %request.move_id, "bucket move begun");
        }
        Ok(Response::new(answer))
    }

    async fn end_move(
        &self,
        request: Request<EndMoveRequest>,
    ) -> Result<Response<MoveResponse>, Status> {
        let complete = request.get_ref().complete;
        authorize_any_stamp(
            &request,
            if complete {
                &MOVER_ROLES[..]
            } else {
                &MOVE_ABORTER_ROLES[..]
            },
        )?;
        let request = request.into_inner();
        valid_name(&request.bucket)?;
        valid_move_id(&request.move_id)?;
        let result = self
            .namespace
            .end_move(
                &request.bucket,
                &request.move_id,
                request.complete.then_some(request.fence_ms),
            )
            .await;
        let answer = move_answer(&self.namespace, &request.bucket, result).await?;
        if answer.accepted {
            tracing::info!(bucket = %request.bucket, move_id = %request.move_id, complete = request.complete, "bucket move ended");
        }
        Ok(Response::new(answer))
    }

    async fn set_stamp_state(
        &self,
        request: Request<SetStampStateRequest>,
    ) -> Result<Response<SetStampStateResponse>, Status> {
        authorize_any_stamp(&request, &MOVER_ROLES)?;
        let request = request.into_inner();
        let to = match request.state.as_str() {
            "open" => StampState::Open,
            "draining" => StampState::Draining,
            other => {
                return Err(to_status(
                    ErrorDetail::Rejected {
                        reason: RejectReason::InvalidArgument,
                    },
                    format!("stamp state must be open or draining, not {other:?}"),
                ))
            }
        };
        self.namespace
            .set_stamp_state(&request.stamp, to)
            .await
            .map_err(status)?;
        tracing::info!(stamp = %request.stamp, state = %request.state, "stamp state set");
        Ok(Response::new(SetStampStateResponse {}))
    }

    async fn list_stamp_buckets(
        &self,
        request: Request<ListStampBucketsRequest>,
    ) -> Result<Response<ListStampBucketsResponse>, Status> {
        authorize_any_stamp(&request, &MOVER_ROLES)?;
        let request = request.into_inner();
        let limit = (request.limit as usize).clamp(1, OWNED_BUCKETS_LISTED_MAX);
        let (buckets, truncated) = self
            .namespace
            .stamp_buckets(&request.stamp, limit)
            .await
            .map_err(status)?;
        Ok(Response::new(ListStampBucketsResponse {
            buckets: buckets.into_iter().map(to_proto).collect(),
            truncated,
        }))
    }

    async fn list_owned_buckets(
        &self,
        request: Request<ListOwnedBucketsRequest>,
    ) -> Result<Response<ListOwnedBucketsResponse>, Status> {
        authorize_any_stamp(&request, &NAME_READER_ROLES)?;
        let owner = request.into_inner().owner_access_key;
        let (buckets, truncated) = self
            .namespace
            .owned_buckets(&owner, OWNED_BUCKETS_LISTED_MAX)
            .await
            .map_err(status)?;
        let regions: std::collections::HashMap<String, String> = self
            .namespace
            .local_stamps()
            .map_err(status)?
            .into_iter()
            .map(|summary| (summary.stamp.name, summary.stamp.region))
            .collect();
        let buckets = buckets
            .into_iter()
            .map(|record| {
                let region = regions.get(&record.stamp).cloned().unwrap_or_default();
                BucketLocation {
                    region,
                    ..to_proto(record)
                }
            })
            .collect();
        Ok(Response::new(ListOwnedBucketsResponse {
            buckets,
            truncated,
        }))
    }
}
