//! Bucket records: `keys::bucket_key(name) -> BucketMeta` in whichever range holds that key.

use strata_proto::partition::*;
use strata_types::keys;

use crate::error::PartitionError;
use crate::range::IndexValue;
use crate::server::PartitionServerState;

pub async fn create(
    state: &PartitionServerState,
    request: CreateBucketRequest,
) -> Result<CreateBucketResponse, PartitionError> {
    let bucket = request
        .bucket
        .ok_or_else(|| PartitionError::InvalidArgument("missing bucket".into()))?;
    if bucket.name.is_empty() || bucket.name.as_bytes().contains(&0) {
        return Err(PartitionError::InvalidArgument(
            "invalid bucket name".into(),
        ));
    }
    let key = keys::bucket_key(&bucket.name);
    let range = state.admit(&key, &bucket.name)?;
    if let Some(IndexValue::Bucket(existing)) = range.get(&key) {
        return Ok(CreateBucketResponse {
            created: false,
            bucket: Some(existing),
        });
    }
    range
        .commit(key, Some(IndexValue::Bucket(bucket.clone())))
        .await?;
    Ok(CreateBucketResponse {
        created: true,
        bucket: Some(bucket),
    })
}

pub fn get(
    state: &PartitionServerState,
    request: GetBucketRequest,
) -> Result<GetBucketResponse, PartitionError> {
    let key = keys::bucket_key(&request.name);
    let range = state.admit(&key, &request.name)?;
    let bucket = match range.get(&key) {
        Some(IndexValue::Bucket(bucket)) => Some(bucket),
        _ => None,
    };
    Ok(GetBucketResponse { bucket })
}

pub async fn delete(
    state: &PartitionServerState,
    request: DeleteBucketRequest,
) -> Result<DeleteBucketResponse, PartitionError> {
    let key = keys::bucket_key(&request.name);
    let range = state.admit(&key, &request.name)?;
    if range.get(&key).is_none() {
        return Ok(DeleteBucketResponse { existed: false });
    }
    range.commit(key, None).await?;
    Ok(DeleteBucketResponse { existed: true })
}

/// Replaces one configuration of the bucket record under the range's commit lock, so two
/// concurrent updates of different configurations never lose one another.
pub async fn update(
    state: &PartitionServerState,
    request: UpdateBucketRequest,
) -> Result<UpdateBucketResponse, PartitionError> {
    use strata_proto::common::VersioningState;
    let key = keys::bucket_key(&request.name);
    let range = state.admit(&key, &request.name)?;
    let guard = range.lock_commits().await;
    let Some(IndexValue::Bucket(mut bucket)) = range.get(&key) else {
        return Err(PartitionError::NoSuchBucket(request.name));
    };
    match request.change {
        Some(update_bucket_request::Change::Tags(set)) => bucket.tags = set.tags,
        Some(update_bucket_request::Change::Cors(cors)) => bucket.cors_rules = cors.rules,
        Some(update_bucket_request::Change::Lifecycle(rules)) => {
            bucket.lifecycle_rules = rules.rules
        }
        Some(update_bucket_request::Change::Versioning(raw)) => {
            // Once enabled, a bucket is versioned or suspended, never unversioned again.
            let wanted = VersioningState::try_from(raw)
                .ok()
                .filter(|state| *state != VersioningState::Unversioned)
                .ok_or_else(|| {
                    PartitionError::s3(
                        tonic::Code::InvalidArgument,
                        "IllegalVersioningConfigurationException",
                        "versioning is Enabled or Suspended",
                    )
                })?;
            bucket.versioning = wanted as i32;
        }
        None => {
            return Err(PartitionError::InvalidArgument(
                "an update names one configuration".into(),
            ))
        }
    }
    range
        .commit_locked(guard, vec![(key, Some(IndexValue::Bucket(bucket.clone())))])
        .await?;
    Ok(UpdateBucketResponse {
        bucket: Some(bucket),
    })
}

/// Bucket records in every range this server serves (the caller asks every owner whose range
/// overlaps the bucket table and merges).
pub fn list(state: &PartitionServerState) -> ListBucketsResponse {
    let table_start = [keys::TABLE_BUCKETS];
    let table_end = [keys::TABLE_BUCKETS + 1];
    let mut buckets = Vec::new();
    for range in state.ready_ranges() {
        range.scan(&table_start, Some(&table_end), |_, value| {
            if let IndexValue::Bucket(bucket) = value {
                buckets.push(bucket.clone());
            }
            true
        });
    }
    ListBucketsResponse { buckets }
}
