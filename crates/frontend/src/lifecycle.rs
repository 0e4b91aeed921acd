//! Put/Get/DeleteBucketLifecycleConfiguration. The rules live in the bucket record; the
//! partition servers carry them out (the partition crate's `lifecycle` task).
//!
//! Supported actions: Expiration after Days (current versions: deleted in an unversioned
//! bucket, given a delete marker in a versioned one) and AbortIncompleteMultipartUpload. Rules
//! filter on a prefix, tags and object size. Transitions, noncurrent-version actions,
//! expiration at a Date and ExpiredObjectDeleteMarker answer 501 NotImplemented, so a client
//! never believes a rule is in force that is not.

use crate::error::{FrontendError, Refusal};
use crate::frontend::Frontend;
use s3s::dto::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleAndOperator, LifecycleRuleFilter, Tag,
};
use s3s::S3Result;
use strata_proto::common::LifecycleRule as StoredRule;
use strata_proto::partition::{update_bucket_request, LifecycleRules};

pub use strata_types::limits::LIFECYCLE_RULES_MAX;

fn malformed(message: &str) -> s3s::S3Error {
    FrontendError::refused(Refusal::MalformedXml, message).into()
}

fn not_implemented(what: &str) -> s3s::S3Error {
    FrontendError::refused(
        Refusal::NotImplemented,
        format!("Lifecycle {what} is not implemented"),
    )
    .into()
}

fn positive_days(days: Option<i32>, what: &str) -> S3Result<u32> {
    match days {
        Some(days) if days > 0 => Ok(days.unsigned_abs()),
        _ => Err(FrontendError::refused(
            Refusal::InvalidArgument,
            format!("'{what}' for the lifecycle rule must be a positive integer"),
        )
        .into()),
    }
}

fn size_bound(bound: Option<i64>) -> u64 {
    bound.map_or(0, |b| u64::try_from(b).unwrap_or(0))
}

/// One rule as stored, or the S3 error that refuses it.
fn stored_rule(rule: &LifecycleRule) -> S3Result<StoredRule> {
    if rule.transitions.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(not_implemented("transitions are"));
    }
    if rule.noncurrent_version_expiration.is_some()
        || rule
            .noncurrent_version_transitions
            .as_ref()
            .is_some_and(|t| !t.is_empty())
    {
        return Err(not_implemented("noncurrent version actions are"));
    }
    let mut stored = StoredRule {
        id: rule.id.clone().unwrap_or_default(),
        enabled: match rule.status.as_str() {
            ExpirationStatus::ENABLED => true,
            ExpirationStatus::DISABLED => false,
            _ => return Err(malformed("Status is Enabled or Disabled")),
        },
        ..Default::default()
    };
    if let Some(expiration) = &rule.expiration {
        if expiration.date.is_some() {
            return Err(not_implemented("expiration at a date is"));
        }
        if expiration.expired_object_delete_marker.is_some() {
            return Err(not_implemented("ExpiredObjectDeleteMarker is"));
        }
        stored.expiration_days = positive_days(expiration.days, "Days")?;
    }
    if let Some(abort) = &rule.abort_incomplete_multipart_upload {
        stored.abort_incomplete_days =
            positive_days(abort.days_after_initiation, "DaysAfterInitiation")?;
    }
    if stored.expiration_days == 0 && stored.abort_incomplete_days == 0 {
        return Err(malformed("A lifecycle rule needs at least one action"));
    }
    let tags = |tags: &[Tag]| -> S3Result<_> {
        crate::tagging::tags_of(
            tags.iter()
                .map(|t| {
                    (
                        t.key.clone().unwrap_or_default(),
                        t.value.clone().unwrap_or_default(),
                    )
                })
                .collect(),
            crate::tagging::BUCKET_TAGS_MAX,
        )
    };
    match (&rule.filter, &rule.prefix) {
        (Some(_), Some(_)) => return Err(malformed("A rule has a Filter or a Prefix, not both")),
        (None, prefix) => stored.prefix = prefix.clone().unwrap_or_default(),
        (Some(filter), None) => {
            let LifecycleRuleFilter {
                and,
                object_size_greater_than,
                object_size_less_than,
                prefix,
                tag,
            } = filter;
            stored.prefix = prefix.clone().unwrap_or_default();
            stored.size_greater_than = size_bound(*object_size_greater_than);
            stored.size_less_than = size_bound(*object_size_less_than);
            if let Some(tag) = tag {
                stored.tags = tags(std::slice::from_ref(tag))?;
            }
            if let Some(and) = and {
                stored.prefix = and.prefix.clone().unwrap_or_default();
                stored.tags = tags(and.tags.as_deref().unwrap_or_default())?;
                stored.size_greater_than = size_bound(and.object_size_greater_than);
                stored.size_less_than = size_bound(and.object_size_less_than);
            }
        }
    }
    if stored.abort_incomplete_days > 0 && !stored.tags.is_empty() {
        return Err(FrontendError::refused(
            Refusal::InvalidRequest,
            "AbortIncompleteMultipartUpload cannot be specified with Tags.",
        )
        .into());
    }
    Ok(stored)
}

/// The rules of a PutBucketLifecycleConfiguration body, checked as S3 checks them.
pub fn stored_rules(config: Option<&BucketLifecycleConfiguration>) -> S3Result<Vec<StoredRule>> {
    let rules = config
        .map(|c| c.rules.as_slice())
        .filter(|rules| !rules.is_empty() && rules.len() <= LIFECYCLE_RULES_MAX)
        .ok_or_else(|| malformed("A lifecycle configuration has 1 to 1000 rules"))?;
    let stored = rules
        .iter()
        .map(stored_rule)
        .collect::<S3Result<Vec<_>>>()?;
    let mut ids = std::collections::HashSet::new();
    if stored
        .iter()
        .any(|r| !r.id.is_empty() && !ids.insert(r.id.clone()))
    {
        return Err(
            FrontendError::refused(Refusal::InvalidArgument, "Rule ID must be unique").into(),
        );
    }
    Ok(stored)
}

/// Stored rules as GetBucketLifecycleConfiguration's XML.
pub fn rules_xml(rules: &[StoredRule]) -> Vec<LifecycleRule> {
    rules
        .iter()
        .map(|rule| {
            let mut tags: Vec<Tag> = crate::tagging::tag_set(&rule.tags);
            let sized = |bound: u64| (bound > 0).then(|| i64::try_from(bound).unwrap_or(i64::MAX));
            let needs_and = tags.len() > 1
                || (!tags.is_empty() && !rule.prefix.is_empty())
                || ((rule.size_greater_than > 0 || rule.size_less_than > 0)
                    && (!tags.is_empty() || !rule.prefix.is_empty()));
            let filter = if needs_and {
                LifecycleRuleFilter {
                    and: Some(LifecycleRuleAndOperator {
                        prefix: Some(rule.prefix.clone()),
                        tags: Some(tags),
                        object_size_greater_than: sized(rule.size_greater_than),
                        object_size_less_than: sized(rule.size_less_than),
                    }),
                    ..Default::default()
                }
            } else {
                LifecycleRuleFilter {
                    prefix: Some(rule.prefix.clone()),
                    tag: tags.pop(),
                    object_size_greater_than: sized(rule.size_greater_than),
                    object_size_less_than: sized(rule.size_less_than),
                    ..Default::default()
                }
            };
            LifecycleRule {
                id: (!rule.id.is_empty()).then(|| rule.id.clone()),
                status: ExpirationStatus::from_static(if rule.enabled {
                    ExpirationStatus::ENABLED
                } else {
                    ExpirationStatus::DISABLED
                }),
                filter: Some(filter),
                expiration: (rule.expiration_days > 0).then(|| LifecycleExpiration {
                    days: i32::try_from(rule.expiration_days).ok(),
                    ..Default::default()
                }),
                abort_incomplete_multipart_upload: (rule.abort_incomplete_days > 0).then(|| {
                    AbortIncompleteMultipartUpload {
                        days_after_initiation: i32::try_from(rule.abort_incomplete_days).ok(),
                    }
                }),
                noncurrent_version_expiration: None,
                noncurrent_version_transitions: None,
                prefix: None,
                transitions: None,
            }
        })
        .collect()
}

impl Frontend {
    pub(crate) async fn put_lifecycle_rules(
        &self,
        bucket: &str,
        rules: Vec<StoredRule>,
    ) -> S3Result<()> {
        self.update_bucket(
            bucket,
            update_bucket_request::Change::Lifecycle(LifecycleRules { rules }),
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expiring(days: i32) -> LifecycleRule {
        LifecycleRule {
            status: ExpirationStatus::from_static(ExpirationStatus::ENABLED),
            expiration: Some(LifecycleExpiration {
                days: Some(days),
                ..Default::default()
            }),
            filter: Some(LifecycleRuleFilter {
                prefix: Some("logs/".into()),
                ..Default::default()
            }),
            abort_incomplete_multipart_upload: None,
            id: None,
            noncurrent_version_expiration: None,
            noncurrent_version_transitions: None,
            prefix: None,
            transitions: None,
        }
    }

    #[test]
    fn rules_are_checked_and_round_trip() {
        let config = BucketLifecycleConfiguration {
            rules: vec![expiring(3)],
        };
        let stored = stored_rules(Some(&config)).unwrap();
        assert_eq!(stored[0].expiration_days, 3);
        assert_eq!(stored[0].prefix, "logs/");
        let xml = rules_xml(&stored);
        assert_eq!(
            stored_rules(Some(&BucketLifecycleConfiguration { rules: xml })).unwrap(),
            stored
        );
        let zero = BucketLifecycleConfiguration {
            rules: vec![expiring(0)],
        };
        assert!(stored_rules(Some(&zero)).is_err());
        assert!(stored_rules(None).is_err());
        let mut dated = expiring(1);
        dated.expiration.as_mut().unwrap().date = Some(crate::meta::timestamp_from_ms(0));
        let err =
            stored_rules(Some(&BucketLifecycleConfiguration { rules: vec![dated] })).unwrap_err();
        assert_eq!(err.code(), &Refusal::NotImplemented.s3_code());
    }
}
