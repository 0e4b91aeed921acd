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
use strata_proto::stream::{CopyExtentRequest, ReadRequest, Record};
use strata_types::ExtentId;

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

/// One repair copy under way on this node: which extent, from where, up to which length.
struct CopySource<'a> {
    channels: &'a ChannelCache,
    extent_id: ExtentId,
    addr: String,
    sealed_length: u64,
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
    let extent_id = ExtentId::new(extent_id);
    if sealed_length < FILE_HEADER_LEN {
        return Err(StreamError::InvalidArgument(format!(
            "sealed length {sealed_length} is below the file header"
        )));
    }
    let guard = store.begin_copy(extent_id)?;
    let temp_path = guard.temp_path.clone();
    let file = on_disk(move || {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp_path)?;
        file.write_all(&format::encode_file_header(extent_id))?;
        Ok(file)
    })
    .await?;
    let source = CopySource {
        channels,
        extent_id,
        addr: source_addr,
        sealed_length,
    };
    let started = Instant::now();
    let file = copy_records(&source, file, started, rate_bytes_per_sec).await?;
    on_disk(move || Ok(file.sync_all()?)).await?;
    store.install_copy(&guard, sealed_length).await?;
    drop(guard);
    tracing::info!(extent_id = extent_id.get(), sealed_length, source = %source.addr, elapsed_ms = started.elapsed().as_millis() as u64, "extent replica copied and installed");
    Ok(sealed_length)
}

/// Runs disk work on a blocking thread.
async fn on_disk<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| StreamError::Unavailable(format!("disk task failed: {err}")))?
}

/// Reads the source's records from the first one up to the sealed length, checks them and
/// appends them to `file` (which holds the file header), paced at `rate_bytes_per_sec`
/// counted from `started`. Returns the file, not yet fsynced.
async fn copy_records(
    source: &CopySource<'_>,
    mut file: std::fs::File,
    started: Instant,
    rate_bytes_per_sec: u64,
) -> Result<std::fs::File> {
    let mut offset = FILE_HEADER_LEN;
    while offset < source.sealed_length {
        let records = source.read(offset).await?;
        let batch = encode_checked(source, records, &mut offset)?;
        let written_len = batch.len() as u64;
        file = on_disk(move || {
            file.write_all(&batch)?;
            Ok(file)
        })
        .await?;
        metrics::repair_bytes_received().inc_by(written_len);
        pace(started, offset - FILE_HEADER_LEN, rate_bytes_per_sec).await;
    }
    Ok(file)
}

impl CopySource<'_> {
    /// One batch of records from `offset` on; fails when the source has none there (it holds
    /// less than the sealed length).
    async fn read(&self, offset: u64) -> Result<Vec<Record>> {
        let mut client = self.channels.extent_node(&self.addr)?;
        let read = ReadRequest {
            extent_id: self.extent_id.get(),
            offset,
            max_records: COPY_BATCH_RECORDS,
            max_bytes: COPY_BATCH_BYTES,
        };
        let response = bounded(
            &self.addr,
            COPY_READ_TIMEOUT_MS,
            client.read(request_with_timeout(read, COPY_READ_TIMEOUT_MS)),
        )
        .await?;
        if response.records.is_empty() {
            return Err(StreamError::Unavailable(format!(
                "source {} holds {} only up to {} bytes, {} needed",
                self.addr, self.extent_id, response.length, self.sealed_length
            )));
        }
        Ok(response.records)
    }
}

/// Checks that `records` follow each other from `*offset` and match the CRCs the source sent,
/// and encodes the ones below the sealed length for the disk; advances `*offset` past them.
fn encode_checked(
    source: &CopySource<'_>,
    records: Vec<Record>,
    offset: &mut u64,
) -> Result<Vec<u8>> {
    let data_loss = |offset, reason: String| StreamError::DataLoss {
        extent_id: source.extent_id,
        offset,
        reason,
    };
    let mut batch = Vec::with_capacity(COPY_BATCH_BYTES as usize / 4);
    for record in records {
        if record.offset >= source.sealed_length {
            break;
        }
        if record.offset != *offset {
            return Err(data_loss(
                *offset,
                format!("source sent a record at offset {}", record.offset),
            ));
        }
        if format::record_crc(&record.payload) != record.crc {
            return Err(data_loss(
                *offset,
                "copied record fails the source's checksum".into(),
            ));
        }
        let encoded = format::encode_record(&record.payload)?;
        *offset += encoded.len() as u64;
        if *offset > source.sealed_length {
            return Err(data_loss(
                record.offset,
                format!(
                    "record runs past the sealed length {}",
                    source.sealed_length
                ),
            ));
        }
        batch.extend_from_slice(&encoded);
    }
    Ok(batch)
}
