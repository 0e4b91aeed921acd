//! `strata bucket fail-over NAME [--to STAMP]`: makes a bucket's geo-replica copy its home at
//! once, reporting what that loses (the RPO), and `strata bucket fail-back NAME`, which moves
//! it back to the stamp it failed over from.
//!
//! A fail-over is a bucket move with no copy pass. The location group records it (BeginMove);
//! the home is fenced (every write refused from then on); the copy is taken over by the
//! move (so replication into it stops) and given the home's record without the geo rule to
//! itself; the home's rows and the copy's are compared, blind to what replication alone sets
//! (`sync::replication_blind`), and every difference is reported: acknowledged versions that
//! had not arrived (lost) and versions the home had deleted that the copy keeps (back).
//! Then the home switches (EndMove), the old home refuses the bucket (MOVED) and ships
//! nothing more from it, and the copy serves. The old home's copy stays until fail-back, so
//! what was lost can still be read there (`strata debug rows`).
//!
//! Invariant: the report is exact. It is taken after the fence (no write lands on the home
//! after it) and after the takeover (no replica lands on the copy after it), and before the
//! switch (no write lands on the copy before it serves), so it is the difference between what
//! the home acknowledged and what the new home serves. Every step is idempotent: a rerun
//! after a failure resumes the same fail-over.
//!
//! Not built: a fail-over whose home stamp does not answer (it needs front-ends to stop
//! serving writes of a bucket whose home lease they cannot renew); it is refused.

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use strata_proto::location::MoveState;
use strata_proto::partition::MoveStep;
use strata_proto::record::{index_entry::Value as Row, IndexEntry};
use strata_types::{keys, GEO_REPLICA_MOVE_ID};

use super::progress::Progress;
use super::rows::Stamp;
use super::sync::{Difference, Mover};

/// Prefix of a fail-over's move id (how fail-back and a rerun know it).
const FAILOVER_PREFIX: &str = "failover-";
/// How long the home stays fenced at most, should this command die before the switch (then
/// front-ends abort the fail-over and the home takes writes again).
const FENCE_MS: u64 = 120_000;
/// Differences listed in the report at most (all are counted).
const REPORTED_MAX: usize = 100_000;

#[derive(clap::Args, Debug)]
pub struct FailOverArgs {
    /// The bucket's name.
    pub name: String,
    /// The stamp holding the geo-replica to fail over to (needed when the bucket has several).
    #[arg(long)]
    pub to: Option<String>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// The data folder given to `strata up`.
    #[arg(long, default_value = "strata-data")]
    pub data_dir: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct FailBackArgs {
    /// The bucket's name.
    pub name: String,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Seconds between the switch and removing the failed-over stamp's copy.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=super::GRACE_S_MAX))]
    pub grace_s: u64,
    /// The data folder given to `strata up`.
    #[arg(long, default_value = "strata-data")]
    pub data_dir: PathBuf,
}

pub async fn fail_over(args: FailOverArgs) -> anyhow::Result<()> {
    strata_util::rpc::install_identity(crate::certs::operator_identity(&args.data_dir)?)?;
    let layout = crate::namespace::load_layout(&args.data_dir)?;
    let location = crate::namespace::location_client(&layout)?;
    let progress = Progress::new();
    let report = run(&layout, &location, &progress, &args).await;
    progress.finish();
    print(&report?, args.json)
}

/// `fail-back`: a move back to the stamp the bucket's latest fail-over came from. Its first
/// step removes that stamp's old copy (what the fail-over lost goes with it); its passes then
/// copy the bucket back whole.
pub async fn fail_back(args: FailBackArgs) -> anyhow::Result<()> {
    strata_util::rpc::install_identity(crate::certs::operator_identity(&args.data_dir)?)?;
    let layout = crate::namespace::load_layout(&args.data_dir)?;
    let location = crate::namespace::location_client(&layout)?;
    let (home, last) = super::lookup(&location, &args.name).await?;
    let last = last.filter(|m| m.move_id.starts_with(FAILOVER_PREFIX));
    let Some(last) = last.filter(|m| m.state() == MoveState::Completed && m.to == home) else {
        bail!("{}'s latest move is no completed fail-over", args.name);
    };
    let summary =
        super::move_bucket(&layout, &location, &args.name, &last.from, args.grace_s).await?;
    summary.print(args.json)
}

async fn run(
    layout: &crate::layout::Layout,
    location: &strata_location::LocationClient,
    progress: &Progress,
    args: &FailOverArgs,
) -> anyhow::Result<Value> {
    let started = Instant::now();
    let bucket = args.name.as_str();
    let (home, last) = super::lookup(location, bucket).await?;
    let resuming = last
        .filter(|m| m.move_id.starts_with(FAILOVER_PREFIX))
        .filter(|m| args.to.as_ref().is_none_or(|to| *to == m.to));
    let (from, to, move_id) = match resuming {
        Some(m)
            if m.state() == MoveState::Copying
                || (m.state() == MoveState::Completed && m.to == home) =>
        {
            progress.line(&format!(
                "resuming fail-over {} of {bucket} to {}",
                m.move_id, m.to
            ));
            (m.from, m.to, m.move_id)
        }
        _ => {
            let to = geo_stamp(layout, &home, bucket, args.to.as_deref()).await?;
            let move_id = format!(
                "{FAILOVER_PREFIX}{}",
                hex::encode(rand::random::<[u8; 8]>())
            );
            (home.clone(), to, move_id)
        }
    };
    let (source, target) = (Stamp::new(layout, &from)?, Stamp::new(layout, &to)?);
    let mover = Mover {
        source: &source,
        target: &target,
        bucket,
        move_id: &move_id,
    };
    if home == from {
        begin(location, &mover, progress).await?;
        fence_and_take_over(&mover, progress).await?;
    }
    let target_record = target.get_bucket(bucket).await?;
    let serving = target_record.is_some_and(|r| !r.importing);
    let (differences, differing) = if serving {
        progress.line(&format!(
            "{to} already serves {bucket}: the report was printed then"
        ));
        (Vec::new(), 0)
    } else {
        mover.differences(progress, REPORTED_MAX).await?
    };
    if home == from {
        switch(location, &mover, progress).await?;
    }
    finish(&mover, progress).await?;
    Ok(report(&mover, &differences, differing, started.elapsed()))
}

/// The stamp of the bucket's geo-replica to fail over to: `asked`, or its only one.
async fn geo_stamp(
    layout: &crate::layout::Layout,
    home: &str,
    bucket: &str,
    asked: Option<&str>,
) -> anyhow::Result<String> {
    let source = Stamp::new(layout, home)?;
    let record = source.get_bucket(bucket).await.with_context(|| {
        format!(
            "the home stamp {home} does not answer: a fail-over without it is not built yet \
             (its front-ends could still take writes)"
        )
    })?;
    let record = record.ok_or_else(|| anyhow!("{home} holds no record of {bucket}"))?;
    let stamps: Vec<String> = record
        .replication
        .iter()
        .flat_map(|config| &config.rules)
        .filter_map(|rule| rule.destination.as_ref())
        .map(|destination| destination.stamp.clone())
        .filter(|stamp| !stamp.is_empty())
        .collect();
    match (asked, stamps.as_slice()) {
        (Some(asked), _) if stamps.iter().any(|s| s == asked) => Ok(asked.to_string()),
        (Some(asked), _) => bail!("{bucket} has no geo-replica on {asked}"),
        (None, [only]) => Ok(only.clone()),
        (None, []) => bail!("{bucket} has no geo-replica (arn:strata:s3:STAMP::{bucket})"),
        (None, _) => bail!(
            "{bucket} has geo-replicas on {}: name one with --to",
            stamps.join(", ")
        ),
    }
}

/// The location group records the fail-over (a rerun of the same one is accepted again).
async fn begin(
    location: &strata_location::LocationClient,
    m: &Mover<'_>,
    progress: &Progress,
) -> anyhow::Result<()> {
    let answer = location
        .begin_move(m.bucket, &m.target.name, m.move_id)
        .await
        .map_err(|status| anyhow!("the location group did not answer BeginMove: {status}"))?;
    if !answer.accepted {
        bail!(
            "the location group refused the fail-over: {}",
            answer.reason
        );
    }
    progress.line(&format!(
        "failing {} over from {} to {} ({})",
        m.bucket, m.source.name, m.target.name, m.move_id
    ));
    Ok(())
}

/// Fences the home, then takes the copy over with the home's record (less the geo rule to the
/// copy's own stamp). The copy must be the geo-replica's, or this fail-over's own.
async fn fence_and_take_over(m: &Mover<'_>, progress: &Progress) -> anyhow::Result<()> {
    let copy = m.target.get_bucket(m.bucket).await?;
    // The geo copy, or one an earlier fail-over took over and did not finish (the location
    // group lets one move run at a time, so that one ended: aborted when its fence expired).
    let ours = copy.as_ref().is_some_and(|r| {
        r.importing && (r.move_id == GEO_REPLICA_MOVE_ID || r.move_id.starts_with(FAILOVER_PREFIX))
    });
    if !ours {
        bail!(
            "{} holds no geo-replica copy of {} to fail over to",
            m.target.name,
            m.bucket
        );
    }
    let until_ms = super::now_ms().saturating_add(FENCE_MS as i64);
    m.source
        .set_move_state(m.bucket, m.move_id, MoveStep::Fence, until_ms, "")
        .await?
        .ok_or_else(|| anyhow!("{} has no record of {}", m.source.name, m.bucket))?;
    progress.line(&format!(
        "fenced {} on {}: it takes no more writes",
        m.bucket, m.source.name
    ));
    let meta = m.source.get_bucket(m.bucket).await?;
    let meta = meta.ok_or_else(|| anyhow!("{} has no record of {}", m.source.name, m.bucket))?;
    let mut record = super::rows::bucket_record(&meta, m.move_id)?;
    if let Some(config) = record.replication.as_mut() {
        config.rules.retain(|rule| {
            rule.destination
                .as_ref()
                .is_none_or(|d| d.stamp != m.target.name)
        });
    }
    if record
        .replication
        .as_ref()
        .is_some_and(|c| c.rules.is_empty())
    {
        record.replication = None;
    }
    m.target
        .import_bucket_row(m.bucket, m.move_id, record)
        .await?;
    progress.line(&format!(
        "took {}'s copy on {} over",
        m.bucket, m.target.name
    ));
    Ok(())
}

/// EndMove: the copy's stamp becomes the home.
async fn switch(
    location: &strata_location::LocationClient,
    m: &Mover<'_>,
    progress: &Progress,
) -> anyhow::Result<()> {
    let answer = location
        .end_move(m.bucket, m.move_id, Some(FENCE_MS))
        .await
        .map_err(|status| {
            anyhow!("the location group did not answer EndMove: {status}; rerun to resume")
        })?;
    if !answer.accepted && super::move_state(&answer, m.move_id) != Some(MoveState::Completed) {
        bail!(
            "the location group refused to complete the fail-over: {} (a fence that \
             expired lets front-ends abort it; the home then takes writes again)",
            answer.reason
        );
    }
    progress.line(&format!("{} now lives on {}", m.bucket, m.target.name));
    Ok(())
}

/// The old home refuses the bucket (and ships nothing more from it); once front-ends' cached
/// beliefs expired, the new home serves.
async fn finish(m: &Mover<'_>, progress: &Progress) -> anyhow::Result<()> {
    let to = m.target.name.as_str();
    m.source
        .set_move_state(m.bucket, m.move_id, MoveStep::Moved, 0, to)
        .await?;
    tokio::time::sleep(Duration::from_millis(super::SWITCH_SETTLE_MS)).await;
    let record = m.target.get_bucket(m.bucket).await?;
    if record.is_some_and(|r| r.importing) {
        m.target
            .set_move_state(m.bucket, m.move_id, MoveStep::Serve, 0, "")
            .await?;
    }
    progress.line(&format!("{to} serves {}", m.bucket));
    Ok(())
}

/// One version of a difference, as the report lists it.
fn version_of(row: &IndexEntry) -> Option<Value> {
    let (version, current) = match row.value.as_ref()? {
        Row::Object(version) => (version, true),
        Row::Version(version) => (version, false),
        _ => return None,
    };
    let key = keys::decode_object_key(&row.key)
        .map(|(_, key)| key)
        .or_else(|| keys::decode_version_key(&row.key).map(|(_, key, _)| key))?;
    Some(json!({
        "key": key,
        "version_id": version.version_id,
        "size": version.size_bytes,
        "delete_marker": version.delete_marker,
        "last_modified_ms": version.last_modified_ms,
        "current": current,
        "tags": version.tags,
    }))
}

/// The versions only one side holds. A version both hold may still differ by row: the home
/// demoted it under a version that did not arrive (so it sits under its stamp there and is
/// current in the copy), or its tags changed and the change did not arrive; it is lost by
/// neither side, so versions are matched by id, not by row.
fn report(m: &Mover<'_>, differences: &[Difference], differing: u64, took: Duration) -> Value {
    let versions = |side: fn(&Difference) -> Option<&IndexEntry>| {
        let mut by_id = std::collections::BTreeMap::new();
        for version in differences.iter().filter_map(side).filter_map(version_of) {
            by_id.insert(
                version["version_id"].as_str().unwrap_or("").to_string(),
                version,
            );
        }
        by_id
    };
    let home = versions(|d| d.home.as_ref());
    let copy = versions(|d| d.copy.as_ref());
    let only = |one: &std::collections::BTreeMap<String, Value>,
                other: &std::collections::BTreeMap<String, Value>| {
        one.iter()
            .filter(|(id, _)| !other.contains_key(*id))
            .map(|(_, version)| version.clone())
            .collect::<Vec<_>>()
    };
    // Uploads in progress and their parts (not replicated) differ too.
    let other_rows = differences
        .iter()
        .filter(|d| {
            d.home.as_ref().and_then(version_of).is_none()
                && d.copy.as_ref().and_then(version_of).is_none()
        })
        .count();
    // Held by both, with other tags (a tag change that had not arrived); where it sits
    // (current or not) is no change.
    let changed: Vec<Value> = home
        .iter()
        .filter(|(id, version)| {
            copy.get(*id)
                .is_some_and(|other| other["tags"] != version["tags"])
        })
        .map(|(_, version)| version.clone())
        .collect();
    json!({
        "bucket": m.bucket,
        "from": m.source.name,
        "to": m.target.name,
        "move_id": m.move_id,
        "lost_versions": only(&home, &copy),
        "changed_versions": changed,
        "back_versions": only(&copy, &home),
        "other_rows_differing": other_rows,
        "rows_differing": differing,
        "complete": differing as usize == differences.len(),
        "total_s": took.as_secs_f64(),
    })
}

fn print(report: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
        return Ok(());
    }
    let lost = report["lost_versions"].as_array().map_or(0, Vec::len);
    println!(
        "{} failed over from {} to {}: {lost} acknowledged versions had not arrived (lost), \
         {} versions deleted on {} are back",
        report["bucket"].as_str().unwrap_or(""),
        report["from"].as_str().unwrap_or(""),
        report["to"].as_str().unwrap_or(""),
        report["back_versions"].as_array().map_or(0, Vec::len),
        report["from"].as_str().unwrap_or(""),
    );
    for version in report["lost_versions"].as_array().into_iter().flatten() {
        println!(
            "  lost {} {}",
            version["key"].as_str().unwrap_or(""),
            version["version_id"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct DropCopyArgs {
    /// The bucket's name.
    pub name: String,
    /// The stamp holding the geo-replica copy.
    #[arg(long)]
    pub stamp: String,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// The data folder given to `strata up`.
    #[arg(long, default_value = "strata-data")]
    pub data_dir: PathBuf,
}

/// `strata bucket drop-copy NAME --stamp S`: removes a geo-replica copy no rule fills any more
/// (its rows, then its record), as a move removes its copy. Refused while the bucket's home
/// still has a geo rule to that stamp.
pub async fn drop_copy(args: DropCopyArgs) -> anyhow::Result<()> {
    strata_util::rpc::install_identity(crate::certs::operator_identity(&args.data_dir)?)?;
    let layout = crate::namespace::load_layout(&args.data_dir)?;
    let location = crate::namespace::location_client(&layout)?;
    let (bucket, on) = (args.name.as_str(), args.stamp.as_str());
    let found = location
        .lookup_bucket(bucket)
        .await
        .map_err(|status| anyhow!("the location group did not answer: {status}"))?;
    // Homed on `on` itself: a name reserved there whose creation the copy refused (the copy
    // check below stands for it).
    if let Some(home) = found.location.filter(|home| home.stamp != on) {
        let record = Stamp::new(&layout, &home.stamp)?.get_bucket(bucket).await?;
        let rules = record.and_then(|r| r.replication).map(|c| c.rules);
        let filled = rules
            .iter()
            .flatten()
            .filter_map(|rule| rule.destination.as_ref())
            .any(|destination| destination.stamp == on);
        anyhow::ensure!(
            !filled,
            "{bucket}'s replication still has a geo rule to {on}: delete it first"
        );
    }
    let stamp = Stamp::new(&layout, on)?;
    let copy = stamp.get_bucket(bucket).await?;
    let is_copy = copy.is_some_and(|r| r.importing && r.move_id == GEO_REPLICA_MOVE_ID);
    anyhow::ensure!(is_copy, "{on} holds no geo-replica copy of {bucket}");
    let progress = Progress::new();
    let removed = super::sync::remove_all(&stamp, bucket, GEO_REPLICA_MOVE_ID, &progress).await;
    progress.finish();
    let removed = removed?;
    stamp
        .set_move_state(bucket, GEO_REPLICA_MOVE_ID, MoveStep::Drop, 0, "")
        .await?;
    let summary = json!({"bucket": bucket, "stamp": on, "rows_removed": removed});
    if args.json {
        println!("{summary}");
    } else {
        println!("removed {bucket}'s geo-replica copy on {on} ({removed} rows)");
    }
    Ok(())
}
