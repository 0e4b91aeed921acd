//! Bucket operations: ListBuckets, CreateBucket, HeadBucket, GetBucketLocation, DeleteBucket.
//!
//! ListBuckets lists the requester's buckets on this stamp (its partition records) and on
//! every other stamp (the location group's names, with their stamps' regions).
//!
//! CreateBucket reserves the name globally (location service) before the stamp's partition
//! layer records it; DeleteBucket checks emptiness over every range that can hold the
//! bucket's objects (walking them in key order, `stretches.rs`), deletes the record, then
//! releases the name.

use crate::error::{FrontendError, Refusal};
use crate::frontend::Frontend;
use crate::naming::is_valid_bucket_name;
use crate::stretches::Stretches;
use s3s::dto::{
    Bucket, BucketLocationConstraint, CreateBucketInput, CreateBucketOutput,
    GetBucketLocationOutput, ListBucketsOutput, Owner,
};
use s3s::S3Result;
use std::collections::BTreeMap;
use strata_proto::common::BucketMeta;
use strata_proto::location::{BucketLocation, ReleaseBucketRequest, ReserveBucketRequest};
use strata_proto::partition::{
    CountObjectsRequest, CreateBucketRequest, DeleteBucketRequest, ListBucketsRequest,
};
use strata_types::keys;

/// Bound on asking the location group for a requester's buckets on other stamps.
pub const OWNED_LIST_TIMEOUT_MS: u64 = 3_000;

impl Frontend {
    pub(crate) async fn list_buckets_for(&self, requester: &str) -> S3Result<ListBucketsOutput> {
        let low = vec![keys::TABLE_BUCKETS];
        let high = vec![keys::TABLE_BUCKETS + 1];
        let routes = self.router.overlapping(&low, &high).await?;
        let mut buckets: BTreeMap<String, BucketMeta> = BTreeMap::new();
        let mut asked = std::collections::HashSet::new();
        for route in routes {
            if !asked.insert(route.owner_addr.clone()) && !route.owner_addr.is_empty() {
                continue;
            }
            let key = std::cmp::max(route.low.clone(), low.clone());
            let (response, _) = self
                .router
                .call(&key, false, |mut client, _| async move {
                    client
                        .list_buckets(ListBucketsRequest {})
                        .await
                        .map(|r| r.into_inner())
                })
                .await?;
            for bucket in response.buckets {
                buckets.insert(bucket.name.clone(), bucket);
            }
        }
        let mut listed: BTreeMap<String, Bucket> = buckets
            .into_values()
            .filter(|b| b.owner_access_key.is_empty() || b.owner_access_key == requester)
            // A copy a move fills or left behind is listed from its home, below.
            .filter(crate::frontend::serves_here)
            .map(|b| {
                let bucket = Bucket {
                    bucket_region: Some(self.config.region.clone()),
                    creation_date: Some(crate::meta::timestamp_from_ms(b.created_ms)),
                    name: Some(b.name.clone()),
                };
                (b.name, bucket)
            })
            .collect();
        for remote in self.buckets_on_other_stamps(requester).await {
            listed
                .entry(remote.bucket.clone())
                .or_insert_with(|| Bucket {
                    bucket_region: Some(remote.region),
                    creation_date: Some(crate::meta::timestamp_from_ms(remote.created_ms)),
                    name: Some(remote.bucket),
                });
        }
        let list = listed.into_values().collect();
        Ok(ListBucketsOutput {
            buckets: Some(list),
            owner: Some(owner(requester)),
            ..Default::default()
        })
    }

    /// The requester's buckets homed on other stamps, as the location group lists them
    /// (bounded by [`OWNED_LIST_TIMEOUT_MS`]). When the group cannot answer, none: ListBuckets
    /// then lists this stamp's buckets only, rather than failing while the location group
    /// elects or is away.
    async fn buckets_on_other_stamps(&self, requester: &str) -> Vec<BucketLocation> {
        let Some(location) = &self.location else {
            return Vec::new();
        };
        let timeout = std::time::Duration::from_millis(OWNED_LIST_TIMEOUT_MS);
        match tokio::time::timeout(timeout, location.list_owned_buckets(requester)).await {
            Ok(Ok(answer)) => {
                if answer.truncated {
                    tracing::warn!(
                        requester,
                        "more buckets are held than the location group lists"
                    );
                }
                // This stamp's own buckets were listed from its records, except one a move
                // just brought here (its copy is served once the switch settles).
                let own = &self.config.stamp;
                answer
                    .buckets
                    .into_iter()
                    .filter(|b| &b.stamp != own || b.last_move.is_some())
                    .collect()
            }
            Ok(Err(err)) => {
                tracing::warn!(%err, "the location group did not list the requester's buckets; listing this stamp's");
                Vec::new()
            }
            Err(_) => {
                tracing::warn!("the location group did not list the requester's buckets in {OWNED_LIST_TIMEOUT_MS} ms; listing this stamp's");
                Vec::new()
            }
        }
    }

    pub(crate) async fn create_bucket_as(
        &self,
        input: &CreateBucketInput,
        requester: &str,
    ) -> S3Result<CreateBucketOutput> {
        let name = input.bucket.as_str();
        if !is_valid_bucket_name(name) {
            return Err(FrontendError::refused(
                Refusal::InvalidBucketName,
                "The specified bucket is not valid.",
            )
            .into());
        }
        let constraint = input
            .create_bucket_configuration
            .as_ref()
            .and_then(|c| c.location_constraint.as_ref())
            .map(|c| c.as_str().to_string())
            .filter(|c| !c.is_empty());
        if let Some(constraint) = constraint {
            if constraint != self.config.region {
                return Err(FrontendError::refused(
                    Refusal::WrongRegion,
                    "The specified location-constraint is not valid for this endpoint.",
                )
                .into());
            }
        }

        if let Some(location) = &self.location {
            if let Some(reporter) = &self.stamp_reporter {
                // A name is reserved on a registered stamp only.
                reporter
                    .ensure_registered()
                    .await
                    .map_err(FrontendError::Rpc)?;
            }
            let response = location
                .reserve_bucket(ReserveBucketRequest {
                    bucket: name.to_string(),
                    owner_access_key: requester.to_string(),
                    stamp: self.config.stamp.clone(),
                })
                .await
                .map_err(FrontendError::Rpc)?;
            if let Some(existing) = response.location.as_ref() {
                if existing.owner_access_key != requester {
                    return Err(already_exists());
                }
                if existing.stamp != self.config.stamp {
                    if response.reserved {
                        tracing::warn!(bucket = name, stamp = %existing.stamp, "location service placed the bucket on another stamp");
                    }
                    return Err(already_owned());
                }
            } else if !response.reserved {
                return Err(already_exists());
            }
        }

        let request = CreateBucketRequest {
            bucket: Some(BucketMeta {
                name: name.to_string(),
                created_ms: strata_util::now_ms(),
                owner_access_key: requester.to_string(),
                ..Default::default()
            }),
            geo_replica: false,
        };
        let response = self
            .router
            .call(&keys::bucket_key(name), false, |mut client, _| {
                let request = request.clone();
                async move { client.create_bucket(request).await.map(|r| r.into_inner()) }
            })
            .await;
        self.buckets.invalidate(name);
        let (response, _) = response?;
        if !response.created {
            if response
                .bucket
                .as_ref()
                .is_some_and(crate::geo_replica::is_geo_copy)
            {
                // Left by an earlier bucket of this name homed elsewhere (docs/replication.md).
                return Err(FrontendError::refused(
                    Refusal::OperationAborted,
                    "This stamp still holds the geo-replica copy of an earlier bucket of this \
                     name; create it on another stamp, or remove the copy first (strata bucket drop-copy).",
                )
                .into());
            }
            let existing_owner = response
                .bucket
                .map(|b| b.owner_access_key)
                .unwrap_or_default();
            if !existing_owner.is_empty() && existing_owner != requester {
                return Err(already_exists());
            }
            return Err(already_owned());
        }
        tracing::info!(bucket = name, owner = requester, "bucket created");
        Ok(CreateBucketOutput {
            location: Some(format!("/{name}")),
        })
    }

    pub(crate) async fn bucket_location(&self, name: &str) -> S3Result<GetBucketLocationOutput> {
        self.require_bucket(name).await?;
        // S3 answers an empty LocationConstraint for us-east-1.
        let location_constraint = (self.config.region != "us-east-1")
            .then(|| BucketLocationConstraint::from(self.config.region.clone()));
        Ok(GetBucketLocationOutput {
            location_constraint,
        })
    }

    pub(crate) async fn delete_bucket_named(&self, name: &str) -> S3Result<()> {
        let bucket = self.require_bucket(name).await?;
        let prefix = keys::object_prefix(name);
        let end = keys::prefix_end(&prefix).unwrap_or_default();
        let mut stretches = Stretches::new(prefix, end);
        while let Some(from) = stretches.next_from()? {
            let request = CountObjectsRequest {
                bucket: name.to_string(),
                limit: 1,
                from: from.clone(),
            };
            let (response, _) = self
                .router
                .call(&from, false, |mut client, _| {
                    let request = request.clone();
                    async move { client.count_objects(request).await.map(|r| r.into_inner()) }
                })
                .await?;
            if response.count > 0 {
                return Err(FrontendError::refused(
                    Refusal::BucketNotEmpty,
                    "The bucket you tried to delete is not empty",
                )
                .into());
            }
            stretches.covered(&response, None)?;
        }
        let request = DeleteBucketRequest {
            name: name.to_string(),
        };
        let response = self
            .router
            .call(&keys::bucket_key(name), false, |mut client, _| {
                let request = request.clone();
                async move { client.delete_bucket(request).await.map(|r| r.into_inner()) }
            })
            .await;
        self.buckets.invalidate(name);
        let (response, _) = response?;
        if !response.existed {
            return Err(FrontendError::refused(
                Refusal::NoSuchBucket,
                "The specified bucket does not exist",
            )
            .into());
        }
        if let Some(location) = &self.location {
            let release = ReleaseBucketRequest {
                bucket: name.to_string(),
                owner_access_key: bucket.owner_access_key.clone(),
            };
            let mut released = location.release_bucket(release.clone()).await;
            // A name is not released while a move copies the bucket: the deletion wins, the
            // move is aborted (its mover then removes its copy), and the name released.
            if released.is_err() && self.abort_copying_move(location, name).await {
                released = location.release_bucket(release).await;
            }
            if let Err(status) = released {
                // The stamp no longer has the bucket; the name stays reserved until an
                // operator (or a retried DeleteBucket after re-creation) releases it.
                tracing::error!(bucket = name, %status, "bucket deleted but its name was not released");
            }
        }
        tracing::info!(bucket = name, "bucket deleted");
        Ok(())
    }
}

pub(crate) fn owner(access_key: &str) -> Owner {
    Owner {
        display_name: Some(access_key.to_string()),
        id: Some(access_key.to_string()),
    }
}

fn already_exists() -> s3s::S3Error {
    FrontendError::refused(
        Refusal::BucketTaken,
        "The requested bucket name is not available. Please select a different name and try again.",
    )
    .into()
}

fn already_owned() -> s3s::S3Error {
    FrontendError::refused(
        Refusal::BucketAlreadyYours,
        "Your previous request to create the named bucket succeeded and you already own it.",
    )
    .into()
}
