//! The control endpoint of a running `strata up` (loopback only): lists nodes and carries out
//! fault-injection actions on them, so `strata node kill extent-r1-1` (and tests) can act on
//! the stamp's processes without racing the supervisor.
//!
//! `GET /nodes` lists nodes; `POST /nodes/<name>/<kill|stop|start|pause|resume>` acts.

use crate::layout::RunningStamp;
use crate::supervisor::{NodeAction, NodeReport, Supervisor};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Bound on one control request (a graceful stop may take up to the stop grace period).
const CONTROL_TIMEOUT_MS: u64 = 30_000;

async fn list(State(supervisor): State<Arc<Supervisor>>) -> Json<Vec<NodeReport>> {
    Json(supervisor.nodes().await)
}

async fn act(
    State(supervisor): State<Arc<Supervisor>>,
    Path((name, action)): Path<(String, String)>,
) -> Result<Json<NodeReport>, (StatusCode, String)> {
    let action: NodeAction = serde_json::from_value(serde_json::Value::String(action.clone()))
        .map_err(|_| {
            (
                StatusCode::BAD_REQUEST,
                format!("unknown action {action:?}"),
            )
        })?;
    supervisor
        .act(&name, action)
        .await
        .map(Json)
        .map_err(|err| (StatusCode::CONFLICT, format!("{err:#}")))
}

/// Serves the control endpoint on a free loopback port until `token` is cancelled.
pub async fn serve(
    supervisor: Arc<Supervisor>,
    token: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/nodes", get(list))
        .route("/nodes/{name}/{action}", post(act))
        .with_state(supervisor);
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { token.cancelled().await })
            .await;
        if let Err(err) = served {
            eprintln!("strata: control endpoint failed: {err}");
        }
    });
    Ok(addr)
}

/// Asks the running stamp in `data_dir` to act on one node.
pub async fn request(
    data_dir: &std::path::Path,
    name: &str,
    action: NodeAction,
) -> anyhow::Result<NodeReport> {
    let running = RunningStamp::load(data_dir)?;
    anyhow::ensure!(
        !running.control_addr.is_empty(),
        "the running stamp has no control endpoint"
    );
    let action_name = serde_json::to_value(action)?;
    let action_name = action_name.as_str().unwrap_or_default();
    let uri: http::Uri =
        format!("http://{}/nodes/{name}/{action_name}", running.control_addr).parse()?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let request = http::Request::post(uri).body(Empty::new())?;
    let exchange = async {
        let response = client.request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, body))
    };
    let (status, body) = tokio::time::timeout(Duration::from_millis(CONTROL_TIMEOUT_MS), exchange)
        .await
        .map_err(|_| anyhow::anyhow!("the stamp did not answer in time"))??;
    anyhow::ensure!(status.is_success(), "{}", String::from_utf8_lossy(&body));
    Ok(serde_json::from_slice(&body)?)
}
