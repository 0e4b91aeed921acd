//! Which new versions a bucket's replication rules cover (issue 16, docs/plans/replication.md
//! step 2): a write marks each version it creates PENDING when a rule in force covers it, under
//! the same commit as the version, so the mark is exactly as durable as the write. The rules
//! come with the write lease on the bucket (`bucket_gate`), and a rule change waits the old
//! leases out before it answers, so every write that starts after PutBucketReplication
//! answered is marked by the new rules.
//!
//! A rule covers a version when it is enabled and its filter matches (the key starts with its
//! prefix, and the version carries every one of its tags); of several, the one with the
//! highest priority decides (S3's rule for overlapping rules), and a delete marker is covered
//! only when that rule replicates delete markers. A replica (written by replication) is never
//! marked again, so nothing loops between two buckets that replicate to each other.

use strata_proto::common::{ReplicationConfig, ReplicationRule, ReplicationStatus};

use crate::records::ObjectRecord;

/// Whether `rule`'s filter matches `key` with `version`'s tags.
fn matches(rule: &ReplicationRule, key: &str, version: &ObjectRecord) -> bool {
    rule.enabled
        && key.starts_with(&rule.prefix)
        && rule
            .tags
            .iter()
            .all(|(name, value)| version.tags.get(name) == Some(value))
}

/// The rule that decides for `version` of `key`, if any covers it.
pub fn rule_for<'c>(
    config: &'c ReplicationConfig,
    key: &str,
    version: &ObjectRecord,
) -> Option<&'c ReplicationRule> {
    config
        .rules
        .iter()
        .filter(|rule| matches(rule, key, version))
        .max_by_key(|rule| rule.priority)
        .filter(|rule| !version.delete_marker || rule.delete_markers)
}

/// Marks a new `version` of `key` PENDING, at the range clock `mark_ms`
/// ([`crate::replication_cursors`]), when `config` covers it; leaves a replica as it is.
pub fn mark(
    config: Option<&ReplicationConfig>,
    key: &str,
    version: &mut ObjectRecord,
    mark_ms: i64,
) {
    if version.replication_status == ReplicationStatus::Replica as i32 {
        return;
    }
    let covered = config.is_some_and(|config| rule_for(config, key, version).is_some());
    (version.replication_status, version.replication_mark_ms) = if covered {
        (ReplicationStatus::Pending as i32, mark_ms)
    } else {
        (ReplicationStatus::None as i32, 0)
    };
}

/// Marks a tag change of `version`: one replication covers (PENDING, or FAILED and retried
/// now) is shipped again with its new tags, at the range clock `mark_ms`.
pub fn mark_tag_change(version: &mut ObjectRecord, mark_ms: i64) {
    let status = version.replication_status;
    if status == ReplicationStatus::Pending as i32 || status == ReplicationStatus::Failed as i32 {
        version.replication_status = ReplicationStatus::Pending as i32;
        version.replication_mark_ms = mark_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn rule(id: &str, prefix: &str, priority: i32, markers: bool) -> ReplicationRule {
        ReplicationRule {
            id: id.into(),
            priority,
            enabled: true,
            prefix: prefix.into(),
            delete_markers: markers,
            ..Default::default()
        }
    }

    fn marked(config: &ReplicationConfig, key: &str, version: ObjectRecord) -> i32 {
        let mut version = version;
        mark(Some(config), key, &mut version, 7);
        assert_eq!(
            version.replication_mark_ms != 0,
            version.replication_status == PENDING
        );
        version.replication_status
    }

    const PENDING: i32 = ReplicationStatus::Pending as i32;
    const NONE: i32 = ReplicationStatus::None as i32;

    #[test]
    fn the_highest_priority_rule_that_matches_decides() {
        let config = ReplicationConfig {
            rules: vec![rule("all", "", 1, true), rule("logs", "logs/", 2, false)],
            ..Default::default()
        };
        let object = ObjectRecord::default();
        let marker = ObjectRecord {
            delete_marker: true,
            ..Default::default()
        };
        assert_eq!(marked(&config, "a", object.clone()), PENDING);
        assert_eq!(marked(&config, "logs/1", object.clone()), PENDING);
        assert_eq!(marked(&config, "a", marker.clone()), PENDING);
        // "logs" outranks "all" and does not replicate delete markers.
        assert_eq!(marked(&config, "logs/1", marker), NONE);
        let mut disabled = config.clone();
        disabled.rules.iter_mut().for_each(|r| r.enabled = false);
        assert_eq!(marked(&disabled, "a", object.clone()), NONE);
        let mut unmarked = object;
        mark(None, "a", &mut unmarked, 7);
        assert_eq!(unmarked.replication_status, NONE);
    }

    #[test]
    fn tags_filter_and_replicas_stay_replicas() {
        let mut tagged = rule("t", "p/", 1, false);
        tagged.tags = HashMap::from([("kind".to_string(), "parquet".to_string())]);
        let config = ReplicationConfig {
            rules: vec![tagged],
            ..Default::default()
        };
        let with_tag = ObjectRecord {
            tags: HashMap::from([
                ("kind".to_string(), "parquet".to_string()),
                ("x".to_string(), "y".to_string()),
            ]),
            ..Default::default()
        };
        assert_eq!(marked(&config, "p/1", with_tag.clone()), PENDING);
        assert_eq!(marked(&config, "q/1", with_tag), NONE);
        assert_eq!(marked(&config, "p/1", ObjectRecord::default()), NONE);
        let replica = ObjectRecord {
            replication_status: ReplicationStatus::Replica as i32,
            ..Default::default()
        };
        let all = ReplicationConfig {
            rules: vec![rule("all", "", 1, true)],
            ..Default::default()
        };
        assert_eq!(
            marked(&all, "p/1", replica),
            ReplicationStatus::Replica as i32
        );
    }
}
