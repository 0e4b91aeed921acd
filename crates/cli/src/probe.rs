//! Health probes over HTTP (`GET /health` on a node's admin address), each with a timeout.

use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

pub const PROBE_TIMEOUT_MS: u64 = 1_000;

/// GETs `http://addr/path` and returns (status code, body), or None when nothing answered in
/// time.
pub async fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let uri: http::Uri = format!("http://{addr}{path}").parse().ok()?;
    let request = async {
        let response = client.get(uri).await.ok()?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.ok()?.to_bytes();
        Some((status, String::from_utf8_lossy(&body).to_string()))
    };
    tokio::time::timeout(Duration::from_millis(PROBE_TIMEOUT_MS), request)
        .await
        .ok()
        .flatten()
}

/// `strata probe`: every address must answer 200 (a container healthcheck), or with `--reach`
/// one line per address saying what answered.
pub async fn run(args: &crate::ProbeArgs) -> anyhow::Result<()> {
    let answers = futures::future::join_all(args.addrs.iter().map(|addr| get(addr, &args.path)));
    for (addr, answer) in args.addrs.iter().zip(answers.await) {
        if args.reach {
            let status = answer.map(|(status, _)| status);
            println!("{}", serde_json::json!({ "addr": addr, "status": status }));
            continue;
        }
        match answer {
            Some((200, _)) => {}
            Some((status, body)) => anyhow::bail!("{addr} answered {status}: {body}"),
            None => anyhow::bail!("{addr} gave no answer (refused or timed out)"),
        }
    }
    Ok(())
}

/// Whether the node at `addr` answers its health check with 200.
pub async fn healthy(addr: &str) -> bool {
    matches!(get(addr, "/health").await, Some((200, _)))
}

/// The `nodes_healthy` count a stream manager member reports in its health details, or None
/// when it does not answer healthy (no leader known yet) or the body has no count.
pub async fn stream_manager_nodes_healthy(addr: &str) -> Option<u64> {
    let (status, body) = get(addr, "/health").await?;
    if status != 200 {
        return None;
    }
    // The admin server answers {"status": "ok", "details": <the node's health details>}.
    let health: serde_json::Value = serde_json::from_str(&body).ok()?;
    health.get("details")?.get("nodes_healthy")?.as_u64()
}
