//! Repair copies on the TARGET node: pull a sealed extent's records from a source replica,
//! check every record's CRC (the source checked it before sending; here it is checked again
//! against the CRC the source sent), write them to a temporary file, fsync, and install the
//! file sealed at exactly the sealed length.

use crate::channels::{bounded, request_with_timeout, ChannelCache};
use crate::error::{Result, StreamError};
use crate::extent::{format, ExtentStore, FILE_HEADER_LEN};
use crate::metrics;
use std::io::Write;
use std::time::{Duration, Instant};
use strata_proto::stream::{CopyExtentRequest, ReadRequest};

/// Bound on one Read of the source.
pub const COPY_READ_TIMEOUT_MS: u64 = 10_000;
/// Records and payload bytes asked for per Read of the source.
const COPY_BATCH_RECORDS: u32 = 256;
const COPY_BATCH_BYTES: u64 = 4 * 1024 * 1024;

/// Sleeps as long as needed for `done_bytes` since `started` to stay within `rate_bytes_per_sec`
/// (0 = unbounded).
pub async fn pace(started: Instant, done_bytes: u64, rate_bytes_per_sec: u64) {
    if rate_bytes_per_sec == 0 {
        return;
    }
    let due = Duration::from_secs_f64(done_bytes as f64 / rate_bytes_per_sec as f64);
    let elapsed = started.elapsed();
    if due > elapsed {
        tokio::time::sleep(due - elapsed).await;
    }
}

/// Copies extent `request.extent_id` from `request.source_addr` and installs it here sealed at
/// `request.sealed_length`. Returns the payload-and-header bytes copied.
pub async fn copy_extent(
    store: &ExtentStore,
    channels: &ChannelCache,
    request: CopyExtentRequest,
) -> Result<u64> {
    let CopyExtentRequest {
        extent_id,
        source_addr,
        sealed_length,
        rate_bytes_per_sec,
    } = request;
    if sealed_length < FILE_HEADER_LEN {
        return Err(StreamError::InvalidArgument(format!(
            "sealed length {sealed_length} is below the file header"
        )));
    }
    let guard = store.begin_copy(extent_id)?;
    let temp_path = guard.temp_path.clone();
    let file = tokio::task::spawn_blocking(move || -> Result<std::fs::File> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp_path)?;
        file.write_all(&format::encode_file_header(extent_id))?;
        Ok(file)
    })
    .await
    .map_err(|err| StreamError::Unavailable(format!("disk task failed: {err}")))??;
    let mut file = Some(file);
    let started = Instant::now();
    let mut offset = FILE_HEADER_LEN;
    while offset < sealed_length {
        let mut client = channels.extent_node(&source_addr)?;
        let read = ReadRequest {
            extent_id,
            offset,
            max_records: COPY_BATCH_RECORDS,
            max_bytes: COPY_BATCH_BYTES,
        };
        let response = bounded(
            &source_addr,
            COPY_READ_TIMEOUT_MS,
            client.read(request_with_timeout(read, COPY_READ_TIMEOUT_MS)),
        )
        .await?;
        if response.records.is_empty() {
            return Err(StreamError::Unavailable(format!(
                "source {source_addr} holds extent {extent_id} only up to {} bytes, {sealed_length} needed",
                response.length
            )));
        }
        let mut batch = Vec::with_capacity(COPY_BATCH_BYTES as usize / 4);
        for record in response.records {
            if record.offset >= sealed_length {
                break;
            }
            if record.offset != offset {
                return Err(StreamError::DataLoss {
                    extent_id,
                    offset,
                    reason: format!("source sent a record at offset {}", record.offset),
                });
            }
            if format::record_crc(&record.payload) != record.crc {
                return Err(StreamError::DataLoss {
                    extent_id,
                    offset,
                    reason: "copied record fails the source's checksum".into(),
                });
            }
            let encoded = format::encode_record(&record.payload)?;
            offset += encoded.len() as u64;
            if offset > sealed_length {
                return Err(StreamError::DataLoss {
                    extent_id,
                    offset: record.offset,
                    reason: format!("record runs past the sealed length {sealed_length}"),
                });
            }
            batch.extend_from_slice(&encoded);
        }
        let mut writing = file.take().ok_or_else(|| {
            StreamError::Unavailable("copy file handle lost after a failed write".into())
        })?;
        let written_len = batch.len() as u64;
        writing = tokio::task::spawn_blocking(move || -> Result<std::fs::File> {
            writing.write_all(&batch)?;
            Ok(writing)
        })
        .await
        .map_err(|err| StreamError::Unavailable(format!("disk task failed: {err}")))??;
        file = Some(writing);
        metrics::repair_bytes_received().inc_by(written_len);
        pace(started, offset - FILE_HEADER_LEN, rate_bytes_per_sec).await;
    }
    let file = file.ok_or_else(|| StreamError::Unavailable("copy file handle lost".into()))?;
    tokio::task::spawn_blocking(move || file.sync_all())
        .await
        .map_err(|err| StreamError::Unavailable(format!("disk task failed: {err}")))??;
    store.install_copy(&guard, sealed_length).await?;
    drop(guard);
    tracing::info!(extent_id, sealed_length, source = %source_addr, elapsed_ms = started.elapsed().as_millis() as u64, "extent replica copied and installed");
    Ok(sealed_length)
}
