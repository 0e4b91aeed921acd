//! A move's fence that outlived its mover (issue 15, item 5).
//!
//! To switch a bucket to another stamp, the mover fences writes on the source (its record's
//! `fenced_until_ms`), copies what is left, and completes the move in the location group. A
//! fence is lifted only by a decision: the move completed (the source then answers "moved"),
//! or it was aborted (the source takes writes again). A mover that died or stalled leaves its
//! fence past the deadline; the first front-end to read such a record ends the move itself:
//! it asks the location group to abort the move, and whichever end of the move won there
//! (its abort, or the mover's late completion) is then applied to the source's record.
//!
//! Invariant: a fence is lifted only after the location group recorded the move as aborted,
//! so a write taken after the lift can never be left behind by a home switch (the location
//! group applies only the first end of a move). Clocks only decide when to ask, never what
//! happens.

use crate::frontend::Frontend;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use strata_location::LocationClient;
use strata_proto::common::BucketMeta;
use strata_proto::location::MoveState;
use strata_proto::partition::{MoveStep, SetMoveStateRequest};
use strata_types::keys;

/// How long past a fence's deadline a front-end waits before ending the move itself: the
/// mover's own clock may run behind the record owner's.
pub const STALE_FENCE_GRACE_MS: i64 = 5_000;
/// Moves one front-end ends at once (others wait for the next request): stale fences, and
/// completed moves' copies to serve (crates/frontend/src/move_serve.rs), each.
pub const RESOLVES_IN_FLIGHT_MAX: usize = 8;

/// The buckets whose move this front-end is ending now (one set for stale fences, one for
/// copies to serve).
#[derive(Default)]
pub struct Claims {
    in_flight: Mutex<HashSet<String>>,
}

/// Whether `bucket`'s record carries a fence its mover should have lifted by `now_ms`.
pub fn stale_fence(bucket: &BucketMeta, now_ms: i64) -> bool {
    bucket.fenced_until_ms != 0
        && !bucket.move_id.is_empty()
        && now_ms > bucket.fenced_until_ms.saturating_add(STALE_FENCE_GRACE_MS)
}

impl Claims {
    pub(crate) fn claim(&self, bucket: &str) -> bool {
        let Ok(mut in_flight) = self.in_flight.lock() else {
            return false;
        };
        in_flight.len() < RESOLVES_IN_FLIGHT_MAX && in_flight.insert(bucket.to_string())
    }

    pub(crate) fn release(&self, bucket: &str) {
        if let Ok(mut in_flight) = self.in_flight.lock() {
            in_flight.remove(bucket);
        }
    }

    /// Runs `work` in the background unless `bucket` is claimed already (or too many are);
    /// then `frontend` forgets the bucket's cached record, and the claim is released.
    pub(crate) fn spawn_claimed<F>(self: &Arc<Self>, frontend: &Frontend, bucket: &str, work: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        if !self.claim(bucket) {
            return;
        }
        let (claims, buckets, bucket) =
            (self.clone(), frontend.buckets.clone(), bucket.to_string());
        tokio::spawn(async move {
            work.await;
            buckets.invalidate(&bucket);
            claims.release(&bucket);
        });
    }
}

impl Frontend {
    /// Starts ending the move behind `bucket`'s stale fence, in the background (the request
    /// that found it is answered SlowDown meanwhile, and its retry finds the fence gone).
    pub(crate) fn resolve_stale_fence(&self, bucket: &BucketMeta) {
        if !stale_fence(bucket, strata_util::now_ms()) {
            return;
        }
        let Some(location) = self.location.clone() else {
            return;
        };
        let frontend = self.clone();
        let (name, move_id) = (bucket.name.clone(), bucket.move_id.clone());
        self.fences.spawn_claimed(self, &bucket.name, async move {
            match frontend.end_stale_move(&location, &name, &move_id).await {
                Ok(step) => {
                    tracing::warn!(bucket = %name, %move_id, ?step, "a stale move fence was resolved")
                }
                Err(err) => {
                    tracing::warn!(bucket = %name, %move_id, %err, "a stale move fence could not be resolved yet")
                }
            }
        });
    }

    /// Aborts the move copying `bucket`, if one does (the bucket was deleted on its home
    /// meanwhile); true when one was aborted.
    pub(crate) async fn abort_copying_move(&self, location: &LocationClient, bucket: &str) -> bool {
        let Ok(answer) = location.lookup_bucket(bucket).await else {
            return false;
        };
        let copying = answer
            .location
            .and_then(|location| location.last_move)
            .filter(|last| last.state() == MoveState::Copying);
        let Some(copying) = copying else {
            return false;
        };
        match location.end_move(bucket, &copying.move_id, None).await {
            Ok(answer) if answer.accepted => {
                tracing::warn!(bucket, move_id = %copying.move_id, "the bucket was deleted while it moved: its move was aborted");
                true
            }
            _ => false,
        }
    }

    async fn end_stale_move(
        &self,
        location: &Arc<LocationClient>,
        bucket: &str,
        move_id: &str,
    ) -> Result<MoveStep, String> {
        let answer = location
            .end_move(bucket, move_id, None)
            .await
            .map_err(|status| format!("the location group did not answer: {status}"))?;
        let ended = answer
            .location
            .and_then(|location| location.last_move)
            .filter(|last| last.move_id == move_id)
            .ok_or_else(|| format!("the location group knows no move {move_id}"))?;
        let (step, moved_to) = match ended.state() {
            MoveState::Aborted => (MoveStep::Unfence, String::new()),
            MoveState::Completed => (MoveStep::Moved, ended.to),
            MoveState::Copying => return Err(format!("move still copying: {}", answer.reason)),
        };
        self.set_move_state(bucket, move_id, step, moved_to)
            .await
            .map_err(|err| format!("the bucket's record was not updated: {err}"))?;
        Ok(step)
    }

    /// One of the steps a front-end may take on a move's record (UNFENCE, MOVED, SERVE: the
    /// ones that end a move the location group decided), on the record's owner.
    pub(crate) async fn set_move_state(
        &self,
        bucket: &str,
        move_id: &str,
        step: MoveStep,
        moved_to: String,
    ) -> Result<(), crate::error::FrontendError> {
        debug_assert!(matches!(
            step,
            MoveStep::Unfence | MoveStep::Moved | MoveStep::Serve
        ));
        let request = SetMoveStateRequest {
            bucket: bucket.to_string(),
            move_id: move_id.to_string(),
            step: step as i32,
            fenced_until_ms: 0,
            moved_to,
        };
        self.router
            .call(&keys::bucket_key(bucket), false, |mut client, _| {
                let request = request.clone();
                async move { client.set_move_state(request).await.map(|r| r.into_inner()) }
            })
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fence_is_stale_only_past_its_deadline_and_the_grace() {
        let fenced = BucketMeta {
            name: "b".into(),
            move_id: "m".into(),
            fenced_until_ms: 10_000,
            ..Default::default()
        };
        assert!(!stale_fence(&fenced, 10_000 + STALE_FENCE_GRACE_MS));
        assert!(stale_fence(&fenced, 10_001 + STALE_FENCE_GRACE_MS));
        let unfenced = BucketMeta {
            fenced_until_ms: 0,
            ..fenced.clone()
        };
        assert!(!stale_fence(&unfenced, i64::MAX));
    }

    #[test]
    fn resolves_are_claimed_once_per_bucket_and_bounded() {
        let resolver = Claims::default();
        assert!(resolver.claim("b"));
        assert!(!resolver.claim("b"));
        resolver.release("b");
        assert!(resolver.claim("b"));
        for i in 1..RESOLVES_IN_FLIGHT_MAX {
            assert!(resolver.claim(&format!("b{i}")));
        }
        assert!(!resolver.claim("one-too-many"));
    }
}
