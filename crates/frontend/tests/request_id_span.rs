//! The id a client sees in `x-amz-request-id` is the id of the `request` span the front-end
//! handled the request in (what `grep <request id>` finds in its log).

use std::sync::{Arc, Mutex};
use strata_frontend::{app, build_s3_service, FrontendConfig};
use tower::ServiceExt;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing_subscriber::layer::{Context, SubscriberExt};

/// Records the `id` field of every `request` span opened.
#[derive(Clone, Default)]
struct RequestSpans(Arc<Mutex<Vec<String>>>);

struct IdField(Option<String>);

impl Visit for IdField {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "id" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for RequestSpans {
    fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        if attrs.metadata().name() == "request" {
            let mut id = IdField(None);
            attrs.record(&mut id);
            self.0.lock().unwrap().extend(id.0);
        }
    }
}

/// An S3 implementation that answers nothing: the request below is refused before it.
struct NoS3;

#[async_trait::async_trait]
impl s3s::S3 for NoS3 {}

#[tokio::test(flavor = "current_thread")]
async fn the_answered_request_id_names_the_request_span() {
    let spans = RequestSpans::default();
    let _subscriber =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
    let config = FrontendConfig::new(vec!["127.0.0.1:1".into()], "access", "secret");
    let app = app(build_s3_service(NoS3, &config), &config, None);

    let mut answered = Vec::new();
    for _ in 0..2 {
        // Anonymous: refused with AccessDenied, still answered with its id.
        let request = http::Request::get("/")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let id = response
            .headers()
            .get("x-amz-request-id")
            .expect("every answer carries x-amz-request-id")
            .to_str()
            .unwrap()
            .to_string();
        answered.push(id);
    }
    assert_ne!(answered[0], answered[1], "each request has its own id");
    assert_eq!(*spans.0.lock().unwrap(), answered);
}
