//! The front-end's reports of its stamp to the location group: a stamp registers itself, so a
//! new stamp joins the namespace by starting its front-ends (the location group knows no stamp
//! in advance). Each report names the stamp, its region and this front-end's endpoint (where
//! other stamps' front-ends reach it); the group registers the stamp open on its first report
//! and adds endpoints it has not seen.
//!
//! Reports go out when the front-end starts and every [`STAMP_REPORT_INTERVAL_MS`] after (a
//! location group that lost its state, or a new endpoint, is caught up within that bound).
//! CreateBucket needs its stamp registered before it reserves a name there, so it waits for
//! the first accepted report ([`StampReporter::ensure_registered`]); nothing else does: a
//! front-end serves its stamp's buckets whether or not the location group answers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use strata_location::LocationClient;
use strata_proto::location::ReportStampRequest;
use tokio_util::sync::CancellationToken;

/// Pause between two reports once one was accepted.
pub const STAMP_REPORT_INTERVAL_MS: u64 = 5_000;
/// Pause after a report failed (the group elects, or is unreachable).
const STAMP_REPORT_RETRY_MS: u64 = 1_000;

/// What this front-end says about its stamp, and whether the group has taken it yet.
pub struct StampReporter {
    location: Arc<LocationClient>,
    request: ReportStampRequest,
    registered: AtomicBool,
}

impl StampReporter {
    pub fn new(location: Arc<LocationClient>, stamp: &str, region: &str, endpoint: &str) -> Self {
        Self {
            location,
            request: ReportStampRequest {
                stamp: stamp.to_string(),
                region: region.to_string(),
                endpoint: endpoint.to_string(),
            },
            registered: AtomicBool::new(false),
        }
    }

    /// Sends one report (bounded by the location client's budget).
    pub async fn report(&self) -> Result<(), tonic::Status> {
        let answer = self.location.report_stamp(self.request.clone()).await?;
        if answer.changed {
            tracing::info!(stamp = %self.request.stamp, endpoint = %self.request.endpoint, "stamp reported to the location group");
        }
        self.registered.store(true, Ordering::Release);
        Ok(())
    }

    /// Returns once the location group has taken a report of this stamp (at once after the
    /// first); else reports now.
    pub async fn ensure_registered(&self) -> Result<(), tonic::Status> {
        if self.registered.load(Ordering::Acquire) {
            return Ok(());
        }
        self.report().await
    }

    /// Reports until `token` is cancelled.
    pub async fn run(self: Arc<Self>, token: CancellationToken) {
        loop {
            let pause_ms = match self.report().await {
                Ok(()) => STAMP_REPORT_INTERVAL_MS,
                Err(status) => {
                    tracing::warn!(%status, stamp = %self.request.stamp, "could not report the stamp to the location group; retrying");
                    STAMP_REPORT_RETRY_MS
                }
            };
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(pause_ms)) => {}
            }
        }
    }
}
