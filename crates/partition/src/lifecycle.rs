//! Bucket lifecycle rules, carried out by the partition server that owns the objects.
//!
//! Every `interval_ms` a pass walks each served range from where the previous pass stopped:
//! it finds the bucket at the cursor, reads that bucket's rules (from its own range when it
//! owns the bucket record, otherwise from the record's owner through the partition map the
//! manager's heartbeat answers carry), and collects what the enabled rules make due:
//! - Expiration (days after the last modification) of current versions matching the rule's
//!   prefix, tags and size bounds: deleted in an unversioned bucket, given a delete marker in a
//!   versioned or suspended one (as S3 does);
//! - AbortIncompleteMultipartUpload (days after initiation): the upload and its parts go.
//!
//! Work is bounded per pass (`entries_per_pass_max` index entries looked at,
//! `actions_per_pass_max` actions taken); the cursor wraps to the range's start at its end. Each
//! action is re-checked under the range's commit lock before it is committed, so an object
//! written or an upload completed since it was collected is left alone, and passes the write
//! gate ([`crate::bucket_gate`]) like a client's write. Buckets a move holds (fenced on the
//! source, importing on the target, moved away) are skipped: their keys must not change, and
//! only the bucket's home applies its rules.
//!
//! "Days" are `day_ms` long: 86,400,000 normally; the test-only environment variable
//! `STRATA_LIFECYCLE_DAY_MS` shortens them so integration tests can watch rules fire.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use strata_proto::common::{BucketMeta, LifecycleRule, VersioningState};
use strata_types::{keys, RangeId};
use tokio_util::sync::CancellationToken;

use crate::bucket_gate::{RecordState, Write};
pub use crate::config::LifecycleConfig;
use crate::error::PartitionError;
use crate::range::{Change, IndexValue, Range, CHANGES_PER_COMMIT_MAX};
use crate::records::{CommitOrigin, ObjectRecord, UploadRecord};
use crate::server::PartitionServerState;
use crate::service::{self, versions};

/// What one pass over one range did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LifecycleReport {
    pub objects_expired: u64,
    pub uploads_aborted: u64,
}

/// Something a rule made due, as collected (re-checked before it is done).
#[derive(Debug)]
enum Action {
    Expire { key: String, version_stamp: u64 },
    Abort { key: String, upload_id: String },
}

fn matches(rule: &LifecycleRule, key: &str, meta: Option<&ObjectRecord>) -> bool {
    if !rule.enabled || !key.starts_with(rule.prefix.as_str()) {
        return false;
    }
    let Some(meta) = meta else {
        return true; // uploads: the prefix is the whole filter
    };
    let size_ok = (rule.size_greater_than == 0 || meta.size_bytes > rule.size_greater_than)
        && (rule.size_less_than == 0 || meta.size_bytes < rule.size_less_than);
    size_ok
        && rule
            .tags
            .iter()
            .all(|(k, v)| meta.tags.get(k).is_some_and(|have| have == v))
}

fn days_ms(days: u32, day_ms: u64) -> i64 {
    i64::try_from(u64::from(days).saturating_mul(day_ms)).unwrap_or(i64::MAX)
}

fn expired(
    rules: &[LifecycleRule],
    key: &str,
    meta: &ObjectRecord,
    now_ms: i64,
    day_ms: u64,
) -> bool {
    !meta.delete_marker
        && rules.iter().any(|rule| {
            rule.expiration_days > 0
                && matches(rule, key, Some(meta))
                && meta
                    .last_modified_ms
                    .saturating_add(days_ms(rule.expiration_days, day_ms))
                    <= now_ms
        })
}

fn abandoned(
    rules: &[LifecycleRule],
    key: &str,
    upload: &UploadRecord,
    now_ms: i64,
    day_ms: u64,
) -> bool {
    rules.iter().any(|rule| {
        rule.abort_incomplete_days > 0
            && matches(rule, key, None)
            && upload
                .initiated_ms
                .saturating_add(days_ms(rule.abort_incomplete_days, day_ms))
                <= now_ms
    })
}

/// The first object-table key at or after `cursor` in the range, and its bucket.
fn next_bucket(range: &Range, cursor: &[u8]) -> Option<(Vec<u8>, String)> {
    let from = cursor.max(&[keys::TABLE_OBJECTS][..]).to_vec();
    let end = [keys::TABLE_OBJECTS + 1];
    let mut found = None;
    range.scan(&from, Some(&end), |key, _| {
        let bucket = key[1..]
            .iter()
            .position(|&b| b == 0)
            .and_then(|at| std::str::from_utf8(&key[1..1 + at]).ok());
        if let Some(bucket) = bucket {
            found = Some((key.to_vec(), bucket.to_string()));
        }
        false
    });
    found
}

/// Collects due actions of one bucket from `cursor`, within the entry budget. Returns the
/// actions and where the scan stopped (None: the bucket's keys in this range are done).
fn collect(
    range: &Range,
    bucket: &BucketMeta,
    cursor: &[u8],
    budget: &mut usize,
    actions_max: usize,
    config: &LifecycleConfig,
) -> (Vec<Action>, Option<Vec<u8>>) {
    let end = keys::prefix_end(&keys::object_prefix(&bucket.name));
    let now_ms = strata_util::now_ms();
    let mut actions = Vec::new();
    let mut stopped_at = None;
    range.scan(cursor, end.as_deref(), |index_key, value| {
        if *budget == 0 || actions.len() >= actions_max {
            stopped_at = Some(index_key.to_vec());
            return false;
        }
        *budget -= 1;
        match value {
            IndexValue::Object(meta) => {
                if let Some((_, key)) = keys::decode_object_key(index_key) {
                    if expired(&bucket.lifecycle_rules, key, meta, now_ms, config.day_ms) {
                        actions.push(Action::Expire {
                            key: key.to_string(),
                            version_stamp: versions::stamp_of(meta),
                        });
                    }
                }
            }
            IndexValue::Upload(upload) => {
                if let Some((_, key, upload_id)) = keys::decode_upload_key(index_key) {
                    if abandoned(&bucket.lifecycle_rules, key, upload, now_ms, config.day_ms) {
                        actions.push(Action::Abort {
                            key: key.to_string(),
                            upload_id: upload_id.to_string(),
                        });
                    }
                }
            }
            _ => {}
        }
        true
    });
    (actions, stopped_at)
}

/// Whether lifecycle rules run on `bucket` here: it has an enabled rule and no move holds it
/// (a fenced bucket's keys must not change; an importing or moved copy is not the bucket's
/// home: the home's rules apply there).
fn has_work(bucket: &BucketMeta) -> bool {
    bucket.lifecycle_rules.iter().any(|r| r.enabled)
        && RecordState::of_meta(Some(bucket), false)
            .move_refusal()
            .is_none()
}

/// The changes one collected action makes now (empty: no longer due), and what it counts as.
fn due_changes(
    range: &Range,
    bucket: &BucketMeta,
    action: &Action,
    versioning: VersioningState,
    config: &LifecycleConfig,
) -> (Vec<Change>, LifecycleReport) {
    let now_ms = strata_util::now_ms();
    match action {
        Action::Expire { key, version_stamp } => {
            let object = keys::object_key(&bucket.name, key);
            let still_due = matches!(
                range.get(&object),
                Some(IndexValue::Object(meta))
                    if versions::stamp_of(&meta) == *version_stamp
                        && expired(&bucket.lifecycle_rules, key, &meta, now_ms, config.day_ms)
            );
            if !still_due {
                return (Vec::new(), LifecycleReport::default());
            }
            let (changes, _) = versions::delete_changes(range, &bucket.name, key, "", versioning);
            let counted = LifecycleReport {
                objects_expired: 1,
                ..Default::default()
            };
            (changes, counted)
        }
        Action::Abort { key, upload_id } => {
            let upload_key = keys::upload_key(&bucket.name, key, upload_id);
            if !matches!(range.get(&upload_key), Some(IndexValue::Upload(_))) {
                return (Vec::new(), LifecycleReport::default());
            }
            let mut changes: Vec<Change> = vec![(upload_key.clone(), None)];
            let mut parts = upload_key.clone();
            parts.push(0);
            let end = keys::prefix_end(&parts);
            range.scan(&parts, end.as_deref(), |part_key, _| {
                changes.push((part_key.to_vec(), None));
                changes.len() < CHANGES_PER_COMMIT_MAX
            });
            let counted = LifecycleReport {
                uploads_aborted: 1,
                ..Default::default()
            };
            (changes, counted)
        }
    }
}

/// Whether the write gate refused a lifecycle change because of the bucket's state (moving,
/// deleted, being deleted): the bucket's remaining actions are dropped, not the pass failed.
fn refused_by_bucket(err: &PartitionError) -> bool {
    matches!(
        err,
        PartitionError::SlowDown { .. }
            | PartitionError::BucketMoved { .. }
            | PartitionError::NoSuchBucket(_)
    )
}

/// Carries out collected actions, each re-checked under the commit lock and passing the write
/// gate ([`crate::bucket_gate`]: a fence taken since the rules were read stops them).
async fn apply(
    state: &PartitionServerState,
    range: &Range,
    bucket: &BucketMeta,
    actions: Vec<Action>,
    config: &LifecycleConfig,
    report: &mut LifecycleReport,
) -> Result<(), PartitionError> {
    let versioning = VersioningState::try_from(bucket.versioning).unwrap_or_default();
    for action in actions {
        let guard = range.lock_commits().await;
        let (changes, counted) = due_changes(range, bucket, &action, versioning, config);
        if changes.is_empty() {
            continue;
        }
        // An expiration in a versioned bucket adds a delete marker; other actions only remove.
        let write = Write::of_changes(&changes);
        match service::require_writable(state, &bucket.name, write).await {
            Err(err) if refused_by_bucket(&err) => {
                tracing::debug!(bucket = %bucket.name, %err, "lifecycle actions dropped");
                return Ok(());
            }
            // Lifecycle's delete markers are not replicated (S3): the rules are not applied.
            other => drop(other?),
        }
        range
            .commit_locked_as(guard, changes, CommitOrigin::Lifecycle)
            .await?;
        report.objects_expired += counted.objects_expired;
        report.uploads_aborted += counted.uploads_aborted;
        tracing::info!(bucket = %bucket.name, ?action, "lifecycle rule applied");
    }
    Ok(())
}

/// One bounded pass over one range from `cursor`; moves the cursor on (empty: from the start).
pub async fn pass(
    state: &PartitionServerState,
    range: &Range,
    cursor: &mut Vec<u8>,
    config: &LifecycleConfig,
) -> Result<LifecycleReport, PartitionError> {
    let mut report = LifecycleReport::default();
    let mut budget = config.entries_per_pass_max.max(1);
    let mut actions_left = config.actions_per_pass_max.max(1);
    let mut rules_of: HashMap<String, Option<BucketMeta>> = HashMap::new();
    while budget > 0 && actions_left > 0 {
        let start = cursor.clone().max(range.bounds.low.clone());
        let Some((position, bucket_name)) = next_bucket(range, &start) else {
            cursor.clear(); // end of the range: the next pass starts over
            break;
        };
        budget -= 1;
        if !rules_of.contains_key(&bucket_name) {
            let record = state.bucket_record(&bucket_name).await?;
            rules_of.insert(bucket_name.clone(), record);
        }
        let bucket_end = keys::prefix_end(&keys::object_prefix(&bucket_name));
        let bucket = match rules_of.get(&bucket_name) {
            Some(Some(bucket)) if has_work(bucket) => bucket.clone(),
            _ => {
                // No rules, or a move holds the bucket: skip the whole bucket at once.
                match bucket_end {
                    Some(end) => *cursor = end,
                    None => cursor.clear(),
                }
                if cursor.is_empty() {
                    break;
                }
                continue;
            }
        };
        let (actions, stopped_at) =
            collect(range, &bucket, &position, &mut budget, actions_left, config);
        actions_left = actions_left.saturating_sub(actions.len());
        apply(state, range, &bucket, actions, config, &mut report).await?;
        match stopped_at.or(bucket_end) {
            Some(next) => *cursor = next,
            None => {
                cursor.clear();
                break;
            }
        }
    }
    Ok(report)
}

/// Runs lifecycle passes over every ready range each `interval_ms` until `token` is cancelled.
pub async fn run_lifecycle(state: Arc<PartitionServerState>, token: CancellationToken) {
    let config = state.config.lifecycle.clone();
    let interval = Duration::from_millis(config.interval_ms.max(50));
    let mut cursors: HashMap<RangeId, Vec<u8>> = HashMap::new();
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
        for range in state.ready_ranges() {
            if token.is_cancelled() || range.is_poisoned() {
                continue;
            }
            let cursor = cursors.entry(range.bounds.range_id).or_default();
            match pass(&state, &range, cursor, &config).await {
                Ok(report) if report != LifecycleReport::default() => {
                    tracing::info!(range_id = %range.bounds.range_id, ?report, "lifecycle pass");
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(range_id = %range.bounds.range_id, %err, "lifecycle pass failed; retried next interval");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(prefix: &str, days: u32) -> LifecycleRule {
        LifecycleRule {
            enabled: true,
            prefix: prefix.into(),
            expiration_days: days,
            ..Default::default()
        }
    }

    #[test]
    fn rules_filter_by_prefix_tags_size_and_age() {
        let mut meta = ObjectRecord {
            last_modified_ms: 1_000,
            size_bytes: 10,
            ..Default::default()
        };
        let rules = vec![rule("logs/", 2)];
        assert!(!expired(&rules, "logs/a", &meta, 2_999, 1_000));
        assert!(expired(&rules, "logs/a", &meta, 3_000, 1_000));
        assert!(!expired(&rules, "data/a", &meta, 9_000, 1_000));
        let mut tagged = rule("", 1);
        tagged.tags.insert("tier".into(), "tmp".into());
        assert!(!expired(&[tagged.clone()], "k", &meta, 9_000, 1_000));
        meta.tags.insert("tier".into(), "tmp".into());
        assert!(expired(&[tagged.clone()], "k", &meta, 9_000, 1_000));
        tagged.size_greater_than = 10;
        assert!(!expired(&[tagged], "k", &meta, 9_000, 1_000));
        meta.delete_marker = true;
        assert!(!expired(&rules, "logs/a", &meta, 9_000, 1_000));
        let mut disabled = rule("", 1);
        disabled.enabled = false;
        assert!(!expired(
            &[disabled],
            "logs/a",
            &ObjectRecord::default(),
            9_000,
            1_000
        ));
    }

    #[test]
    fn uploads_are_abandoned_after_their_days() {
        let rules = vec![LifecycleRule {
            enabled: true,
            abort_incomplete_days: 1,
            ..Default::default()
        }];
        let upload = UploadRecord {
            initiated_ms: 500,
            ..Default::default()
        };
        assert!(!abandoned(&rules, "k", &upload, 1_499, 1_000));
        assert!(abandoned(&rules, "k", &upload, 1_500, 1_000));
    }
}
