use super::*;
use s3s::dto::{ExistingObjectReplication, ExistingObjectReplicationStatus};

fn destination(arn: &str) -> Destination {
    Destination {
        bucket: arn.to_string(),
        access_control_translation: None,
        account: None,
        encryption_configuration: None,
        metrics: None,
        replication_time: None,
        storage_class: None,
    }
}

/// A schema-2 rule: a prefix filter, delete markers as given, priority 1.
fn rule(id: &str, prefix: &str, markers: bool) -> ReplicationRule {
    ReplicationRule {
        id: Some(id.to_string()),
        priority: Some(1),
        status: ReplicationRuleStatus::from_static(ReplicationRuleStatus::ENABLED),
        destination: destination("arn:aws:s3:::dest"),
        filter: Some(ReplicationRuleFilter {
            prefix: Some(prefix.to_string()),
            ..Default::default()
        }),
        delete_marker_replication: Some(DeleteMarkerReplication {
            status: Some(DeleteMarkerReplicationStatus::from(
                status_of(markers).to_string(),
            )),
        }),
        existing_object_replication: None,
        prefix: None,
        source_selection_criteria: None,
    }
}

fn config(rules: Vec<ReplicationRule>) -> ReplicationConfiguration {
    ReplicationConfiguration {
        role: "arn:aws:iam::1:role/r".into(),
        rules,
    }
}

fn refusal(rules: Vec<ReplicationRule>) -> String {
    let err = stored_config(&config(rules), "src").expect_err("refused");
    err.code().as_str().to_string()
}

fn tag(key: &str, value: &str) -> Tag {
    Tag {
        key: Some(key.into()),
        value: Some(value.into()),
    }
}

#[test]
fn schema_two_rules_round_trip() {
    let mut tagged = rule("t", "", false);
    tagged.priority = Some(2);
    tagged.filter = Some(ReplicationRuleFilter {
        and: Some(ReplicationRuleAndOperator {
            prefix: Some("hourly/".into()),
            tags: Some(vec![tag("kind", "parquet"), tag("tier", "gold")]),
        }),
        ..Default::default()
    });
    let mut timed = rule("p", "exports/", true);
    timed.destination.replication_time = Some(ReplicationTime {
        status: ReplicationTimeStatus::from_static(ReplicationTimeStatus::ENABLED),
        time: ReplicationTimeValue { minutes: Some(15) },
    });
    timed.destination.metrics = Some(Metrics {
        status: MetricsStatus::from_static(MetricsStatus::ENABLED),
        event_threshold: None,
    });
    let stored = stored_config(&config(vec![timed, tagged]), "src").unwrap();
    assert_eq!(stored.rules.len(), 2);
    let first = &stored.rules[0];
    assert!(first.delete_markers && first.replication_time && first.metrics);
    assert!(!first.schema_v1);
    assert_eq!(first.destination.as_ref().unwrap().bucket, "dest");
    assert_eq!(stored.rules[1].tags.len(), 2);
    assert_eq!(stored.rules[1].prefix, "hourly/");
    let again = stored_config(&config_xml(&stored), "src").unwrap();
    assert_eq!(again, stored);
}

#[test]
fn schema_one_rules_replicate_delete_markers() {
    let mut legacy = rule("old", "", false);
    legacy.filter = None;
    legacy.delete_marker_replication = None;
    legacy.priority = None;
    legacy.prefix = Some("logs/".into());
    let stored = stored_config(&config(vec![legacy.clone()]), "src").unwrap();
    let only = &stored.rules[0];
    assert!(only.schema_v1 && only.delete_markers);
    assert_eq!(only.prefix, "logs/");
    let xml = config_xml(&stored);
    assert_eq!(xml.rules[0].prefix.as_deref(), Some("logs/"));
    assert!(xml.rules[0].filter.is_none());
    assert_eq!(stored_config(&xml, "src").unwrap(), stored);
    // Two schema-1 rules whose prefixes overlap, or a mix of schemas, are refused.
    let mut overlapping = legacy.clone();
    overlapping.id = Some("older".into());
    overlapping.prefix = Some("logs/2026/".into());
    assert_eq!(refusal(vec![legacy.clone(), overlapping]), "InvalidRequest");
    assert_eq!(
        refusal(vec![legacy.clone(), rule("new", "x/", true)]),
        "InvalidRequest"
    );
    let mut with_markers = legacy;
    with_markers.delete_marker_replication = rule("x", "", true).delete_marker_replication;
    assert_eq!(refusal(vec![with_markers]), "InvalidRequest");
}

#[test]
fn rules_are_checked_as_s3_checks_them() {
    assert_eq!(refusal(vec![]), "MalformedXML");
    let many = (0..=RULES_MAX)
        .map(|i| {
            let mut r = rule(&format!("r{i}"), "", false);
            r.priority = i32::try_from(i).ok();
            r
        })
        .collect();
    assert_eq!(refusal(many), "MalformedXML");
    let mut bad_status = rule("a", "", false);
    bad_status.status = ReplicationRuleStatus::from("On".to_string());
    assert_eq!(refusal(vec![bad_status]), "MalformedXML");
    let mut both = rule("a", "", false);
    both.prefix = Some("p".into());
    assert_eq!(refusal(vec![both]), "MalformedXML");
    let mut no_markers = rule("a", "", false);
    no_markers.delete_marker_replication = None;
    assert_eq!(refusal(vec![no_markers]), "InvalidRequest");
    let mut tag_markers = rule("a", "", true);
    tag_markers.filter = Some(ReplicationRuleFilter {
        tag: Some(tag("k", "v")),
        ..Default::default()
    });
    assert_eq!(refusal(vec![tag_markers]), "InvalidRequest");
    let long_id = "x".repeat(RULE_ID_CHARS_MAX + 1);
    assert_eq!(refusal(vec![rule(&long_id, "", false)]), "InvalidArgument");
    assert_eq!(
        refusal(vec![rule("same", "a/", false), {
            let mut other = rule("same", "b/", false);
            other.priority = Some(2);
            other
        }]),
        "InvalidArgument"
    );
    // Same priority twice.
    assert_eq!(
        refusal(vec![rule("a", "a/", false), rule("b", "b/", false)]),
        "InvalidRequest"
    );
    let mut rtc_without_metrics = rule("a", "", false);
    rtc_without_metrics.destination.replication_time = Some(ReplicationTime {
        status: ReplicationTimeStatus::from_static(ReplicationTimeStatus::ENABLED),
        time: ReplicationTimeValue { minutes: Some(15) },
    });
    assert_eq!(refusal(vec![rtc_without_metrics.clone()]), "InvalidRequest");
    rtc_without_metrics.destination.replication_time = Some(ReplicationTime {
        status: ReplicationTimeStatus::from_static(ReplicationTimeStatus::ENABLED),
        time: ReplicationTimeValue { minutes: Some(5) },
    });
    assert_eq!(refusal(vec![rtc_without_metrics]), "InvalidRequest");
}

#[test]
fn what_is_not_built_answers_not_implemented() {
    let mut existing = rule("a", "", false);
    existing.existing_object_replication = Some(ExistingObjectReplication {
        status: ExistingObjectReplicationStatus::from_static(
            ExistingObjectReplicationStatus::ENABLED,
        ),
    });
    assert_eq!(refusal(vec![existing]), "NotImplemented");
    let mut elsewhere = rule("b", "b/", false);
    elsewhere.priority = Some(2);
    elsewhere.destination = destination("arn:aws:s3:::other");
    assert_eq!(
        refusal(vec![rule("a", "a/", false), elsewhere]),
        "NotImplemented"
    );
    let mut account = rule("a", "", false);
    account.destination.account = Some("123".into());
    assert_eq!(refusal(vec![account]), "NotImplemented");
    let mut glacier = rule("a", "", false);
    glacier.destination.storage_class = Some(s3s::dto::StorageClass::from("GLACIER".to_string()));
    assert_eq!(refusal(vec![glacier]), "NotImplemented");
}

#[test]
fn destinations_are_bucket_arns() {
    let geo = destination_of("arn:strata:s3:stamp-2::src", "src").unwrap();
    assert_eq!(
        (geo.stamp.as_str(), geo.bucket.as_str()),
        ("stamp-2", "src")
    );
    let s3 = destination_of("arn:aws:s3:::dest", "src").unwrap();
    assert_eq!((s3.stamp.as_str(), s3.bucket.as_str()), ("", "dest"));
    for (arn, code) in [
        ("dest", "InvalidArgument"),
        ("arn:aws:s3:::", "InvalidArgument"),
        ("arn:aws:s3:::Bad_Name", "InvalidArgument"),
        ("arn:aws:s3:::src", "InvalidRequest"),
        ("arn:strata:s3:stamp-2::dest", "InvalidRequest"),
        ("arn:strata:s3:::src", "InvalidArgument"),
    ] {
        let err = destination_of(arn, "src").expect_err(arn);
        assert_eq!(err.code().as_str(), code, "{arn}");
    }
}
