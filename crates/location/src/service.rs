//! The `Location` gRPC service over one member's [`Namespace`]: checks the caller's role and
//! the request's bounds, and maps the namespace's answers and errors to the wire once.

use crate::machine::{BucketRecord, StampState};
use crate::namespace::{Namespace, NamespaceError, Reservation};
use strata_proto::location::location_server::Location;
use strata_proto::location::*;
use strata_types::error_detail::{to_status, ErrorDetail, RejectReason, UnavailableReason};
use strata_types::Role;
use strata_util::tls::authorize;
use tonic::{Request, Response, Status};

/// Who may reserve or release a bucket name over mutual TLS: the front-ends, which do it for
/// CreateBucket and DeleteBucket after authenticating the S3 caller.
pub const NAME_WRITER_ROLES: [Role; 1] = [Role::Frontend];
/// Who may look names and stamps up: the front-ends and the operator's tools.
pub const NAME_READER_ROLES: [Role; 2] = [Role::Frontend, Role::Operator];
/// Who may report a stamp: its front-ends.
pub const STAMP_REPORTER_ROLES: [Role; 1] = [Role::Frontend];
/// Who may report a stamp's capacity and usage: its stream manager group's leader.
pub const FILL_REPORTER_ROLES: [Role; 1] = [Role::StreamManager];
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

fn to_proto(record: BucketRecord) -> BucketLocation {
    BucketLocation {
        bucket: record.bucket,
        stamp: record.stamp,
        owner_access_key: record.owner_access_key,
        created_ms: record.created_ms,
        region: String::new(),
    }
}

#[tonic::async_trait]
impl Location for LocationService {
    async fn reserve_bucket(
        &self,
        request: Request<ReserveBucketRequest>,
    ) -> Result<Response<ReserveBucketResponse>, Status> {
        authorize(&request, &NAME_WRITER_ROLES)?;
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
        authorize(&request, &NAME_READER_ROLES)?;
        let bucket = request.into_inner().bucket;
        valid_name(&bucket)?;
        let location = self.namespace.lookup(&bucket).await.map_err(status)?;
        Ok(Response::new(LookupBucketResponse {
            location: location.map(to_proto),
        }))
    }

    async fn release_bucket(
        &self,
        request: Request<ReleaseBucketRequest>,
    ) -> Result<Response<ReleaseBucketResponse>, Status> {
        authorize(&request, &NAME_WRITER_ROLES)?;
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
        authorize(&request, &NAME_READER_ROLES)?;
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
        authorize(&request, &STAMP_REPORTER_ROLES)?;
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
        authorize(&request, &FILL_REPORTER_ROLES)?;
        let request = request.into_inner();
        let changed = self
            .namespace
            .report_fill(&request.stamp, request.capacity_bytes, request.stored_bytes)
            .await
            .map_err(status)?;
        Ok(Response::new(ReportFillResponse { changed }))
    }

    async fn list_owned_buckets(
        &self,
        request: Request<ListOwnedBucketsRequest>,
    ) -> Result<Response<ListOwnedBucketsResponse>, Status> {
        authorize(&request, &NAME_READER_ROLES)?;
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
