//! The S3 listener's connections, bounded so that idle or slow clients cannot keep others out.
//!
//! - at most `connections_max` connections are served; at the cap, the connection idle the
//!   longest (no request in progress) is closed to admit the new one, and when none is idle
//!   the new one waits in the listen backlog until one ends or becomes idle;
//! - a connection with no request in progress that has sent nothing for `idle_timeout_ms`
//!   (since it was opened, or since its last response was sent) is closed;
//! - a request head must arrive whole within `header_read_timeout_ms` of its first byte,
//!   else the connection is closed (a client dribbling headers holds nothing for long);
//! - with TLS ([`crate::s3_tls`]), the handshake must be done within `header_read_timeout_ms`
//!   of the connection's opening, else it is closed.
//!
//! Each connection has a watchdog (one `select!` in its task) that reads [`ConnectionState`]:
//! requests in progress (counted by the service wrapper, until the response body is sent or
//! dropped), when it became idle, and when the first byte after that arrived (noted by
//! [`Watched`], the socket wrapper).
//!
//! A connection whose client presented a certificate (the link's, `link.rs`) hands who holds
//! it to every request as a [`LinkPeer`] extension; no other connection's requests carry one.

use axum::body::Body as AxumBody;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// The holder of the client certificate a connection was opened with (link connections only).
#[derive(Clone, Debug)]
pub struct LinkPeer(pub Arc<strata_util::tls::Peer>);

/// The bounds on connections (see the module comment).
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    pub header_read_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub connections_max: usize,
}

/// How often a full listener looks again for an idle connection to close.
const FULL_RECHECK_MS: u64 = 50;

#[derive(Debug)]
struct Activity {
    /// Requests whose response body is not yet sent.
    requests_in_progress: usize,
    /// When the connection was opened or its last response was sent.
    idle_since: Instant,
    /// The first byte received while idle (the start of the next request head).
    head_started: Option<Instant>,
}

/// What a connection is doing, shared by its socket, its service and its watchdog.
#[derive(Debug)]
pub struct ConnectionState(Mutex<Activity>);

impl ConnectionState {
    fn new(now: Instant) -> Self {
        Self(Mutex::new(Activity {
            requests_in_progress: 0,
            idle_since: now,
            head_started: None,
        }))
    }

    fn with<R>(&self, f: impl FnOnce(&mut Activity) -> R) -> R {
        let mut guard = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }

    fn bytes_received(&self, now: Instant) {
        self.with(|a| {
            if a.requests_in_progress == 0 && a.head_started.is_none() {
                a.head_started = Some(now);
            }
        });
    }

    fn request_started(self: &Arc<Self>) -> InProgress {
        self.with(|a| a.requests_in_progress += 1);
        InProgress(self.clone())
    }

    /// How long idle the connection is, as a key whose smallest value is the connection to
    /// close first: silent ones before those sending a head, then the oldest (None: a request
    /// is in progress).
    fn idleness(&self) -> Option<(bool, Instant)> {
        self.with(|a| {
            (a.requests_in_progress == 0).then_some((a.head_started.is_some(), a.idle_since))
        })
    }

    /// When the watchdog closes the connection if nothing changes (None: a request is in
    /// progress; its own bounds apply).
    fn deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        self.with(|a| {
            if a.requests_in_progress > 0 {
                return None;
            }
            Some(match a.head_started {
                Some(started) => started + Duration::from_millis(limits.header_read_timeout_ms),
                None => a.idle_since + Duration::from_millis(limits.idle_timeout_ms),
            })
        })
    }
}

/// A request in progress on a connection, until dropped with its response body.
struct InProgress(Arc<ConnectionState>);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.with(|a| {
            a.requests_in_progress = a.requests_in_progress.saturating_sub(1);
            if a.requests_in_progress == 0 {
                a.idle_since = Instant::now();
                a.head_started = None;
            }
        });
    }
}

/// A socket that tells its [`ConnectionState`] when bytes arrive.
struct Watched {
    socket: TcpStream,
    state: Arc<ConnectionState>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.socket).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.bytes_received(Instant::now());
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.socket).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.socket).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.socket).poll_shutdown(cx)
    }
}

/// The open connections, for closing the idlest one at the cap.
#[derive(Default)]
struct Registry {
    next_id: u64,
    open: HashMap<u64, (Arc<ConnectionState>, CancellationToken)>,
}

impl Registry {
    /// Closes the connection idle the longest; false when every connection is busy.
    fn close_idlest(&mut self) -> bool {
        let idlest = self
            .open
            .iter()
            .filter_map(|(id, (state, _))| state.idleness().map(|idle| (idle, *id)))
            .min();
        match idlest.and_then(|(_, id)| self.open.remove(&id)) {
            Some((_, close)) => {
                close.cancel();
                true
            }
            None => false,
        }
    }
}

/// Serves `app` on `listener` within `limits` (over TLS when `tls` is given) until `token` is
/// cancelled, then waits for the requests in progress to finish.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: ConnectionLimits,
    tls: Option<TlsAcceptor>,
    token: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.connections_max.max(1)));
    let registry = Arc::new(Mutex::new(Registry::default()));
    let tasks = TaskTracker::new();
    loop {
        let permit = loop {
            if let Ok(permit) = slots.clone().try_acquire_owned() {
                break permit;
            }
            if let Ok(mut registry) = registry.lock() {
                registry.close_idlest();
            }
            tokio::select! {
                () = token.cancelled() => return break_serving(&tasks).await,
                acquired = slots.clone().acquire_owned() => match acquired {
                    Ok(permit) => break permit,
                    Err(_) => return,
                },
                () = tokio::time::sleep(Duration::from_millis(FULL_RECHECK_MS)) => {}
            }
        };
        let accepted = tokio::select! {
            () = token.cancelled() => return break_serving(&tasks).await,
            accepted = listener.accept() => accepted,
        };
        let socket = match accepted {
            Ok((socket, _)) => socket,
            Err(err) => {
                // Out of file descriptors, say: pause instead of spinning.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(FULL_RECHECK_MS)).await;
                continue;
            }
        };
        // Without TCP_NODELAY a response written in pieces (headers, then the body) waits for
        // the client's delayed ACK: ~40 ms per GET.
        if let Err(err) = socket.set_nodelay(true) {
            tracing::debug!(%err, "TCP_NODELAY not set");
        }
        let state = Arc::new(ConnectionState::new(Instant::now()));
        // Not a child of `token`: stopping the server closes connections gracefully.
        let close = CancellationToken::new();
        let id = match registry.lock() {
            Ok(mut registry) => {
                let id = registry.next_id;
                registry.next_id += 1;
                registry.open.insert(id, (state.clone(), close.clone()));
                id
            }
            Err(_) => return,
        };
        let registry = registry.clone();
        let app = app.clone();
        let server_token = token.clone();
        let tls = tls.clone();
        tasks.spawn(async move {
            let socket = Watched {
                socket,
                state: state.clone(),
            };
            match tls {
                None => {
                    serve_connection(socket, None, state, app, limits, close, server_token).await
                }
                Some(tls) => {
                    let handshake_ms = Duration::from_millis(limits.header_read_timeout_ms);
                    tokio::select! {
                        done = tokio::time::timeout(handshake_ms, tls.accept(socket)) => match done {
                            Ok(Ok(stream)) => {
                                let peer = peer_of(&stream);
                                serve_connection(stream, peer, state, app, limits, close, server_token)
                                    .await
                            }
                            Ok(Err(err)) => tracing::debug!(%err, "TLS handshake failed"),
                            Err(_) => tracing::debug!("TLS handshake timed out"),
                        },
                        () = close.cancelled() => {}
                        () = server_token.cancelled() => {}
                    }
                }
            }
            if let Ok(mut registry) = registry.lock() {
                registry.open.remove(&id);
            }
            drop(permit);
        });
    }
}

/// Who holds the certificate the client presented, when it presented one the CA signed.
fn peer_of(stream: &tokio_rustls::server::TlsStream<Watched>) -> Option<LinkPeer> {
    let certificates = stream.get_ref().1.peer_certificates()?;
    let peer = strata_util::tls::peer_of_certificate(certificates.first()?.as_ref())?;
    Some(LinkPeer(Arc::new(peer)))
}

async fn break_serving(tasks: &TaskTracker) {
    tasks.close();
    tasks.wait().await;
}

/// One connection: HTTP/1.1 with keep-alive, closed by its watchdog when idle or slow, at once
/// when the registry closes it (it is idle then), gracefully when the server stops.
async fn serve_connection<S>(
    socket: S,
    peer: Option<LinkPeer>,
    state: Arc<ConnectionState>,
    app: axum::Router,
    limits: ConnectionLimits,
    close: CancellationToken,
    server_token: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(socket);
    let service_state = state.clone();
    let service =
        hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
            let in_progress = service_state.request_started();
            let app = app.clone();
            let mut request = request.map(AxumBody::new);
            if let Some(peer) = &peer {
                request.extensions_mut().insert(peer.clone());
            }
            async move {
                let Ok(response) = app.oneshot(request).await;
                Ok::<_, Infallible>(response.map(|body| {
                    AxumBody::new(body.map_frame(move |frame| {
                        let _held = &in_progress;
                        frame
                    }))
                }))
            }
        });
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(connection);
    loop {
        let deadline = state.deadline(&limits);
        // A request in progress: look again when it may have ended.
        let wake = deadline.unwrap_or_else(|| {
            Instant::now() + Duration::from_millis(limits.idle_timeout_ms.clamp(10, 1_000))
        });
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(err) = served {
                    tracing::debug!(%err, "connection ended with an error");
                }
                return;
            }
            () = server_token.cancelled() => {
                connection.as_mut().graceful_shutdown();
                if let Err(err) = connection.await {
                    tracing::debug!(%err, "connection ended with an error");
                }
                return;
            }
            // Closed by the registry to admit a new connection: idle, nothing to finish.
            () = close.cancelled() => return,
            () = tokio::time::sleep_until(wake.into()) => {
                if state.deadline(&limits).is_some_and(|d| d <= Instant::now()) {
                    return;
                }
            }
        }
    }
}
