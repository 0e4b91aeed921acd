//! A completed move whose mover died before the target served the bucket (issue 15, item 5).
//!
//! The mover completes a move in the location group (the home switches to the target), marks
//! the source's record MOVED, waits for cached beliefs to expire, then sends SERVE to the
//! target's copy, which until then answers every request with `BucketMoved`. A mover that died
//! after the completion would leave the bucket refused everywhere until someone reran it. So a
//! target front-end that finds a copy `importing` by move `M`, where the location group says
//! `M` completed to this stamp, sends SERVE itself once it is safe.
//!
//! When it is safe: the source must never serve the bucket again, reads included. The source
//! serves until MOVED, and its record's fence was set before the completion, with a deadline
//! at most `fence_ms` (recorded with the completion) after the mover sent it. Past deadline +
//! [`STALE_FENCE_GRACE_MS`], the source's front-ends refuse every request for the bucket
//! (`Frontend::get_bucket`) and end the move, which marks it MOVED. The completion is seen
//! here after the fence was sent, so waiting `fence_ms` + the grace + [`SERVE_SETTLE_MS`]
//! (cached records, and clocks up to that far apart) from then is enough. Only this process's
//! clock measures the wait.

use crate::frontend::Frontend;
use crate::move_fence::STALE_FENCE_GRACE_MS;
use std::sync::Arc;
use std::time::Duration;
use strata_location::LocationClient;
use strata_proto::common::BucketMeta;
use strata_proto::location::{BucketMove, MoveState};
use strata_proto::partition::MoveStep;

/// Margin past the source's stale fence before the target serves: front-ends cache bucket
/// records for 1 s and homes for 2 s, and the mover's clock (which set the fence's deadline)
/// may run ahead of the source front-ends' clocks.
pub const SERVE_SETTLE_MS: u64 = 4_000;

/// How long after seeing `last` completed this stamp (`own_stamp`) may serve its copy
/// `record`; None when it may not: the copy is not importing by that move, the move did not
/// complete to here, or its fence is unknown (a mover that did not record one).
pub fn serve_after_ms(record: &BucketMeta, last: &BucketMove, own_stamp: &str) -> Option<u64> {
    let ours = record.importing
        && !record.move_id.is_empty()
        && last.move_id == record.move_id
        && last.to == own_stamp
        && last.state() == MoveState::Completed
        && last.fence_ms > 0;
    ours.then(|| {
        last.fence_ms
            .saturating_add(STALE_FENCE_GRACE_MS.unsigned_abs())
            .saturating_add(SERVE_SETTLE_MS)
    })
}

impl Frontend {
    /// Starts serving `record`'s copy in the background if its move completed to here and its
    /// mover may have died (see the module comment); the request that found it is answered
    /// SlowDown meanwhile.
    pub(crate) fn serve_completed_import(&self, record: &BucketMeta) {
        // A geo-replica copy is no move's: only a move that takes it over serves it.
        if !record.importing || record.move_id.is_empty() || crate::geo_replica::is_geo_copy(record)
        {
            return;
        }
        let Some(location) = self.location.clone() else {
            return;
        };
        let frontend = self.clone();
        let record = record.clone();
        let name = record.name.clone();
        self.imports.spawn_claimed(self, &name, async move {
            match frontend.serve_import(&location, &record).await {
                Ok(true) => {
                    tracing::warn!(bucket = %record.name, move_id = %record.move_id, "served a moved bucket its mover left unserved")
                }
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(bucket = %record.name, move_id = %record.move_id, %err, "a moved bucket's copy could not be served yet")
                }
            }
        });
    }

    /// True once SERVE was sent; false when the move is not one this stamp may finish.
    async fn serve_import(
        &self,
        location: &Arc<LocationClient>,
        record: &BucketMeta,
    ) -> Result<bool, String> {
        let answer = location
            .lookup_bucket(&record.name)
            .await
            .map_err(|status| format!("the location group did not answer: {status}"))?;
        let Some(last) = answer.location.and_then(|l| l.last_move) else {
            return Ok(false);
        };
        let Some(wait_ms) = serve_after_ms(record, &last, &self.config.stamp) else {
            return Ok(false);
        };
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        self.set_move_state(
            &record.name,
            &record.move_id,
            MoveStep::Serve,
            String::new(),
        )
        .await
        .map_err(|err| format!("SERVE was refused: {err}"))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completed(move_id: &str, to: &str, fence_ms: u64) -> BucketMove {
        BucketMove {
            move_id: move_id.into(),
            from: "stamp-1".into(),
            to: to.into(),
            started_ms: 1,
            state: MoveState::Completed as i32,
            fence_ms,
        }
    }

    #[test]
    fn only_a_copy_of_a_move_completed_to_here_is_served_and_after_the_fence() {
        let copy = BucketMeta {
            name: "b".into(),
            move_id: "m1".into(),
            importing: true,
            ..Default::default()
        };
        let wait_ms = serve_after_ms(&copy, &completed("m1", "stamp-2", 30_000), "stamp-2");
        assert_eq!(wait_ms, Some(30_000 + 5_000 + SERVE_SETTLE_MS));
        // Another move, another target, no fence told, a copy already served, still copying.
        assert_eq!(
            serve_after_ms(&copy, &completed("m0", "stamp-2", 30_000), "stamp-2"),
            None
        );
        assert_eq!(
            serve_after_ms(&copy, &completed("m1", "stamp-3", 30_000), "stamp-2"),
            None
        );
        assert_eq!(
            serve_after_ms(&copy, &completed("m1", "stamp-2", 0), "stamp-2"),
            None
        );
        let served = BucketMeta {
            importing: false,
            ..copy.clone()
        };
        assert_eq!(
            serve_after_ms(&served, &completed("m1", "stamp-2", 30_000), "stamp-2"),
            None
        );
        let copying = BucketMove {
            state: MoveState::Copying as i32,
            ..completed("m1", "stamp-2", 30_000)
        };
        assert_eq!(serve_after_ms(&copy, &copying, "stamp-2"), None);
    }
}
