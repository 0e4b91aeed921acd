//! `strata replication status BUCKET`: how far replication of a source bucket got (issue 16,
//! "lag you can watch"), from the owners of every range holding the bucket's keys: per range
//! its watermark (every version acknowledged before it has arrived), the versions it still
//! owes and the age of the oldest; for the bucket, the lowest watermark over all its ranges
//! (`replicated_through`), known only when every range answered.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use strata_frontend::replication_state::{self, Ask, BucketReplication, ALL_AT_ONCE};
use strata_frontend::routing::PartitionClient;
use strata_proto::partition::partition_server_client::PartitionServerClient;

use crate::layout::Layout;

/// How `strata replication status` asks the owners of the bucket's ranges: one after another,
/// each within the CLI's call timeout; a silent one only leaves its ranges unknown.
const BUCKET_ASK: Ask = Ask {
    timeout_ms: 10_000,
    concurrency: 1,
    stop_at_silence: false,
};
/// How `strata status` asks every owner of the stamp: all at once, each within 2 s, so a paused
/// or dead server does not hold it up (it must stay quick while a node is paused).
const STATUS_ASK: Ask = Ask {
    timeout_ms: 2_000,
    concurrency: ALL_AT_ONCE,
    stop_at_silence: false,
};

#[derive(clap::Args, Debug)]
pub struct ReplicationArgs {
    #[command(subcommand)]
    pub command: ReplicationCommand,
}

/// The bucket both commands act on and where to find its stamp.
#[derive(clap::Args, Debug)]
pub struct BucketTarget {
    pub bucket: String,
    /// The data folder given to `strata up`.
    #[arg(long, default_value = "strata-data")]
    pub data_dir: PathBuf,
    /// The stamp holding the bucket (default: the data folder's first).
    #[arg(long)]
    pub stamp: Option<String>,
}

// `--json` stays in each command: its help differs (what each prints), and it is listed last.
#[derive(clap::Subcommand, Debug)]
pub enum ReplicationCommand {
    /// Replication progress of a source bucket: watermark, versions owed, oldest owed.
    Status {
        #[command(flatten)]
        target: BucketTarget,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replicates what was written before the bucket's rules existed: marks the versions no
    /// rule had marked (and FAILED ones, with --failed), then waits until they arrived.
    /// Resumable: run it again.
    Resync {
        #[command(flatten)]
        target: BucketTarget,
        /// Also send again versions that FAILED (the destination was fixed).
        #[arg(long)]
        failed: bool,
        /// Wait at most this long for the marked versions to arrive.
        #[arg(long, default_value_t = 600)]
        wait_s: u64,
        /// Print the final report as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(args: ReplicationArgs) -> anyhow::Result<()> {
    match args.command {
        ReplicationCommand::Status { target, json } => {
            let (layout, stamp) = load(&target)?;
            let report = status(&layout.view(&stamp), &target.bucket).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_table(&report);
            }
        }
        ReplicationCommand::Resync {
            target,
            failed,
            wait_s,
            json,
        } => {
            let (layout, stamp) = load(&target)?;
            let report = crate::replication_resync::Resync {
                layout: &layout,
                stamp: &stamp,
                bucket: &target.bucket,
                failed_too: failed,
                wait_s,
            }
            .run()
            .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                crate::replication_resync::print(&report);
            }
        }
    }
    Ok(())
}

/// The operator identity installed (before any call), the data folder's layout and the stamp
/// `target` names.
fn load(target: &BucketTarget) -> anyhow::Result<(Layout, String)> {
    strata_util::rpc::install_identity(crate::certs::operator_identity(&target.data_dir)?)?;
    let Some(layout) = Layout::load(&target.data_dir)? else {
        anyhow::bail!("no stamp in {}", target.data_dir.display());
    };
    let stamp = target.stamp.clone().unwrap_or_else(|| layout.stamp.clone());
    Ok((layout, stamp))
}

/// A client for `owner` whose every call is bounded by `ask`'s timeout too (None: no channel).
fn client(owner: &str, ask: Ask) -> Option<PartitionClient> {
    let channel = crate::grpc_channel(owner, Duration::from_millis(ask.timeout_ms)).ok()?;
    Some(PartitionServerClient::new(channel))
}

/// The report of `bucket` from the ranges of `layout`'s stamp holding its keys.
pub(crate) async fn status(layout: &Layout, bucket: &str) -> anyhow::Result<Value> {
    let Some(map) = crate::status::partition_map(layout).await else {
        anyhow::bail!("no partition manager answered");
    };
    let connect = |owner: &str| client(owner, BUCKET_ASK);
    let state = BucketReplication::ask(&map.ranges, bucket, BUCKET_ASK, &connect).await;
    let now_ms = strata_util::now_ms();
    let mut ranges = Vec::new();
    let (mut owed, mut owed_bytes, mut oldest_ms) = (0u64, 0u64, None::<i64>);
    for (assigned, report) in state.ranges() {
        if let Some(r) = report.filter(|r| r.owed_versions > 0) {
            owed += r.owed_versions;
            owed_bytes += r.owed_bytes;
            oldest_ms =
                Some(oldest_ms.map_or(r.oldest_owed_mark_ms, |o| o.min(r.oldest_owed_mark_ms)));
        }
        ranges.push(json!({
            "range_id": assigned.range_id,
            "owner": assigned.owner_addr,
            "replicated_through": report.map(|r| rfc3339_ms(r.watermark_ms)),
            "committed_through": report.map(|r| rfc3339_ms(r.committed_watermark_ms)),
            "owed_versions": report.map(|r| r.owed_versions),
            "owed_bytes": report.map(|r| r.owed_bytes),
        }));
    }
    let through_ms = state.watermark_ms();
    Ok(json!({
        "bucket": bucket,
        "replicated_through": through_ms.map(rfc3339_ms),
        "replicated_through_ms": through_ms,
        "owed_versions": owed,
        "owed_bytes": owed_bytes,
        "oldest_owed_age_ms": oldest_ms.map(|o| now_ms.saturating_sub(o).max(0)),
        "ranges": ranges,
    }))
}

/// What `strata status` shows of replication: every bucket a range of the stamp owes versions
/// of, with how many and the oldest one's age (asked of every owner in `map`; an owner that
/// does not answer leaves its ranges out, and `complete` false).
pub(crate) async fn owed_by_bucket(map: &strata_proto::manager::PartitionMap) -> Value {
    // Per bucket: versions, bytes and the oldest mark owed.
    let mut by_bucket: BTreeMap<String, (u64, u64, i64)> = BTreeMap::new();
    let mut complete = true;
    let connect = |owner: &str| client(owner, STATUS_ASK);
    let owners = replication_state::owners(&map.ranges);
    // An empty bucket asks each owner for every bucket it owes versions of.
    let answers: Vec<_> = replication_state::ask_owners(owners, "", STATUS_ASK, &connect)
        .collect()
        .await;
    for answer in answers {
        let Some(ranges) = answer else {
            complete = false;
            continue;
        };
        for range in ranges.into_iter().filter(|r| r.owed_versions > 0) {
            let entry = by_bucket
                .entry(range.bucket)
                .or_insert((0, 0, range.oldest_owed_mark_ms));
            entry.0 += range.owed_versions;
            entry.1 += range.owed_bytes;
            entry.2 = entry.2.min(range.oldest_owed_mark_ms);
        }
    }
    let now_ms = strata_util::now_ms();
    let buckets: Vec<Value> = by_bucket
        .into_iter()
        .map(|(bucket, (owed, owed_bytes, oldest_ms))| {
            json!({
                "bucket": bucket,
                "owed_versions": owed,
                "owed_bytes": owed_bytes,
                "oldest_owed_age_ms": now_ms.saturating_sub(oldest_ms).max(0),
            })
        })
        .collect();
    json!({ "complete": complete, "owing": buckets })
}

/// The lines `strata status` prints of [`owed_by_bucket`]'s report.
pub(crate) fn print_owed(report: &Value) {
    let owing = report["owing"].as_array().cloned().unwrap_or_default();
    let partial = if report["complete"] == true {
        ""
    } else {
        " (some partition servers did not answer)"
    };
    if owing.is_empty() {
        println!("replication: nothing owed{partial}");
        return;
    }
    println!("replication: versions owed to destinations{partial}");
    println!(
        "{:<40}  {:>10}  {:>12}  {:>12}",
        "bucket", "owed", "bytes", "oldest"
    );
    for bucket in owing {
        let age_s = bucket["oldest_owed_age_ms"].as_i64().unwrap_or(0) as f64 / 1_000.0;
        let bytes = indicatif::HumanBytes(bucket["owed_bytes"].as_u64().unwrap_or(0));
        println!(
            "{:<40}  {:>10}  {:>12}  {:>10.1} s",
            bucket["bucket"].as_str().unwrap_or_default(),
            bucket["owed_versions"],
            bytes.to_string(),
            age_s
        );
    }
}

/// RFC 3339 with milliseconds, UTC (what `x-strata-replicated-through` carries).
pub fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

fn print_table(report: &Value) {
    let text = |v: &Value| {
        v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| "unknown".into())
    };
    println!(
        "bucket              {}",
        report["bucket"].as_str().unwrap_or_default()
    );
    println!(
        "replicated through  {}",
        text(&report["replicated_through"])
    );
    println!("versions owed       {}", report["owed_versions"]);
    let bytes = indicatif::HumanBytes(report["owed_bytes"].as_u64().unwrap_or(0));
    println!("bytes owed          {bytes}");
    let oldest = report["oldest_owed_age_ms"]
        .as_i64()
        .map_or("-".to_string(), |ms| {
            format!("{:.1} s", ms as f64 / 1_000.0)
        });
    println!("oldest owed         {oldest}");
    println!();
    println!(
        "{:>8}  {:<22}  {:<26}  {:>6}",
        "range", "owner", "replicated through", "owed"
    );
    for range in report["ranges"].as_array().into_iter().flatten() {
        println!(
            "{:>8}  {:<22}  {:<26}  {:>6}",
            range["range_id"],
            range["owner"].as_str().unwrap_or_default(),
            text(&range["replicated_through"]),
            range["owed_versions"]
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn watermarks_print_as_rfc3339_with_milliseconds() {
        assert_eq!(
            super::rfc3339_ms(1_764_892_800_123),
            "2025-12-05T00:00:00.123Z"
        );
    }
}
