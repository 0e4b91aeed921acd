//! The `Location` gRPC service.

use crate::store::{LocationStore, Reservation, StoreError};
use strata_proto::location::location_server::Location;
use strata_proto::location::*;
use strata_types::error_detail::{to_status, ErrorDetail, RejectReason};
use strata_types::Role;
use strata_util::tls::authorize;
use tonic::{Request, Response, Status};

/// Who may reserve or release a bucket name over mutual TLS: the front-ends, which do it for
/// CreateBucket and DeleteBucket after authenticating the S3 caller.
pub const NAME_WRITER_ROLES: [Role; 1] = [Role::Frontend];
/// Who may look names and stamps up: the front-ends and the operator's tools.
pub const NAME_READER_ROLES: [Role; 2] = [Role::Frontend, Role::Operator];

pub struct LocationService {
    store: LocationStore,
    /// This deployment's stamps (name, front-end endpoint). Empty reservations go to the first.
    stamps: Vec<(String, String)>,
}

impl LocationService {
    pub fn new(store: LocationStore, stamps: Vec<(String, String)>) -> Self {
        Self { store, stamps }
    }

    /// The stamp holding the fewest buckets: where a new bucket goes when the caller names none.
    fn emptiest_stamp(&self) -> Result<String, StoreError> {
        let counts = self.store.count_by_stamp()?;
        Ok(self
            .stamps
            .iter()
            .min_by_key(|(name, _)| counts.get(name).copied().unwrap_or(0))
            .map(|(name, _)| name.clone())
            .unwrap_or_else(|| "stamp-1".to_string()))
    }
}

fn internal(err: StoreError) -> Status {
    tracing::error!(%err, "location store failed");
    let detail = match err {
        StoreError::Corrupt { .. } => ErrorDetail::Corrupt,
        StoreError::Sled(_) => ErrorDetail::Internal,
    };
    to_status(detail, err.to_string())
}

fn valid_name(bucket: &str) -> Result<(), Status> {
    if bucket.is_empty() || bucket.len() > 63 {
        return Err(to_status(
            ErrorDetail::Rejected {
                reason: RejectReason::InvalidArgument,
            },
            "bucket name must be 1 to 63 bytes",
        ));
    }
    Ok(())
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
        let stamp = if request.stamp.is_empty() {
            self.emptiest_stamp().map_err(internal)?
        } else {
            request.stamp
        };
        let wanted = BucketLocation {
            bucket: request.bucket,
            stamp,
            owner_access_key: request.owner_access_key,
            created_ms: strata_util::now_ms(),
        };
        let answer = match self.store.reserve(wanted).await.map_err(internal)? {
            Reservation::Reserved(location) => {
                tracing::info!(bucket = %location.bucket, stamp = %location.stamp, "bucket name reserved");
                ReserveBucketResponse {
                    reserved: true,
                    location: Some(location),
                }
            }
            Reservation::Taken(location) => ReserveBucketResponse {
                reserved: false,
                location: Some(location),
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
        let location = self.store.lookup(&bucket).map_err(internal)?;
        Ok(Response::new(LookupBucketResponse { location }))
    }

    async fn release_bucket(
        &self,
        request: Request<ReleaseBucketRequest>,
    ) -> Result<Response<ReleaseBucketResponse>, Status> {
        authorize(&request, &NAME_WRITER_ROLES)?;
        let request = request.into_inner();
        let released = self
            .store
            .release(&request.bucket, &request.owner_access_key)
            .await
            .map_err(internal)?;
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
        let counts = self.store.count_by_stamp().map_err(internal)?;
        let stamps = self
            .stamps
            .iter()
            .map(|(name, endpoint)| Stamp {
                name: name.clone(),
                frontend_endpoint: endpoint.clone(),
                buckets: counts.get(name).copied().unwrap_or(0),
            })
            .collect();
        Ok(Response::new(ListStampsResponse { stamps }))
    }
}
