//! Conversions between the index's `ObjectMeta` and s3s's header types.

use crate::error::{FrontendError, Refusal};
use s3s::dto::{Metadata, Timestamp, TimestampFormat};
use strata_proto::common::ObjectMeta;
use strata_types::limits::USER_METADATA_BYTES_MAX;

/// The standard headers S3 stores with an object (PutObject, or CopyObject with REPLACE).
#[derive(Clone, Debug, Default)]
pub struct StoredHeaders {
    pub content_type: Option<String>,
    pub user_metadata: Option<Metadata>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<Timestamp>,
}

impl StoredHeaders {
    /// Metadata for a write: the server fills in size, etag, chunks and last_modified.
    pub fn into_meta(self) -> ObjectMeta {
        ObjectMeta {
            content_type: self
                .content_type
                .unwrap_or_else(|| "binary/octet-stream".into()),
            user_metadata: self.user_metadata.unwrap_or_default(),
            content_encoding: self.content_encoding.unwrap_or_default(),
            content_disposition: self.content_disposition.unwrap_or_default(),
            content_language: self.content_language.unwrap_or_default(),
            cache_control: self.cache_control.unwrap_or_default(),
            expires: self
                .expires
                .as_ref()
                .map(format_http_date)
                .unwrap_or_default(),
            ..Default::default()
        }
    }
}

impl StoredHeaders {
    /// The headers, or MetadataTooLarge when the user metadata (keys and values, in UTF-8
    /// bytes) exceeds S3's bound: refused before the body is read (the partition server checks
    /// again before it stores anything).
    pub fn checked(self) -> Result<Self, FrontendError> {
        let bytes: usize = self
            .user_metadata
            .iter()
            .flatten()
            .map(|(key, value)| key.len() + value.len())
            .sum();
        if bytes as u64 > USER_METADATA_BYTES_MAX {
            return Err(FrontendError::refused(
                Refusal::MetadataTooLarge,
                format!("Your metadata headers exceed the maximum allowed metadata size of {USER_METADATA_BYTES_MAX} bytes."),
            ));
        }
        Ok(self)
    }
}

/// The [`StoredHeaders`] of an s3s input that carries them (PutObject, CopyObject with
/// REPLACE, CreateMultipartUpload), checked ([`StoredHeaders::checked`]): one definition for
/// every operation that writes them.
macro_rules! stored_headers_of {
    ($input:expr) => {{
        let input = &$input;
        $crate::meta::StoredHeaders::checked($crate::meta::StoredHeaders {
            content_type: input.content_type.clone(),
            user_metadata: input.metadata.clone(),
            content_encoding: input.content_encoding.clone(),
            content_disposition: input.content_disposition.clone(),
            content_language: input.content_language.clone(),
            cache_control: input.cache_control.clone(),
            expires: input.expires.clone(),
        })
    }};
}
pub(crate) use stored_headers_of;

/// The headers of a stored object, ready for the write of a copy.
pub fn headers_of(meta: &ObjectMeta) -> StoredHeaders {
    StoredHeaders {
        content_type: non_empty(&meta.content_type),
        user_metadata: (!meta.user_metadata.is_empty()).then(|| meta.user_metadata.clone()),
        content_encoding: non_empty(&meta.content_encoding),
        content_disposition: non_empty(&meta.content_disposition),
        content_language: non_empty(&meta.content_language),
        cache_control: non_empty(&meta.cache_control),
        expires: parse_http_date(&meta.expires),
    }
}

pub fn non_empty(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_string())
}

pub fn format_http_date(ts: &Timestamp) -> String {
    let mut out = Vec::new();
    match ts.format(TimestampFormat::HttpDate, &mut out) {
        Ok(()) => String::from_utf8(out).unwrap_or_default(),
        Err(err) => {
            tracing::debug!(%err, "cannot format a timestamp as an HTTP date");
            String::new()
        }
    }
}

pub fn parse_http_date(value: &str) -> Option<Timestamp> {
    if value.is_empty() {
        return None;
    }
    Timestamp::parse(TimestampFormat::HttpDate, value).ok()
}

/// Milliseconds since the epoch as an s3s timestamp.
pub fn timestamp_from_ms(ms: i64) -> Timestamp {
    let nanos = i128::from(ms) * 1_000_000;
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(time)
}

/// Object size as S3's signed size fields.
pub fn size_i64(size_bytes: u64) -> i64 {
    i64::try_from(size_bytes).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_metadata_is_bounded_in_utf8_bytes_of_keys_and_values() {
        let headers = |value: String| StoredHeaders {
            user_metadata: Some([("k\u{e9}".to_string(), value)].into_iter().collect()),
            ..Default::default()
        };
        // "ké" is 3 bytes: 2045 more fill the bound exactly.
        assert!(headers("v".repeat(2045)).checked().is_ok());
        let over = headers("\u{e9}".repeat(1023)).checked().unwrap_err();
        assert!(matches!(
            over,
            FrontendError::Refused {
                kind: Refusal::MetadataTooLarge,
                ..
            }
        ));
        assert!(StoredHeaders::default().checked().is_ok());
    }

    #[test]
    fn http_dates_round_trip() {
        let ts = timestamp_from_ms(1_369_353_600_000);
        let text = format_http_date(&ts);
        assert_eq!(text, "Fri, 24 May 2013 00:00:00 GMT");
        assert_eq!(parse_http_date(&text), Some(ts));
        assert_eq!(parse_http_date(""), None);
    }
}
