//! Request bodies read to their end even when nobody wants the rest.
//!
//! Why: a handler may answer before it read the body (a wrong signature, a missing bucket, a
//! SlowDown), and a home stamp may answer a forwarded request early and close the link, which
//! ends the forwarder's reading of its client's body. Were the rest left unread, the server
//! would close a connection with the client still sending into it; the kernel then resets the
//! connection, and the client can lose the answer already sent (2 of 5 tries with a 12 MiB
//! PUT refused at a home stamp). So every request body is wrapped in [`DrainOnDrop`]: dropped
//! before its end, it hands what is left to a task that reads and discards it, at most
//! [`DRAIN_BYTES_MAX`] within [`DRAIN_TIMEOUT_MS`], while the answer goes out. Past either bound
//! the body is dropped and the connection closes, as a client that sends that much for an
//! early answer must expect.
//!
//! A body never polled, of a request that asked `Expect: 100-continue`, is left alone: the
//! client waits for `100 Continue` before sending it, and reading it would ask for it.

use axum::body::Body as AxumBody;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// Most body bytes read and discarded after the handler stopped reading.
pub const DRAIN_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Longest time spent discarding them.
pub const DRAIN_TIMEOUT_MS: u64 = 30_000;

/// A request body that is drained when dropped before its end (see the module comment).
pub struct DrainOnDrop {
    inner: Option<AxumBody>,
    /// Whether anyone read from it (then `100 Continue` went out, if it was asked for).
    polled: bool,
    /// Whether the body may be drained though nobody read from it (no `100-continue` asked).
    drain_unpolled: bool,
    ended: bool,
}

impl DrainOnDrop {
    pub fn new(inner: AxumBody, expects_continue: bool) -> Self {
        Self {
            inner: Some(inner),
            polled: false,
            drain_unpolled: !expects_continue,
            ended: false,
        }
    }
}

impl Body for DrainOnDrop {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.polled = true;
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            self.ended = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for DrainOnDrop {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        if self.ended || inner.is_end_stream() || !(self.polled || self.drain_unpolled) {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(drain(inner));
        }
    }
}

/// Reads and discards what is left of `body`, within the bounds; answers the bytes discarded.
async fn drain(mut body: AxumBody) -> u64 {
    let mut discarded = 0u64;
    let reading = async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                discarded = discarded.saturating_add(data.len() as u64);
                if discarded > DRAIN_BYTES_MAX {
                    return;
                }
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(DRAIN_TIMEOUT_MS), reading).await;
    discarded
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    /// A body of `chunks` frames that reports each frame read on `read`.
    fn counted_body(chunks: usize, read: mpsc::UnboundedSender<()>) -> AxumBody {
        let frames = (0..chunks).map(move |_| {
            let _ = read.send(());
            Ok::<_, std::io::Error>(Bytes::from(vec![1u8; 1_000]))
        });
        AxumBody::from_stream(futures::stream::iter(frames))
    }

    async fn frames_read(mut read: mpsc::UnboundedReceiver<()>) -> usize {
        let mut count = 0;
        while read.recv().await.is_some() {
            count += 1;
        }
        count
    }

    #[tokio::test]
    async fn a_body_read_in_part_is_read_to_its_end_once_dropped() {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut body = DrainOnDrop::new(counted_body(50, tx), true);
        body.frame().await.unwrap().unwrap();
        drop(body);
        assert_eq!(frames_read(rx).await, 50);
    }

    #[tokio::test]
    async fn an_unread_body_is_drained_unless_it_waits_for_100_continue() {
        let (tx, rx) = mpsc::unbounded_channel();
        drop(DrainOnDrop::new(counted_body(20, tx), false));
        assert_eq!(frames_read(rx).await, 20);
        let (tx, rx) = mpsc::unbounded_channel();
        drop(DrainOnDrop::new(counted_body(20, tx), true));
        assert_eq!(
            frames_read(rx).await,
            0,
            "the client was never asked for it"
        );
    }

    #[tokio::test]
    async fn a_body_passes_through_whole() {
        let whole = AxumBody::from(vec![7u8; 100_000]);
        let body = DrainOnDrop::new(whole, false);
        assert_eq!(body.size_hint().exact(), Some(100_000));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes.len(), 100_000);
    }

    #[tokio::test]
    async fn draining_stops_at_its_byte_bound() {
        let chunk_bytes = 1024 * 1024;
        let frames =
            (0..200).map(move |_| Ok::<_, std::io::Error>(Bytes::from(vec![7u8; chunk_bytes])));
        let discarded = drain(AxumBody::from_stream(futures::stream::iter(frames))).await;
        assert!(discarded > DRAIN_BYTES_MAX, "{discarded}");
        assert!(
            discarded <= DRAIN_BYTES_MAX + chunk_bytes as u64,
            "{discarded}"
        );
    }
}
