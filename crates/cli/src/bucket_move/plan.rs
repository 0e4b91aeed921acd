//! What a run of `strata bucket move` does, decided from where the bucket lives and its
//! latest move as the location group tells them: start, resume, finish or abort a move.
//!
//! Invariant: at most one move of a bucket is copying; a run never starts a second one, and
//! never aborts a move whose home already switched.

use strata_proto::location::{BucketMove, MoveState};

/// What this run does, given where the bucket is and its latest move.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// A new move from the bucket's home, once what the `previous` move (completed or
    /// aborted) may have left behind is cleaned (its leftovers would refuse the import).
    Start {
        from: String,
        to: String,
        previous: Option<BucketMove>,
    },
    /// Go on with the copying move `move_id`.
    Resume {
        from: String,
        to: String,
        move_id: String,
    },
    /// The home already switched: only the steps after the switch.
    Finish {
        from: String,
        to: String,
        move_id: String,
    },
    /// Stop the move and remove its target's copy (`ended`: the location group already
    /// recorded the abort, only the cleanup is left).
    Abort {
        from: String,
        to: String,
        move_id: String,
        ended: bool,
    },
}

pub fn plan(
    bucket: &str,
    home: &str,
    last: Option<&BucketMove>,
    to: Option<&str>,
    abort: bool,
) -> Result<Plan, String> {
    let last = last.map(|m| (m, MoveState::try_from(m.state).ok()));
    if abort {
        // A move whose home switched cannot be stopped; if its mover died before the steps
        // after the switch, the target is not serving yet and only a rerun makes it.
        if let Some((m, Some(MoveState::Completed))) = last {
            return Err(format!(
                "move {} already switched {bucket} to {}: it cannot be stopped. If its mover \
                 did not finish (the bucket answers 503 SlowDown), finish it with `strata \
                 bucket move {bucket} --to {}`",
                m.move_id, m.to, m.to
            ));
        }
        let Some((m, Some(state @ (MoveState::Copying | MoveState::Aborted)))) = last else {
            return Err(format!("no move of {bucket} is in progress"));
        };
        if let Some(to) = to.filter(|to| *to != m.to) {
            return Err(format!("{bucket} is moving to {}, not to {to}", m.to));
        }
        return Ok(Plan::Abort {
            from: m.from.clone(),
            to: m.to.clone(),
            move_id: m.move_id.clone(),
            ended: state == MoveState::Aborted,
        });
    }
    let to = to.ok_or("--to names the stamp to move to")?.to_string();
    match last {
        Some((m, Some(MoveState::Copying))) if m.to == to => Ok(Plan::Resume {
            from: m.from.clone(),
            to,
            move_id: m.move_id.clone(),
        }),
        Some((m, Some(MoveState::Copying))) => Err(format!(
            "{bucket} is being moved to {} (move {}): finish it with `--to {}` or stop it \
             with `--abort`",
            m.to, m.move_id, m.to
        )),
        Some((m, Some(MoveState::Completed))) if home == to && m.to == to => Ok(Plan::Finish {
            from: m.from.clone(),
            to,
            move_id: m.move_id.clone(),
        }),
        Some((_, None)) => Err(format!("{bucket}'s latest move is in an unknown state")),
        _ if home == to => Err(format!("{bucket} is already on {to}")),
        _ => Ok(Plan::Start {
            from: home.to_string(),
            to,
            previous: last.map(|(m, _)| m.clone()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last(state: MoveState, to: &str) -> BucketMove {
        BucketMove {
            move_id: "m1".into(),
            from: "stamp-1".into(),
            to: to.into(),
            started_ms: 1,
            state: state.into(),
            fence_ms: 0,
        }
    }

    #[test]
    fn a_run_starts_resumes_finishes_or_refuses_by_the_bucket_s_latest_move() {
        let copying = last(MoveState::Copying, "stamp-2");
        let done = last(MoveState::Completed, "stamp-2");
        let aborted = last(MoveState::Aborted, "stamp-2");
        let to = Some("stamp-2");
        let start = Plan::Start {
            from: "stamp-1".into(),
            to: "stamp-2".into(),
            previous: None,
        };
        assert_eq!(plan("b", "stamp-1", None, to, false), Ok(start));
        let resume = plan("b", "stamp-1", Some(&copying), to, false);
        assert!(matches!(resume, Ok(Plan::Resume { move_id, .. }) if move_id == "m1"));
        let other = plan("b", "stamp-1", Some(&copying), Some("stamp-3"), false);
        assert!(other.is_err_and(|why| why.contains("stamp-2")));
        let finish = plan("b", "stamp-2", Some(&done), to, false);
        assert!(matches!(finish, Ok(Plan::Finish { from, .. }) if from == "stamp-1"));
        assert!(
            plan("b", "stamp-2", None, to, false).is_err(),
            "already there"
        );
        assert!(plan("b", "stamp-2", Some(&aborted), to, false).is_err());
        let again = plan("b", "stamp-1", Some(&aborted), to, false);
        let after_abort = Some(aborted.clone());
        assert!(
            matches!(again, Ok(Plan::Start { previous, .. }) if previous == after_abort),
            "a new move after an abort cleans what that one left first"
        );
    }

    #[test]
    fn abort_takes_a_copying_or_aborted_move_only() {
        let copying = last(MoveState::Copying, "stamp-2");
        let aborted = last(MoveState::Aborted, "stamp-2");
        let done = last(MoveState::Completed, "stamp-2");
        let stop = plan("b", "stamp-1", Some(&copying), None, true);
        assert!(matches!(stop, Ok(Plan::Abort { ended: false, .. })));
        let again = plan("b", "stamp-1", Some(&aborted), Some("stamp-2"), true);
        assert!(matches!(again, Ok(Plan::Abort { ended: true, .. })));
        assert!(plan("b", "stamp-1", Some(&copying), Some("stamp-3"), true).is_err());
        assert!(plan("b", "stamp-2", Some(&done), None, true).is_err());
        assert!(plan("b", "stamp-1", None, None, true).is_err());
    }

    #[test]
    fn abort_after_the_switch_says_how_to_finish_the_move() {
        // A mover that died after EndMove leaves the target importing and the bucket answering
        // 503 everywhere until a rerun finishes it: --abort must say so, not "no move".
        let done = last(MoveState::Completed, "stamp-2");
        let refused = plan("b", "stamp-2", Some(&done), None, true).unwrap_err();
        assert!(
            refused.contains("already switched b to stamp-2"),
            "{refused}"
        );
        assert!(
            refused.contains("`strata bucket move b --to stamp-2`"),
            "{refused}"
        );
        let named = plan("b", "stamp-2", Some(&done), Some("stamp-2"), true).unwrap_err();
        assert_eq!(named, refused);
        let none = plan("b", "stamp-1", None, None, true).unwrap_err();
        assert_eq!(none, "no move of b is in progress");
    }
}
