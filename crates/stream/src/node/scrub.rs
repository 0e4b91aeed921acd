//! The scrubber: re-verifies every record of every sealed replica on this node, rate-limited,
//! pass after pass, and reports a replica whose record fails its checksum to the stream
//! manager (`ReportBadReplica`), which has it rewritten from a good replica.

use super::copy::pace;
use crate::channels::{call_any_manager, request_with_timeout, ChannelCache};
use crate::error::StreamError;
use crate::extent::{ExtentStore, FILE_HEADER_LEN};
use crate::metrics;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_proto::stream::ReportBadReplicaRequest;
use strata_types::ExtentId;
use tokio_util::sync::CancellationToken;

/// Default verification rate: modest, so scrubbing never competes with client traffic.
pub const SCRUB_BYTES_PER_SEC_DEFAULT: u64 = 8 * 1024 * 1024;
/// Default pause between two scrub passes over the node's sealed extents.
pub const SCRUB_INTERVAL_MS_DEFAULT: u64 = 60_000;
/// Bound on one report to the stream manager.
pub const REPORT_TIMEOUT_MS: u64 = 3_000;
const SCRUB_BATCH_RECORDS: usize = 256;
const SCRUB_BATCH_BYTES: u64 = 1024 * 1024;

/// How the scrubber runs (0 bytes/s disables it).
#[derive(Clone, Debug)]
pub struct ScrubSettings {
    pub bytes_per_sec: u64,
    pub interval_ms: u64,
}

impl Default for ScrubSettings {
    fn default() -> Self {
        Self {
            bytes_per_sec: SCRUB_BYTES_PER_SEC_DEFAULT,
            interval_ms: SCRUB_INTERVAL_MS_DEFAULT,
        }
    }
}

pub struct Scrubber {
    pub store: Arc<ExtentStore>,
    pub node_id: String,
    pub manager_addrs: Vec<String>,
    pub settings: ScrubSettings,
}

/// Reports a bad replica to whichever stream manager answers.
pub async fn report_bad_replica(
    channels: &ChannelCache,
    manager_addrs: &[String],
    extent_id: ExtentId,
    node_id: &str,
    offset: u64,
) -> crate::Result<()> {
    let request = ReportBadReplicaRequest {
        extent_id: extent_id.get(),
        node_id: node_id.to_string(),
        offset,
    };
    call_any_manager(channels, manager_addrs, 0, REPORT_TIMEOUT_MS, |mut c| {
        let request = request_with_timeout(request.clone(), REPORT_TIMEOUT_MS);
        async move { c.report_bad_replica(request).await }
    })
    .await?;
    Ok(())
}

impl Scrubber {
    /// Scrubs until `token` is cancelled.
    pub async fn run(self, token: CancellationToken) {
        if self.settings.bytes_per_sec == 0 {
            tracing::info!("scrubber disabled");
            return;
        }
        let channels = ChannelCache::new();
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = self.pass(&channels) => {}
            }
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(self.settings.interval_ms.max(10))) => {}
            }
        }
    }

    /// One pass over every sealed replica.
    async fn pass(&self, channels: &ChannelCache) {
        let report = match self.store.report() {
            Ok(report) => report,
            Err(err) => {
                tracing::warn!(%err, "scrubber cannot list extents");
                return;
            }
        };
        let started = Instant::now();
        let mut verified_bytes = 0u64;
        for extent in report.into_iter().filter(|e| e.sealed) {
            let mut offset = FILE_HEADER_LEN;
            while offset < extent.length {
                match self
                    .store
                    .read(
                        extent.extent_id,
                        offset,
                        SCRUB_BATCH_RECORDS,
                        SCRUB_BATCH_BYTES,
                    )
                    .await
                {
                    Ok(batch) if batch.records.is_empty() => break,
                    Ok(batch) => {
                        let bytes = batch.next_offset - offset;
                        metrics::scrub_bytes().inc_by(bytes);
                        verified_bytes += bytes;
                        offset = batch.next_offset;
                        pace(started, verified_bytes, self.settings.bytes_per_sec).await;
                    }
                    Err(StreamError::DataLoss {
                        offset: bad_offset, ..
                    }) => {
                        metrics::scrub_corrupt_records().inc();
                        tracing::error!(
                            extent_id = extent.extent_id.get(),
                            offset = bad_offset,
                            "scrubber found a corrupt record; reporting the replica"
                        );
                        if let Err(err) = report_bad_replica(
                            channels,
                            &self.manager_addrs,
                            extent.extent_id,
                            &self.node_id,
                            bad_offset,
                        )
                        .await
                        {
                            tracing::warn!(extent_id = extent.extent_id.get(), %err, "could not report a bad replica");
                        }
                        break;
                    }
                    // Deleted or replaced meanwhile: the next pass sees the new state.
                    Err(err) => {
                        tracing::debug!(extent_id = extent.extent_id.get(), %err, "scrub read stopped");
                        break;
                    }
                }
            }
        }
    }
}
