//! `strata bucket move NAME --to STAMP`: moves a bucket to another stamp while it is served.
//!
//! The location group records the move (BeginMove), then the mover copies: the bucket's
//! record, then sync passes ([`sync`]) that make the target's rows equal to the source's, until
//! a pass changes few rows. Then it fences the source (every write refused), runs a final
//! pass and a verification pass, and asks the location group to switch the home (EndMove,
//! the move's commit point). After the switch the source marks the bucket moved, front-ends'
//! cached beliefs expire, the target starts serving, and after a grace period the source's
//! copy is removed. `--abort` ends a copying move and removes the target's copy.
//!
//! Invariant: the home switches only after a verification pass, run while the source refused
//! every write, found the target's rows equal to the source's; the target serves only after
//! the source refuses the bucket and every front-end's cached belief that the source serves
//! has expired. Every step is idempotent, so a rerun after any failure resumes the move (or
//! finishes it, when the switch already happened).

mod deleted;
pub mod failover;
mod plan;
pub mod progress;
mod pump;
pub(crate) mod rows;
mod sync;

use anyhow::{anyhow, bail, Context};
use plan::{plan, Plan};
use progress::{Progress, Summary};
use rows::Stamp;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use strata_location::LocationClient;
use strata_proto::location::{BucketMove, MoveResponse, MoveState};
use strata_proto::partition::MoveStep;
use sync::{Mode, Mover};

/// Copy passes before the fence, at most.
const PASSES_BEFORE_FENCE_MAX: u32 = 5;
/// A pass that changed at most this many rows, and copied at most [`CONVERGED_BYTES_MAX`], is
/// close enough: the fence follows (the final pass under it then has little to copy, so
/// writes wait little).
const CONVERGED_ROWS_MAX: u64 = 100;
/// See [`CONVERGED_ROWS_MAX`]: a few large objects written during a pass would otherwise make
/// the fenced final pass long (27 s once, with 100 rows of up to 32 MiB).
const CONVERGED_BYTES_MAX: u64 = 32 * 1024 * 1024;
/// Shortest fence deadline, from when FENCE is sent. The fence holds until MOVED or UNFENCE
/// lifts it; 5 s past the deadline a front-end ends the move (crates/frontend/src/move_fence.rs).
const FENCE_MS_MIN: u64 = 30_000;
/// Time the switch takes under the fence: EndMove (one location call at most) and MOVED on
/// the source (one partition call).
const SWITCH_UNDER_FENCE_MS: u64 =
    strata_location::client::CALL_BUDGET_MS + strata_util::rpc::REQUEST_TIMEOUT_MS;
/// Wait between MOVED on the source and SERVE on the target. Front-ends cache bucket records
/// for 1 s (crates/frontend/src/bucket_cache.rs, BUCKET_CACHE_TTL_MS_DEFAULT) and homes for
/// 2 s (crates/frontend/src/forward.rs, HOME_TTL_MS). Until every cached belief that the
/// source serves has expired, the target must not take writes, or a stale front-end could
/// read the source's old copy after a newer write on the target.
const SWITCH_SETTLE_MS: u64 = 4_000;
/// Rounds of "remove the rows, drop the record" on one stamp: DROP refuses while rows are
/// left, which happens when an import raced the removal (a mover still running while
/// `--abort` cleans its target).
const DROP_ROUNDS_MAX: u32 = 3;
/// Longest --grace-s (a day).
const GRACE_S_MAX: u64 = 86_400;

#[derive(clap::Args, Debug)]
pub struct MoveArgs {
    /// The bucket's name.
    pub name: String,
    /// The stamp to move it to (as `strata status` names stamps, e.g. stamp-2).
    #[arg(long, required_unless_present = "abort")]
    pub to: Option<String>,
    /// Stop the bucket's move in progress: the bucket stays where it is and the target's copy
    /// is removed.
    #[arg(long)]
    pub abort: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Seconds between the switch and removing the source's copy (reads begun on the source
    /// before the switch finish first).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=GRACE_S_MAX))]
    pub grace_s: u64,
    /// The data folder given to `strata up`.
    #[arg(long, default_value = "strata-data")]
    pub data_dir: PathBuf,
}

/// What every step needs.
struct Run<'a> {
    location: &'a LocationClient,
    progress: &'a Progress,
    mover: Mover<'a>,
    grace: Duration,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

pub async fn run(args: MoveArgs) -> anyhow::Result<()> {
    strata_util::rpc::install_identity(crate::certs::operator_identity(&args.data_dir)?)?;
    let layout = crate::namespace::load_layout(&args.data_dir)?;
    let location = crate::namespace::location_client(&layout)?;
    let summary = move_as_asked(&layout, &location, &args).await?;
    summary.print(args.json)
}

/// One move of `bucket` to `to`, as `strata stamp drain` makes them (the caller installed
/// the operator identity and loaded the layout).
pub async fn move_bucket(
    layout: &crate::layout::Layout,
    location: &LocationClient,
    bucket: &str,
    to: &str,
    grace_s: u64,
) -> anyhow::Result<Summary> {
    let args = MoveArgs {
        name: bucket.to_string(),
        to: Some(to.to_string()),
        abort: false,
        json: false,
        grace_s: grace_s.min(GRACE_S_MAX),
        data_dir: PathBuf::new(),
    };
    move_as_asked(layout, location, &args).await
}

async fn move_as_asked(
    layout: &crate::layout::Layout,
    location: &LocationClient,
    args: &MoveArgs,
) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let (home, last_move) = lookup(location, &args.name).await?;
    let plan = plan(
        &args.name,
        &home,
        last_move.as_ref(),
        args.to.as_deref(),
        args.abort,
    )
    .map_err(anyhow::Error::msg)?;
    let progress = Progress::new();
    let result = carry_out(layout, location, &progress, args, plan).await;
    progress.finish();
    let mut summary = result?;
    summary.total_s = started.elapsed().as_secs_f64();
    Ok(summary)
}

async fn lookup(
    location: &LocationClient,
    bucket: &str,
) -> anyhow::Result<(String, Option<BucketMove>)> {
    let found = location
        .lookup_bucket(bucket)
        .await
        .map_err(|status| anyhow!("the location group did not answer: {status}"))?;
    let Some(found) = found.location else {
        bail!("no bucket named {bucket:?} exists on any stamp");
    };
    let last_move = found.last_move.filter(|m| !m.move_id.is_empty());
    Ok((found.stamp, last_move))
}

async fn carry_out(
    layout: &crate::layout::Layout,
    location: &LocationClient,
    progress: &Progress,
    args: &MoveArgs,
    plan: Plan,
) -> anyhow::Result<Summary> {
    let (from, to, move_id) = match &plan {
        Plan::Start { from, to, .. } => (from, to, hex::encode(rand::random::<[u8; 8]>())),
        Plan::Resume { from, to, move_id }
        | Plan::Finish { from, to, move_id }
        | Plan::Abort {
            from, to, move_id, ..
        } => (from, to, move_id.clone()),
    };
    let (source, target) = (Stamp::new(layout, from)?, Stamp::new(layout, to)?);
    let run = Run {
        location,
        progress,
        mover: Mover {
            source: &source,
            target: &target,
            bucket: &args.name,
            move_id: &move_id,
        },
        grace: Duration::from_secs(args.grace_s),
    };
    let mut summary = Summary {
        bucket: args.name.clone(),
        from: from.clone(),
        to: to.clone(),
        move_id: move_id.clone(),
        ..Summary::default()
    };
    match plan {
        Plan::Start { previous, .. } => {
            if let Some(previous) = &previous {
                clean_after(layout, &run, previous).await?;
            }
            begin(&run).await?;
            deleted::copy_unless_deleted(&run, &mut summary).await?;
        }
        Plan::Resume { .. } => {
            progress.line(&format!("resuming move {move_id} of {} to {to}", args.name));
            deleted::copy_unless_deleted(&run, &mut summary).await?;
        }
        Plan::Finish { .. } => {
            progress.line(&format!("{} already moved to {to}; finishing", args.name));
            summary.outcome = "already-moved";
            if !after_switch(&run, &mut summary, None).await? {
                progress.line(&format!("{from} holds no copy of {} any more", args.name));
            }
        }
        Plan::Abort { ended, .. } => abort(&run, &mut summary, ended).await?,
    }
    Ok(summary)
}

/// Step 2: the location group records the move (or says why not).
async fn begin(run: &Run<'_>) -> anyhow::Result<()> {
    let m = &run.mover;
    let answer = run
        .location
        .begin_move(m.bucket, &m.target.name, m.move_id)
        .await
        .map_err(|status| anyhow!("the location group did not answer BeginMove: {status}"))?;
    if !answer.accepted {
        bail!(
            "the location group refused to move {} to {}: {}",
            m.bucket,
            m.target.name,
            answer.reason
        );
    }
    run.progress.line(&format!(
        "moving {} from {} to {} (move {})",
        m.bucket, m.source.name, m.target.name, m.move_id
    ));
    Ok(())
}

/// Steps 3 to 7: copy, fence, verify, switch, and what follows the switch.
async fn copy_and_switch(run: &Run<'_>, summary: &mut Summary) -> anyhow::Result<()> {
    let full_pass = copy_until_close(run, summary).await?;
    let (fence_sent, fence_ms) = fence_and_verify(run, summary, full_pass).await?;
    switch(run, fence_ms).await?;
    summary.outcome = "moved";
    after_switch(run, summary, Some(fence_sent)).await?;
    Ok(())
}

/// Copy passes until one changes few rows; answers how long the last one took.
async fn copy_until_close(run: &Run<'_>, summary: &mut Summary) -> anyhow::Result<Duration> {
    let mut took = Duration::ZERO;
    for pass in 1..=PASSES_BEFORE_FENCE_MAX {
        let started = Instant::now();
        run.mover.copy_bucket_row().await?;
        let label = format!("pass {pass}");
        let counts = run.mover.pass(Mode::Apply, run.progress, &label).await?;
        took = started.elapsed();
        summary.passes += 1;
        summary.add(&counts);
        if converged(&counts) {
            break;
        }
    }
    Ok(took)
}

/// Whether a pass changed little enough for the fence to follow.
fn converged(counts: &sync::PassCounts) -> bool {
    counts.differences <= CONVERGED_ROWS_MAX && counts.bytes_copied <= CONVERGED_BYTES_MAX
}

/// Step 5: fence the source, a final pass, then a verification pass that must find nothing.
/// Answers when FENCE was sent, and the fence's length in ms from then.
async fn fence_and_verify(
    run: &Run<'_>,
    summary: &mut Summary,
    full_pass: Duration,
) -> anyhow::Result<(Instant, u64)> {
    let m = &run.mover;
    // The recorded deadline covers the final and verification passes (each about a full
    // pass at most) and the switch, with room to spare.
    let full_pass_ms = u64::try_from(full_pass.as_millis()).unwrap_or(u64::MAX);
    let fence_ms = FENCE_MS_MIN
        .max(full_pass_ms.saturating_mul(3) + SWITCH_UNDER_FENCE_MS)
        .min(strata_location::machine::MOVE_FENCE_MS_MAX);
    let until_ms = now_ms().saturating_add(i64::try_from(fence_ms).unwrap_or(i64::MAX));
    let sent = Instant::now();
    let fenced = m
        .source
        .set_move_state(m.bucket, m.move_id, MoveStep::Fence, until_ms, "")
        .await?;
    fenced.ok_or_else(|| anyhow!("{} has no record of {}", m.source.name, m.bucket))?;
    run.progress.line(&format!(
        "fenced {} on {}: its writes wait for the switch",
        m.bucket, m.source.name
    ));
    m.copy_bucket_row().await?;
    let counts = m.pass(Mode::Apply, run.progress, "final pass").await?;
    summary.passes += 1;
    summary.add(&counts);
    let check = m.pass(Mode::Verify, run.progress, "verification").await?;
    if check.differences > 0 {
        bail!(
            "the verification under the fence found {} rows that differ between {} and {}: \
             the fence failed. Move {} stays copying and {} refuses writes to {} until the \
             move is resumed (rerun) or stopped (--abort), or its fence's deadline passes \
             (front-ends then abort it)",
            check.differences,
            m.source.name,
            m.target.name,
            m.move_id,
            m.source.name,
            m.bucket
        );
    }
    Ok((sent, fence_ms))
}

/// Step 6: the switch. An abort that came first wins: the source is unfenced, the target's
/// copy removed, and the move fails. The location group records `fence_ms`, the source's
/// fence, so the target's front-ends can serve the copy on their own should this mover die
/// before SERVE (crates/frontend/src/move_serve.rs).
async fn switch(run: &Run<'_>, fence_ms: u64) -> anyhow::Result<()> {
    let m = &run.mover;
    let answer = run
        .location
        .end_move(m.bucket, m.move_id, Some(fence_ms))
        .await
        .map_err(|status| {
            anyhow!(
                "the location group did not answer EndMove: {status}. The switch may or may \
                 not have happened: rerun to resume"
            )
        })?;
    if answer.accepted {
        run.progress
            .line(&format!("{} now lives on {}", m.bucket, m.target.name));
        return Ok(());
    }
    if move_state(&answer, m.move_id) == Some(MoveState::Aborted) {
        let unfenced = unfence(run).await;
        clean_target(run).await?;
        unfenced?;
        bail!(
            "move {} of {} was aborted meanwhile: {} serves it on, {}'s copy was removed",
            m.move_id,
            m.bucket,
            m.source.name,
            m.target.name
        );
    }
    bail!(
        "the location group refused to complete move {}: {}",
        m.move_id,
        answer.reason
    )
}

/// The state of move `move_id` as a location answer tells it.
fn move_state(answer: &MoveResponse, move_id: &str) -> Option<MoveState> {
    let last = answer.location.as_ref()?.last_move.as_ref()?;
    (last.move_id == move_id)
        .then(|| MoveState::try_from(last.state).ok())
        .flatten()
}

/// Steps 7 and 8: the source refuses the bucket, front-ends' cached beliefs expire, the
/// target serves; after the grace period the source's copy goes. A source without the record
/// finished all this before (its record goes last): then nothing is done, and false answered.
async fn after_switch(
    run: &Run<'_>,
    summary: &mut Summary,
    fence_sent: Option<Instant>,
) -> anyhow::Result<bool> {
    let m = &run.mover;
    let to = m.target.name.as_str();
    let moved = m
        .source
        .set_move_state(m.bucket, m.move_id, MoveStep::Moved, 0, to)
        .await?;
    if moved.is_none() {
        return Ok(false);
    }
    tokio::time::sleep(Duration::from_millis(SWITCH_SETTLE_MS)).await;
    serve(run).await?;
    summary.fence_ms = fence_sent.map(|sent| sent.elapsed().as_millis() as u64);
    let grace_s = run.grace.as_secs();
    run.progress.line(&format!(
        "waiting {grace_s} s before removing {}'s copy",
        m.source.name
    ));
    tokio::time::sleep(run.grace).await;
    summary.rows_removed += remove_copy(m.source, run).await?;
    run.progress
        .line(&format!("removed {}'s copy of {}", m.source.name, m.bucket));
    Ok(true)
}

/// SERVE on the target, unless its record already serves (a rerun after it did).
async fn serve(run: &Run<'_>) -> anyhow::Result<()> {
    let m = &run.mover;
    let to = m.target.name.as_str();
    let record = m.target.get_bucket(m.bucket).await?;
    let record = record.ok_or_else(|| anyhow!("{to} has no record of {} to serve", m.bucket))?;
    if record.importing {
        m.target
            .set_move_state(m.bucket, m.move_id, MoveStep::Serve, 0, "")
            .await?
            .ok_or_else(|| anyhow!("{to} has no record of {} to serve", m.bucket))?;
    }
    run.progress.line(&format!("{to} serves {}", m.bucket));
    Ok(())
}

/// Before a new move: what the bucket's previous move may have left. After a completed one,
/// its source's copy (its steps after the switch, which do nothing once that copy is gone);
/// after an aborted one, its target's copy.
async fn clean_after(
    layout: &crate::layout::Layout,
    run: &Run<'_>,
    previous: &BucketMove,
) -> anyhow::Result<()> {
    let state = MoveState::try_from(previous.state).ok();
    if !matches!(state, Some(MoveState::Completed | MoveState::Aborted)) {
        return Ok(());
    }
    let (source, target) = (
        Stamp::new(layout, &previous.from)?,
        Stamp::new(layout, &previous.to)?,
    );
    let earlier = Run {
        mover: Mover {
            source: &source,
            target: &target,
            bucket: run.mover.bucket,
            move_id: &previous.move_id,
        },
        ..*run
    };
    let mut ignored = Summary::default();
    let cleaned = if state == Some(MoveState::Completed) {
        after_switch(&earlier, &mut ignored, None).await.map(drop)
    } else {
        clean_target(&earlier).await.map(drop)
    };
    cleaned.with_context(|| {
        format!(
            "cleaning what move {} of {} left behind",
            previous.move_id, run.mover.bucket
        )
    })
}

/// `--abort`: the location group ends the move (unless it already did), the source takes
/// writes again, the target's copy goes.
async fn abort(run: &Run<'_>, summary: &mut Summary, ended: bool) -> anyhow::Result<()> {
    let m = &run.mover;
    if !ended {
        let answer = run
            .location
            .end_move(m.bucket, m.move_id, None)
            .await
            .map_err(|status| anyhow!("the location group did not answer EndMove: {status}"))?;
        // Refused because the move already ended: aborted (by a concurrent --abort) is what
        // was asked; completed cannot be undone.
        let state = move_state(&answer, m.move_id);
        if !answer.accepted && state != Some(MoveState::Aborted) {
            if state == Some(MoveState::Completed) {
                bail!(
                    "move {} already switched {} to {}; finish it with `strata bucket move {} \
                     --to {}`",
                    m.move_id,
                    m.bucket,
                    m.target.name,
                    m.bucket,
                    m.target.name
                );
            }
            bail!("the location group refused the abort: {}", answer.reason);
        }
    }
    summary.outcome = "aborted";
    // The target is cleaned even when the source did not answer UNFENCE, then the failure is
    // reported: a rerun of --abort repeats both.
    let unfenced = unfence(run).await;
    summary.rows_removed += clean_target(run).await?;
    unfenced
}

/// The source takes writes again (the move was aborted), when this move fenced it.
async fn unfence(run: &Run<'_>) -> anyhow::Result<()> {
    let m = &run.mover;
    let still_fenced = "the source may still refuse writes; rerun with --abort to lift its fence";
    let record = m.source.get_bucket(m.bucket).await.context(still_fenced)?;
    let fenced = record.is_some_and(|r| r.move_id == m.move_id && r.fenced_until_ms != 0);
    if !fenced {
        return Ok(());
    }
    m.source
        .set_move_state(m.bucket, m.move_id, MoveStep::Unfence, 0, "")
        .await
        .context(still_fenced)?;
    run.progress.line(&format!(
        "{} takes writes to {} again",
        m.source.name, m.bucket
    ));
    Ok(())
}

/// Step 9: removes the target's rows, then its record.
async fn clean_target(run: &Run<'_>) -> anyhow::Result<u64> {
    let m = &run.mover;
    let removed = remove_copy(m.target, run).await?;
    run.progress.line(&format!(
        "removed {}'s copy of {} ({removed} rows)",
        m.target.name, m.bucket
    ));
    Ok(removed)
}

/// Removes the bucket's rows from `stamp`, then its record (no record: already done);
/// answers how many rows were removed.
async fn remove_copy(stamp: &Stamp, run: &Run<'_>) -> anyhow::Result<u64> {
    let m = &run.mover;
    let mut removed = 0;
    let mut round = 0;
    loop {
        round += 1;
        removed += sync::remove_all(stamp, m.bucket, m.move_id, run.progress).await?;
        let dropped = stamp
            .set_move_state(m.bucket, m.move_id, MoveStep::Drop, 0, "")
            .await;
        match dropped {
            Ok(_) => return Ok(removed),
            Err(err) if round < DROP_ROUNDS_MAX && rows::is_not_empty_error(&err) => {
                run.progress
                    .line(&format!("rows of {} came back on {}", m.bucket, stamp.name));
            }
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_converges_on_few_rows_and_few_bytes() {
        let pass = |differences, bytes_copied| sync::PassCounts {
            differences,
            bytes_copied,
            ..Default::default()
        };
        assert!(converged(&pass(CONVERGED_ROWS_MAX, CONVERGED_BYTES_MAX)));
        assert!(!converged(&pass(CONVERGED_ROWS_MAX + 1, 0)));
        assert!(
            !converged(&pass(3, CONVERGED_BYTES_MAX + 1)),
            "a few large objects"
        );
    }
}
