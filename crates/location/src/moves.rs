//! The location machine's part of moving a bucket to another stamp (issue 15, item 5): the
//! record of the move and the one decision that must never be taken twice, whether the home
//! switches.
//!
//! A mover begins a move (`BeginMove`), copies the bucket while it stays in use on its home,
//! fences writes there for a bounded switch, copies what is left, then completes the move
//! (`CompleteMove`), which switches the home. Whoever finds the fence expired (the mover died
//! or stalled) aborts the move (`AbortMove`) before writes are taken on the source again. Both
//! name the move's id and only the first of them to apply takes effect, so a write the source
//! accepts after its fence is never left behind by a home switch. (Copying, fencing and
//! reopening are the stamps' part; see docs/architecture.md.)

use crate::machine::{
    bucket_key, stamp_key, BucketRecord, LocationResponse, MoveRecord, MoveState, StampRecord,
    StampState,
};
use strata_raft::{GroupError, Overlay};

/// Whether `bucket` is being copied to another stamp (its name cannot be released then).
pub fn copying(bucket: &BucketRecord) -> bool {
    bucket
        .last_move
        .as_ref()
        .is_some_and(|m| m.state == MoveState::Copying)
}

fn rejected(reason: String) -> LocationResponse {
    LocationResponse::Rejected { reason }
}

/// `BeginMove`: see the module comment.
pub fn begin(
    state: &mut Overlay<'_>,
    bucket: &str,
    to: &str,
    move_id: &str,
    started_ms: i64,
) -> Result<LocationResponse, GroupError> {
    let key = bucket_key(bucket);
    let Some(mut record) = state.get_record::<BucketRecord>(&key)? else {
        return Ok(rejected(format!("no bucket {bucket:?}")));
    };
    if let Some(current) = &record.last_move {
        if current.move_id == move_id {
            return Ok(LocationResponse::Move(record));
        }
        if current.state == MoveState::Copying {
            return Ok(rejected(format!(
                "bucket {bucket:?} is being moved to {} (move {})",
                current.to, current.move_id
            )));
        }
    }
    if record.stamp == to {
        return Ok(rejected(format!("bucket {bucket:?} is on stamp {to:?}")));
    }
    match state.get_record::<StampRecord>(&stamp_key(to))? {
        Some(stamp) if stamp.state == StampState::Open => {}
        Some(_) => return Ok(rejected(format!("stamp {to:?} takes no new buckets"))),
        None => return Ok(rejected(format!("no stamp {to:?} is registered"))),
    }
    record.last_move = Some(MoveRecord {
        move_id: move_id.to_string(),
        from: record.stamp.clone(),
        to: to.to_string(),
        started_ms,
        state: MoveState::Copying,
        fence_ms: 0,
    });
    state.put_record(&key, &record)?;
    Ok(LocationResponse::Move(record))
}

/// `CompleteMove` (`outcome` Completed) or `AbortMove` (Aborted): the first to apply ends the
/// move; repeating it answers the same; the other is refused with the move as it ended. A
/// completion records `fence_ms`, the source's fence (see `MoveRecord::fence_ms`).
pub fn end(
    state: &mut Overlay<'_>,
    bucket: &str,
    move_id: &str,
    outcome: MoveState,
    fence_ms: u64,
) -> Result<LocationResponse, GroupError> {
    debug_assert!(outcome != MoveState::Copying);
    let key = bucket_key(bucket);
    let Some(mut record) = state.get_record::<BucketRecord>(&key)? else {
        return Ok(rejected(format!("no bucket {bucket:?}")));
    };
    let Some(current) = record.last_move.clone().filter(|m| m.move_id == move_id) else {
        return Ok(rejected(format!(
            "bucket {bucket:?} has no move {move_id:?}"
        )));
    };
    match current.state {
        MoveState::Copying => {
            let completed = outcome == MoveState::Completed;
            if completed {
                record.stamp = current.to.clone();
            }
            record.last_move = Some(MoveRecord {
                state: outcome,
                fence_ms: if completed { fence_ms } else { 0 },
                ..current
            });
            state.put_record(&key, &record)?;
            Ok(LocationResponse::Move(record))
        }
        ended if ended == outcome => Ok(LocationResponse::Move(record)),
        ended => Ok(rejected(format!(
            "move {move_id:?} of bucket {bucket:?} already ended: {ended:?}"
        ))),
    }
}
