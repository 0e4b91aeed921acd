//! The request a forwarder sends: the client's, as it came (Host and signature included),
//! without the headers of its connection, marked as forwarded; and what a request names (its
//! bucket, whether it is signed).

use super::FORWARDED_FROM;
use crate::auth::DomainHost;
use axum::extract::Request;
use axum::response::Response;

/// Headers that belong to one connection, not to the request (RFC 9110, 7.6.1).
/// `expect` too: this front-end answers the client's `100-continue` itself when it starts
/// reading the body it forwards; `transfer-encoding` is the client's framing, and the forwarded
/// body gets its own.
const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "expect",
    "transfer-encoding",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// The request to send to `endpoint`: the same method, path, query and end-to-end headers
/// (Host included: the signature covers it), marked as forwarded by `own_stamp`. None when
/// the endpoint is neither an `http://` nor an `https://` URL.
pub(super) fn outgoing(
    parts: &http::request::Parts,
    endpoint: &str,
    own_stamp: &str,
) -> Option<http::Request<()>> {
    let (scheme, authority) = endpoint.split_once("://")?;
    if !matches!(scheme, "http" | "https") {
        return None;
    }
    let authority = authority.trim_end_matches('/');
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let uri: http::Uri = format!("{scheme}://{authority}{path}").parse().ok()?;
    let mut request = http::Request::builder()
        .method(parts.method.clone())
        .uri(uri)
        .version(http::Version::HTTP_11)
        .body(())
        .ok()?;
    let headers = request.headers_mut();
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(FORWARDED_FROM, http::HeaderValue::from_str(own_stamp).ok()?);
    Some(request)
}

/// The home's answer as this front-end gives it to its client: its own connection's headers
/// (a `Connection: close` the home sent to end the link connection, say) are not the
/// client's connection's.
pub(super) fn answer(response: http::Response<hyper::body::Incoming>) -> Response {
    let mut response = response.map(axum::body::Body::new);
    for name in HOP_BY_HOP {
        response.headers_mut().remove(name);
    }
    response
}

/// Whether the request is signed (a SigV4 / SigV2 header or a presigned query).
pub(super) fn is_signed(request: &Request) -> bool {
    request.headers().contains_key(http::header::AUTHORIZATION)
        || request
            .uri()
            .query()
            .is_some_and(|query| query.contains("X-Amz-Signature=") || query.contains("Signature="))
}

/// The bucket a request names: from a virtual host under `domain` (as s3s is told to read it),
/// else the first path segment.
pub fn bucket_of(request: &Request, domain: &DomainHost) -> Option<String> {
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().host())
        .unwrap_or_default();
    if let Some(bucket) = domain.bucket_of(host) {
        return Some(bucket);
    }
    let first = request
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()?;
    let bucket = urlencoding::decode(first).ok()?.into_owned();
    (!bucket.is_empty()).then_some(bucket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body as AxumBody;

    fn request(host: &str, path: &str) -> Request {
        http::Request::builder()
            .uri(path)
            .header(http::header::HOST, host)
            .body(AxumBody::empty())
            .unwrap()
    }

    #[test]
    fn the_bucket_comes_from_the_virtual_host_or_the_path() {
        let domain = &DomainHost::new("localhost");
        assert_eq!(
            bucket_of(&request("photos.localhost:9000", "/a/b"), domain).as_deref(),
            Some("photos")
        );
        assert_eq!(
            bucket_of(&request("127.0.0.1:9000", "/photos/a/b"), domain).as_deref(),
            Some("photos")
        );
        assert_eq!(
            bucket_of(&request("localhost:9000", "/photos?list-type=2"), domain).as_deref(),
            Some("photos")
        );
        assert_eq!(bucket_of(&request("127.0.0.1:9000", "/"), domain), None);
    }

    #[test]
    fn forwarded_requests_keep_host_and_signature_and_drop_hop_headers() {
        let original = http::Request::builder()
            .method("PUT")
            .uri("/photos/cat.jpg?x-id=PutObject")
            .header(http::header::HOST, "127.0.0.1:9000")
            .header(
                http::header::AUTHORIZATION,
                "AWS4-HMAC-SHA256 Credential=...",
            )
            .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
            .header(http::header::CONNECTION, "keep-alive")
            .body(())
            .unwrap();
        let (parts, ()) = original.into_parts();
        let out = outgoing(&parts, "http://10.0.0.2:9000", "stamp-1").unwrap();
        assert_eq!(
            out.uri(),
            "http://10.0.0.2:9000/photos/cat.jpg?x-id=PutObject"
        );
        assert_eq!(out.method(), "PUT");
        let headers = out.headers();
        assert_eq!(headers[http::header::HOST], "127.0.0.1:9000");
        assert_eq!(
            headers[http::header::AUTHORIZATION],
            "AWS4-HMAC-SHA256 Credential=..."
        );
        assert_eq!(headers[FORWARDED_FROM], "stamp-1");
        assert!(!headers.contains_key(http::header::CONNECTION));
        let linked = outgoing(&parts, "https://10.0.0.2:7100", "stamp-1").unwrap();
        assert_eq!(
            linked.uri(),
            "https://10.0.0.2:7100/photos/cat.jpg?x-id=PutObject"
        );
        assert!(outgoing(&parts, "ftp://10.0.0.2:9000", "stamp-1").is_none());
    }
}
