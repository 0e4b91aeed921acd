//! SetMoveState: a bucket move's marks on the bucket's record, on the record's owner (issue 15,
//! item 5; the rows the mover copies are [`super::moves`]').
//!
//! A move `M` goes, on the source's record: FENCE (writes refused; answered once every write
//! lease granted before it ran out, [`crate::bucket_gate`]), then MOVED after the location
//! group switched the bucket's home (or UNFENCE when the move is given up), then DROP once the
//! mover removed every row. On the target's record (made by ImportRow, importing by `M`):
//! SERVE after the switch, or DROP after an abort.
//!
//! Invariants:
//! - Every step names its move; a record another move holds refuses it, and repeating a step
//!   that took effect answers the record again without changing it (FENCE waits again).
//! - A fence is never lifted but by UNFENCE or MOVED of its own move; its deadline is only
//!   recorded (a front-end ends a move whose fence outlived it, then sends one of those).
//! - DROP deletes a record only when no object, version or upload of the bucket is left on any
//!   range: it marks the record first (as DeleteBucket does), so an ImportRow that checked the
//!   record before the mark is counted, and one after it is refused.

use strata_proto::partition::*;
use strata_types::error_detail::RejectReason;
use strata_types::keys;

use super::moves::{check_bucket, check_move_id, move_conflict, writable_range};
use crate::bucket_gate::{self, DELETING_MS};
use crate::error::PartitionError;
use crate::range::{IndexValue, Range};
use crate::records::{wire, BucketRecord};
use crate::server::PartitionServerState;

/// Longest stamp name MOVED records.
const STAMP_NAME_BYTES_MAX: usize = 128;

pub async fn set_move_state(
    state: &PartitionServerState,
    request: SetMoveStateRequest,
) -> Result<SetMoveStateResponse, PartitionError> {
    check_bucket(&request.bucket)?;
    check_move_id(&request.move_id)?;
    let step = MoveStep::try_from(request.step)
        .ok()
        .filter(|step| *step != MoveStep::Unspecified)
        .ok_or_else(|| PartitionError::InvalidArgument("unknown move step".into()))?;
    let key = keys::bucket_key(&request.bucket);
    let range = writable_range(state, &key)?;
    let record = match step {
        MoveStep::Fence => Some(fence(state, &range, key, &request).await?),
        MoveStep::Drop => drop_record(state, &range, key, &request).await?,
        _ => Some(change(&range, key, &request, step).await?),
    };
    Ok(SetMoveStateResponse {
        bucket: record.map(wire::bucket_meta),
    })
}

fn fenced_by(record: &BucketRecord, move_id: &str) -> bool {
    record.fenced_until_ms != 0 && record.move_id == move_id
}

/// What `step` of `request`'s move makes of `record` at `now_ms`: the record to commit, None
/// when the step already took effect, or why it is refused. DROP is [`drop_record`]'s.
pub(super) fn next_record(
    record: &BucketRecord,
    request: &SetMoveStateRequest,
    step: MoveStep,
    now_ms: i64,
) -> Result<Option<BucketRecord>, PartitionError> {
    let move_id = request.move_id.as_str();
    let bucket = &record.name;
    let mut next = record.clone();
    match step {
        MoveStep::Fence => {
            if record.importing || !record.moved_to.is_empty() {
                return Err(move_conflict(format!(
                    "bucket {bucket} is a move's copy (importing) or moved away"
                )));
            }
            if bucket_gate::deleting(record, now_ms) {
                return Err(move_conflict(format!("bucket {bucket} is being deleted")));
            }
            if record.fenced_until_ms != 0 && record.move_id != move_id {
                return Err(move_conflict(format!(
                    "bucket {bucket} is fenced by move {}",
                    record.move_id
                )));
            }
            next.move_id = move_id.to_string();
            next.fenced_until_ms = request.fenced_until_ms;
        }
        MoveStep::Unfence => {
            if !record.moved_to.is_empty() {
                return Err(move_conflict(format!(
                    "bucket {bucket} moved to {}: its fence is gone",
                    record.moved_to
                )));
            }
            if record.fenced_until_ms == 0 {
                return Ok(None); // lifted already (or never fenced): nothing to undo
            }
            if record.move_id != move_id {
                return Err(move_conflict(format!(
                    "bucket {bucket} is fenced by move {}",
                    record.move_id
                )));
            }
            next.fenced_until_ms = 0;
            next.move_id.clear();
        }
        MoveStep::Moved => {
            if !record.moved_to.is_empty() {
                if record.move_id == move_id && record.moved_to == request.moved_to {
                    return Ok(None);
                }
                return Err(move_conflict(format!(
                    "bucket {bucket} moved to {} by move {}",
                    record.moved_to, record.move_id
                )));
            }
            if !fenced_by(record, move_id) {
                return Err(move_conflict(format!(
                    "bucket {bucket} is not fenced by move {move_id}"
                )));
            }
            next.moved_to = request.moved_to.clone();
            next.fenced_until_ms = 0;
        }
        MoveStep::Serve => {
            if record.move_id != move_id {
                return Err(move_conflict(format!(
                    "bucket {bucket} is not imported by move {move_id}"
                )));
            }
            if !record.importing {
                if record.fenced_until_ms == 0 && record.moved_to.is_empty() {
                    return Ok(None); // served already
                }
                return Err(move_conflict(format!(
                    "bucket {bucket} is the source of move {move_id}, not its copy"
                )));
            }
            if bucket_gate::deleting(record, now_ms) {
                return Err(move_conflict(format!("bucket {bucket} is being dropped")));
            }
            next.importing = false;
        }
        MoveStep::Drop | MoveStep::Unspecified => {
            return Err(PartitionError::InvalidArgument(format!(
                "{step:?} is not a change of the record"
            )))
        }
    }
    Ok((next != *record).then_some(next))
}

/// Applies `step` to the record under the range's commit lock (committing only a change);
/// answers the record as it now is.
async fn change(
    range: &Range,
    key: Vec<u8>,
    request: &SetMoveStateRequest,
    step: MoveStep,
) -> Result<BucketRecord, PartitionError> {
    if step == MoveStep::Moved
        && (request.moved_to.is_empty() || request.moved_to.len() > STAMP_NAME_BYTES_MAX)
    {
        return Err(PartitionError::InvalidArgument(format!(
            "MOVED names the stamp moved to (1 to {STAMP_NAME_BYTES_MAX} bytes)"
        )));
    }
    let guard = range.lock_commits().await;
    let Some(IndexValue::Bucket(record)) = range.get(&key) else {
        return Err(PartitionError::NoSuchBucket(request.bucket.clone()));
    };
    match next_record(&record, request, step, strata_util::now_ms())? {
        Some(next) => {
            let changes = vec![(key, Some(IndexValue::Bucket(next.clone())))];
            range.commit_locked(guard, changes).await?;
            Ok(next)
        }
        None => Ok(record),
    }
}

/// FENCE: commits the fence, then waits until no write lease granted before it can still let a
/// write commit (as DeleteBucket waits after its mark); refused when the fence was lifted
/// meanwhile, since then the wait proves nothing.
async fn fence(
    state: &PartitionServerState,
    range: &Range,
    key: Vec<u8>,
    request: &SetMoveStateRequest,
) -> Result<BucketRecord, PartitionError> {
    if request.fenced_until_ms <= 0 {
        return Err(PartitionError::InvalidArgument(
            "FENCE needs fenced_until_ms (the mover's deadline, ms since the epoch)".into(),
        ));
    }
    change(range, key.clone(), request, MoveStep::Fence).await?;
    super::buckets::wait_out_leases(state, range, &request.bucket).await;
    match range.get(&key) {
        Some(IndexValue::Bucket(record)) if fenced_by(&record, &request.move_id) => Ok(record),
        _ => Err(move_conflict(format!(
            "the fence of move {} on bucket {} was lifted while its leases ran out",
            request.move_id, request.bucket
        ))),
    }
}

/// DROP: deletes the record of a bucket moved away or imported by the request's move once no
/// row is left (see the module doc); None when it is gone already.
async fn drop_record(
    state: &PartitionServerState,
    range: &Range,
    key: Vec<u8>,
    request: &SetMoveStateRequest,
) -> Result<Option<BucketRecord>, PartitionError> {
    let deletion_id = uuid::Uuid::new_v4().simple().to_string();
    {
        let guard = range.lock_commits().await;
        let Some(IndexValue::Bucket(mut record)) = range.get(&key) else {
            return Ok(None); // dropped already
        };
        let held = record.importing || !record.moved_to.is_empty();
        if !held || record.move_id != request.move_id {
            return Err(move_conflict(format!(
                "bucket {} is neither being imported nor moved away by move {}",
                request.bucket, request.move_id
            )));
        }
        // A DROP under way (a retry) is taken over, as DeleteBucket does.
        record.deleting_until_ms = strata_util::now_ms() + DELETING_MS;
        record.deletion_id = deletion_id.clone();
        let changes = vec![(key.clone(), Some(IndexValue::Bucket(record)))];
        range.commit_locked(guard, changes).await?;
    }
    let counted = super::buckets::count_everywhere(state, &request.bucket).await;
    let guard = range.lock_commits().await;
    let mut record = match range.get(&key) {
        Some(IndexValue::Bucket(record))
            if record.deletion_id == deletion_id
                && bucket_gate::deleting(&record, strata_util::now_ms()) =>
        {
            record
        }
        _ => {
            return Err(move_conflict(format!(
                "another DROP of bucket {} took over, or counting outlasted the mark",
                request.bucket
            )))
        }
    };
    if let Ok(0) = counted {
        range.commit_locked(guard, vec![(key, None)]).await?;
        return Ok(None);
    }
    record.deleting_until_ms = 0;
    record.deletion_id.clear();
    let changes = vec![(key, Some(IndexValue::Bucket(record)))];
    range.commit_locked(guard, changes).await?;
    counted?;
    Err(PartitionError::rejected(
        RejectReason::BucketNotEmpty,
        format!(
            "rows of bucket {} are left on this stamp: remove them (RemoveRows) first",
            request.bucket
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(move_id: &str) -> SetMoveStateRequest {
        SetMoveStateRequest {
            bucket: "b".into(),
            move_id: move_id.into(),
            fenced_until_ms: 5_000,
            moved_to: "stamp-2".into(),
            ..Default::default()
        }
    }

    fn record() -> BucketRecord {
        BucketRecord {
            name: "b".into(),
            ..Default::default()
        }
    }

    fn step(record: &BucketRecord, move_id: &str, step: MoveStep) -> Option<BucketRecord> {
        next_record(record, &request(move_id), step, 1_000).unwrap()
    }

    fn refused(record: &BucketRecord, move_id: &str, step: MoveStep) -> bool {
        next_record(record, &request(move_id), step, 1_000).is_err()
    }

    #[test]
    fn a_source_is_fenced_then_moved_and_every_step_repeats() {
        let fenced = step(&record(), "m", MoveStep::Fence).unwrap();
        assert_eq!(
            (fenced.move_id.as_str(), fenced.fenced_until_ms),
            ("m", 5_000)
        );
        assert_eq!(
            step(&fenced, "m", MoveStep::Fence),
            None,
            "a repeat changes nothing"
        );
        assert!(refused(&fenced, "other", MoveStep::Fence));
        assert!(refused(&fenced, "other", MoveStep::Unfence));
        assert!(refused(&fenced, "m", MoveStep::Serve));
        let moved = step(&fenced, "m", MoveStep::Moved).unwrap();
        assert_eq!(
            (moved.moved_to.as_str(), moved.fenced_until_ms),
            ("stamp-2", 0)
        );
        assert_eq!(step(&moved, "m", MoveStep::Moved), None);
        assert!(refused(&moved, "other", MoveStep::Moved));
        assert!(refused(&moved, "m", MoveStep::Unfence));
        assert!(refused(&moved, "m", MoveStep::Fence));
        // MOVED needs the fence: the switch may only follow it.
        assert!(refused(&record(), "m", MoveStep::Moved));
    }

    #[test]
    fn an_unfence_lifts_only_its_own_fence() {
        let fenced = step(&record(), "m", MoveStep::Fence).unwrap();
        let lifted = step(&fenced, "m", MoveStep::Unfence).unwrap();
        assert_eq!(lifted, record());
        assert_eq!(step(&lifted, "m", MoveStep::Unfence), None);
        // A deleting record is not fenced.
        let deleting = BucketRecord {
            deleting_until_ms: 2_000,
            ..record()
        };
        assert!(refused(&deleting, "m", MoveStep::Fence));
    }

    #[test]
    fn a_copy_is_served_by_its_own_move_only() {
        let importing = BucketRecord {
            importing: true,
            move_id: "m".into(),
            ..record()
        };
        assert!(refused(&importing, "other", MoveStep::Serve));
        assert!(refused(&importing, "m", MoveStep::Fence));
        let served = step(&importing, "m", MoveStep::Serve).unwrap();
        assert!(!served.importing);
        assert_eq!(served.move_id, "m");
        assert_eq!(step(&served, "m", MoveStep::Serve), None);
        // The served bucket may move again, under a new move.
        assert!(step(&served, "next", MoveStep::Fence).is_some());
        let dropping = BucketRecord {
            deleting_until_ms: 2_000,
            ..importing
        };
        assert!(refused(&dropping, "m", MoveStep::Serve));
    }
}
