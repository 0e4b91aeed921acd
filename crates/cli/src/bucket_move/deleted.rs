//! A bucket deleted on its home while it moves: the deletion wins.
//!
//! DeleteBucket on the source marks the record, waits out write leases, deletes it, and then
//! (its name not being released while a move copies) aborts the move in the location group
//! and releases the name (crates/frontend/src/bucket.rs). The mover meanwhile fails a step
//! (FENCE on a record being deleted, or no record at all). Then, instead of a failure that
//! would need `--abort`, it waits for the deletion to finish (bounded), makes sure the move is
//! aborted, removes the target's copy, and says so.

use super::{clean_target, copy_and_switch, Run, Summary};
use anyhow::bail;
use std::time::{Duration, Instant};
use strata_proto::location::MoveState;

/// Longest wait for a deletion seen in progress to finish, and then for its abort.
const DELETION_WAIT_MS: u64 = 30_000;
/// Pause between looks.
const LOOK_PAUSE_MS: u64 = 250;

/// [`copy_and_switch`], unless the bucket is deleted on its home meanwhile (module comment).
pub(super) async fn copy_unless_deleted(
    run: &Run<'_>,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let Err(err) = copy_and_switch(run, summary).await else {
        return Ok(());
    };
    if !deleted_meanwhile(run).await {
        return Err(err);
    }
    let m = &run.mover;
    ensure_aborted(run).await?;
    summary.outcome = "deleted";
    summary.rows_removed += clean_target(run).await?;
    bail!(
        "{} was deleted on {} while it moved: move {} was aborted and {}'s copy removed",
        m.bucket,
        m.source.name,
        m.move_id,
        m.target.name
    )
}

/// Whether the source's record is gone, waiting (bounded) for a deletion in progress.
async fn deleted_meanwhile(run: &Run<'_>) -> bool {
    let m = &run.mover;
    let deadline = Instant::now() + Duration::from_millis(DELETION_WAIT_MS);
    loop {
        let being_deleted = match m.source.get_bucket(m.bucket).await {
            Ok(None) => return true,
            Ok(Some(record)) => record.deleting_until_ms > strata_util::now_ms(),
            Err(_) => false,
        };
        if !being_deleted || Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(LOOK_PAUSE_MS)).await;
    }
}

/// The move's state in the location group, when it answers.
async fn state_of(run: &Run<'_>) -> Option<MoveState> {
    let m = &run.mover;
    let answer = run.location.lookup_bucket(m.bucket).await.ok()?;
    let last = answer.location?.last_move?;
    (last.move_id == m.move_id).then(|| last.state())
}

/// The deleting front-end aborts the move; should it have died first, this does. A move whose
/// source record is gone has nothing left to protect, and a completed one cannot be: the
/// verification under the fence found the source whole, and a fenced bucket is not deleted.
async fn ensure_aborted(run: &Run<'_>) -> anyhow::Result<()> {
    let m = &run.mover;
    let deadline = Instant::now() + Duration::from_millis(DELETION_WAIT_MS);
    loop {
        match state_of(run).await {
            Some(MoveState::Aborted) | None => return Ok(()),
            Some(MoveState::Completed) => bail!(
                "move {} of {} completed, yet {} holds no record of it",
                m.move_id,
                m.bucket,
                m.source.name
            ),
            Some(MoveState::Copying) if Instant::now() >= deadline => {
                run.location
                    .end_move(m.bucket, m.move_id, None)
                    .await
                    .map_err(|status| anyhow::anyhow!("aborting move {}: {status}", m.move_id))?;
                return Ok(());
            }
            Some(MoveState::Copying) => {
                tokio::time::sleep(Duration::from_millis(LOOK_PAUSE_MS)).await;
            }
        }
    }
}
