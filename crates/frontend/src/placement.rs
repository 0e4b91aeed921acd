//! Where a new bucket goes (issue 15, item 3). A CreateBucket for a name no stamp holds is
//! placed on an open stamp of the region it asks for (its `LocationConstraint`; none: this
//! stamp's region), the one [`strata_location::fill`] ranks first: the least full, stamps 80%
//! full or more only when all are, then the fewest buckets, then this stamp, then by name.
//! Placed here, it is served here; placed elsewhere, it is forwarded as it came to that
//! stamp's front-end, which creates the bucket on itself (a forwarded request is never placed
//! again). A constraint no stamp's region matches is answered here: this stamp's CreateBucket
//! refuses a foreign region with `InvalidLocationConstraint`. When the location group cannot
//! list the stamps, a bucket of this stamp's region is created here.
//!
//! Only this request is read before it is forwarded: its body is XML of at most
//! `XML_BODY_BYTES_MAX` bytes with a Content-Length; any other body is served here as it is
//! (s3s bounds and refuses it).

use crate::error::{error_response, FrontendError, Refusal};
use crate::forward::Forwarder;
use axum::body::Body as AxumBody;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use strata_location::fill::placement_rank;
use strata_proto::location::Stamp;
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

/// What a CreateBucket's body says before it is placed.
enum Body {
    /// Read whole (bounded; empty when there is none), with the region it names.
    Read(http::request::Parts, Bytes, Option<String>),
    /// A body that cannot be read here (no length, too long): served here as it is.
    Unread(Request),
}

async fn read_body(request: Request) -> Result<Body, Response> {
    let headers = request.headers();
    let length = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = headers.contains_key(http::header::TRANSFER_ENCODING);
    let (parts, body) = request.into_parts();
    match length {
        None | Some(0) if !chunked => return Ok(Body::Read(parts, Bytes::new(), None)),
        Some(length) if (1..=XML_BODY_BYTES_MAX).contains(&length) => {}
        _ => return Ok(Body::Unread(Request::from_parts(parts, body))),
    }
    match axum::body::to_bytes(body, XML_BODY_BYTES_MAX as usize).await {
        Ok(bytes) => {
            let region = location_constraint(&bytes);
            Ok(Body::Read(parts, bytes, region))
        }
        Err(err) => {
            tracing::debug!(%err, "CreateBucket body unreadable");
            let refused = FrontendError::refused(
                Refusal::IncompleteBody,
                "You did not provide the number of bytes specified by the Content-Length HTTP header.",
            );
            Err(error_response(refused))
        }
    }
}

/// Most stamps a CreateBucket is offered to before it is created here.
const PLACEMENT_TRIES_MAX: usize = 3;

/// The CreateBucket forwarded to the stamp it is placed on, or handed back (`Err`, with its
/// body) to be served here. A stamp that takes no connection is passed over (for
/// `UNREACHABLE_MS`) and the next one chosen: a stamp that is down gets no new buckets.
pub async fn place(
    forwarder: &Forwarder,
    request: Request,
    bucket: &str,
) -> Result<Response, Request> {
    let own_region = &forwarder.frontend.config.region;
    let (parts, bytes, region) = match read_body(request).await {
        Err(refused) => return Ok(refused),
        Ok(Body::Unread(request)) => return Err(request),
        Ok(Body::Read(parts, bytes, region)) => {
            (parts, bytes, region.unwrap_or(own_region.clone()))
        }
    };
    let own = &forwarder.frontend.config.stamp;
    for _ in 0..PLACEMENT_TRIES_MAX {
        let stamps: Vec<Stamp> = forwarder
            .stamps()
            .await
            .into_iter()
            .filter(|s| &s.name == own || !forwarder.unreachable(&s.name))
            .collect();
        let Some(chosen) = choose(&stamps, &region, own, forwarder.has_links()) else {
            break;
        };
        if &chosen.name == own {
            forwarder.count_placement(own);
            break;
        }
        tracing::info!(bucket, %region, stamp = %chosen.name, "CreateBucket placed on another stamp");
        let sent = forwarder
            .forward_buffered(&parts, bytes.clone(), &chosen.name, &chosen.endpoints)
            .await;
        if let Some(answer) = sent {
            forwarder.count_placement(&chosen.name);
            return Ok(answer);
        }
    }
    let served_elsewhere = forwarder.stamps().await.iter().any(|s| s.region == region);
    if &region != own_region && served_elsewhere {
        // The region exists, but none of its stamps took a connection.
        let mut response = error_response(FrontendError::Unavailable(format!(
            "no stamp of region {region} can be reached"
        )));
        crate::server::add_retry_after(&mut response);
        return Ok(response);
    }
    Err(Request::from_parts(parts, AxumBody::from(bytes)))
}

/// The stamp a new bucket of `region` goes to: see the module comment. Stamps of other
/// regions, draining ones and (other than `own`) ones without an endpoint this front-end can
/// forward to (a plain-HTTP one, or a link when `links`: it holds an mTLS identity; see
/// `forward.rs`) are never chosen.
pub fn choose<'a>(stamps: &'a [Stamp], region: &str, own: &str, links: bool) -> Option<&'a Stamp> {
    let reachable = |endpoint: &String| {
        endpoint.starts_with("http://") || (links && endpoint.starts_with(crate::link::LINK_SCHEME))
    };
    stamps
        .iter()
        .filter(|s| s.region == region && s.state == "open")
        .filter(|s| s.name == own || s.endpoints.iter().any(reachable))
        .min_by_key(|s| {
            let rank = placement_rank(s.capacity_bytes, s.stored_bytes, s.buckets);
            (rank, s.name != own, s.name.clone())
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

    fn stamp(
        name: &str,
        region: &str,
        capacity_bytes: u64,
        stored_bytes: u64,
        buckets: u64,
    ) -> Stamp {
        Stamp {
            name: name.into(),
            region: region.into(),
            state: "open".into(),
            endpoints: vec![format!("http://{name}:9000")],
            capacity_bytes,
            stored_bytes,
            buckets,
            ..Default::default()
        }
    }

    fn chosen(stamps: &[Stamp], region: &str, own: &str) -> Option<String> {
        choose(stamps, region, own, false).map(|s| s.name.clone())
    }

    #[test]
    fn a_new_bucket_goes_to_the_least_full_open_stamp_of_its_region() {
        let stamps = [
            stamp("stamp-1", "us-east-1", 1_000, 500, 1),
            stamp("stamp-2", "us-east-1", 1_000, 100, 9),
            stamp("stamp-3", "eu-west-1", 1_000, 0, 0),
        ];
        assert_eq!(
            chosen(&stamps, "us-east-1", "stamp-1").as_deref(),
            Some("stamp-2")
        );
        assert_eq!(
            chosen(&stamps, "eu-west-1", "stamp-1").as_deref(),
            Some("stamp-3")
        );
        assert_eq!(chosen(&stamps, "ap-south-1", "stamp-1"), None);
        let mut draining = stamps.clone();
        draining[1].state = "draining".into();
        assert_eq!(
            chosen(&draining, "us-east-1", "stamp-1").as_deref(),
            Some("stamp-1")
        );
    }

    #[test]
    fn equal_fills_spread_by_bucket_count_and_ties_stay_here() {
        let even = [
            stamp("stamp-1", "r", 0, 0, 3),
            stamp("stamp-2", "r", 0, 0, 3),
        ];
        assert_eq!(chosen(&even, "r", "stamp-2").as_deref(), Some("stamp-2"));
        assert_eq!(chosen(&even, "r", "stamp-1").as_deref(), Some("stamp-1"));
        let fewer = [
            stamp("stamp-1", "r", 0, 0, 3),
            stamp("stamp-2", "r", 0, 0, 2),
        ];
        assert_eq!(chosen(&fewer, "r", "stamp-1").as_deref(), Some("stamp-2"));
        // Another stamp with no endpoint, or only HTTPS ones, cannot be forwarded to.
        let mut silent = fewer.clone();
        silent[1].endpoints.clear();
        assert_eq!(chosen(&silent, "r", "stamp-1").as_deref(), Some("stamp-1"));
        silent[1].endpoints = vec!["https://stamp-2:9000".into()];
        assert_eq!(chosen(&silent, "r", "stamp-1").as_deref(), Some("stamp-1"));
        // ... unless this front-end holds an identity for the links.
        let linked = choose(&silent, "r", "stamp-1", true).map(|s| s.name.as_str());
        assert_eq!(linked, Some("stamp-2"));
    }
}
