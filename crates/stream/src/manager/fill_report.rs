//! The stamp's fill, told to the location group (issue 15, items 3 and 7): every
//! [`FILL_REPORT_INTERVAL_MS`], the member that leads the stream manager group sums what its
//! healthy extent nodes offer and hold and reports it (`ReportFill`). New buckets are placed on
//! the least full stamp from these reports; `strata status` and the location members'
//! `/metrics` show them. Followers report nothing; a report that fails is logged and the next
//! one tries again (the location client bounds every call).

use super::state::ManagerState;
use std::sync::Arc;
use std::time::Duration;
use strata_location::LocationClient;
use strata_proto::location::ReportFillRequest;
use tokio_util::sync::CancellationToken;

/// Period of the reports.
pub const FILL_REPORT_INTERVAL_MS: u64 = 5_000;

/// Where and as what this stamp reports its fill.
pub struct FillReporter {
    pub(super) state: Arc<ManagerState>,
    pub stamp: String,
    pub location: LocationClient,
}

impl FillReporter {
    pub async fn run(self, token: CancellationToken) {
        let mut ticker = tokio::time::interval(Duration::from_millis(FILL_REPORT_INTERVAL_MS));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_failed = false;
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = ticker.tick() => {}
            }
            if !self.state.meta.group().is_ready_leader() {
                continue;
            }
            let fill = match self.state.fill() {
                Ok(Some(fill)) => fill,
                Ok(None) => continue,
                Err(err) => {
                    tracing::warn!(%err, "cannot sum the stamp's fill");
                    continue;
                }
            };
            let report = tokio::select! {
                _ = token.cancelled() => return,
                report = self.report(fill) => report,
            };
            match report {
                Ok(()) if last_failed => {
                    tracing::info!(stamp = %self.stamp, "fill reports reach the location group again");
                    last_failed = false;
                }
                Ok(()) => {}
                Err(err) if !last_failed => {
                    tracing::warn!(stamp = %self.stamp, %err, "fill report failed; retrying every {FILL_REPORT_INTERVAL_MS} ms");
                    last_failed = true;
                }
                Err(_) => {}
            }
        }
    }

    async fn report(
        &self,
        (capacity_bytes, stored_bytes): (u64, u64),
    ) -> Result<(), tonic::Status> {
        let request = ReportFillRequest {
            stamp: self.stamp.clone(),
            capacity_bytes,
            stored_bytes,
        };
        let answer = self.location.report_fill(request).await?;
        if answer.changed {
            tracing::debug!(stamp = %self.stamp, capacity_bytes, stored_bytes, "fill reported");
        }
        Ok(())
    }
}
