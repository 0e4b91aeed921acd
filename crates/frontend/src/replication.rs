//! Put/Get/DeleteBucketReplication (issue 16). The configuration lives in the bucket record
//! (`BucketMeta.replication`); the bucket's owner takes it only while versioning is Enabled
//! and then refuses to suspend versioning.
//!
//! Checked here as S3 checks it, before anything is stored: 1 to [`RULES_MAX`] rules, IDs of at
//! most [`RULE_ID_CHARS_MAX`] characters and unique, Status Enabled or Disabled, one schema
//! for all rules (S3's first, a Prefix outside any Filter, which replicates delete markers; or
//! its second, a Filter, which needs DeleteMarkerReplication and unique priorities), no
//! delete-marker replication with a Tag filter, destinations as ARNs of existing buckets
//! (`arn:aws:s3:::NAME`, versioned when this stamp can read them; or a geo-replica of the
//! bucket under its own name on another stamp, `arn:strata:s3:STAMP::NAME`), S3 RTC at 15
//! minutes and with Metrics.
//!
//! What is not built answers 501 NotImplemented, so no client believes a rule is in force
//! that is not: replicas' owner or encryption overrides (AccessControlTranslation, Account,
//! EncryptionConfiguration, SSE-KMS source selection), replica modification sync, rules
//! with two destinations, storage classes other than STANDARD, ExistingObjectReplication
//! (the resync), and a bucket on another stamp or a geo-replica without mutual TLS (partition
//! servers ship there over the stamps' links, which need it) unless the front-end runs with
//! `replication_preview` (tests of the configuration API). A geo-replica's copy is made on its
//! stamp before the rule is stored (`geo_replica.rs`).

use crate::error::{FrontendError, Refusal};
use crate::frontend::Frontend;
use s3s::dto::{
    DeleteMarkerReplication, DeleteMarkerReplicationStatus, Destination, Metrics, MetricsStatus,
    ReplicationConfiguration, ReplicationRule, ReplicationRuleAndOperator, ReplicationRuleFilter,
    ReplicationRuleStatus, ReplicationTime, ReplicationTimeStatus, ReplicationTimeValue, Tag,
};
use s3s::S3Result;
use std::collections::HashSet;
use strata_proto::common::{
    BucketMeta, ReplicationConfig, ReplicationDestination, ReplicationRule as StoredRule,
    VersioningState,
};
use strata_proto::partition::update_bucket_request;

pub use strata_types::limits::{REPLICATION_RULES_MAX as RULES_MAX, RULE_ID_CHARS_MAX};

/// S3's ARN of a bucket, the form of `Destination.Bucket`.
const S3_ARN_PREFIX: &str = "arn:aws:s3:::";
/// Strata's ARN of a bucket's geo-replica on another stamp: `arn:strata:s3:STAMP::NAME`.
const GEO_ARN_PREFIX: &str = "arn:strata:s3:";
/// The time S3 RTC promises and the only one it takes, in minutes.
const RTC_MINUTES: i32 = 15;

fn refused(kind: Refusal, message: impl Into<String>) -> s3s::S3Error {
    FrontendError::refused(kind, message).into()
}

fn not_implemented(what: &str) -> s3s::S3Error {
    refused(
        Refusal::NotImplemented,
        format!("Replication {what} is not implemented"),
    )
}

/// Whether a Status element says Enabled (else Disabled; anything else is malformed).
fn enabled(status: &str) -> S3Result<bool> {
    match status {
        "Enabled" => Ok(true),
        "Disabled" => Ok(false),
        _ => Err(refused(
            Refusal::MalformedXml,
            "Status is Enabled or Disabled",
        )),
    }
}

/// The destination an ARN names, for a rule of `source`.
pub fn destination_of(arn: &str, source: &str) -> S3Result<ReplicationDestination> {
    let invalid = || {
        refused(
            Refusal::InvalidArgument,
            format!("Invalid bucket ARN: {arn}"),
        )
    };
    let (stamp, bucket) = if let Some(bucket) = arn.strip_prefix(S3_ARN_PREFIX) {
        (String::new(), bucket)
    } else if let Some(rest) = arn.strip_prefix(GEO_ARN_PREFIX) {
        let (stamp, bucket) = rest.split_once("::").ok_or_else(invalid)?;
        if stamp.is_empty() || stamp.contains(':') {
            return Err(invalid());
        }
        (stamp.to_string(), bucket)
    } else {
        return Err(invalid());
    };
    if !crate::naming::is_valid_bucket_name(bucket) {
        return Err(invalid());
    }
    match (stamp.is_empty(), bucket == source) {
        (true, true) => Err(refused(
            Refusal::InvalidRequest,
            "Destination bucket cannot be the same as the source bucket.",
        )),
        (false, false) => Err(refused(
            Refusal::InvalidRequest,
            "A geo-replica (arn:strata:s3:STAMP::NAME) keeps the source bucket's own name.",
        )),
        _ => Ok(ReplicationDestination {
            bucket: bucket.to_string(),
            stamp,
            storage_class: String::new(),
        }),
    }
}

fn filter_tags(tags: &[Tag]) -> S3Result<std::collections::HashMap<String, String>> {
    let pairs = tags
        .iter()
        .map(|t| {
            let key = t.key.clone().unwrap_or_default();
            (key, t.value.clone().unwrap_or_default())
        })
        .collect();
    crate::tagging::tags_of(pairs, crate::tagging::OBJECT_TAGS_MAX)
}

/// A Filter's prefix and tags (exactly one of Prefix, Tag and And, or none).
fn apply_filter(filter: &ReplicationRuleFilter, stored: &mut StoredRule) -> S3Result<()> {
    let given = [
        filter.prefix.is_some(),
        filter.tag.is_some(),
        filter.and.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(refused(
            Refusal::MalformedXml,
            "A Filter holds one of Prefix, Tag and And",
        ));
    }
    stored.prefix = filter.prefix.clone().unwrap_or_default();
    if let Some(tag) = &filter.tag {
        stored.tags = filter_tags(std::slice::from_ref(tag))?;
    }
    if let Some(and) = &filter.and {
        stored.prefix = and.prefix.clone().unwrap_or_default();
        stored.tags = filter_tags(and.tags.as_deref().unwrap_or_default())?;
    }
    Ok(())
}

/// S3 RTC and replication metrics: kept as asked, RTC at 15 minutes and only with Metrics.
fn apply_time_and_metrics(destination: &Destination, stored: &mut StoredRule) -> S3Result<()> {
    let minutes = |value: &Option<ReplicationTimeValue>| value.as_ref().and_then(|v| v.minutes);
    if let Some(time) = &destination.replication_time {
        stored.replication_time = enabled(time.status.as_str())?;
        if stored.replication_time && time.time.minutes != Some(RTC_MINUTES) {
            return Err(refused(
                Refusal::InvalidRequest,
                "Replication Time Control is 15 minutes",
            ));
        }
    }
    if let Some(metrics) = &destination.metrics {
        stored.metrics = enabled(metrics.status.as_str())?;
        if stored.metrics && minutes(&metrics.event_threshold).is_some_and(|m| m != RTC_MINUTES) {
            return Err(refused(
                Refusal::InvalidRequest,
                "The metrics' event threshold is 15 minutes",
            ));
        }
    }
    if stored.replication_time && !stored.metrics {
        return Err(refused(
            Refusal::InvalidRequest,
            "Replication Time Control needs Metrics enabled",
        ));
    }
    Ok(())
}

/// Refuses what a rule asks for that Strata does not do (501), and what S3 refuses.
fn refuse_unsupported(rule: &ReplicationRule) -> S3Result<()> {
    let destination = &rule.destination;
    if destination.access_control_translation.is_some() || destination.account.is_some() {
        return Err(not_implemented("to another account's ownership is"));
    }
    if destination.encryption_configuration.is_some() {
        return Err(not_implemented("with a replica encryption key is"));
    }
    if let Some(criteria) = &rule.source_selection_criteria {
        let kms = criteria.sse_kms_encrypted_objects.as_ref();
        if kms.is_some_and(|k| k.status.as_str() == "Enabled") {
            return Err(not_implemented("of SSE-KMS objects is"));
        }
        let modifications = criteria.replica_modifications.as_ref();
        if modifications.is_some_and(|m| m.status.as_str() == "Enabled") {
            return Err(not_implemented("of replica modifications is"));
        }
    }
    if let Some(class) = &destination.storage_class {
        if class.as_str() != "STANDARD" {
            return Err(not_implemented("to a storage class other than STANDARD is"));
        }
    }
    if let Some(existing) = &rule.existing_object_replication {
        if enabled(existing.status.as_str())? {
            return Err(not_implemented(
                "of existing objects (ExistingObjectReplication) is",
            ));
        }
    }
    Ok(())
}

/// One rule as stored, or the S3 error that refuses it.
fn stored_rule(rule: &ReplicationRule, source: &str, index: usize) -> S3Result<StoredRule> {
    refuse_unsupported(rule)?;
    let id = rule.id.clone().unwrap_or_default();
    if id.chars().count() > RULE_ID_CHARS_MAX {
        return Err(refused(
            Refusal::InvalidArgument,
            "ID length should not exceed allowed limit of 255",
        ));
    }
    let mut stored = StoredRule {
        // S3 names a rule that has no ID; this name is stable for the same configuration.
        id: if id.is_empty() {
            format!("rule-{}", index + 1)
        } else {
            id
        },
        priority: rule.priority.unwrap_or(0),
        enabled: enabled(rule.status.as_str())?,
        destination: Some(destination_of(&rule.destination.bucket, source)?),
        ..Default::default()
    };
    if let Some(destination) = stored.destination.as_mut() {
        destination.storage_class = rule
            .destination
            .storage_class
            .as_ref()
            .map_or_else(String::new, |c| c.as_str().to_string());
    }
    apply_time_and_metrics(&rule.destination, &mut stored)?;
    let marker_status = rule
        .delete_marker_replication
        .as_ref()
        .and_then(|d| d.status.as_ref());
    match (&rule.filter, &rule.prefix) {
        (Some(_), Some(_)) => {
            return Err(refused(
                Refusal::MalformedXml,
                "A rule has a Filter or a Prefix, not both",
            ))
        }
        (None, prefix) => {
            if rule.delete_marker_replication.is_some() {
                return Err(refused(
                    Refusal::InvalidRequest,
                    "DeleteMarkerReplication needs a Filter (a Prefix outside a Filter replicates delete markers)",
                ));
            }
            stored.schema_v1 = true;
            stored.delete_markers = true;
            stored.prefix = prefix.clone().unwrap_or_default();
        }
        (Some(filter), None) => {
            apply_filter(filter, &mut stored)?;
            let Some(status) = marker_status else {
                return Err(refused(
                    Refusal::InvalidRequest,
                    "DeleteMarkerReplication must be specified for this version of Cross Region Replication configuration schema.",
                ));
            };
            stored.delete_markers = enabled(status.as_str())?;
            if stored.delete_markers && !stored.tags.is_empty() {
                return Err(refused(
                    Refusal::InvalidRequest,
                    "Delete marker replication is not supported if any Tag filter is specified.",
                ));
            }
        }
    }
    Ok(stored)
}

/// Checks between rules: one schema, unique IDs, unique priorities (schema 2) or prefixes
/// that do not overlap (schema 1), one destination.
fn check_rules_together(rules: &[StoredRule]) -> S3Result<()> {
    let invalid = |message: String| refused(Refusal::InvalidRequest, message);
    if rules.iter().any(|r| r.schema_v1) && rules.iter().any(|r| !r.schema_v1) {
        return Err(invalid(
            "Rules with a Filter and rules with a Prefix outside a Filter cannot be mixed".into(),
        ));
    }
    let mut ids = HashSet::new();
    if let Some(rule) = rules.iter().find(|r| !ids.insert(r.id.as_str())) {
        let message = format!(
            "Rule Id must be unique. Found same ID for more than one rule: {}",
            rule.id
        );
        return Err(refused(Refusal::InvalidArgument, message));
    }
    let mut priorities = HashSet::new();
    let schema_v2 = rules.iter().all(|r| !r.schema_v1);
    if let Some(rule) = rules
        .iter()
        .find(|r| schema_v2 && !priorities.insert(r.priority))
    {
        return Err(invalid(format!(
            "Found duplicate priority {}",
            rule.priority
        )));
    }
    for (i, a) in rules.iter().enumerate() {
        for b in &rules[i + 1..] {
            let overlap = a.prefix.starts_with(&b.prefix) || b.prefix.starts_with(&a.prefix);
            if a.schema_v1 && overlap {
                return Err(invalid(format!(
                    "Found overlapping prefixes '{}' and '{}'",
                    a.prefix, b.prefix
                )));
            }
            if a.destination != b.destination {
                return Err(not_implemented("to more than one destination is"));
            }
        }
    }
    Ok(())
}

/// The configuration of a PutBucketReplication body for `source`, checked as S3 checks it.
pub fn stored_config(
    config: &ReplicationConfiguration,
    source: &str,
) -> S3Result<ReplicationConfig> {
    if config.rules.is_empty() || config.rules.len() > RULES_MAX {
        return Err(refused(
            Refusal::MalformedXml,
            format!("A replication configuration has 1 to {RULES_MAX} rules"),
        ));
    }
    let rules = config
        .rules
        .iter()
        .enumerate()
        .map(|(index, rule)| stored_rule(rule, source, index))
        .collect::<S3Result<Vec<_>>>()?;
    check_rules_together(&rules)?;
    Ok(ReplicationConfig {
        role: config.role.clone(),
        rules,
        generation_ms: 0,
    })
}

fn status_of(enabled: bool) -> &'static str {
    if enabled {
        "Enabled"
    } else {
        "Disabled"
    }
}

fn destination_xml(rule: &StoredRule) -> Destination {
    let stored = rule.destination.clone().unwrap_or_default();
    let bucket = if stored.stamp.is_empty() {
        format!("{S3_ARN_PREFIX}{}", stored.bucket)
    } else {
        format!("{GEO_ARN_PREFIX}{}::{}", stored.stamp, stored.bucket)
    };
    let fifteen = || ReplicationTimeValue {
        minutes: Some(RTC_MINUTES),
    };
    Destination {
        bucket,
        storage_class: (!stored.storage_class.is_empty())
            .then(|| s3s::dto::StorageClass::from(stored.storage_class.clone())),
        replication_time: rule.replication_time.then(|| ReplicationTime {
            status: ReplicationTimeStatus::from_static(ReplicationTimeStatus::ENABLED),
            time: fifteen(),
        }),
        metrics: rule.metrics.then(|| Metrics {
            status: MetricsStatus::from_static(MetricsStatus::ENABLED),
            event_threshold: Some(fifteen()),
        }),
        access_control_translation: None,
        account: None,
        encryption_configuration: None,
    }
}

fn filter_xml(rule: &StoredRule) -> ReplicationRuleFilter {
    let mut tags = crate::tagging::tag_set(&rule.tags);
    if tags.len() > 1 || (!tags.is_empty() && !rule.prefix.is_empty()) {
        return ReplicationRuleFilter {
            and: Some(ReplicationRuleAndOperator {
                prefix: (!rule.prefix.is_empty()).then(|| rule.prefix.clone()),
                tags: Some(tags),
            }),
            ..Default::default()
        };
    }
    ReplicationRuleFilter {
        prefix: tags.is_empty().then(|| rule.prefix.clone()),
        tag: tags.pop(),
        and: None,
    }
}

/// A stored configuration as GetBucketReplication's XML.
pub fn config_xml(config: &ReplicationConfig) -> ReplicationConfiguration {
    let rules = config
        .rules
        .iter()
        .map(|rule| ReplicationRule {
            id: Some(rule.id.clone()),
            status: ReplicationRuleStatus::from(status_of(rule.enabled).to_string()),
            destination: destination_xml(rule),
            prefix: rule.schema_v1.then(|| rule.prefix.clone()),
            priority: (!rule.schema_v1).then_some(rule.priority),
            filter: (!rule.schema_v1).then(|| filter_xml(rule)),
            delete_marker_replication: (!rule.schema_v1).then(|| DeleteMarkerReplication {
                status: Some(DeleteMarkerReplicationStatus::from(
                    status_of(rule.delete_markers).to_string(),
                )),
            }),
            existing_object_replication: None,
            source_selection_criteria: None,
        })
        .collect();
    ReplicationConfiguration {
        role: config.role.clone(),
        rules,
    }
}

/// The bucket's configuration, or ReplicationConfigurationNotFoundError.
pub fn configured(bucket: &BucketMeta) -> S3Result<&ReplicationConfig> {
    bucket
        .replication
        .as_ref()
        .filter(|r| !r.rules.is_empty())
        .ok_or_else(|| {
            refused(
                Refusal::NoReplication,
                "The replication configuration was not found",
            )
        })
}

impl Frontend {
    /// PutBucketReplication: checks the body and each destination, then stores the
    /// configuration on the bucket's owner, which checks the source's versioning under its
    /// commit lock (the one place that decides it).
    pub(crate) async fn put_replication(
        &self,
        bucket: &str,
        body: &ReplicationConfiguration,
    ) -> S3Result<()> {
        let config = stored_config(body, bucket)?;
        let mut checked = HashSet::new();
        for destination in config.rules.iter().filter_map(|r| r.destination.as_ref()) {
            if checked.insert((destination.bucket.clone(), destination.stamp.clone())) {
                let here = self.check_destination(destination).await?;
                if here || self.config.replication_preview {
                    continue;
                }
                // Partition servers reach other stamps over their front-ends' mutual-TLS links.
                if strata_util::rpc::process_identity().is_none() {
                    return Err(not_implemented(
                        "to a bucket on another stamp needs the stamps' mutual-TLS links, so this rule",
                    ));
                }
            }
        }
        // Every destination lists this bucket before any version is marked for it, so its
        // x-strata-replicated-through waits for this bucket's watermark too; a geo-replica's
        // copy is made listing it.
        for destination in config.rules.iter().filter_map(|r| r.destination.as_ref()) {
            if destination.stamp.is_empty() {
                self.register_replication_source(&destination.bucket, bucket)
                    .await?;
            } else {
                self.ensure_geo_copy(&destination.stamp, bucket).await?;
            }
        }
        self.store_replication(bucket, config).await
    }

    pub(crate) async fn store_replication(
        &self,
        bucket: &str,
        config: ReplicationConfig,
    ) -> S3Result<()> {
        self.update_bucket(bucket, update_bucket_request::Change::Replication(config))
            .await
            .map(|_| ())
    }

    /// An S3 destination must exist (on any stamp) and, when this stamp holds it, be
    /// versioned (one on another stamp is checked by the shipper, which fails its versions
    /// for good otherwise); a geo-replica's stamp must be another stamp the location group
    /// knows. Whether this stamp holds the destination.
    async fn check_destination(&self, destination: &ReplicationDestination) -> S3Result<bool> {
        if !destination.stamp.is_empty() {
            return self
                .check_geo_stamp(&destination.stamp)
                .await
                .map(|()| false);
        }
        let missing = || {
            refused(
                Refusal::InvalidRequest,
                format!("Destination bucket must exist: {}", destination.bucket),
            )
        };
        if let Ok(Some(held)) = self.get_bucket(&destination.bucket).await {
            if held.versioning != VersioningState::Enabled as i32 {
                return Err(refused(
                    Refusal::InvalidRequest,
                    "Destination bucket must have versioning enabled.",
                ));
            }
            return Ok(true);
        }
        let Some(location) = &self.location else {
            return Err(missing());
        };
        let found = location
            .lookup_bucket(&destination.bucket)
            .await
            .map_err(FrontendError::Rpc)?;
        found.location.map(|_| false).ok_or_else(missing)
    }

    async fn check_geo_stamp(&self, stamp: &str) -> S3Result<()> {
        if stamp == self.config.stamp {
            return Err(refused(
                Refusal::InvalidRequest,
                "A geo-replica's stamp is another stamp than the bucket's",
            ));
        }
        let Some(location) = &self.location else {
            return Err(refused(
                Refusal::InvalidRequest,
                "A geo-replica needs stamps joined by a location group",
            ));
        };
        let stamps = location.list_stamps().await.map_err(FrontendError::Rpc)?;
        if stamps.stamps.iter().any(|s| s.name == stamp) {
            return Ok(());
        }
        Err(refused(
            Refusal::InvalidArgument,
            format!("No stamp {stamp} is known to the location group"),
        ))
    }
}

#[cfg(test)]
#[path = "replication_tests.rs"]
mod tests;
