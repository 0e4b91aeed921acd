//! `strata replication status BUCKET`: how far replication of a source bucket got (issue 16,
//! "lag you can watch"), from the owners of every range holding the bucket's keys: per range
//! its watermark (every version acknowledged before it has arrived), the versions it still
//! owes and the age of the oldest; for the bucket, the lowest watermark over all its ranges
//! (`replicated_through`), known only when every range answered.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use strata_proto::partition::partition_server_client::PartitionServerClient;
use strata_proto::partition::{GetReplicationStateRequest, RangeReplication};
use strata_types::keys;

use crate::layout::Layout;

const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound of one partition server's answer to `strata status` (which must stay quick while a
/// node is paused).
const STATUS_CALL_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(clap::Args, Debug)]
pub struct ReplicationArgs {
    #[command(subcommand)]
    pub command: ReplicationCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum ReplicationCommand {
    /// Replication progress of a source bucket: watermark, versions owed, oldest owed.
    Status {
        bucket: String,
        /// The data folder given to `strata up`.
        #[arg(long, default_value = "strata-data")]
        data_dir: PathBuf,
        /// The stamp holding the bucket (default: the data folder's first).
        #[arg(long)]
        stamp: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replicates what was written before the bucket's rules existed: marks the versions no
    /// rule had marked (and FAILED ones, with --failed), then waits until they arrived.
    /// Resumable: run it again.
    Resync {
        bucket: String,
        /// The data folder given to `strata up`.
        #[arg(long, default_value = "strata-data")]
        data_dir: PathBuf,
        /// The stamp holding the bucket (default: the data folder's first).
        #[arg(long)]
        stamp: Option<String>,
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
    let (bucket, data_dir, stamp, json) = match args.command {
        ReplicationCommand::Status {
            bucket,
            data_dir,
            stamp,
            json,
        } => (bucket, data_dir, stamp, json),
        ReplicationCommand::Resync {
            bucket,
            data_dir,
            stamp,
            failed,
            wait_s,
            json,
        } => return resync(&data_dir, stamp, &bucket, failed, wait_s, json).await,
    };
    strata_util::rpc::install_identity(crate::certs::operator_identity(&data_dir)?)?;
    let Some(layout) = Layout::load(&data_dir)? else {
        anyhow::bail!("no stamp in {}", data_dir.display());
    };
    let stamp = stamp.unwrap_or_else(|| layout.stamp.clone());
    let report = status(&layout.view(&stamp), &bucket).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

async fn resync(
    data_dir: &std::path::Path,
    stamp: Option<String>,
    bucket: &str,
    failed_too: bool,
    wait_s: u64,
    json: bool,
) -> anyhow::Result<()> {
    strata_util::rpc::install_identity(crate::certs::operator_identity(data_dir)?)?;
    let Some(layout) = Layout::load(data_dir)? else {
        anyhow::bail!("no stamp in {}", data_dir.display());
    };
    let stamp = stamp.unwrap_or_else(|| layout.stamp.clone());
    let report = crate::replication_resync::Resync {
        layout: &layout,
        stamp: &stamp,
        bucket,
        failed_too,
        wait_s,
    }
    .run()
    .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        crate::replication_resync::print(&report);
    }
    Ok(())
}

/// The report of `bucket` from the ranges of `layout`'s stamp holding its keys.
pub(crate) async fn status(layout: &Layout, bucket: &str) -> anyhow::Result<Value> {
    let Some(map) = crate::status::partition_map(layout).await else {
        anyhow::bail!("no partition manager answered");
    };
    let low = keys::object_prefix(bucket);
    let high = keys::prefix_end(&low).unwrap_or_default();
    let in_span: Vec<_> = map
        .ranges
        .iter()
        .filter(|r| keys::ranges_overlap(&r.low, &r.high, &low, &high))
        .collect();
    let mut reports: BTreeMap<u64, RangeReplication> = BTreeMap::new();
    let mut owners: Vec<&str> = in_span.iter().map(|r| r.owner_addr.as_str()).collect();
    owners.sort_unstable();
    owners.dedup();
    for owner in owners.into_iter().filter(|o| !o.is_empty()) {
        let Ok(channel) = crate::grpc_channel(owner, CALL_TIMEOUT) else {
            continue;
        };
        let request = GetReplicationStateRequest {
            bucket: bucket.to_string(),
        };
        if let Ok(answer) = PartitionServerClient::new(channel)
            .get_replication_state(request)
            .await
        {
            for range in answer.into_inner().ranges {
                reports.insert(range.range_id, range);
            }
        }
    }
    let now_ms = strata_util::now_ms();
    let mut ranges = Vec::new();
    let mut through_ms = Some(i64::MAX);
    let (mut owed, mut oldest_ms) = (0u64, None::<i64>);
    for assigned in in_span {
        let report = reports
            .get(&assigned.range_id)
            .filter(|r| r.epoch == assigned.epoch);
        let watermark_ms = report.map_or(0, |r| r.watermark_ms);
        through_ms = match (through_ms, watermark_ms) {
            (Some(t), w) if w > 0 => Some(t.min(w)),
            _ => None,
        };
        if let Some(r) = report.filter(|r| r.owed_versions > 0) {
            owed += r.owed_versions;
            oldest_ms =
                Some(oldest_ms.map_or(r.oldest_owed_mark_ms, |o| o.min(r.oldest_owed_mark_ms)));
        }
        ranges.push(json!({
            "range_id": assigned.range_id,
            "owner": assigned.owner_addr,
            "replicated_through": report.map(|r| rfc3339_ms(r.watermark_ms)),
            "committed_through": report.map(|r| rfc3339_ms(r.committed_watermark_ms)),
            "owed_versions": report.map(|r| r.owed_versions),
        }));
    }
    let through_ms = through_ms.filter(|t| *t != i64::MAX);
    Ok(json!({
        "bucket": bucket,
        "replicated_through": through_ms.map(rfc3339_ms),
        "replicated_through_ms": through_ms,
        "owed_versions": owed,
        "oldest_owed_age_ms": oldest_ms.map(|o| now_ms.saturating_sub(o).max(0)),
        "ranges": ranges,
    }))
}

/// What `strata status` shows of replication: every bucket a range of the stamp owes versions
/// of, with how many and the oldest one's age (asked of every owner in `map`; an owner that
/// does not answer leaves its ranges out, and `complete` false).
pub(crate) async fn owed_by_bucket(map: &strata_proto::manager::PartitionMap) -> Value {
    let mut owners: Vec<&str> = map.ranges.iter().map(|r| r.owner_addr.as_str()).collect();
    owners.sort_unstable();
    owners.dedup();
    let mut by_bucket: BTreeMap<String, (u64, i64)> = BTreeMap::new();
    let mut complete = true;
    // All at once, each bounded: a paused or dead server must not hold `strata status` up.
    let asked = owners
        .into_iter()
        .filter(|o| !o.is_empty())
        .map(|owner| async move {
            let call = async {
                let channel = crate::grpc_channel(owner, STATUS_CALL_TIMEOUT).ok()?;
                let request = GetReplicationStateRequest::default();
                let answer = PartitionServerClient::new(channel)
                    .get_replication_state(request)
                    .await
                    .ok()?;
                Some(answer.into_inner().ranges)
            };
            tokio::time::timeout(STATUS_CALL_TIMEOUT, call)
                .await
                .ok()
                .flatten()
        });
    for answer in futures::future::join_all(asked).await {
        let Some(ranges) = answer else {
            complete = false;
            continue;
        };
        for range in ranges.into_iter().filter(|r| r.owed_versions > 0) {
            let entry = by_bucket
                .entry(range.bucket)
                .or_insert((0, range.oldest_owed_mark_ms));
            entry.0 += range.owed_versions;
            entry.1 = entry.1.min(range.oldest_owed_mark_ms);
        }
    }
    let now_ms = strata_util::now_ms();
    let buckets: Vec<Value> = by_bucket
        .into_iter()
        .map(|(bucket, (owed, oldest_ms))| {
            json!({
                "bucket": bucket,
                "owed_versions": owed,
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
    println!("{:<40}  {:>10}  {:>12}", "bucket", "owed", "oldest");
    for bucket in owing {
        let age_s = bucket["oldest_owed_age_ms"].as_i64().unwrap_or(0) as f64 / 1_000.0;
        println!(
            "{:<40}  {:>10}  {:>10.1} s",
            bucket["bucket"].as_str().unwrap_or_default(),
            bucket["owed_versions"],
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
