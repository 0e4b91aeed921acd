//! The S3 edge's own refusals of hostile or mistaken requests, where s3s alone would serve them.
//!
//! - [`check_signature_form`], before s3s authenticates: SigV2 (an `Authorization: AWS key:sig`
//!   header, or a `Signature` query) is refused as S3 refuses it in regions without SigV2,
//!   unless the operator enables it; enabled, a SigV2 request dated further from the server's
//!   clock than the skew bound is refused (s3s checks no SigV2 date, so a captured request
//!   would replay forever). A presigned URL valid for more than
//!   [`PRESIGNED_URL_EXPIRES_SECS_MAX`] is refused (s3s takes any `X-Amz-Expires`).
//! - [`check_protection_headers`], after authentication (so a stranger still gets 403): a
//!   request asking for server-side encryption, SSE-C, object lock or an ACL that grants more
//!   than the owner's full control is refused, because Strata would store the object without
//!   that protection and the client would believe it protected. Refused before the handler
//!   runs, so nothing is stored.

use crate::error::{FrontendError, Refusal};
use crate::meta::parse_http_date;
use http::{HeaderMap, Uri};
use strata_types::limits::PRESIGNED_URL_EXPIRES_SECS_MAX;

/// What the operator allows of the older signature forms.
#[derive(Clone, Copy, Debug)]
pub struct SignaturePolicy {
    /// Whether SigV2 header signatures and presigned URLs are checked (by s3s) or refused.
    pub sigv2_enabled: bool,
    /// Largest distance between a SigV2 request's date and the server's clock.
    pub clock_skew_secs_max: u32,
}

const SIGV2_REFUSED: &str =
    "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.";
const SKEWED: &str = "The difference between the request time and the current time is too large.";
const NO_DATE: &str = "AWS authentication requires a valid Date or x-amz-date header";

/// The value of query parameter `name` (names compared exactly, as s3s does).
fn query_value<'a>(uri: &'a Uri, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    uri.query()?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| urlencoding::decode(value).unwrap_or(value.into()))
    })
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Refuses what s3s would accept of SigV2 and of over-long presigned URLs (see the module
/// comment). `now` is the server's clock.
pub fn check_signature_form(
    headers: &HeaderMap,
    uri: &Uri,
    policy: SignaturePolicy,
    now: time::OffsetDateTime,
) -> Result<(), FrontendError> {
    if let Some(expires) = query_value(uri, "X-Amz-Expires") {
        if expires
            .parse::<u64>()
            .is_ok_and(|secs| secs > PRESIGNED_URL_EXPIRES_SECS_MAX)
        {
            return Err(FrontendError::refused(
                Refusal::BadPresignedQuery,
                format!("X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than {PRESIGNED_URL_EXPIRES_SECS_MAX} seconds"),
            ));
        }
    }
    let presigned_v2 = query_value(uri, "Signature").is_some();
    let header_v2 = header_text(headers, "authorization").is_some_and(|v| v.starts_with("AWS "));
    if !presigned_v2 && !header_v2 {
        return Ok(());
    }
    if !policy.sigv2_enabled {
        return Err(FrontendError::refused(
            Refusal::InvalidRequest,
            SIGV2_REFUSED,
        ));
    }
    if presigned_v2 {
        // `Expires` is the URL's end in epoch seconds; s3s refuses it once past.
        let expires = query_value(uri, "Expires").and_then(|v| v.parse::<i64>().ok());
        let longest = now.unix_timestamp() + PRESIGNED_URL_EXPIRES_SECS_MAX as i64;
        if expires.is_some_and(|end| end > longest) {
            return Err(FrontendError::refused(
                Refusal::BadPresignedQuery,
                format!(
                    "Expires must be at most {PRESIGNED_URL_EXPIRES_SECS_MAX} seconds from now"
                ),
            ));
        }
        return Ok(());
    }
    // SigV2 signs x-amz-date when present, else Date.
    let date = header_text(headers, "x-amz-date")
        .or_else(|| header_text(headers, "date"))
        .and_then(parse_http_date)
        .map(time::OffsetDateTime::from);
    let Some(date) = date else {
        return Err(FrontendError::refused(Refusal::AccessDenied, NO_DATE));
    };
    let skew_secs = (now - date).whole_seconds().unsigned_abs();
    if skew_secs > u64::from(policy.clock_skew_secs_max) {
        return Err(FrontendError::refused(Refusal::RequestTimeSkewed, SKEWED));
    }
    Ok(())
}

/// Canned ACLs that grant nothing beyond the owner's full control: what S3 still accepts on a
/// bucket whose ACLs are disabled.
const OWNER_ONLY_ACLS: [&str; 2] = ["private", "bucket-owner-full-control"];

/// Refuses a request whose headers ask for a protection Strata does not give (see the module
/// comment).
pub fn check_protection_headers(headers: &HeaderMap) -> Result<(), FrontendError> {
    for (name, value) in headers {
        let name = name.as_str();
        let value = value.to_str().unwrap_or("").trim();
        if name.starts_with("x-amz-server-side-encryption")
            || name.starts_with("x-amz-copy-source-server-side-encryption")
        {
            return Err(FrontendError::refused(
                Refusal::NotImplemented,
                format!("Server-side encryption is not implemented ({name})."),
            ));
        }
        let lock_enabled =
            name == "x-amz-bucket-object-lock-enabled" && value.eq_ignore_ascii_case("true");
        if name.starts_with("x-amz-object-lock-") || lock_enabled {
            return Err(FrontendError::refused(
                Refusal::NotImplemented,
                format!("Object Lock is not implemented ({name})."),
            ));
        }
        let granting_acl = name == "x-amz-acl" && !OWNER_ONLY_ACLS.contains(&value);
        if name.starts_with("x-amz-grant-") || granting_acl {
            return Err(FrontendError::refused(
                Refusal::AclNotSupported,
                "The bucket does not allow ACLs",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::S3Error;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn code(result: Result<(), FrontendError>) -> Option<String> {
        result
            .err()
            .map(|err| S3Error::from(err).code().as_str().to_string())
    }

    const NOW: i64 = 1_700_000_000;

    fn now() -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp(NOW).unwrap()
    }

    fn http_date(unix_secs: i64) -> String {
        let ts = s3s::dto::Timestamp::from(
            time::OffsetDateTime::from_unix_timestamp(unix_secs).unwrap(),
        );
        crate::meta::format_http_date(&ts)
    }

    fn check(policy_v2: bool, pairs: &[(&str, &str)], uri: &str) -> Option<String> {
        let policy = SignaturePolicy {
            sigv2_enabled: policy_v2,
            clock_skew_secs_max: 900,
        };
        code(check_signature_form(
            &headers(pairs),
            &uri.parse().unwrap(),
            policy,
            now(),
        ))
    }

    #[test]
    fn sigv2_is_refused_unless_enabled_and_then_only_fresh() {
        let v2 = ("authorization", "AWS AKID:c2lnbmF0dXJl");
        let fresh = http_date(NOW - 60);
        let stale = http_date(NOW - 16 * 60);
        let ahead = http_date(NOW + 16 * 60);
        assert_eq!(
            check(false, &[v2, ("date", &fresh)], "/b/k").as_deref(),
            Some("InvalidRequest")
        );
        assert_eq!(check(true, &[v2, ("date", &fresh)], "/b/k"), None);
        assert_eq!(
            check(true, &[v2, ("date", &stale)], "/b/k").as_deref(),
            Some("RequestTimeTooSkewed")
        );
        assert_eq!(
            check(true, &[v2, ("date", &ahead)], "/b/k").as_deref(),
            Some("RequestTimeTooSkewed")
        );
        // x-amz-date wins over Date, as SigV2 signs it.
        let both = [v2, ("date", fresh.as_str()), ("x-amz-date", stale.as_str())];
        assert_eq!(
            check(true, &both, "/b/k").as_deref(),
            Some("RequestTimeTooSkewed")
        );
        assert_eq!(check(true, &[v2], "/b/k").as_deref(), Some("AccessDenied"));

        let week_ahead = NOW + 8 * 24 * 3600;
        let presigned = format!(
            "/b/k?AWSAccessKeyId=AKID&Expires={}&Signature=abc",
            NOW + 60
        );
        let too_long = format!("/b/k?AWSAccessKeyId=AKID&Expires={week_ahead}&Signature=abc");
        assert_eq!(
            check(false, &[], &presigned).as_deref(),
            Some("InvalidRequest")
        );
        assert_eq!(check(true, &[], &presigned), None);
        assert_eq!(
            check(true, &[], &too_long).as_deref(),
            Some("AuthorizationQueryParametersError")
        );
    }

    #[test]
    fn sigv4_is_left_to_s3s_but_for_week_long_presigned_urls() {
        let v4 = ("authorization", "AWS4-HMAC-SHA256 Credential=AKID/20231114/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=abc");
        assert_eq!(check(false, &[v4], "/b/k"), None);
        let week = "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=604800&X-Amz-Signature=a";
        let longer = "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=604801&X-Amz-Signature=a";
        assert_eq!(check(false, &[], week), None);
        assert_eq!(
            check(false, &[], longer).as_deref(),
            Some("AuthorizationQueryParametersError")
        );
    }

    #[test]
    fn protection_headers_are_refused_and_harmless_ones_pass() {
        let refused = [
            (("x-amz-server-side-encryption", "AES256"), "NotImplemented"),
            (
                ("x-amz-server-side-encryption", "aws:kms"),
                "NotImplemented",
            ),
            (
                ("x-amz-server-side-encryption-aws-kms-key-id", "k"),
                "NotImplemented",
            ),
            (
                ("x-amz-server-side-encryption-bucket-key-enabled", "true"),
                "NotImplemented",
            ),
            (
                ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
                "NotImplemented",
            ),
            (
                ("x-amz-copy-source-server-side-encryption-customer-key", "a"),
                "NotImplemented",
            ),
            (("x-amz-object-lock-mode", "GOVERNANCE"), "NotImplemented"),
            (
                (
                    "x-amz-object-lock-retain-until-date",
                    "2030-01-01T00:00:00Z",
                ),
                "NotImplemented",
            ),
            (("x-amz-object-lock-legal-hold", "ON"), "NotImplemented"),
            (
                ("x-amz-bucket-object-lock-enabled", "true"),
                "NotImplemented",
            ),
            (
                ("x-amz-acl", "public-read"),
                "AccessControlListNotSupported",
            ),
            (
                (
                    "x-amz-grant-read",
                    "uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"",
                ),
                "AccessControlListNotSupported",
            ),
        ];
        for ((name, value), expected) in refused {
            let got = code(check_protection_headers(&headers(&[(name, value)])));
            assert_eq!(got.as_deref(), Some(expected), "{name}: {value}");
        }
        let harmless = [
            ("x-amz-acl", "private"),
            ("x-amz-acl", "bucket-owner-full-control"),
            ("x-amz-bucket-object-lock-enabled", "false"),
            ("x-amz-meta-encryption", "none"),
            ("content-type", "text/plain"),
        ];
        for (name, value) in harmless {
            assert_eq!(
                code(check_protection_headers(&headers(&[(name, value)]))),
                None,
                "{name}"
            );
        }
    }
}
