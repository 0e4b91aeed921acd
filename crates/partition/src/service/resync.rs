//! Resync (issue 16, item 6): versions written before a rule existed are marked PENDING now,
//! at the range's clock, so the shipper sends them as any other owed version. The operator's
//! `strata replication resync` pages the bucket's rows (ScanRows) and hands each page's
//! unmarked versions here.
//!
//! Only a version no rule had marked (status none), or a FAILED one when asked, and that a
//! rule covers now, is marked; a PENDING, shipped or REPLICA version is left as it is, so a
//! resync run again (or resumed after a crash) marks only what is still unmarked. The marks
//! are taken under the commit lock from the range's clock, as a write's are, so they are at
//! or above the range's watermark and the versions are owed until they arrive.

use strata_proto::common::ReplicationStatus;
use strata_proto::partition::{MarkForReplicationRequest, MarkForReplicationResponse};
use strata_types::error_detail::RejectReason;
use strata_types::keys;

use crate::bucket_gate::Write;
use crate::error::PartitionError;
use crate::range::IndexValue;
use crate::records::CommitOrigin;
use crate::server::PartitionServerState;

/// Keys one call marks at most.
pub const KEYS_MAX: usize = 1_000;

pub async fn mark_for_replication(
    state: &PartitionServerState,
    request: MarkForReplicationRequest,
) -> Result<MarkForReplicationResponse, PartitionError> {
    let MarkForReplicationRequest {
        bucket,
        keys: index_keys,
        failed_too,
    } = request;
    if index_keys.len() > KEYS_MAX {
        return Err(PartitionError::InvalidArgument(format!(
            "at most {KEYS_MAX} keys per call"
        )));
    }
    let Some(first) = index_keys.first() else {
        return Ok(MarkForReplicationResponse { marked: 0 });
    };
    let range = state.range_for(first)?;
    let record = state
        .bucket_record(&bucket)
        .await?
        .ok_or_else(|| PartitionError::NoSuchBucket(bucket.clone()))?;
    let Some(config) = record.replication.filter(|c| !c.rules.is_empty()) else {
        return Err(PartitionError::rejected(
            RejectReason::InvalidArgument,
            format!("{bucket} has no replication configuration"),
        ));
    };
    let guard = range.lock_commits().await;
    let mark_ms = range.mark_clock_ms();
    let mut changes = Vec::new();
    for index_key in index_keys {
        if !keys::range_contains(&range.bounds.low, &range.bounds.high, &index_key) {
            return Err(PartitionError::InvalidArgument(
                "every key of one call must be in one range".into(),
            ));
        }
        let user_key = keys::decode_object_key(&index_key)
            .or_else(|| keys::decode_version_key(&index_key).map(|(b, k, _)| (b, k)))
            .filter(|(owner, _)| *owner == bucket)
            .map(|(_, key)| key.to_string());
        let Some(user_key) = user_key else {
            continue;
        };
        let (mut version, current) = match range.get(&index_key) {
            Some(IndexValue::Object(version)) => (version, true),
            Some(IndexValue::Version(version)) => (version, false),
            _ => continue,
        };
        let status = version.replication_status;
        let unmarked = status == ReplicationStatus::None as i32
            || (failed_too && status == ReplicationStatus::Failed as i32);
        if !unmarked {
            continue;
        }
        version.replication_status = ReplicationStatus::None as i32;
        crate::replication_rules::mark(Some(&config), &user_key, &mut version, mark_ms);
        if version.replication_status != ReplicationStatus::Pending as i32 {
            continue;
        }
        version.replication_failure.clear();
        let value = if current {
            IndexValue::Object(version)
        } else {
            IndexValue::Version(version)
        };
        changes.push((index_key, Some(value)));
    }
    let marked = changes.len() as u64;
    if marked > 0 {
        crate::service::require_writable(state, &bucket, Write::ChangesKeys).await?;
        range
            .commit_locked_as(guard, changes, CommitOrigin::Replication)
            .await?;
    }
    Ok(MarkForReplicationResponse { marked })
}
