//! One row's bytes on their way from the source to the target: [`pump`] moves ReadRow's
//! stream into a bounded queue, [`import_requests`] makes ImportRow's request stream of it, and
//! [`copy_outcome`] judges the two halves together.
//!
//! Invariant: ImportRow's request stream ends cleanly only after exactly the row's declared
//! bytes passed; after any failure it never ends (the call is dropped).

use super::rows::{ImportFailure, Piece, DATA_MESSAGE_BYTES_MAX};
use anyhow::{ensure, Context};
use futures::Stream;
use std::future::Future;
use strata_proto::partition::{
    import_row_request, read_row_response, ImportRowHeader, ImportRowRequest, ReadRowResponse,
};
use tonic::Streaming;

/// The pump's failure when the import's queue closed: the target ended the ImportRow call
/// (its answer, refused or failed, says why).
#[derive(Debug)]
pub(super) struct TargetStopped;

impl std::fmt::Display for TargetStopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the target stopped reading the row's bytes")
    }
}

impl std::error::Error for TargetStopped {}

/// The outcome of one row's copy from its two halves: `pump` (the source's bytes into the
/// import's queue) and `import` (the ImportRow call and what its refusal means).
///
/// When the target ends the call early (a refusal: its range moved, it is reloading, it is
/// throttled), the pump finds the queue closed at once, while `import` is still classifying
/// the answer (refreshing the map): the target's answer decides, so a retryable refusal is
/// retried instead of failing the move. A failure on the source's side ends the copy at once
/// (the import is dropped, its request stream never ended: no partial row is offered).
pub(super) async fn copy_outcome(
    pump: impl Future<Output = anyhow::Result<()>>,
    import: impl Future<Output = Result<(), ImportFailure>>,
) -> Result<(), ImportFailure> {
    tokio::pin!(pump, import);
    tokio::select! {
        imported = &mut import => imported,
        pumped = &mut pump => match pumped {
            Ok(()) => import.await,
            Err(err) if err.is::<TargetStopped>() => import.await.and(Err(ImportFailure::Fail(err))),
            Err(err) => Err(ImportFailure::Fail(err)),
        },
    }
}

/// Moves a row's bytes from ReadRow's stream into the import's queue, in messages of at most
/// [`DATA_MESSAGE_BYTES_MAX`]; marks the end only once exactly `size_bytes` passed.
pub(super) async fn pump(
    mut data: Streaming<ReadRowResponse>,
    tx: tokio::sync::mpsc::Sender<Piece>,
    size_bytes: u64,
) -> anyhow::Result<()> {
    let stopped = || anyhow::Error::new(TargetStopped);
    let mut read_bytes = 0u64;
    while let Some(message) = data.message().await.context("ReadRow's bytes")? {
        let Some(read_row_response::Part::Data(bytes)) = message.part else {
            anyhow::bail!("ReadRow sent a second row");
        };
        read_bytes += bytes.len() as u64;
        ensure!(
            read_bytes <= size_bytes,
            "ReadRow sent more than the row's {size_bytes} bytes"
        );
        if bytes.len() <= DATA_MESSAGE_BYTES_MAX {
            tx.send(Piece::Data(bytes)).await.map_err(|_| stopped())?;
            continue;
        }
        for piece in bytes.chunks(DATA_MESSAGE_BYTES_MAX) {
            tx.send(Piece::Data(piece.to_vec()))
                .await
                .map_err(|_| stopped())?;
        }
    }
    ensure!(
        read_bytes == size_bytes,
        "ReadRow sent {read_bytes} of the row's {size_bytes} bytes"
    );
    tx.send(Piece::End).await.map_err(|_| stopped())
}

/// ImportRow's request stream: the header, then the queued bytes. It ends only at
/// [`Piece::End`]; a queue closed without it (the reader failed) leaves the stream open until
/// the call is dropped, so a partial row is never offered as complete.
pub(super) fn import_requests(
    header: ImportRowHeader,
    rx: tokio::sync::mpsc::Receiver<Piece>,
) -> impl Stream<Item = ImportRowRequest> + Send + 'static {
    use futures::StreamExt;
    let head = futures::stream::once(async move {
        ImportRowRequest {
            part: Some(import_row_request::Part::Header(header)),
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Some(Piece::Data(bytes)) => {
                let part = Some(import_row_request::Part::Data(bytes));
                Some((ImportRowRequest { part }, rx))
            }
            Some(Piece::End) => None,
            None => std::future::pending().await,
        }
    });
    head.chain(body)
}
