//! Where a new bucket goes (issue 15, item 3, by region): a CreateBucket whose
//! `LocationConstraint` names another region than this stamp's is forwarded, as it came, to an
//! open stamp of that region (the one holding the fewest buckets), which creates the bucket on
//! itself. A constraint no stamp's region matches is answered here: this stamp's CreateBucket
//! refuses a foreign region with `InvalidLocationConstraint`. No constraint, or this stamp's
//! region: the bucket is created here. (Placement by free capacity comes with per-stamp fill.)
//!
//! Only this request is read before it is forwarded: its body is XML of at most
//! `XML_BODY_BYTES_MAX` bytes with a Content-Length; any other body is served here as it is
//! (s3s bounds and refuses it).

use crate::error::{error_response, FrontendError, Refusal};
use crate::forward::{Forwarder, Home};
use axum::body::Body as AxumBody;
use axum::extract::Request;
use axum::response::Response;
use strata_types::limits::XML_BODY_BYTES_MAX;

/// Whether `request` is a CreateBucket: `PUT /<bucket>` (or `PUT /` on a virtual host) with
/// no query (PUTs of a bucket's configurations carry one, `?versioning`, `?cors`, ...).
pub fn is_create_bucket(request: &Request) -> bool {
    let path = request.uri().path().trim_matches('/');
    request.method() == http::Method::PUT
        && !path.contains('/')
        && request.uri().query().is_none_or(str::is_empty)
}

/// The `LocationConstraint` of a CreateBucketConfiguration body, when it names one.
pub fn location_constraint(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<LocationConstraint>")? + "<LocationConstraint>".len();
    let end = start + text[start..].find("</LocationConstraint>")?;
    let region = text[start..end].trim();
    (!region.is_empty()).then(|| region.to_string())
}

/// The CreateBucket forwarded to a stamp of the region it asks for, or handed back (`Err`,
/// with its body) to be served here.
pub async fn place(
    forwarder: &Forwarder,
    request: Request,
    bucket: &str,
) -> Result<Response, Request> {
    let length = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if !length.is_some_and(|length| (1..=XML_BODY_BYTES_MAX).contains(&length)) {
        return Err(request);
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, XML_BODY_BYTES_MAX as usize).await {
        Ok(bytes) => bytes,
        Err(err) => {
            tracing::debug!(%err, bucket, "CreateBucket body unreadable");
            let refused = FrontendError::refused(
                Refusal::IncompleteBody,
                "You did not provide the number of bytes specified by the Content-Length HTTP header.",
            );
            return Ok(error_response(refused));
        }
    };
    let region = location_constraint(&bytes);
    let request = Request::from_parts(parts, AxumBody::from(bytes));
    let own_region = &forwarder.frontend.config.region;
    let Some(region) = region.filter(|region| region != own_region) else {
        return Err(request);
    };
    match stamp_in_region(forwarder, &region).await {
        Some(Home::Elsewhere { stamp, endpoints }) => {
            tracing::info!(bucket, %region, %stamp, "CreateBucket placed on a stamp of its region");
            Ok(forwarder.forward(request, bucket, &stamp, &endpoints).await)
        }
        _ => Err(request),
    }
}

/// The open stamp of `region` holding the fewest buckets (ties: the first by name).
async fn stamp_in_region(forwarder: &Forwarder, region: &str) -> Option<Home> {
    let own = &forwarder.frontend.config.stamp;
    forwarder
        .stamps()
        .await
        .into_iter()
        .filter(|s| s.region == region && s.state == "open" && &s.name != own)
        .filter(|s| !s.endpoints.is_empty())
        .min_by(|a, b| a.buckets.cmp(&b.buckets).then(a.name.cmp(&b.name)))
        .map(|s| Home::Elsewhere {
            stamp: s.name,
            endpoints: s.endpoints,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, uri: &str) -> Request {
        http::Request::builder()
            .method(method)
            .uri(uri)
            .body(AxumBody::empty())
            .unwrap()
    }

    #[test]
    fn only_a_bare_bucket_put_is_a_create_bucket() {
        assert!(is_create_bucket(&request("PUT", "/photos")));
        assert!(is_create_bucket(&request("PUT", "/photos/")));
        assert!(is_create_bucket(&request("PUT", "/")));
        assert!(!is_create_bucket(&request("PUT", "/photos?versioning")));
        assert!(!is_create_bucket(&request("PUT", "/photos/cat.jpg")));
        assert!(!is_create_bucket(&request("GET", "/photos")));
    }

    #[test]
    fn the_constraint_is_read_from_the_configuration() {
        let body = br#"<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>"#;
        assert_eq!(location_constraint(body).as_deref(), Some("eu-west-1"));
        let empty = b"<CreateBucketConfiguration><LocationConstraint> </LocationConstraint></CreateBucketConfiguration>";
        assert_eq!(location_constraint(empty), None);
        assert_eq!(location_constraint(b"<CreateBucketConfiguration/>"), None);
        assert_eq!(location_constraint(&[0xff, 0xfe]), None);
    }
}
