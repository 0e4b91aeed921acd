//! GET bodies: the partition server's GetObject response stream feeds the HTTP body directly.
//!
//! A small task moves chunks from the gRPC stream into a channel of capacity 2 (so at most a
//! few chunks are in flight per request) and the HTTP body reads from that channel. When the
//! client goes away the channel closes, the task drops the gRPC stream, and the RPC is
//! cancelled. A stream that ends early or carries more bytes than announced ends the body
//! with an error, so the client sees a truncated response rather than wrong bytes.

use crate::metrics::METRICS;
use bytes::Bytes;
use futures::Stream;
use s3s::dto::StreamingBlob;
use s3s::stream::{ByteStream, RemainingLength};
use std::pin::Pin;
use std::task::{Context, Poll};
use strata_proto::partition::get_object_response::Part;
use strata_proto::partition::GetObjectResponse;
use tokio::sync::mpsc;

/// Chunks in flight between the gRPC stream and the HTTP body.
const GET_CHANNEL_CAPACITY: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum GetBodyError {
    #[error("partition server stream failed: {0}")]
    Upstream(String),
    #[error("object stream ended after {received} of {expected} bytes")]
    Short { received: u64, expected: u64 },
    #[error("object stream carried more bytes than announced")]
    Long,
}

type Item = Result<Bytes, GetBodyError>;

/// The HTTP body of a GET: exactly `length_bytes` bytes or an error.
pub struct GetBody {
    receiver: mpsc::Receiver<Item>,
    remaining_bytes: u64,
}

impl Stream for GetBody {
    type Item = Result<Bytes, s3s::StdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.receiver.poll_recv(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                self.remaining_bytes = self.remaining_bytes.saturating_sub(bytes.len() as u64);
                METRICS.bytes_out.inc_by(bytes.len() as u64);
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(Box::new(err)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl ByteStream for GetBody {
    fn remaining_length(&self) -> RemainingLength {
        RemainingLength::new_exact(usize::try_from(self.remaining_bytes).unwrap_or(usize::MAX))
    }
}

/// Where the chunks come from: the gRPC stream after its first (metadata) message.
#[async_trait::async_trait]
pub trait ChunkSource: Send + 'static {
    async fn next_message(&mut self) -> Result<Option<GetObjectResponse>, tonic::Status>;
}

#[async_trait::async_trait]
impl ChunkSource for tonic::Streaming<GetObjectResponse> {
    async fn next_message(&mut self) -> Result<Option<GetObjectResponse>, tonic::Status> {
        self.message().await
    }
}

/// Starts moving `length_bytes` bytes from `source` into a body.
pub fn forward(mut source: impl ChunkSource, length_bytes: u64) -> StreamingBlob {
    let (sender, receiver) = mpsc::channel::<Item>(GET_CHANNEL_CAPACITY);
    tokio::spawn(async move {
        let mut received: u64 = 0;
        loop {
            let next = tokio::select! {
                next = source.next_message() => next,
                // The client went away: stop reading (dropping the stream cancels the RPC).
                () = sender.closed() => return,
            };
            let item = match next {
                Ok(Some(GetObjectResponse {
                    part: Some(Part::Chunk(chunk)),
                })) => {
                    received += chunk.len() as u64;
                    if received > length_bytes {
                        Err(GetBodyError::Long)
                    } else if chunk.is_empty() {
                        continue;
                    } else {
                        Ok(Bytes::from(chunk))
                    }
                }
                Ok(Some(_)) => continue,
                Ok(None) if received == length_bytes => return,
                Ok(None) => Err(GetBodyError::Short {
                    received,
                    expected: length_bytes,
                }),
                Err(status) => Err(GetBodyError::Upstream(format!(
                    "{:?}: {}",
                    status.code(),
                    status.message()
                ))),
            };
            let failed = item.is_err();
            if let Err(err) = &item {
                tracing::warn!(%err, "GET body aborted");
            }
            if sender.send(item).await.is_err() || failed {
                return;
            }
        }
    });
    StreamingBlob::new(GetBody {
        receiver,
        remaining_bytes: length_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use std::collections::VecDeque;

    struct Scripted(VecDeque<Result<Option<GetObjectResponse>, tonic::Status>>);

    #[async_trait::async_trait]
    impl ChunkSource for Scripted {
        async fn next_message(&mut self) -> Result<Option<GetObjectResponse>, tonic::Status> {
            self.0.pop_front().unwrap_or(Ok(None))
        }
    }

    fn chunk(bytes: &[u8]) -> Result<Option<GetObjectResponse>, tonic::Status> {
        Ok(Some(GetObjectResponse {
            part: Some(Part::Chunk(bytes.to_vec())),
        }))
    }

    async fn collect(blob: StreamingBlob) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let mut blob = blob;
        while let Some(item) = blob.next().await {
            match item {
                Ok(bytes) => out.extend_from_slice(&bytes),
                Err(_) => return (out, true),
            }
        }
        (out, false)
    }

    #[tokio::test]
    async fn a_complete_stream_becomes_the_body() {
        let source = Scripted(VecDeque::from(vec![chunk(b"hello "), chunk(b"world")]));
        let blob = forward(source, 11);
        assert_eq!(blob.remaining_length().exact(), Some(11));
        assert_eq!(collect(blob).await, (b"hello world".to_vec(), false));
    }

    #[tokio::test]
    async fn short_long_and_failed_streams_end_with_an_error() {
        let short = Scripted(VecDeque::from(vec![chunk(b"hello")]));
        assert!(collect(forward(short, 11)).await.1);
        let long = Scripted(VecDeque::from(vec![chunk(b"hello world!")]));
        assert!(collect(forward(long, 11)).await.1);
        let failed = Scripted(VecDeque::from(vec![
            chunk(b"he"),
            Err(tonic::Status::unavailable("gone")),
        ]));
        assert_eq!(collect(forward(failed, 11)).await, (b"he".to_vec(), true));
    }
}
