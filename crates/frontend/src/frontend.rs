//! The front-end's state (partition routing, location client, config) and the calls every
//! operation family shares: bucket existence and object metadata.

use crate::bucket_cache::{BucketCache, BUCKET_CACHE_ENTRIES_MAX};
use crate::config::FrontendConfig;
use crate::error::{FrontendError, Refusal, NO_SUCH_KEY_MESSAGE};
use crate::routing::Router;
use crate::stamp_report::StampReporter;
use s3s::S3Result;
use std::sync::Arc;
use std::time::Duration;
use strata_location::LocationClient;
use strata_proto::common::{BucketMeta, ObjectMeta};
use strata_proto::partition::{GetBucketRequest, HeadObjectRequest};
use strata_types::keys;
use strata_types::ErrorDetail;

/// The S3 service: implements `s3s::S3` (see `s3.rs`), one module per operation family.
/// Cheap to clone (the forwarder keeps one to read bucket records).
#[derive(Clone)]
pub struct Frontend {
    pub(crate) router: Arc<Router>,
    /// The location group (members from `--location`), when configured.
    pub(crate) location: Option<Arc<LocationClient>>,
    /// Reports this stamp to the location group (with `location`).
    pub(crate) stamp_reporter: Option<Arc<StampReporter>>,
    pub(crate) config: FrontendConfig,
    /// Recently read bucket records (see `bucket_cache.rs`).
    pub(crate) buckets: Arc<BucketCache>,
    /// Moves whose stale fence this front-end is ending (see `move_fence.rs`).
    pub(crate) fences: Arc<crate::move_fence::Claims>,
    pub(crate) imports: Arc<crate::move_fence::Claims>,
    /// The forwarder (set once it exists, by `server::start`): other stamps' links, for the
    /// replica sink's front-end calls (`replicated_through.rs`). Weak: it holds a Frontend.
    pub(crate) links: Arc<std::sync::OnceLock<std::sync::Weak<crate::forward::Forwarder>>>,
    /// Destination buckets' recently computed `x-strata-replicated-through`.
    pub(crate) through: Arc<crate::replicated_through::Recent>,
}

impl Frontend {
    pub fn new(config: FrontendConfig) -> Result<Self, FrontendError> {
        let router = Arc::new(Router::new(
            &config.manager_addrs,
            Duration::from_millis(config.retry_budget_ms),
        )?);
        let location = match &config.location_addr {
            Some(addrs) => Some(Arc::new(LocationClient::new(addrs).map_err(|err| {
                FrontendError::Config(format!("location members {addrs:?}: {err}"))
            })?)),
            None => None,
        };
        let stamp_reporter = location.as_ref().map(|location| {
            Arc::new(StampReporter::new(
                location.clone(),
                &config.stamp,
                &config.region,
                config.stamp_endpoint.as_deref().unwrap_or_default(),
            ))
        });
        Ok(Self {
            router,
            location,
            stamp_reporter,
            buckets: Arc::new(BucketCache::new(
                config.bucket_cache_ttl_ms,
                BUCKET_CACHE_ENTRIES_MAX,
            )),
            fences: Arc::default(),
            imports: Arc::default(),
            links: Arc::default(),
            through: Arc::default(),
            config,
        })
    }

    pub fn router(&self) -> &Arc<Router> {
        &self.router
    }

    pub fn config(&self) -> &FrontendConfig {
        &self.config
    }

    /// The bucket record this stamp serves, None when there is no such bucket; a record read
    /// within the bucket cache's TTL is reused. A copy this stamp does not serve (moved away,
    /// or being filled by a move) is refused with `BucketMoved`, which clients see as a
    /// retryable SlowDown: their retry finds the home the location group names. So is a
    /// record whose fence outlived its mover, reads included, until the move is ended: it may
    /// have completed, and the target may serve (crates/frontend/src/move_serve.rs).
    pub(crate) async fn get_bucket(&self, name: &str) -> Result<Option<BucketMeta>, FrontendError> {
        let record = self.get_bucket_record(name).await?;
        if let Some(bucket) = &record {
            self.resolve_stale_fence(bucket);
            self.serve_completed_import(bucket);
        }
        let now_ms = strata_util::now_ms();
        let refused =
            |b: &&BucketMeta| !serves_here(b) || crate::move_fence::stale_fence(b, now_ms);
        if let Some(bucket) = record.as_ref().filter(refused) {
            let stamp = Some(bucket.moved_to.clone()).filter(|s| !s.is_empty());
            let detail = strata_types::error_detail::ErrorDetail::BucketMoved { stamp };
            return Err(FrontendError::Rpc(strata_types::error_detail::to_status(
                detail,
                format!("bucket {name} is not served by this stamp"),
            )));
        }
        Ok(record)
    }

    /// The bucket record this stamp holds, whatever its move state (see [`serves_here`]).
    pub(crate) async fn get_bucket_record(
        &self,
        name: &str,
    ) -> Result<Option<BucketMeta>, FrontendError> {
        if let Some(bucket) = self.buckets.get(name) {
            return Ok(Some(bucket));
        }
        let generation = self.buckets.generation();
        let request = GetBucketRequest {
            name: name.to_string(),
            lease: false,
        };
        let (response, _) = self
            .router
            .call(&keys::bucket_key(name), false, |mut client, _| {
                let request = request.clone();
                async move { client.get_bucket(request).await.map(|r| r.into_inner()) }
            })
            .await?;
        if let Some(bucket) = &response.bucket {
            self.buckets.insert(bucket.clone(), generation);
        }
        Ok(response.bucket)
    }

    /// The bucket record, or NoSuchBucket (or `BucketMoved`, see [`Self::get_bucket`]).
    pub(crate) async fn require_bucket(&self, name: &str) -> S3Result<BucketMeta> {
        match self.get_bucket(name).await? {
            Some(bucket) => Ok(bucket),
            None => Err(FrontendError::refused(
                Refusal::NoSuchBucket,
                "The specified bucket does not exist",
            )
            .into()),
        }
    }

    /// One version of a key (None: the current one; "null": the null version), delete markers
    /// included; None when there is no such key or version.
    pub(crate) async fn head_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<ObjectMeta>, FrontendError> {
        let request = HeadObjectRequest {
            bucket: bucket.to_string(),
            key: key.to_string(),
            version_id: version_id.unwrap_or_default().to_string(),
        };
        let result = self
            .router
            .call(&keys::object_key(bucket, key), false, |mut client, _| {
                let request = request.clone();
                async move { client.head_object(request).await.map(|r| r.into_inner()) }
            })
            .await;
        match result {
            Ok((response, _)) => Ok(response.meta),
            Err(FrontendError::Rpc(status)) if is_no_such_key(&status) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The access key of the signed request (s3s and `DenyAnonymous` guarantee one).
    pub(crate) fn requester(credentials: Option<&s3s::auth::Credentials>) -> S3Result<String> {
        credentials
            .map(|c| c.access_key.clone())
            .ok_or_else(|| FrontendError::refused(Refusal::AccessDenied, "Access Denied").into())
    }
}

/// A NOT_FOUND that means "no such key" (not "no such bucket").
pub(crate) fn is_no_such_key(status: &tonic::Status) -> bool {
    use strata_types::error_detail::{from_status, Missing};
    match from_status(status) {
        Some(ErrorDetail::NotFound { what, .. }) => what == Missing::Key,
        Some(_) => false,
        None => status.code() == tonic::Code::NotFound,
    }
}

/// NoSuchKey: no such key, or its current version is a delete marker.
pub(crate) fn no_such_key() -> s3s::S3Error {
    FrontendError::refused(Refusal::NoSuchKey, NO_SUCH_KEY_MESSAGE).into()
}

pub(crate) fn no_such_version() -> s3s::S3Error {
    let message = "The specified version does not exist.";
    FrontendError::refused(Refusal::NoSuchVersion, message).into()
}

/// An XML body S3 would not accept (the message S3 gives for any schema violation).
pub(crate) fn malformed_xml() -> s3s::S3Error {
    let message =
        "The XML you provided was not well-formed or did not validate against our published schema";
    FrontendError::refused(Refusal::MalformedXml, message).into()
}

/// An If-* precondition of a read or a copy source does not hold.
pub(crate) fn precondition_failed() -> s3s::S3Error {
    let message = "At least one of the pre-conditions you specified did not hold";
    FrontendError::refused(Refusal::PreconditionFailed, message).into()
}

/// The version id S3 shows for `meta` in a bucket with `versioning`: its id, "null" for the
/// null version of a bucket that is (or was) versioned, nothing in an unversioned bucket.
pub(crate) fn shown_version_id(meta_version_id: &str, versioning: i32) -> Option<String> {
    if !meta_version_id.is_empty() {
        return Some(meta_version_id.to_string());
    }
    (versioning != strata_proto::common::VersioningState::Unversioned as i32)
        .then(|| "null".to_string())
}

/// Whether this stamp serves the bucket whose record it holds: not when a move filled it and
/// has not switched its home here yet (`importing`), nor once it moved away (`moved_to`).
pub fn serves_here(bucket: &BucketMeta) -> bool {
    !bucket.importing && bucket.moved_to.is_empty()
}
