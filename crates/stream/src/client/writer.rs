//! Appending to a stream: one writer, appends serialized in call order, sealing the open
//! extent when it is full or an append fails, and stopping when a newer writer fenced it.

use super::{RecordPos, StreamClient, APPEND_TIMEOUT_MS};
use crate::channels::{bounded, request_with_timeout};
use crate::error::{Result, StreamError};
use crate::extent::RECORD_PAYLOAD_BYTES_MAX;
use bytes::Bytes;
use std::time::Duration;
use strata_proto::stream::{AppendRequest, ExtentInfo, StreamInfo};
use strata_types::ExtentId;
use strata_util::retry::Backoff;
use tonic::Code;

/// Attempts per append (each on a fresh extent after the previous one was sealed).
pub const APPEND_ATTEMPTS_MAX: usize = 3;
/// Attempts of [`StreamWriter::seal_current`].
pub const SEAL_ATTEMPTS_MAX: usize = 5;
/// First pause before retrying after a failure; pauses double up to [`RETRY_PAUSE_MS_MAX`].
const RETRY_PAUSE_MS_MIN: u64 = 200;
/// Largest pause between two attempts.
const RETRY_PAUSE_MS_MAX: u64 = 1_000;
/// Time bound on one call's retries. The attempt counts above bound them first: this is above
/// what [`SEAL_ATTEMPTS_MAX`] seals that each run into the manager's failover budget and RPC
/// timeout take, so it only matters if those bounds change.
const RETRY_BUDGET_MS: u64 = 120_000;

/// The pauses between the attempts of one append or seal.
fn retry_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(RETRY_BUDGET_MS)).with_pauses(
        Duration::from_millis(RETRY_PAUSE_MS_MIN),
        Duration::from_millis(RETRY_PAUSE_MS_MAX),
    )
}

/// Appends to one stream. Appends through one writer are serialized in call order.
pub struct StreamWriter {
    client: StreamClient,
    name: String,
    /// The stream as this writer last learned it; its last extent is the one appended to.
    info: tokio::sync::Mutex<StreamInfo>,
    /// Random, per writer: the stream manager recognizes this writer's retried seals.
    writer_id: String,
}

fn open_extent(info: &StreamInfo) -> Option<&ExtentInfo> {
    info.extents
        .last()
        .filter(|e| !e.sealed && !e.replicas.is_empty())
}

/// The stream's last extent (0 for a stream without extents: the manager answers with the
/// stream as it is).
fn last_extent_id(info: &StreamInfo) -> ExtentId {
    ExtentId::new(info.extents.last().map(|e| e.extent_id).unwrap_or(0))
}

impl StreamWriter {
    pub(super) fn new(client: StreamClient, info: StreamInfo) -> Self {
        Self {
            client,
            name: info.name.clone(),
            info: tokio::sync::Mutex::new(info),
            writer_id: format!("{:016x}", rand::random::<u64>()),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stream as this writer knows it now.
    pub async fn info(&self) -> StreamInfo {
        self.info.lock().await.clone()
    }

    /// Appends one record (at most 8 MiB) and returns where it lives once every replica holds
    /// it durably. Fails with [`StreamError::Fenced`] when another writer sealed this writer's
    /// extent (stop writing then), or after [`APPEND_ATTEMPTS_MAX`] failed attempts.
    pub async fn append(&self, payload: Bytes) -> Result<RecordPos> {
        if payload.len() > RECORD_PAYLOAD_BYTES_MAX {
            return Err(StreamError::PayloadTooLarge {
                len_bytes: payload.len(),
                max_bytes: RECORD_PAYLOAD_BYTES_MAX,
            });
        }
        let mut info = self.info.lock().await;
        let mut last_error = None;
        let mut backoff = retry_backoff();
        for attempt in 1..=APPEND_ATTEMPTS_MAX {
            let Some(extent) = open_extent(&info).cloned() else {
                // The last extent is sealed (a seal whose fresh extent is still missing).
                match self.seal(last_extent_id(&info), 0).await {
                    Ok(fresh) => *info = fresh,
                    Err(err) if err.is_fenced() => return Err(self.fenced(err)),
                    Err(err) => {
                        last_error = Some(err);
                        if !backoff.wait().await {
                            break;
                        }
                    }
                }
                continue;
            };
            let extent_id = ExtentId::new(extent.extent_id);
            match self.append_to(&extent, payload.clone()).await {
                Ok((offset, end_offset)) => {
                    let pos = RecordPos {
                        extent_id,
                        offset,
                        length: payload.len() as u64,
                    };
                    if end_offset >= info.extent_size_bytes_max {
                        match self.seal(extent_id, end_offset).await {
                            Ok(fresh) => *info = fresh,
                            // The record is durable; the next append finds out what happened.
                            Err(err) => {
                                tracing::warn!(stream = %self.name, extent_id = extent.extent_id, %err, "sealing a full extent failed")
                            }
                        }
                    }
                    return Ok(pos);
                }
                Err(err) if matches!(&err, StreamError::Rpc { status, .. } if status.code() == Code::InvalidArgument) =>
                {
                    return Err(err);
                }
                Err(err) => {
                    tracing::warn!(stream = %self.name, extent_id = extent.extent_id, attempt, %err, "append failed; sealing the extent");
                    last_error = Some(err);
                    match self.seal(extent_id, 0).await {
                        Ok(fresh) => *info = fresh,
                        Err(err) if err.is_fenced() => return Err(self.fenced(err)),
                        Err(err) => {
                            tracing::warn!(stream = %self.name, extent_id = extent.extent_id, %err, "sealing after a failed append failed");
                            last_error = Some(err);
                            if !backoff.wait().await {
                                break;
                            }
                        }
                    }
                }
            }
        }
        let reason = last_error.map(|e| e.to_string()).unwrap_or_default();
        Err(StreamError::Unavailable(format!(
            "append to stream {:?} failed after {APPEND_ATTEMPTS_MAX} attempts: {reason}",
            self.name
        )))
    }

    /// Seals the stream's last extent (asking the replicas for the commit length) so that no
    /// earlier writer can append any more, and returns once a fresh extent, allocated for this
    /// writer, is ready. Use it when taking over a stream.
    pub async fn seal_current(&self) -> Result<()> {
        let mut info = self.info.lock().await;
        let mut last_error = None;
        let mut backoff = retry_backoff();
        for _ in 1..=SEAL_ATTEMPTS_MAX {
            let current = match self.client.stream_info(&self.name).await {
                Ok(current) => current,
                Err(err) => {
                    last_error = Some(err);
                    if !backoff.wait().await {
                        break;
                    }
                    continue;
                }
            };
            let last = last_extent_id(&current);
            match self.seal(last, 0).await {
                Ok(fresh) => {
                    tracing::info!(stream = %self.name, sealed_extent = last.get(), "stream fenced; fresh extent ready");
                    *info = fresh;
                    return Ok(());
                }
                // Somebody moved the stream on meanwhile: seal the new last extent.
                Err(err) if err.is_fenced() => last_error = Some(err),
                Err(err) => {
                    last_error = Some(err);
                    if !backoff.wait().await {
                        break;
                    }
                }
            }
        }
        let reason = last_error.map(|e| e.to_string()).unwrap_or_default();
        Err(StreamError::Unavailable(format!(
            "sealing stream {:?} failed: {reason}",
            self.name
        )))
    }

    async fn seal(&self, extent_id: ExtentId, length: u64) -> Result<StreamInfo> {
        self.client
            .seal_extent(&self.name, extent_id, length, &self.writer_id)
            .await
    }

    fn fenced(&self, err: StreamError) -> StreamError {
        tracing::warn!(stream = %self.name, %err, "writer fenced by a newer writer");
        StreamError::Fenced {
            stream: self.name.clone(),
            reason: err.to_string(),
        }
    }

    /// One append RPC to the extent's primary, which replicates to the others.
    async fn append_to(&self, extent: &ExtentInfo, payload: Bytes) -> Result<(u64, u64)> {
        let primary = &extent.replicas[0];
        let secondary_addrs = extent.replicas[1..]
            .iter()
            .map(|r| r.addr.clone())
            .collect();
        let request = AppendRequest {
            extent_id: extent.extent_id,
            payload: payload.to_vec(),
            secondary_addrs,
        };
        let mut client = self.client.inner.channels.extent_node(&primary.addr)?;
        let call = client.append(request_with_timeout(request, APPEND_TIMEOUT_MS));
        let response = bounded(&primary.addr, APPEND_TIMEOUT_MS, call).await?;
        Ok((response.offset, response.end_offset))
    }
}
