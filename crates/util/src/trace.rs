//! One request followed across nodes.
//!
//! The front-end gives each S3 request an id (answered to the client in `x-amz-request-id`),
//! opens a `request` span named by it and runs the request's handling inside [`scope`]. Every
//! gRPC call made through a channel from [`crate::rpc`] inside that scope carries the id in the
//! [`REQUEST_ID_HEADER`] metadata ([`PropagateRequestId`]); every server started with
//! [`crate::rpc::server`] reads it back ([`RequestIdLayer`]), opens a `request` span with the
//! same id and scopes it again, so the partition server's own calls to extent nodes carry it
//! on. Following one request is then `grep <request id>` over every node's log.
//!
//! The id lives in a `tokio::task_local!`, so it follows the future that handles the request,
//! not the thread. Work a handler hands to a task it spawns (`tokio::spawn`: group commits,
//! background repair, read-ahead of a streamed body) runs outside the scope and loses the id,
//! unless the spawner wraps the task in [`scope`] with [`current`] itself.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::task::futures::TaskLocalFuture;
use tracing::instrument::Instrumented;
use tracing::Instrument;

/// gRPC metadata key that carries the request id between nodes.
pub const REQUEST_ID_HEADER: &str = "x-strata-request-id";
/// Longest id accepted from a peer; a longer one is ignored (it is only a log label).
pub const REQUEST_ID_BYTES_MAX: usize = 128;

tokio::task_local! {
    static REQUEST_ID: Option<Arc<str>>;
}

/// A fresh request id: 16 upper-case hex digits, like S3's. Random, so front-ends need no
/// coordination to keep ids apart.
pub fn new_request_id() -> String {
    format!("{:016X}", rand::random::<u64>())
}

/// The id of the request whose handling is running, if any.
pub fn current() -> Option<Arc<str>> {
    REQUEST_ID.try_with(|id| id.clone()).ok().flatten()
}

/// The span every node opens for one request; its `id` field is what `grep` finds.
pub fn request_span(id: &str) -> tracing::Span {
    tracing::info_span!("request", id = %id)
}

/// Runs `future` as part of request `id`: inside its span, with the id carried on every gRPC
/// call it makes.
pub fn scope<F: Future>(id: &str, future: F) -> Instrumented<TaskLocalFuture<Option<Arc<str>>, F>> {
    REQUEST_ID
        .scope(Some(Arc::from(id)), future)
        .instrument(request_span(id))
}

/// Client side: copies the current request id into the call's metadata.
#[derive(Clone, Copy, Debug, Default)]
pub struct PropagateRequestId;

impl tonic::service::Interceptor for PropagateRequestId {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(id) = current() {
            // An id is ASCII by construction; one that is not is dropped, never an error.
            if let Ok(value) = id.parse() {
                request.metadata_mut().insert(REQUEST_ID_HEADER, value);
            }
        }
        Ok(request)
    }
}

/// Server side: a tower layer that scopes each incoming call in the id its metadata carries.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestIdLayer;

impl<S> tower::Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner }
    }
}

/// See [`RequestIdLayer`].
#[derive(Clone, Debug)]
pub struct RequestIdService<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for RequestIdService<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Instrumented<TaskLocalFuture<Option<Arc<str>>, S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let id: Option<Arc<str>> = request
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|value| value.to_str().ok())
            .filter(|id| !id.is_empty() && id.len() <= REQUEST_ID_BYTES_MAX)
            .map(Arc::from);
        // A call without an id (raft heartbeats, background work) gets no span: it would only
        // add noise to every line it logs.
        let span = match &id {
            Some(id) => request_span(id),
            None => tracing::Span::none(),
        };
        REQUEST_ID
            .scope(id, self.inner.call(request))
            .instrument(span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    #[tokio::test]
    async fn the_interceptor_copies_the_scoped_id_and_nothing_outside_a_scope() {
        let outside = PropagateRequestId.call(tonic::Request::new(())).unwrap();
        assert!(outside.metadata().get(REQUEST_ID_HEADER).is_none());
        let inside = scope("ABC123", async {
            assert_eq!(current().as_deref(), Some("ABC123"));
            PropagateRequestId.call(tonic::Request::new(())).unwrap()
        })
        .await;
        assert_eq!(inside.metadata().get(REQUEST_ID_HEADER).unwrap(), "ABC123");
    }

    #[test]
    fn ids_are_sixteen_hex_digits_and_differ() {
        let (a, b) = (new_request_id(), new_request_id());
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
