//! CORS for browsers: preflight `OPTIONS` requests answered from the bucket's CORS rules (they
//! are never signed, so they are handled before s3s's authentication), and the
//! `Access-Control-*` headers added to every request carrying an `Origin` that a rule allows.
//!
//! The rules come from the front-end's bucket cache (`bucket_cache.rs`, the records signed
//! requests read too), so unsigned preflights do not spend a range's request budget: only a
//! cache miss reads the bucket record from its range, and at most
//! [`RECORD_READS_PER_SEC_MAX`] misses a second do (beyond, 503 ServiceUnavailable from this
//! front-end), so a flood of preflights naming random buckets cannot throttle the range
//! holding the bucket records.
//!
//! Matching follows S3: the first rule whose AllowedOrigin matches the `Origin` (one `*`
//! wildcard allowed), whose AllowedMethod contains the method (`Access-Control-Request-Method`
//! for a preflight) and whose AllowedHeader patterns cover every header named in
//! `Access-Control-Request-Headers` (case-insensitively) is the one that answers.

use axum::body::Body as AxumBody;
use axum::response::Response;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use std::sync::Arc;
use strata_proto::common::CorsRule;
use strata_proto::partition::GetBucketRequest;
use strata_types::keys;

use crate::bucket_cache::BucketCache;
use crate::routing::Router;

/// Where the CORS rules of a bucket come from.
#[async_trait::async_trait]
pub trait CorsSource: Send + Sync + 'static {
    /// The bucket's rules: `Ok(None)` when there is no such bucket, empty when CORS is off.
    async fn cors_rules(&self, bucket: &str) -> Result<Option<Vec<CorsRule>>, ()>;
    /// The base domain of virtual-hosted-style addressing.
    fn domain(&self) -> &str;
}

/// Bucket records read from the front-end's cache, or through the partition map on a miss.
pub struct BucketRecords {
    pub router: Arc<Router>,
    pub buckets: Arc<BucketCache>,
    pub domain: String,
    pub misses: MissBudget,
}

/// Bucket record reads a front-end makes for CORS per second, at most, on cache misses.
pub const RECORD_READS_PER_SEC_MAX: u32 = 20;

/// A per-second budget of record reads on cache misses.
#[derive(Default)]
pub struct MissBudget(std::sync::Mutex<Option<(std::time::Instant, u32)>>);

impl MissBudget {
    /// Takes one read from this second's budget; false when it is spent.
    fn take(&self, now: std::time::Instant) -> bool {
        let Ok(mut window) = self.0.lock() else {
            return false;
        };
        match &mut *window {
            Some((start, used)) if now.duration_since(*start).as_secs() < 1 => {
                *used += 1;
                *used <= RECORD_READS_PER_SEC_MAX
            }
            _ => {
                *window = Some((now, 1));
                true
            }
        }
    }
}

#[async_trait::async_trait]
impl CorsSource for BucketRecords {
    async fn cors_rules(&self, bucket: &str) -> Result<Option<Vec<CorsRule>>, ()> {
        if let Some(record) = self.buckets.get(bucket) {
            return Ok(Some(record.cors_rules));
        }
        if !self.misses.take(std::time::Instant::now()) {
            tracing::debug!(bucket, "CORS record reads over budget");
            return Err(());
        }
        let generation = self.buckets.generation();
        let request = GetBucketRequest {
            name: bucket.to_string(),
            lease: false,
        };
        let result = self
            .router
            .call(&keys::bucket_key(bucket), false, |mut client, _| {
                let request = request.clone();
                async move { client.get_bucket(request).await.map(|r| r.into_inner()) }
            })
            .await;
        match result {
            Ok((response, _)) => {
                if let Some(record) = &response.bucket {
                    self.buckets.insert(record.clone(), generation);
                }
                Ok(response.bucket.map(|b| b.cors_rules))
            }
            Err(err) => {
                tracing::info!(%err, bucket, "CORS rules not readable");
                Err(())
            }
        }
    }

    fn domain(&self) -> &str {
        &self.domain
    }
}

/// `pattern` with at most one `*` against `value`.
fn wildcard_match(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((head, tail)) => {
            value.len() >= head.len() + tail.len()
                && value.starts_with(head)
                && value.ends_with(tail)
        }
    }
}

/// The first rule allowing `origin`, `method` and every one of `headers`.
pub fn matching_rule<'a>(
    rules: &'a [CorsRule],
    origin: &str,
    method: &str,
    headers: &[String],
) -> Option<&'a CorsRule> {
    rules.iter().find(|rule| {
        rule.allowed_origins
            .iter()
            .any(|o| wildcard_match(o, origin))
            && rule.allowed_methods.iter().any(|m| m == method)
            && headers.iter().all(|header| {
                let header = header.to_ascii_lowercase();
                rule.allowed_headers
                    .iter()
                    .any(|allowed| wildcard_match(&allowed.to_ascii_lowercase(), &header))
            })
    })
}

/// The bucket a request addresses: the virtual host under `domain`, else the first path segment.
pub fn bucket_of(headers: &HeaderMap, uri: &http::Uri, domain: &str) -> Option<String> {
    let host = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let name = host
        .rsplit_once(':')
        .map_or(host, |(name, _)| name)
        .to_ascii_lowercase();
    if let Some(bucket) = name
        .strip_suffix(domain)
        .and_then(|rest| rest.strip_suffix('.'))
        .filter(|b| !b.is_empty())
    {
        return Some(bucket.to_string());
    }
    let segment = uri.path().trim_start_matches('/').split('/').next()?;
    let bucket = urlencoding::decode(segment).ok()?.into_owned();
    (!bucket.is_empty()).then_some(bucket)
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), value);
    }
}

/// Adds the `Access-Control-*` answer of `rule` for `origin`.
fn allow(headers: &mut HeaderMap, rule: &CorsRule, origin: &str, preflight: bool) {
    let any_origin = rule.allowed_origins.iter().any(|o| o == "*");
    set(
        headers,
        "access-control-allow-origin",
        if any_origin { "*" } else { origin },
    );
    if !any_origin {
        set(headers, "access-control-allow-credentials", "true");
    }
    set(
        headers,
        "access-control-allow-methods",
        &rule.allowed_methods.join(", "),
    );
    if !rule.expose_headers.is_empty() {
        set(
            headers,
            "access-control-expose-headers",
            &rule.expose_headers.join(", "),
        );
    }
    if rule.max_age_seconds >= 0 {
        set(
            headers,
            "access-control-max-age",
            &rule.max_age_seconds.to_string(),
        );
    }
    let vary = if preflight {
        "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"
    } else {
        "Origin"
    };
    set(headers, "vary", vary);
}

fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut response = Response::new(AxumBody::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    response
}

fn forbidden(message: &str) -> Response {
    error_response(
        StatusCode::FORBIDDEN,
        "AccessForbidden",
        &format!("CORSResponse: {message}"),
    )
}

/// Answers a preflight `OPTIONS` request.
pub async fn preflight(source: &dyn CorsSource, headers: &HeaderMap, uri: &http::Uri) -> Response {
    let (Some(origin), Some(method)) = (
        header_text(headers, "origin"),
        header_text(headers, "access-control-request-method"),
    ) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Insufficient information. Origin request header needed.",
        );
    };
    let Some(bucket) = bucket_of(headers, uri, source.domain()) else {
        return forbidden("Bucket not found");
    };
    let requested: Vec<String> = header_text(headers, "access-control-request-headers")
        .map(|list| {
            list.split(',')
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let rules = match source.cors_rules(&bucket).await {
        Ok(Some(rules)) => rules,
        Ok(None) => return forbidden("Bucket not found"),
        Err(()) => {
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "Service is unavailable, please retry.",
            )
        }
    };
    if rules.is_empty() {
        return forbidden("CORS is not enabled for this bucket.");
    }
    let Some(rule) = matching_rule(&rules, origin, method, &requested) else {
        return forbidden("This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.");
    };
    let mut response = Response::new(AxumBody::empty());
    allow(response.headers_mut(), rule, origin, true);
    if !requested.is_empty() {
        set(
            response.headers_mut(),
            "access-control-allow-headers",
            &requested.join(", "),
        );
    }
    response
}

/// What an actual (non-preflight) request needs for its CORS answer, taken before the
/// request is handed on.
pub struct CorsRequest {
    bucket: String,
    origin: String,
    method: String,
}

impl CorsRequest {
    pub fn of(headers: &HeaderMap, uri: &http::Uri, method: &Method, domain: &str) -> Option<Self> {
        let origin = header_text(headers, "origin")?.to_string();
        let bucket = bucket_of(headers, uri, domain)?;
        Some(Self {
            bucket,
            origin,
            method: method.as_str().to_string(),
        })
    }

    /// Adds the CORS headers of the matching rule, if any, to the response.
    pub async fn answer(self, source: &dyn CorsSource, response: &mut Response) {
        let Ok(Some(rules)) = source.cors_rules(&self.bucket).await else {
            return;
        };
        if let Some(rule) = matching_rule(&rules, &self.origin, &self.method, &[]) {
            allow(response.headers_mut(), rule, &self.origin, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        CorsRule {
            allowed_origins: strings(origins),
            allowed_methods: strings(methods),
            allowed_headers: strings(headers),
            max_age_seconds: -1,
            ..Default::default()
        }
    }

    #[test]
    fn rules_match_like_s3() {
        let rules = vec![
            rule(&["https://*.example.com"], &["GET"], &[]),
            rule(
                &["https://app.test"],
                &["PUT", "GET"],
                &["Content-*", "x-amz-*"],
            ),
        ];
        let none: [String; 0] = [];
        assert!(matching_rule(&rules, "https://a.example.com", "GET", &none).is_some());
        assert!(matching_rule(&rules, "https://a.example.com", "PUT", &none).is_none());
        assert!(matching_rule(&rules, "http://a.example.com", "GET", &none).is_none());
        let headers = ["content-type".to_string(), "X-Amz-Date".to_string()];
        let found = matching_rule(&rules, "https://app.test", "PUT", &headers).unwrap();
        assert_eq!(found.allowed_methods, ["PUT", "GET"]);
        assert!(
            matching_rule(&rules, "https://app.test", "PUT", &["authorization".into()]).is_none()
        );
        assert!(wildcard_match("*", "anything"));
        assert!(!wildcard_match("a*a", "a"));
    }

    #[test]
    fn record_reads_on_misses_are_bounded_per_second() {
        let budget = MissBudget::default();
        let start = std::time::Instant::now();
        let taken = (0..100).filter(|_| budget.take(start)).count();
        assert_eq!(taken, RECORD_READS_PER_SEC_MAX as usize);
        assert!(budget.take(start + std::time::Duration::from_millis(1_001)));
    }

    #[test]
    fn buckets_from_path_or_virtual_host() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, "127.0.0.1:9000".parse().unwrap());
        let uri: http::Uri = "/photos/a/b.jpg".parse().unwrap();
        assert_eq!(
            bucket_of(&headers, &uri, "localhost").as_deref(),
            Some("photos")
        );
        headers.insert(http::header::HOST, "pics.localhost:9000".parse().unwrap());
        assert_eq!(
            bucket_of(&headers, &uri, "localhost").as_deref(),
            Some("pics")
        );
        headers.insert(http::header::HOST, "localhost".parse().unwrap());
        let root: http::Uri = "/".parse().unwrap();
        assert_eq!(bucket_of(&headers, &root, "localhost"), None);
    }
}
