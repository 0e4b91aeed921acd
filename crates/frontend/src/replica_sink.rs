//! The replica sink (issue 16), on the link listener only (`link.rs`,
//! [`crate::link::admits`]). Other stamps' front-ends register a source with a destination
//! homed here, or have a geo-replica copy of their bucket made here ([`SOURCE_PATH`]) and read a source's watermark ([`WATERMARK_PATH`],
//! `replicated_through.rs`). Other stamps' partition servers deliver at [`APPLY_PATH`] the
//! versions they replicate into a bucket homed on this stamp; the sink relays each version to the owner of its key here as one
//! `ApplyReplica` stream (framing: `strata_proto::replica_link`). The owner decides everything
//! (the bucket's write gate, placement by version stamp, idempotence); the sink only carries,
//! and hands the owner's refusal back as the gRPC status it was, so the source classifies it
//! exactly as it would a refusal on its own stamp.
//!
//! Bounds: at most [`SINK_IN_FLIGHT_MAX`] relays at once (503 beyond), a header of at most
//! `HEADER_BYTES_MAX`, and the owner's answer within the source's own deadline (the source
//! drops the request, and with it the relay, when it gives up).

use std::sync::Arc;

use axum::body::Body as AxumBody;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use prost::Message;
use strata_proto::partition::{
    apply_replica_request, replica_link_answer, ApplyOutcome, ApplyReplicaHeader,
    ApplyReplicaRequest, ReplicaLinkAnswer, ReplicaLinkRefusal, ReplicaSourceRequest,
    ReplicaWatermarkAnswer,
};
use strata_proto::replica_link::{
    header_length, APPLY_PATH, CONTENT_TYPE, SOURCE_PATH, WATERMARK_PATH,
};
use strata_types::keys;
use tokio::sync::Semaphore;
use tonic::Status;

use crate::error::FrontendError;
use crate::frontend::Frontend;
use crate::link::{admits, Admission};
use crate::metrics::METRICS;
use crate::routing::{classify, Retry, Router, Verdict};

/// Relays in progress at once; more are answered 503 (the source backs off and retries).
pub const SINK_IN_FLIGHT_MAX: usize = 64;
/// Largest body of a source registration.
const SMALL_BODY_BYTES_MAX: usize = 64 * 1024;

type Request = http::Request<AxumBody>;
type Response = http::Response<AxumBody>;

/// The link listener's service: the replica sink for partition servers, `s3` for front-ends,
/// 403 for anything else ([`admits`]).
pub fn link_app(s3: axum::Router, frontend: Frontend) -> axum::Router {
    let slots = Arc::new(Semaphore::new(SINK_IN_FLIGHT_MAX));
    axum::Router::new().fallback_service(tower::service_fn(move |request: Request| {
        let s3 = s3.clone();
        let frontend = frontend.clone();
        let slots = slots.clone();
        async move {
            let peer = request.extensions().get::<crate::connections::LinkPeer>();
            let response = match admits(peer, request.uri().path()) {
                Admission::S3 => {
                    use tower::ServiceExt;
                    let Ok(response) = s3.oneshot(request).await;
                    response
                }
                Admission::ReplicaSink => match slots.try_acquire_owned() {
                    Ok(_slot) => serve(&frontend, request).await,
                    Err(_) => plain(http::StatusCode::SERVICE_UNAVAILABLE, "replica sink busy"),
                },
                Admission::Refused => plain(http::StatusCode::FORBIDDEN, "not for this caller"),
            };
            Ok::<_, std::convert::Infallible>(response)
        }
    }))
}

/// One call of the sink, by its path.
async fn serve(frontend: &Frontend, request: Request) -> Response {
    let method = request.method().clone();
    match request.uri().path() {
        APPLY_PATH if method == http::Method::POST => apply(&frontend.router, request).await,
        SOURCE_PATH if method == http::Method::POST => register_source(frontend, request).await,
        WATERMARK_PATH if method == http::Method::GET => {
            watermark(frontend, request.uri().query()).await
        }
        _ => plain(http::StatusCode::NOT_FOUND, "no such replica path"),
    }
}

/// A source registered with a destination homed here (before the source's rules are stored).
async fn register_source(frontend: &Frontend, request: Request) -> Response {
    let body = match axum::body::to_bytes(request.into_body(), SMALL_BODY_BYTES_MAX).await {
        Ok(body) => body,
        Err(err) => return plain(http::StatusCode::BAD_REQUEST, &err.to_string()),
    };
    let Ok(asked) = ReplicaSourceRequest::decode(body) else {
        return plain(http::StatusCode::BAD_REQUEST, "not a ReplicaSourceRequest");
    };
    if asked.geo_replica {
        return make_geo_copy(frontend, &asked).await;
    }
    match frontend
        .register_source_here(&asked.destination, &asked.source)
        .await
    {
        Ok(()) => plain(http::StatusCode::OK, "registered"),
        Err(err) => plain(http::StatusCode::CONFLICT, &format!("{err:?}")),
    }
}

/// A bucket homed on the caller's stamp asks for its geo-replica copy here (its source is
/// itself, and the copy is made listing it: an importing record takes no UpdateBucket).
async fn make_geo_copy(frontend: &Frontend, asked: &ReplicaSourceRequest) -> Response {
    if asked.destination != asked.source {
        return plain(
            http::StatusCode::BAD_REQUEST,
            "a geo-replica has its source's name",
        );
    }
    match frontend.make_geo_copy_here(&asked.destination).await {
        Ok(()) => plain(http::StatusCode::OK, "geo-replica copy made"),
        Err(crate::geo_replica::Refused::Held(why)) => plain(http::StatusCode::CONFLICT, &why),
        Err(crate::geo_replica::Refused::Unavailable(why)) => {
            plain(http::StatusCode::SERVICE_UNAVAILABLE, &why)
        }
    }
}

/// A source bucket homed here: its watermark (0 when not known now).
async fn watermark(frontend: &Frontend, query: Option<&str>) -> Response {
    let bucket = query
        .and_then(|q| q.strip_prefix("bucket="))
        .and_then(|b| urlencoding::decode(b).ok())
        .map(|b| b.into_owned())
        .unwrap_or_default();
    let watermark_ms = frontend.watermark_here_ms(&bucket).await;
    let body = ReplicaWatermarkAnswer { watermark_ms }.encode_to_vec();
    let mut response = http::Response::new(AxumBody::from(body));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(CONTENT_TYPE),
    );
    response
}

/// One replica: the header, then a relay to its key's owner.
async fn apply(router: &Router, request: Request) -> Response {
    let mut body = request.into_body().into_data_stream();
    let (header, rest) = match read_header(&mut body).await {
        Ok(read) => read,
        Err(why) => return plain(http::StatusCode::BAD_REQUEST, &why),
    };
    let key = keys::object_key(&header.bucket, &header.key);
    let outcome = if header.with_bytes {
        let data = futures::stream::iter((!rest.is_empty()).then_some(Ok(rest)))
            .chain(body)
            // A body cut short ends the stream: the owner refuses the short version.
            .take_while(|chunk| futures::future::ready(chunk.is_ok()))
            .filter_map(|chunk| async move { chunk.ok() })
            .map(|bytes| ApplyReplicaRequest {
                part: Some(apply_replica_request::Part::Data(bytes.to_vec())),
            });
        relay_with_bytes(router, &key, header, data).await
    } else {
        relay_offer(router, &key, header).await
    };
    answer(outcome)
}

/// The length-prefixed header from the body's start, and whatever bytes followed it.
async fn read_header<S>(body: &mut S) -> Result<(ApplyReplicaHeader, Bytes), String>
where
    S: futures::Stream<Item = Result<Bytes, axum::Error>> + Unpin,
{
    let mut buffered = BytesMut::new();
    let mut wanted: Option<usize> = None;
    loop {
        if wanted.is_none() && buffered.len() >= 4 {
            let prefix: [u8; 4] = buffered[..4].try_into().map_err(|_| "prefix")?;
            let length = header_length(prefix).ok_or("the replica header is too large")?;
            wanted = Some(4 + length);
        }
        if let Some(end) = wanted.filter(|end| buffered.len() >= *end) {
            let rest = buffered.split_off(end).freeze();
            let header = ApplyReplicaHeader::decode(&buffered[4..])
                .map_err(|err| format!("the replica header does not decode: {err}"))?;
            return Ok((header, rest));
        }
        match body.next().await {
            Some(Ok(chunk)) => buffered.extend_from_slice(&chunk),
            Some(Err(err)) => return Err(format!("reading the replica: {err}")),
            None => return Err("the replica ended inside its header".into()),
        }
    }
}

fn header_part(header: ApplyReplicaHeader) -> ApplyReplicaRequest {
    ApplyReplicaRequest {
        part: Some(apply_replica_request::Part::Header(header)),
    }
}

/// A version offered without bytes: safe to repeat, so retried over map changes.
async fn relay_offer(
    router: &Router,
    key: &[u8],
    header: ApplyReplicaHeader,
) -> Result<ApplyOutcome, Status> {
    let called = router
        .call(key, false, |mut client, _| {
            let offer = futures::stream::iter([header_part(header.clone())]);
            async move { client.apply_replica(offer).await }
        })
        .await;
    match called {
        Ok((answer, _)) => Ok(answer.into_inner().outcome()),
        Err(err) => Err(status_of(err)),
    }
}

/// A version with its bytes: one attempt (the body cannot be read twice); a refusal that a
/// fresh map could cure refreshes it, and the source sends again.
async fn relay_with_bytes<S>(
    router: &Router,
    key: &[u8],
    header: ApplyReplicaHeader,
    data: S,
) -> Result<ApplyOutcome, Status>
where
    S: futures::Stream<Item = ApplyReplicaRequest> + Send + 'static,
{
    let mut retry = Retry::new(router.retry_budget());
    let route = router.route(key, &mut retry).await.map_err(status_of)?;
    let mut client = router
        .streaming_client(&route.owner_addr)
        .map_err(status_of)?;
    let stream = futures::stream::iter([header_part(header)]).chain(data);
    match client.apply_replica(stream).await {
        Ok(answer) => Ok(answer.into_inner().outcome()),
        Err(status) => {
            if classify(&status) == Verdict::Retry {
                if let Err(err) = router.refresh(Some(route.map_fetched_at)).await {
                    tracing::debug!(%err, "map refresh after a refused replica failed");
                }
            }
            Err(status)
        }
    }
}

/// A front-end failure as the status the source classifies (unreachable owners: transient).
fn status_of(err: FrontendError) -> Status {
    match err {
        FrontendError::Rpc(status) => status,
        FrontendError::SlowDown(message) => Status::resource_exhausted(message),
        other => Status::unavailable(other.to_string()),
    }
}

fn answer(outcome: Result<ApplyOutcome, Status>) -> Response {
    let (label, answer) = match outcome {
        Ok(outcome) => (
            match outcome {
                ApplyOutcome::Applied => "applied",
                ApplyOutcome::Present => "present",
                ApplyOutcome::NeedBytes => "need-bytes",
            },
            replica_link_answer::Answer::Applied(strata_proto::partition::ApplyReplicaResponse {
                outcome: outcome as i32,
            }),
        ),
        Err(status) => (
            "refused",
            replica_link_answer::Answer::Refused(ReplicaLinkRefusal {
                code: status.code() as i32,
                message: status.message().to_string(),
                details: status.details().to_vec(),
            }),
        ),
    };
    METRICS.replicas.with_label_values(&[label]).inc();
    let body = ReplicaLinkAnswer {
        answer: Some(answer),
    }
    .encode_to_vec();
    let mut response = http::Response::new(AxumBody::from(body));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(CONTENT_TYPE),
    );
    response
}

fn plain(status: http::StatusCode, text: &str) -> Response {
    if status != http::StatusCode::FORBIDDEN {
        METRICS.replicas.with_label_values(&["failed"]).inc();
    }
    let mut response = http::Response::new(AxumBody::from(text.to_string()));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_header_split_over_body_frames_reads_whole_and_keeps_the_bytes_after_it() {
        let header = ApplyReplicaHeader {
            bucket: "dest".into(),
            key: "a/b".into(),
            version: None,
            with_bytes: true,
            geo_replica: false,
        };
        let mut framed = strata_proto::replica_link::frame_header(&header);
        framed.extend_from_slice(b"DATA");
        let frames: Vec<Result<Bytes, axum::Error>> = framed
            .chunks(3)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let mut body = futures::stream::iter(frames);
        let (read, rest) = read_header(&mut body).await.unwrap();
        assert_eq!(read, header);
        let mut after = rest.to_vec();
        while let Some(Ok(chunk)) = body.next().await {
            after.extend_from_slice(&chunk);
        }
        assert_eq!(after, b"DATA");
    }

    #[tokio::test]
    async fn a_short_or_oversized_header_is_refused() {
        let mut short = futures::stream::iter(vec![Ok::<_, axum::Error>(Bytes::from_static(&[
            0, 0, 0, 9, 1,
        ]))]);
        assert!(read_header(&mut short).await.is_err());
        let too_big = ((strata_proto::replica_link::HEADER_BYTES_MAX + 1) as u32).to_be_bytes();
        let mut oversized =
            futures::stream::iter(vec![Ok::<_, axum::Error>(Bytes::copy_from_slice(&too_big))]);
        let err = read_header(&mut oversized).await.unwrap_err();
        assert!(err.contains("too large"), "{err}");
    }
}
