//! Conditional requests and byte ranges, decided on an object's metadata before any byte moves.
//!
//! Precedence (RFC 7232 section 6, as S3 documents it):
//! 1. `If-Match` false -> 412. When `If-Match` is present and true, `If-Unmodified-Since` is
//!    ignored; when absent, `If-Unmodified-Since` false -> 412.
//! 2. `If-None-Match` true (the ETag matches) -> 304 for GET/HEAD. When `If-None-Match` is
//!    present, `If-Modified-Since` is ignored; when absent, `If-Modified-Since` false -> 304.
//!
//! For `x-amz-copy-source-if-*` every failure is 412 (a copy never answers 304).
//! HTTP dates have second granularity, so modification times are compared in whole seconds.

use crate::error::{FrontendError, Refusal};
use s3s::dto::{ETag, ETagCondition, Range, Timestamp};
use s3s::S3Result;
use strata_proto::common::WriteCondition;

#[derive(Clone, Debug, Default)]
pub struct Conditions {
    pub if_match: Option<ETagCondition>,
    pub if_none_match: Option<ETagCondition>,
    /// Unix seconds.
    pub if_modified_since: Option<i64>,
    /// Unix seconds.
    pub if_unmodified_since: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Proceed,
    NotModified,
    PreconditionFailed,
}

/// The conditions of a conditional write (PutObject, CompleteMultipartUpload), which the range's
/// owner decides atomically with the write. S3 accepts only `*` in `If-None-Match` on writes.
pub fn write_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<Option<WriteCondition>> {
    let if_none_match_any = match if_none_match {
        None => false,
        Some(ETagCondition::Any) => true,
        Some(ETagCondition::ETag(_)) => {
            return Err(FrontendError::refused(
                Refusal::NotImplemented,
                "If-None-Match on a write accepts only '*'",
            )
            .into())
        }
    };
    let if_match_etag = match if_match {
        None => String::new(),
        Some(ETagCondition::Any) => "*".to_string(),
        Some(ETagCondition::ETag(tag)) => format!("\"{}\"", tag.value()),
    };
    if !if_none_match_any && if_match_etag.is_empty() {
        return Ok(None);
    }
    Ok(Some(WriteCondition {
        if_none_match_any,
        if_match_etag,
    }))
}

pub fn timestamp_secs(ts: &Timestamp) -> i64 {
    time::OffsetDateTime::from(ts.clone()).unix_timestamp()
}

impl Conditions {
    pub fn new(
        if_match: Option<ETagCondition>,
        if_none_match: Option<ETagCondition>,
        if_modified_since: Option<&Timestamp>,
        if_unmodified_since: Option<&Timestamp>,
    ) -> Self {
        Self {
            if_match,
            if_none_match,
            if_modified_since: if_modified_since.map(timestamp_secs),
            if_unmodified_since: if_unmodified_since.map(timestamp_secs),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.if_match.is_none()
            && self.if_none_match.is_none()
            && self.if_modified_since.is_none()
            && self.if_unmodified_since.is_none()
    }

    /// Decides a GET or HEAD of an existing object with this ETag (quoted, as stored) and
    /// modification time.
    pub fn evaluate(&self, etag: &str, last_modified_ms: i64) -> Outcome {
        let modified_secs = last_modified_ms.div_euclid(1000);
        match &self.if_match {
            Some(condition) => {
                if !strong_match(condition, etag) {
                    return Outcome::PreconditionFailed;
                }
            }
            None => {
                if let Some(since) = self.if_unmodified_since {
                    if modified_secs > since {
                        return Outcome::PreconditionFailed;
                    }
                }
            }
        }
        match &self.if_none_match {
            Some(condition) => {
                if weak_match(condition, etag) {
                    return Outcome::NotModified;
                }
            }
            None => {
                if let Some(since) = self.if_modified_since {
                    if modified_secs <= since {
                        return Outcome::NotModified;
                    }
                }
            }
        }
        Outcome::Proceed
    }

    /// Decides `x-amz-copy-source-if-*`: every failure is 412.
    pub fn evaluate_copy_source(&self, etag: &str, last_modified_ms: i64) -> Outcome {
        match self.evaluate(etag, last_modified_ms) {
            Outcome::Proceed => Outcome::Proceed,
            _ => Outcome::PreconditionFailed,
        }
    }
}

/// The bare value of a stored ETag (`"abc"` -> `abc`).
pub fn etag_value(etag: &str) -> &str {
    let etag = etag.strip_prefix("W/").unwrap_or(etag);
    etag.strip_prefix('"')
        .and_then(|e| e.strip_suffix('"'))
        .unwrap_or(etag)
}

/// The stored ETag as s3s's type (stored ETags are strong).
pub fn to_s3_etag(etag: &str) -> ETag {
    ETag::Strong(etag_value(etag).to_string())
}

fn strong_match(condition: &ETagCondition, etag: &str) -> bool {
    match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(ETag::Strong(value)) => value == etag_value(etag),
        ETagCondition::ETag(ETag::Weak(_)) => false,
    }
}

fn weak_match(condition: &ETagCondition, etag: &str) -> bool {
    match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(tag) => tag.value() == etag_value(etag),
    }
}

/// Resolves a Range header against an object size: `Ok(None)` is the whole object,
/// `Ok(Some(start..end))` a partial answer, `Err(())` 416 InvalidRange.
#[allow(clippy::result_unit_err)]
pub fn resolve_range(
    range: Option<&Range>,
    size_bytes: u64,
) -> Result<Option<std::ops::Range<u64>>, ()> {
    let Some(range) = range else { return Ok(None) };
    let resolved = range.check(size_bytes).map_err(|_| ())?;
    if resolved.is_empty() {
        return Err(());
    }
    Ok(Some(resolved))
}

/// `Content-Range` value for a resolved range.
pub fn content_range(range: &std::ops::Range<u64>, size_bytes: u64) -> String {
    format!("bytes {}-{}/{}", range.start, range.end - 1, size_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ETAG: &str = "\"9b2cf535f27731c974343645a3985328\"";
    const MODIFIED_MS: i64 = 1_700_000_000_500; // second 1_700_000_000

    fn tag(value: &str) -> Option<ETagCondition> {
        Some(ETagCondition::parse_http_header(value.as_bytes()).unwrap())
    }

    #[test]
    fn precondition_table() {
        let before = Some(1_699_999_999);
        let same = Some(1_700_000_000);
        let after = Some(1_700_000_001);
        let matching = "\"9b2cf535f27731c974343645a3985328\"";
        let other = "\"0000\"";
        use Outcome::*;
        let table: Vec<(Conditions, Outcome)> = vec![
            (Conditions::default(), Proceed),
            (
                Conditions {
                    if_match: tag(matching),
                    ..Default::default()
                },
                Proceed,
            ),
            (
                Conditions {
                    if_match: tag("*"),
                    ..Default::default()
                },
                Proceed,
            ),
            (
                Conditions {
                    if_match: tag(other),
                    ..Default::default()
                },
                PreconditionFailed,
            ),
            (
                Conditions {
                    if_match: tag("W/\"9b2cf535f27731c974343645a3985328\""),
                    ..Default::default()
                },
                PreconditionFailed,
            ),
            (
                Conditions {
                    if_none_match: tag(matching),
                    ..Default::default()
                },
                NotModified,
            ),
            (
                Conditions {
                    if_none_match: tag("W/\"9b2cf535f27731c974343645a3985328\""),
                    ..Default::default()
                },
                NotModified,
            ),
            (
                Conditions {
                    if_none_match: tag("*"),
                    ..Default::default()
                },
                NotModified,
            ),
            (
                Conditions {
                    if_none_match: tag(other),
                    ..Default::default()
                },
                Proceed,
            ),
            (
                Conditions {
                    if_modified_since: before,
                    ..Default::default()
                },
                Proceed,
            ),
            (
                Conditions {
                    if_modified_since: same,
                    ..Default::default()
                },
                NotModified,
            ),
            (
                Conditions {
                    if_modified_since: after,
                    ..Default::default()
                },
                NotModified,
            ),
            (
                Conditions {
                    if_unmodified_since: before,
                    ..Default::default()
                },
                PreconditionFailed,
            ),
            (
                Conditions {
                    if_unmodified_since: same,
                    ..Default::default()
                },
                Proceed,
            ),
            (
                Conditions {
                    if_unmodified_since: after,
                    ..Default::default()
                },
                Proceed,
            ),
            // If-Match true wins over If-Unmodified-Since false.
            (
                Conditions {
                    if_match: tag(matching),
                    if_unmodified_since: before,
                    ..Default::default()
                },
                Proceed,
            ),
            // If-Match false fails even with If-Unmodified-Since true.
            (
                Conditions {
                    if_match: tag(other),
                    if_unmodified_since: after,
                    ..Default::default()
                },
                PreconditionFailed,
            ),
            // If-None-Match false (no match) wins over If-Modified-Since false: 200.
            (
                Conditions {
                    if_none_match: tag(other),
                    if_modified_since: after,
                    ..Default::default()
                },
                Proceed,
            ),
            // If-None-Match true (match) answers 304 even when modified since.
            (
                Conditions {
                    if_none_match: tag(matching),
                    if_modified_since: before,
                    ..Default::default()
                },
                NotModified,
            ),
            // 412 takes precedence over 304.
            (
                Conditions {
                    if_match: tag(other),
                    if_none_match: tag(matching),
                    ..Default::default()
                },
                PreconditionFailed,
            ),
            (
                Conditions {
                    if_unmodified_since: before,
                    if_modified_since: after,
                    ..Default::default()
                },
                PreconditionFailed,
            ),
        ];
        for (index, (conditions, expected)) in table.iter().enumerate() {
            assert_eq!(
                conditions.evaluate(ETAG, MODIFIED_MS),
                *expected,
                "row {index}: {conditions:?}"
            );
        }
    }

    #[test]
    fn copy_source_conditions_fail_with_412_only() {
        let c = Conditions {
            if_none_match: tag(ETAG),
            ..Default::default()
        };
        assert_eq!(
            c.evaluate_copy_source(ETAG, MODIFIED_MS),
            Outcome::PreconditionFailed
        );
        let c = Conditions {
            if_modified_since: Some(1_800_000_000),
            ..Default::default()
        };
        assert_eq!(
            c.evaluate_copy_source(ETAG, MODIFIED_MS),
            Outcome::PreconditionFailed
        );
        let c = Conditions {
            if_match: tag(ETAG),
            ..Default::default()
        };
        assert_eq!(c.evaluate_copy_source(ETAG, MODIFIED_MS), Outcome::Proceed);
    }

    #[test]
    fn range_table() {
        let parse = |s: &str| Range::parse(s).unwrap();
        type Resolved = Result<Option<std::ops::Range<u64>>, ()>;
        let table: Vec<(Option<Range>, u64, Resolved)> = vec![
            (None, 10, Ok(None)),
            (None, 0, Ok(None)),
            (Some(parse("bytes=0-9")), 100, Ok(Some(0..10))),
            (Some(parse("bytes=0-9")), 5, Ok(Some(0..5))),
            (Some(parse("bytes=5-")), 10, Ok(Some(5..10))),
            (Some(parse("bytes=9-9")), 10, Ok(Some(9..10))),
            (Some(parse("bytes=10-")), 10, Err(())),
            (Some(parse("bytes=10-20")), 10, Err(())),
            (Some(parse("bytes=-3")), 10, Ok(Some(7..10))),
            (Some(parse("bytes=-30")), 10, Ok(Some(0..10))),
            (Some(parse("bytes=-0")), 10, Err(())),
            (Some(parse("bytes=0-0")), 0, Err(())),
            (Some(parse("bytes=-5")), 0, Err(())),
        ];
        for (range, size, expected) in table {
            assert_eq!(
                resolve_range(range.as_ref(), size),
                expected,
                "{range:?} of {size}"
            );
        }
        assert_eq!(content_range(&(0..10), 100), "bytes 0-9/100");
        assert_eq!(content_range(&(7..10), 10), "bytes 7-9/10");
        assert!(Range::parse("bytes=5-2").is_err());
    }

    #[test]
    fn etag_values() {
        assert_eq!(etag_value("\"abc\""), "abc");
        assert_eq!(etag_value("W/\"abc\""), "abc");
        assert_eq!(etag_value("abc"), "abc");
        assert_eq!(to_s3_etag("\"abc\""), ETag::Strong("abc".into()));
    }
}
