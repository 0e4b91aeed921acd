//! Streaming writes: a request body goes to the owner's client-streaming write RPC, a header
//! message then data chunks. PutObject and UploadPart (see `multipart.rs`) share all of it
//! through [`StreamedWrite`].
//!
//! The body is re-chunked into messages of at most `CHUNK_SIZE_BYTES` and sent through a
//! channel of capacity 2, after a header message. Memory per request stays around three
//! chunks (two queued, one being filled).
//!
//! Nothing half-written may become visible:
//! - the last byte of the body is held back until the body has ended cleanly, so a stream
//!   that ends early is always short of the announced size;
//! - a checksum sent as an aws-chunked trailer follows the last chunk as its own message, read
//!   from s3s's trailer handle only once the body ended; a missing or malformed trailer fails
//!   the body like any other body error;
//! - when the body fails (a client disconnect, s3s's `x-amz-content-sha256` or chunk signature
//!   check), the RPC is cancelled (HTTP/2 RST_STREAM) while the channel is still open, so the
//!   server never sees a clean end of stream; the same happens when the request is dropped.
//!
//! A failed attempt (NotOwner, an unavailable owner, a connection broken mid-call as when the
//! owner is SIGKILLed) is retried on a fresh map only when everything handed to the RPC can be
//! sent again: a body announced at up to `REPLAY_BYTES_MAX` is kept whole, a larger one only
//! its first chunk; once more went out than was kept, a failure answers 503. A retried PUT
//! carries the same write id, so an attempt that was applied before its answer was lost is
//! answered with its own commit, not applied twice.

use crate::checksum::TrailerSource;
use crate::error::protocol_violation;
use crate::error::{body_error_to_s3, status_to_s3, FrontendError};
use crate::metrics::METRICS;
use crate::routing::{classify, PartitionClient, Retry, Router, Verdict};
use bytes::Bytes;
use futures::StreamExt;
use s3s::dto::StreamingBlob;
use s3s::{S3Error, StdError};
use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;
use strata_proto::common::ObjectMeta;
use strata_proto::partition::put_object_request::Part;
use strata_proto::partition::{ChecksumTrailer, PutObjectHeader, PutObjectRequest};
use strata_types::{keys, CHUNK_SIZE_BYTES};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// A client-streaming write RPC of the partition server: the header first, then data chunks
/// of at most `CHUNK_SIZE_BYTES`; the server stores the bytes only on a clean end of stream.
pub(crate) trait StreamedWrite: Clone + Send + Sync + 'static {
    /// One message of the request stream.
    type Message: Send + 'static;
    /// What the server answers once the body is durable.
    type Stored: Send;
    /// The RPC's name, for logs and errors.
    const RPC: &'static str;
    /// The encoded key whose owner takes the write.
    fn route_key(&self) -> Vec<u8>;
    /// The body's announced size (-1 when unknown).
    fn size_bytes(&self) -> i64;
    fn header_message(self) -> Self::Message;
    fn chunk_message(chunk: Vec<u8>) -> Self::Message;
    /// The message after the last chunk carrying a checksum that came as an HTTP trailer.
    fn trailer_message(expected: Vec<u8>) -> Self::Message;
    /// Runs the RPC over `request` on `client`.
    fn call(
        client: PartitionClient,
        request: tonic::Request<ReceiverStream<Self::Message>>,
    ) -> impl Future<Output = Result<Self::Stored, tonic::Status>> + Send;
}

impl StreamedWrite for PutObjectHeader {
    type Message = PutObjectRequest;
    type Stored = ObjectMeta;
    const RPC: &'static str = "PutObject";

    fn route_key(&self) -> Vec<u8> {
        keys::object_key(&self.bucket, &self.key)
    }

    fn size_bytes(&self) -> i64 {
        self.size_bytes
    }

    fn header_message(self) -> PutObjectRequest {
        PutObjectRequest {
            part: Some(Part::Header(self)),
        }
    }

    fn chunk_message(chunk: Vec<u8>) -> PutObjectRequest {
        PutObjectRequest {
            part: Some(Part::Chunk(chunk)),
        }
    }

    fn trailer_message(expected: Vec<u8>) -> PutObjectRequest {
        PutObjectRequest {
            part: Some(Part::Trailer(ChecksumTrailer { expected })),
        }
    }

    async fn call(
        mut client: PartitionClient,
        request: tonic::Request<ReceiverStream<PutObjectRequest>>,
    ) -> Result<ObjectMeta, tonic::Status> {
        client
            .put_object(request)
            .await?
            .into_inner()
            .meta
            .ok_or_else(|| protocol_violation("PutObject answered without metadata"))
    }
}

/// Messages queued between the body and the RPC.
const PUT_CHANNEL_CAPACITY: usize = 2;
/// The largest body kept whole for a retry: a small write (most PUTs, and every write of the
/// 32-client failover test) survives its owner dying after the body went out, at the cost of
/// at most this much memory per request in flight.
pub(crate) const REPLAY_BYTES_MAX: usize = 8 * 1024 * 1024;

/// How many sent bytes an attempt keeps for a retry: all of a body announced at up to
/// [`REPLAY_BYTES_MAX`], otherwise (larger or unknown) one chunk, so memory stays bounded.
fn replay_limit(size_bytes: i64) -> usize {
    match usize::try_from(size_bytes) {
        Ok(size) if size <= REPLAY_BYTES_MAX => REPLAY_BYTES_MAX,
        _ => CHUNK_SIZE_BYTES,
    }
}
/// How long an aborted RPC may take to acknowledge the cancellation.
const ABORT_WAIT_MS: u64 = 5_000;

/// Body bytes read but not yet handed to an RPC; survives a retried attempt.
struct PutSource {
    body: Option<StreamingBlob>,
    /// Where the checksum trailer is read once the body ended, when the client sends one.
    trailer: Option<TrailerSource>,
    pending: VecDeque<Bytes>,
    pending_bytes: usize,
    finished: bool,
    /// Copies of what this attempt handed to the RPC while that is at most `replay_limit`
    /// bytes; None once more went out (the attempt can then not be replayed).
    replay: Option<Vec<Bytes>>,
    replay_bytes: usize,
    replay_limit: usize,
}

impl PutSource {
    fn new(
        body: Option<StreamingBlob>,
        trailer: Option<TrailerSource>,
        replay_limit: usize,
    ) -> Self {
        Self {
            finished: body.is_none(),
            body,
            trailer,
            pending: VecDeque::new(),
            pending_bytes: 0,
            replay: Some(Vec::new()),
            replay_bytes: 0,
            replay_limit,
        }
    }

    /// Remembers a chunk handed to the RPC, while the replay buffer has room.
    fn record_sent(&mut self, chunk: &[u8]) {
        if let Some(replay) = self.replay.as_mut() {
            if self.replay_bytes + chunk.len() <= self.replay_limit {
                replay.push(Bytes::copy_from_slice(chunk));
                self.replay_bytes += chunk.len();
            } else {
                self.replay = None;
                self.replay_bytes = 0;
            }
        }
    }

    /// Whether everything handed to the last attempt can be sent again.
    fn can_replay(&self) -> bool {
        self.replay.is_some()
    }

    /// Puts the replay buffer back in front of the pending bytes for the next attempt.
    fn rewind(&mut self) {
        if let Some(replay) = self.replay.take() {
            for bytes in replay.into_iter().rev() {
                self.pending_bytes += bytes.len();
                self.pending.push_front(bytes);
            }
        }
        self.replay = Some(Vec::new());
        self.replay_bytes = 0;
    }

    /// Whether a chunk may be handed over now: a full one with at least one byte to spare, or
    /// the rest once the body has ended.
    fn chunk_ready(&self) -> bool {
        self.pending_bytes > CHUNK_SIZE_BYTES || (self.finished && self.pending_bytes > 0)
    }

    fn take_chunk(&mut self) -> Vec<u8> {
        let size = self.pending_bytes.min(CHUNK_SIZE_BYTES);
        let mut chunk = Vec::with_capacity(size);
        while chunk.len() < size {
            let Some(mut front) = self.pending.pop_front() else {
                break;
            };
            let wanted = size - chunk.len();
            if front.len() > wanted {
                let head = front.split_to(wanted);
                chunk.extend_from_slice(&head);
                self.pending.push_front(front);
            } else {
                chunk.extend_from_slice(&front);
            }
        }
        self.pending_bytes -= chunk.len();
        chunk
    }

    async fn read(&mut self) -> Result<(), StdError> {
        let Some(body) = self.body.as_mut() else {
            self.finished = true;
            return Ok(());
        };
        match body.next().await {
            None => {
                self.finished = true;
                Ok(())
            }
            Some(Ok(bytes)) => {
                METRICS.bytes_in.inc_by(bytes.len() as u64);
                self.pending_bytes += bytes.len();
                if !bytes.is_empty() {
                    self.pending.push_back(bytes);
                }
                Ok(())
            }
            Some(Err(err)) => Err(err),
        }
    }
}

enum PumpEnd<M> {
    /// The body ended cleanly and every byte was handed over; dropping the sender ends the
    /// request stream.
    Done(mpsc::Sender<M>),
    /// The RPC stopped reading (it finished or failed).
    RpcGone,
    /// The body failed; the sender is kept so the stream cannot end cleanly before the abort.
    BodyFailed(StdError, mpsc::Sender<M>),
}

async fn pump<W: StreamedWrite>(
    sender: mpsc::Sender<W::Message>,
    header: W,
    source: &mut PutSource,
) -> PumpEnd<W::Message> {
    if sender.send(header.header_message()).await.is_err() {
        return PumpEnd::RpcGone;
    }
    loop {
        while source.chunk_ready() {
            let chunk = source.take_chunk();
            source.record_sent(&chunk);
            if sender.send(W::chunk_message(chunk)).await.is_err() {
                return PumpEnd::RpcGone;
            }
        }
        if source.finished {
            // The trailer is complete (and its signature checked by s3s) once the body ended.
            if let Some(trailer) = &source.trailer {
                match trailer.value() {
                    Ok(expected) => {
                        if sender.send(W::trailer_message(expected)).await.is_err() {
                            return PumpEnd::RpcGone;
                        }
                    }
                    Err(err) => return PumpEnd::BodyFailed(Box::new(err), sender),
                }
            }
            return PumpEnd::Done(sender);
        }
        if let Err(err) = source.read().await {
            return PumpEnd::BodyFailed(err, sender);
        }
    }
}

/// Cancels the RPC if the attempt is dropped before it finished (the client went away).
struct AbortOnDrop(Option<tonic::CancellationHandle>);

impl AbortOnDrop {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.cancel();
        }
    }
}

enum AttemptError {
    Rpc(tonic::Status),
    Body(StdError),
}

async fn attempt<W: StreamedWrite>(
    client: PartitionClient,
    header: W,
    source: &mut PutSource,
) -> Result<W::Stored, AttemptError> {
    let (sender, receiver) = mpsc::channel(PUT_CHANNEL_CAPACITY);
    let mut request = tonic::Request::new(ReceiverStream::new(receiver));
    let cancel = request.cancellation_handle();
    let rpc = W::call(client, request);
    tokio::pin!(rpc);
    let pumping = pump(sender, header, source);
    tokio::pin!(pumping);
    // Declared last so it drops first: the cancellation lands before the sender closes.
    let mut guard = AbortOnDrop(Some(cancel.clone()));

    let response = tokio::select! {
        response = &mut rpc => response,
        end = &mut pumping => match end {
            PumpEnd::Done(sender) => {
                guard.disarm();
                drop(sender);
                rpc.await
            }
            PumpEnd::RpcGone => {
                guard.disarm();
                rpc.await
            }
            PumpEnd::BodyFailed(err, sender) => {
                cancel.cancel();
                guard.disarm();
                if tokio::time::timeout(Duration::from_millis(ABORT_WAIT_MS), &mut rpc).await.is_err() {
                    tracing::warn!(rpc = W::RPC, "aborted write did not finish in time");
                }
                drop(sender);
                return Err(AttemptError::Body(err));
            }
        },
    };
    guard.disarm();
    response.map_err(AttemptError::Rpc)
}

/// Streams `body` to the owner of `header.route_key()` through the header's RPC (PutObject
/// stores an object, UploadPart a part).
pub(crate) async fn put_streaming<W: StreamedWrite>(
    router: &Router,
    header: W,
    body: Option<StreamingBlob>,
    trailer: Option<TrailerSource>,
) -> Result<W::Stored, S3Error> {
    let key = header.route_key();
    let mut retry = Retry::new(router.retry_budget());
    let mut source = PutSource::new(body, trailer, replay_limit(header.size_bytes()));
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let route = router.route(&key, &mut retry).await?;
        let client = router.streaming_client(&route.owner_addr)?;
        let status = match attempt(client, header.clone(), &mut source).await {
            Ok(meta) => return Ok(meta),
            Err(AttemptError::Body(err)) => return Err(body_error_to_s3(err.as_ref())),
            Err(AttemptError::Rpc(status)) => status,
        };
        match classify(&status) {
            Verdict::Fail => {
                if attempts > 1 {
                    // A retried write refused for good: its first attempt may have committed,
                    // so the owner's answer is worth reading next to its own log.
                    tracing::info!(rpc = W::RPC, attempts, owner = %route.owner_addr, range_id = %route.range_id, key = %String::from_utf8_lossy(&key), code = ?status.code(), message = status.message(), "retried write refused");
                }
                return Err(status_to_s3(&status));
            }
            Verdict::SlowDown => {
                return Err(FrontendError::SlowDown(status.message().to_string()).into())
            }
            Verdict::Retry if !source.can_replay() => {
                return Err(FrontendError::Unavailable(format!(
                    "{} to {} failed mid-body",
                    W::RPC,
                    route.owner_addr
                ))
                .into());
            }
            Verdict::Retry => {
                METRICS.routing_retries.inc();
                tracing::info!(rpc = W::RPC, owner = %route.owner_addr, range_id = %route.range_id, epoch = route.epoch.get(), code = ?status.code(), message = status.message(), "write attempt failed; retrying it");
                if !retry.wait().await {
                    return Err(FrontendError::Unavailable(format!(
                        "{} to {}",
                        W::RPC,
                        route.owner_addr
                    ))
                    .into());
                }
                if let Err(err) = router.refresh(Some(route.map_fetched_at)).await {
                    tracing::debug!(%err, "map refresh failed, will retry");
                }
                source.rewind();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl PutSource {
        fn new_test(body: Option<StreamingBlob>) -> Self {
            Self::new(body, None, CHUNK_SIZE_BYTES)
        }
    }

    fn blob(parts: Vec<Result<Vec<u8>, std::io::Error>>) -> StreamingBlob {
        let stream = futures::stream::iter(parts.into_iter().map(|p| p.map(Bytes::from)));
        StreamingBlob::wrap(stream)
    }

    #[tokio::test]
    async fn rechunks_and_holds_back_the_tail_until_the_end() {
        let big = vec![7u8; CHUNK_SIZE_BYTES * 2 + 10];
        let mut source = PutSource::new_test(Some(blob(vec![
            Ok(big[..100].to_vec()),
            Ok(big[100..].to_vec()),
        ])));
        let mut chunks = Vec::new();
        loop {
            while source.chunk_ready() {
                chunks.push(source.take_chunk());
            }
            if source.finished {
                break;
            }
            source.read().await.unwrap();
            // Until the body ended, at least one byte stays behind.
            if !source.finished {
                assert!(source.pending_bytes > 0);
            }
        }
        let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![CHUNK_SIZE_BYTES, CHUNK_SIZE_BYTES, 10]);
        assert!(chunks.iter().all(|c| c.len() <= CHUNK_SIZE_BYTES));
    }

    #[tokio::test]
    async fn an_exact_multiple_is_not_sent_before_the_end() {
        let mut source = PutSource::new_test(Some(blob(vec![
            Ok(vec![1u8; CHUNK_SIZE_BYTES]),
            Err(std::io::Error::other("sha256 mismatch")),
        ])));
        source.read().await.unwrap();
        assert!(
            !source.chunk_ready(),
            "a full chunk must wait for the body's end"
        );
        assert!(source.read().await.is_err());
    }

    #[tokio::test]
    async fn a_body_error_aborts_without_a_clean_end() {
        // The pump keeps the sender when the body fails, so the request stream stays open.
        let mut source = PutSource::new_test(Some(blob(vec![
            Ok(vec![1u8; 10]),
            Err(std::io::Error::other("boom")),
        ])));
        let (sender, mut receiver) = mpsc::channel(PUT_CHANNEL_CAPACITY);
        let header = PutObjectHeader::default();
        let end = pump(sender, header, &mut source).await;
        let PumpEnd::BodyFailed(_, sender) = end else {
            panic!("expected a body failure")
        };
        assert!(matches!(
            receiver.recv().await,
            Some(PutObjectRequest {
                part: Some(Part::Header(_))
            })
        ));
        assert!(receiver.try_recv().is_err(), "no chunk may have been sent");
        assert!(source.can_replay());
        assert!(!sender.is_closed());
    }

    #[tokio::test]
    async fn only_a_first_chunk_can_be_replayed() {
        let mut small = PutSource::new_test(Some(blob(vec![Ok(b"hello".to_vec())])));
        let (sender, mut receiver) = mpsc::channel(8);
        assert!(matches!(
            pump(sender, PutObjectHeader::default(), &mut small).await,
            PumpEnd::Done(_)
        ));
        while receiver.try_recv().is_ok() {}
        assert!(small.can_replay());
        small.rewind();
        assert!(small.chunk_ready());
        assert_eq!(small.take_chunk(), b"hello");

        let mut big = PutSource::new_test(Some(blob(vec![Ok(vec![3u8; CHUNK_SIZE_BYTES + 1])])));
        let (sender, mut receiver) = mpsc::channel(8);
        assert!(matches!(
            pump(sender, PutObjectHeader::default(), &mut big).await,
            PumpEnd::Done(_)
        ));
        while receiver.try_recv().is_ok() {}
        assert!(!big.can_replay());
    }

    #[tokio::test]
    async fn a_body_announced_up_to_the_replay_limit_is_kept_whole() {
        let body = vec![5u8; 4 * CHUNK_SIZE_BYTES + 3];
        assert_eq!(replay_limit(body.len() as i64), REPLAY_BYTES_MAX);
        let mut small = PutSource::new(Some(blob(vec![Ok(body.clone())])), None, REPLAY_BYTES_MAX);
        let (sender, mut receiver) = mpsc::channel(16);
        assert!(matches!(
            pump(sender, PutObjectHeader::default(), &mut small).await,
            PumpEnd::Done(_)
        ));
        while receiver.try_recv().is_ok() {}
        assert!(small.can_replay());
        small.rewind();
        let mut again = Vec::new();
        while small.chunk_ready() {
            again.extend(small.take_chunk());
        }
        assert_eq!(again, body);
        // Larger or unknown sizes keep one chunk only.
        assert_eq!(replay_limit(REPLAY_BYTES_MAX as i64 + 1), CHUNK_SIZE_BYTES);
        assert_eq!(replay_limit(-1), CHUNK_SIZE_BYTES);
    }
}
