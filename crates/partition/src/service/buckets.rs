//! Bucket records: `keys::bucket_key(name) -> BucketRecord` in whichever range holds that key.

use strata_proto::partition::*;
use strata_types::keys;

use crate::bucket_gate::{self, RecordState};
use crate::error::PartitionError;
use crate::range::{IndexValue, Range};
use crate::records::{wire, BucketRecord};
use crate::server::PartitionServerState;
use strata_proto::common::ReplicationConfig;
use strata_types::error_detail::RejectReason;

pub async fn create(
    state: &PartitionServerState,
    request: CreateBucketRequest,
) -> Result<CreateBucketResponse, PartitionError> {
    let mut bucket = request
        .bucket
        .map(wire::bucket_record)
        .ok_or_else(|| PartitionError::InvalidArgument("missing bucket".into()))?;
    // A new bucket takes part in no move: only the move RPCs mark records (`super::moves`).
    // A geo-replica copy is the one exception: importing by its own mark, never served here.
    bucket.move_id.clear();
    bucket.importing = false;
    bucket.fenced_until_ms = 0;
    bucket.moved_to.clear();
    if request.geo_replica {
        bucket.importing = true;
        bucket.move_id = strata_types::GEO_REPLICA_MOVE_ID.to_string();
        bucket.versioning = strata_proto::common::VersioningState::Enabled as i32;
        bucket.replication = None;
    }
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
            bucket: Some(wire::bucket_meta(existing)),
        });
    }
    range
        .commit(key, Some(IndexValue::Bucket(bucket.clone())))
        .await?;
    Ok(CreateBucketResponse {
        created: true,
        bucket: Some(wire::bucket_meta(bucket)),
    })
}

pub fn get(
    state: &PartitionServerState,
    request: GetBucketRequest,
) -> Result<GetBucketResponse, PartitionError> {
    let key = keys::bucket_key(&request.name);
    let range = state.admit(&key, &request.name)?;
    if request.lease {
        // Before the read: a DeleteBucket that marks the record after this read sees the grant.
        state.buckets.note_grant(&request.name);
    }
    let bucket = match range.get(&key) {
        Some(IndexValue::Bucket(bucket)) => Some(bucket),
        _ => None,
    };
    let deleting = bucket
        .as_ref()
        .is_some_and(|b| bucket_gate::deleting(b, strata_util::now_ms()));
    Ok(GetBucketResponse {
        bucket: bucket.map(wire::bucket_meta),
        deleting,
    })
}

/// Deletes the bucket if it holds no object, atomically against writes into it (see
/// [`crate::bucket_gate`]): mark the record deleting, wait out the write leases granted on it,
/// count the bucket's objects on every range, then delete the record or unmark it.
pub async fn delete(
    state: &PartitionServerState,
    request: DeleteBucketRequest,
) -> Result<DeleteBucketResponse, PartitionError> {
    let key = keys::bucket_key(&request.name);
    let range = state.admit(&key, &request.name)?;
    let deletion_id = uuid::Uuid::new_v4().simple().to_string();
    {
        let guard = range.lock_commits().await;
        let Some(IndexValue::Bucket(mut bucket)) = range.get(&key) else {
            return Ok(DeleteBucketResponse { existed: false });
        };
        refuse_if_moving(&bucket)?;
        // A deletion already under way (a retry whose first attempt's answer was lost, or a
        // concurrent one) is taken over: the mark only gets stronger, and this attempt waits
        // out every lease itself. The other attempt then finds its id gone and gives up.
        bucket.deleting_until_ms = strata_util::now_ms() + bucket_gate::DELETING_MS;
        bucket.deletion_id = deletion_id.clone();
        range
            .commit_locked(guard, vec![(key.clone(), Some(IndexValue::Bucket(bucket)))])
            .await?;
    }
    wait_out_leases(state, &range, &request.name).await;
    let counted = count_everywhere(state, &request.name).await;

    let guard = range.lock_commits().await;
    let mut bucket = match range.get(&key) {
        Some(IndexValue::Bucket(bucket))
            if bucket.deletion_id == deletion_id
                && bucket_gate::deleting(&bucket, strata_util::now_ms()) =>
        {
            bucket
        }
        // Taken over by another DeleteBucket, or held past the deadline (writes resumed).
        _ => return Err(conflict()),
    };
    if let Ok(0) = counted {
        range.commit_locked(guard, vec![(key, None)]).await?;
        return Ok(DeleteBucketResponse { existed: true });
    }
    bucket.deleting_until_ms = 0;
    bucket.deletion_id.clear();
    range
        .commit_locked(guard, vec![(key, Some(IndexValue::Bucket(bucket)))])
        .await?;
    counted?;
    Err(PartitionError::rejected(
        RejectReason::BucketNotEmpty,
        "The bucket you tried to delete is not empty",
    ))
}

/// Waits until no write lease on `bucket` granted before now (here, or by the previous owner
/// of `range`, which holds its record) can still let a write commit ([`crate::bucket_gate`]).
pub(super) async fn wait_out_leases(state: &PartitionServerState, range: &Range, bucket: &str) {
    // Epoch 1: the range never had another owner (see the gate's module doc).
    let lease_ms = if range.bounds.epoch.get() > 1 {
        state.config.lease_ms
    } else {
        0
    };
    let wait = state
        .buckets
        .leases_outstanding(bucket, range.loaded_at, lease_ms);
    tokio::time::sleep(wait).await;
}

/// A bucket a move holds (fenced, importing or moved) is neither deleted nor reconfigured:
/// the mover copies the record once the fence holds, and a change after that would be lost.
fn refuse_if_moving(bucket: &BucketRecord) -> Result<(), PartitionError> {
    match RecordState::of_record(bucket, strata_util::now_ms()).move_refusal() {
        Some(refusal) => Err(refusal),
        None => Ok(()),
    }
}

fn conflict() -> PartitionError {
    PartitionError::rejected(
        RejectReason::OperationAborted,
        "A conflicting conditional operation is currently in progress against this resource. Try again.",
    )
}

/// Up to one object of `bucket`, counted over every range that can hold its keys, in key
/// order: this server's runs directly, other servers' through `CountObjects` (each range under
/// its commit lock, so a commit under way is waited for and counted).
pub(super) async fn count_everywhere(
    state: &PartitionServerState,
    bucket: &str,
) -> Result<u64, PartitionError> {
    let prefix = keys::object_prefix(bucket);
    let end = keys::prefix_end(&prefix);
    let mut from = prefix;
    loop {
        let request = CountObjectsRequest {
            bucket: bucket.to_string(),
            limit: 1,
            from: from.clone(),
        };
        let counted = match super::list::count_objects(state, request.clone()).await {
            Err(PartitionError::NotOwner(not_owner)) => {
                let owner = not_owner.owner_hint.ok_or(PartitionError::Loading {
                    range_id: not_owner.range_id,
                })?;
                state
                    .peer(&owner)
                    .map_err(|err| PartitionError::Stream(format!("counting on {owner}: {err}")))?
                    .count_objects(request)
                    .await
                    .map_err(|status| {
                        PartitionError::Stream(format!("counting on {owner}: {status}"))
                    })?
                    .into_inner()
            }
            other => other?,
        };
        if counted.count > 0 {
            return Ok(counted.count);
        }
        let past_bucket = end
            .as_ref()
            .is_some_and(|end| counted.covered_until >= *end);
        if counted.covered_to_end || past_bucket {
            return Ok(0);
        }
        if counted.covered_until <= from {
            // A run that did not advance: never conclude "empty" from it.
            return Err(PartitionError::Stream(format!(
                "counting {bucket}: no progress past {from:?}"
            )));
        }
        from = counted.covered_until;
    }
}

/// Buckets one bucket is the replication destination of, at most (each costs the
/// destination's `x-strata-replicated-through` one watermark lookup).
const REPLICATION_SOURCES_MAX: usize = 100;

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
    refuse_if_moving(&bucket)?;
    let rules_change = matches!(
        request.change,
        Some(update_bucket_request::Change::Replication(_))
    );
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
                    PartitionError::rejected(
                        RejectReason::InvalidVersioning,
                        "versioning is Enabled or Suspended",
                    )
                })?;
            if wanted == VersioningState::Suspended && replicates(&bucket) {
                return Err(PartitionError::rejected(
                    RejectReason::InvalidBucketState,
                    "A replication configuration is present on this bucket, so the versioning state cannot be suspended",
                ));
            }
            bucket.versioning = wanted as i32;
        }
        Some(update_bucket_request::Change::Replication(config)) => {
            bucket.replication = replication_change(&bucket, config)?;
        }
        Some(update_bucket_request::Change::AddReplicationSource(source)) => {
            if bucket.replication_sources.contains(&source) {
                return Ok(UpdateBucketResponse {
                    bucket: Some(wire::bucket_meta(bucket)),
                });
            }
            if bucket.replication_sources.len() >= REPLICATION_SOURCES_MAX {
                return Err(PartitionError::rejected(
                    RejectReason::InvalidArgument,
                    format!(
                        "a bucket is the destination of at most {REPLICATION_SOURCES_MAX} buckets"
                    ),
                ));
            }
            bucket.replication_sources.push(source);
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
    if rules_change {
        // Writes mark new versions by the rules of their lease (`replication_rules`): once the
        // leases granted on the old record ran out, every write is marked by the new rules.
        wait_out_leases(state, &range, &request.name).await;
    }
    Ok(UpdateBucketResponse {
        bucket: Some(wire::bucket_meta(bucket)),
    })
}

/// Whether the bucket has replication rules.
fn replicates(bucket: &BucketRecord) -> bool {
    bucket
        .replication
        .as_ref()
        .is_some_and(|r| !r.rules.is_empty())
}

/// The bucket's replication configuration after `config` replaced it (no rules: none). S3 takes
/// one only on a bucket whose versioning is Enabled; a new one is a new generation, later than
/// the one it replaces even if the owner's clock went back.
fn replication_change(
    bucket: &BucketRecord,
    mut config: ReplicationConfig,
) -> Result<Option<ReplicationConfig>, PartitionError> {
    use strata_proto::common::VersioningState;
    if config.rules.is_empty() {
        return Ok(None);
    }
    if bucket.versioning != VersioningState::Enabled as i32 {
        return Err(PartitionError::rejected(
            RejectReason::InvalidRequest,
            "Versioning must be 'Enabled' on the bucket to apply a replication configuration",
        ));
    }
    let previous_ms = bucket.replication.as_ref().map_or(0, |r| r.generation_ms);
    config.generation_ms = strata_util::now_ms().max(previous_ms + 1);
    Ok(Some(config))
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
                buckets.push(wire::bucket_meta(bucket.clone()));
            }
            true
        });
    }
    ListBucketsResponse { buckets }
}
