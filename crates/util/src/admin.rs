//! The admin HTTP server: `GET /health` (200 when healthy, 503 otherwise, JSON body) and
//! `GET /metrics` (Prometheus text format from the default registry).

use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Json, Router};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Answers the health check: Ok(details) when healthy, Err(reason) when not.
pub type HealthCheck = Arc<dyn Fn() -> Result<serde_json::Value, String> + Send + Sync>;

/// A health check that is always healthy, reporting the node kind.
pub fn always_healthy(kind: &'static str) -> HealthCheck {
    Arc::new(move || Ok(serde_json::json!({ "kind": kind })))
}

async fn health(State(check): State<HealthCheck>) -> impl IntoResponse {
    match check() {
        Ok(details) => (
            StatusCode::OK,
            Json(serde_json::json!({ "status": "ok", "details": details })),
        ),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "unhealthy", "reason": reason })),
        ),
    }
}

async fn metrics() -> impl IntoResponse {
    use prometheus::Encoder;
    let encoder = prometheus::TextEncoder::new();
    let mut buffer = Vec::new();
    if let Err(err) = encoder.encode(&prometheus::gather(), &mut buffer) {
        return (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response();
    }
    (
        [(
            http::header::CONTENT_TYPE,
            encoder.format_type().to_string(),
        )],
        buffer,
    )
        .into_response()
}

/// Binds `addr` and serves the admin endpoints until `token` is cancelled. Returns the bound
/// address (useful with port 0) and the server task.
pub async fn serve(
    addr: SocketAddr,
    check: HealthCheck,
    token: CancellationToken,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(check);
    let task = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move { token.cancelled().await })
            .await;
        if let Err(err) = result {
            tracing::error!(%err, "admin server failed");
        }
    });
    Ok((bound, task))
}
