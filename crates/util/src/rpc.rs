//! gRPC plumbing: channels that always time out and carry the request id, one bounded pool of
//! them per use, and serving a router until shutdown.
//!
//! TLS (issue 14): every server and channel takes an `Option<&Identity>` ([`server_with`],
//! [`channel_with`], [`ChannelPool::with_identity`]); `None` is plain gRPC. A node process has
//! one identity, installed once at start by its binary ([`install_identity`]); the functions
//! without an identity argument ([`server`], [`channel`], [`ChannelPool::new`], ...) use that
//! one, so a layer's code does not carry it around. A process that installs none (tests,
//! plain deployments) stays plain; a test that needs other identities passes them explicitly.

use crate::tls::Identity;
use crate::trace::{PropagateRequestId, RequestIdLayer};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Endpoint;

/// Every Strata client talks through this: a tonic channel whose calls carry the current
/// request id (see [`crate::trace`]). Generated clients take it as their `T`.
pub type Channel = InterceptedService<tonic::transport::Channel, PropagateRequestId>;

/// A router of services behind the request-id layer, as [`server`] builds it.
pub type Router = tonic::transport::server::Router<
    tower::layer::util::Stack<RequestIdLayer, tower::layer::util::Identity>,
>;

/// Connecting to a peer on loopback or a LAN takes far less; past this the peer is down.
pub const CONNECT_TIMEOUT_MS: u64 = 1_000;
/// HTTP/2 keep-alive pings on every channel: sent this often ...
pub const KEEP_ALIVE_INTERVAL_MS: u64 = 1_000;
/// ... and a connection whose ping is not answered this fast is dropped.
pub const KEEP_ALIVE_TIMEOUT_MS: u64 = 2_000;
/// Default bound on one unary RPC. Streaming RPCs bound each message instead.
pub const REQUEST_TIMEOUT_MS: u64 = 10_000;

/// Per-request bound of channels for streaming RPCs that move object bytes (and for calls the
/// caller bounds itself): none to speak of.
pub const STREAMING_REQUEST_TIMEOUT_MS: u64 = 24 * 3600 * 1000;
/// Distinct addresses a [`ChannelPool`] keeps before it starts afresh.
pub const POOL_SIZE_MAX: usize = 4096;

static PROCESS_IDENTITY: OnceLock<Option<Identity>> = OnceLock::new();

/// Sets this process's TLS identity (`None`: plain gRPC), once, before any server or channel is
/// made; a second call is an error (a process has one identity).
pub fn install_identity(identity: Option<Identity>) -> anyhow::Result<()> {
    PROCESS_IDENTITY
        .set(identity)
        .map_err(|_| anyhow::anyhow!("the process TLS identity is already set"))
}

/// The identity [`install_identity`] set; `None` (plain) when none was.
pub fn process_identity() -> Option<&'static Identity> {
    PROCESS_IDENTITY.get().and_then(Option::as_ref)
}

/// A lazily connected channel to `addr` ("host:port") with connect and request timeouts.
pub fn channel(addr: &str) -> anyhow::Result<Channel> {
    channel_with_timeout(addr, Duration::from_millis(REQUEST_TIMEOUT_MS))
}

/// Like [`channel`] with a custom per-request timeout.
pub fn channel_with_timeout(addr: &str, request_timeout: Duration) -> anyhow::Result<Channel> {
    channel_with(addr, request_timeout, process_identity())
}

/// Like [`channel_with_timeout`], presenting `identity` (and verifying the server against its
/// CA) instead of the process's; `None` is plain.
pub fn channel_with(
    addr: &str,
    request_timeout: Duration,
    identity: Option<&Identity>,
) -> anyhow::Result<Channel> {
    let host_port = addr
        .strip_prefix("http://")
        .or_else(|| addr.strip_prefix("https://"))
        .unwrap_or(addr);
    let scheme = if identity.is_some() { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{host_port}"))?;
    if let Some(identity) = identity {
        endpoint = endpoint.tls_config(identity.client_config())?;
    }
    let endpoint = endpoint
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
    Ok(InterceptedService::new(
        endpoint.connect_lazy(),
        PropagateRequestId,
    ))
}

/// A channel for streaming RPCs that move object bytes: no overall deadline (a 5 GiB body takes
/// a while), but connect timeout and HTTP/2 keep-alive still notice a dead peer.
pub fn streaming_channel(addr: &str) -> anyhow::Result<Channel> {
    channel_with_timeout(addr, Duration::from_millis(STREAMING_REQUEST_TIMEOUT_MS))
}

/// An address a channel cannot be made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadAddress {
    pub addr: String,
    pub reason: String,
}

impl std::fmt::Display for BadAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad address {:?}: {}", self.addr, self.reason)
    }
}

impl std::error::Error for BadAddress {}

/// Channels cached by address, all with one request timeout. Channels connect lazily and
/// reconnect by themselves, so a cached one stays good; the pool only saves the handshake.
/// Past `size_max` addresses (peers come and go over months) it starts afresh: clients
/// already handed out keep their channel, the next lookup of an address makes a new one.
pub struct ChannelPool {
    request_timeout: Duration,
    size_max: usize,
    identity: Option<Identity>,
    channels: Mutex<HashMap<String, Channel>>,
}

impl std::fmt::Debug for ChannelPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelPool")
            .field("request_timeout", &self.request_timeout)
            .field("size_max", &self.size_max)
            .field("tls", &self.identity.is_some())
            .field("len", &self.len())
            .finish()
    }
}

impl ChannelPool {
    /// Channels whose every call is bounded by `request_timeout`.
    pub fn new(request_timeout: Duration) -> Self {
        Self::with_size_max(request_timeout, POOL_SIZE_MAX)
    }

    /// Channels with the default request timeout ([`REQUEST_TIMEOUT_MS`]).
    pub fn unary() -> Self {
        Self::new(Duration::from_millis(REQUEST_TIMEOUT_MS))
    }

    /// Channels for streaming RPCs and for calls the caller bounds itself (see
    /// [`streaming_channel`]).
    pub fn streaming() -> Self {
        Self::new(Duration::from_millis(STREAMING_REQUEST_TIMEOUT_MS))
    }

    /// Like [`ChannelPool::new`], keeping at most `size_max` addresses.
    pub fn with_size_max(request_timeout: Duration, size_max: usize) -> Self {
        Self {
            request_timeout,
            size_max: size_max.max(1),
            identity: process_identity().cloned(),
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// This pool with channels presenting `identity` (`None`: plain) instead of the process's.
    pub fn with_identity(mut self, identity: Option<Identity>) -> Self {
        self.identity = identity;
        self
    }

    /// The channel to `addr`, made on first use.
    pub fn get(&self, addr: &str) -> Result<Channel, BadAddress> {
        // A panic while the lock was held cannot leave the map inconsistent (each step is one
        // insert or clear), so a poisoned lock is used as is.
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(channel) = channels.get(addr) {
            return Ok(channel.clone());
        }
        if channels.len() >= self.size_max {
            channels.clear();
        }
        let channel =
            channel_with(addr, self.request_timeout, self.identity.as_ref()).map_err(|err| {
                BadAddress {
                    addr: addr.to_string(),
                    reason: err.to_string(),
                }
            })?;
        channels.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }

    /// Addresses cached now.
    pub fn len(&self) -> usize {
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Whether no address is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Binds `addr`, returning the listener and the bound address (port 0 picks a free port).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

/// Serves `router` on `listener` until `token` is cancelled.
pub async fn serve(
    router: Router,
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

/// The server builder [`server`] and [`server_with`] make.
pub type Server = tonic::transport::Server<
    tower::layer::util::Stack<RequestIdLayer, tower::layer::util::Identity>,
>;

/// A tonic server builder with the limits every Strata service uses, and the layer that runs
/// each call in the request id its caller sent (see [`crate::trace`]); mutual TLS when the
/// process has an identity ([`install_identity`]).
pub fn server() -> Server {
    server_with(process_identity())
}

/// Like [`server`], requiring callers' certificates signed by `identity`'s CA (`None`: plain).
pub fn server_with(identity: Option<&Identity>) -> Server {
    let builder = match identity {
        Some(identity) => identity.server_builder(),
        None => tonic::transport::Server::builder(),
    };
    builder
        .tcp_nodelay(true)
        .concurrency_limit_per_connection(256)
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(5)))
        .layer(RequestIdLayer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_pool_reuses_channels_and_stays_bounded() {
        let pool = ChannelPool::with_size_max(Duration::from_millis(REQUEST_TIMEOUT_MS), 2);
        pool.get("127.0.0.1:1").unwrap();
        pool.get("127.0.0.1:1").unwrap();
        assert_eq!(pool.len(), 1, "one channel per address");
        pool.get("127.0.0.1:2").unwrap();
        assert_eq!(pool.len(), 2);
        pool.get("127.0.0.1:3").unwrap();
        assert_eq!(pool.len(), 1, "past the bound it starts afresh");
        let err = pool.get("not a uri\n").unwrap_err();
        assert_eq!(err.addr, "not a uri\n");
        assert_eq!(pool.len(), 1);
    }
}
