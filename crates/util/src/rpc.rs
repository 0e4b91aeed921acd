//! gRPC plumbing: channels that always time out, and serving a router until shutdown.

use std::net::SocketAddr;
use std::time::Duration;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

/// Connecting to a peer on loopback or a LAN takes far less; past this the peer is down.
pub const CONNECT_TIMEOUT_MS: u64 = 1_000;
/// HTTP/2 keep-alive pings on every channel: sent this often ...
pub const KEEP_ALIVE_INTERVAL_MS: u64 = 1_000;
/// ... and a connection whose ping is not answered this fast is dropped.
pub const KEEP_ALIVE_TIMEOUT_MS: u64 = 2_000;
/// Default bound on one unary RPC. Streaming RPCs bound each message instead.
pub const REQUEST_TIMEOUT_MS: u64 = 10_000;

/// A lazily connected channel to `addr` ("host:port") with connect and request timeouts.
pub fn channel(addr: &str) -> anyhow::Result<Channel> {
    channel_with_timeout(addr, Duration::from_millis(REQUEST_TIMEOUT_MS))
}

/// Like [`channel`] with a custom per-request timeout.
pub fn channel_with_timeout(addr: &str, request_timeout: Duration) -> anyhow::Result<Channel> {
    let uri = if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    let endpoint = Endpoint::from_shared(uri)?
        .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
        .timeout(request_timeout)
        .tcp_nodelay(true)
        // A peer cut off by the network (not crashed: no reset comes) holds a connection whose
        // calls hang and whose TCP retransmissions back off for seconds after the network
        // heals; pings find it within KEEP_ALIVE_INTERVAL_MS + KEEP_ALIVE_TIMEOUT_MS, idle or
        // not, and the channel reconnects afresh. The timeout leaves room for a busy peer.
        .http2_keep_alive_interval(Duration::from_millis(KEEP_ALIVE_INTERVAL_MS))
        .keep_alive_timeout(Duration::from_millis(KEEP_ALIVE_TIMEOUT_MS))
        .keep_alive_while_idle(true);
    Ok(endpoint.connect_lazy())
}

/// A channel for streaming RPCs that move object bytes: no overall deadline (a 5 GiB body takes
/// a while), but connect timeout and HTTP/2 keep-alive still notice a dead peer.
pub fn streaming_channel(addr: &str) -> anyhow::Result<Channel> {
    channel_with_timeout(addr, Duration::from_secs(24 * 3600))
}

/// Binds `addr`, returning the listener and the bound address (port 0 picks a free port).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

/// Serves `router` on `listener` until `token` is cancelled.
pub async fn serve(
    router: tonic::transport::server::Router,
    listener: tokio::net::TcpListener,
    token: CancellationToken,
) -> anyhow::Result<()> {
    // tonic ignores `Server::tcp_nodelay` for an incoming stream we supply, so set it on every
    // accepted socket: without it small replies wait for the peer's delayed ACK (~40 ms).
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|accepted| {
        if let Ok(socket) = &accepted {
            let _ = socket.set_nodelay(true);
        }
        accepted
    });
    router
        .serve_with_incoming_shutdown(incoming, async move { token.cancelled().await })
        .await?;
    Ok(())
}

/// A tonic server builder with the limits every Strata service uses.
pub fn server() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .concurrency_limit_per_connection(256)
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(5)))
}
