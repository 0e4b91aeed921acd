//! The S3 XML request bodies the front-end accepts, through the deserializer s3s uses for
//! them (`s3s::xml::Deserializer`, then `expect_eof`, as s3s's `take_xml_body` does) and, for
//! the bodies it validates itself, the front-end's own checks: CORS rules
//! (`bucket_config::cors_rules_of`), lifecycle rules (`lifecycle::stored_rules`), tags
//! (`tagging::tags_of_xml`) and the parts of CompleteMultipartUpload
//! (`multipart::completed_parts`).
//!
//! Invariants: an accepted body serializes (s3s's serializer) without a panic; what the
//! front-end stores (CORS rules, lifecycle rules, tags) is shown as XML that parses and
//! validates back to the same stored form. (s3s DTOs do not round-trip in general: an ETag
//! whose text holds a quote is read as a strong ETag and written back unparseable.)
//!
//! Input: a selector byte (which body, modulo the number of kinds), then the XML.

use s3s::dto::{
    BucketLifecycleConfiguration, CORSConfiguration, CompletedMultipartUpload,
    CreateBucketConfiguration, Delete, Tagging, VersioningConfiguration,
};
use s3s::xml::{Deserialize, Deserializer, Serialize, Serializer};
use strata_frontend::{bucket_config, lifecycle, multipart, tagging};

/// The bodies, in selector order.
pub const KINDS: &[&str] = &[
    "CompleteMultipartUpload",
    "Delete",
    "CORSConfiguration",
    "LifecycleConfiguration",
    "Tagging",
    "VersioningConfiguration",
    "CreateBucketConfiguration",
];

/// What s3s does with a request body (`deserialize_xml` in s3s's http/de.rs).
pub fn parse<T: for<'xml> Deserialize<'xml>>(xml: &[u8]) -> Option<T> {
    let mut deserializer = Deserializer::new(xml);
    let value = T::deserialize(&mut deserializer).ok()?;
    deserializer.expect_eof().ok()?;
    Some(value)
}

/// Serializes `value` (as s3s would answer with it): never a panic.
fn serializes<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    value
        .serialize(&mut Serializer::new(&mut out))
        .expect("an accepted body serializes");
    out
}

/// Serializes what the front-end shows of a stored configuration and reads it back: the same
/// value (compared through `Debug`, which every s3s DTO has), so a client can PUT back what it
/// got.
fn round_trips<T>(value: &T) -> T
where
    T: Serialize + for<'xml> Deserialize<'xml> + std::fmt::Debug,
{
    let out = serializes(value);
    let again: T = parse(&out).unwrap_or_else(|| {
        panic!(
            "{value:?} serialized as {:?} does not parse",
            String::from_utf8_lossy(&out)
        )
    });
    assert_eq!(format!("{again:?}"), format!("{value:?}"), "XML round trip");
    again
}

/// Fuzz target `s3_xml` (see the module doc for the input's layout).
pub fn s3_xml(data: &[u8]) {
    let Some((&selector, xml)) = data.split_first() else {
        return;
    };
    match usize::from(selector) % KINDS.len() {
        0 => {
            if let Some(upload) = parse::<CompletedMultipartUpload>(xml) {
                serializes(&upload);
                let _ = multipart::completed_parts(Some(&upload));
            }
        }
        1 => {
            if let Some(delete) = parse::<Delete>(xml) {
                serializes(&delete);
            }
        }
        2 => {
            if let Some(config) = parse::<CORSConfiguration>(xml) {
                serializes(&config);
                if let Ok(rules) = bucket_config::cors_rules_of(&config) {
                    let shown = CORSConfiguration {
                        cors_rules: bucket_config::cors_xml(&rules),
                    };
                    let shown = round_trips(&shown);
                    let again =
                        bucket_config::cors_rules_of(&shown).expect("stored rules validate");
                    assert_eq!(again, rules);
                }
            }
        }
        3 => {
            if let Some(config) = parse::<BucketLifecycleConfiguration>(xml) {
                serializes(&config);
                if let Ok(rules) = lifecycle::stored_rules(Some(&config)) {
                    let shown = BucketLifecycleConfiguration {
                        rules: lifecycle::rules_xml(&rules),
                    };
                    let shown = round_trips(&shown);
                    let again =
                        lifecycle::stored_rules(Some(&shown)).expect("stored rules validate");
                    assert_eq!(again, rules);
                }
            }
        }
        4 => {
            if let Some(tags) = parse::<Tagging>(xml) {
                serializes(&tags);
                if let Ok(stored) = tagging::tags_of_xml(&tags, tagging::BUCKET_TAGS_MAX) {
                    let shown = round_trips(&Tagging {
                        tag_set: tagging::tag_set(&stored),
                    });
                    let again = tagging::tags_of_xml(&shown, tagging::BUCKET_TAGS_MAX)
                        .expect("stored tags validate");
                    assert_eq!(again, stored);
                }
            }
        }
        5 => {
            if let Some(config) = parse::<VersioningConfiguration>(xml) {
                serializes(&config);
            }
        }
        _ => {
            if let Some(config) = parse::<CreateBucketConfiguration>(xml) {
                serializes(&config);
            }
        }
    }
}
