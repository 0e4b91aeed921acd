//! `strata replication resync BUCKET`: replicates what was written before a rule existed (S3
//! Batch Replication's job). It pages the source bucket's rows (ScanRows, as a bucket move
//! does), has each page's versions no rule had marked (and FAILED ones, with `--failed`)
//! marked PENDING by their owner (MarkForReplication), then waits until the shipper has sent
//! them, with a live line on a terminal and a final report.
//!
//! Resumable: marking is idempotent (a version already PENDING, shipped or a replica is left
//! as it is), so a run that stopped is simply run again; the owners ship what was marked
//! whether or not this command still runs.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use strata_proto::common::ReplicationStatus;
use strata_proto::record::{index_entry, IndexEntry};

use crate::bucket_move::progress::Progress;
use crate::bucket_move::rows::{Cursor, Stamp};
use crate::layout::Layout;

/// How often the versions still owed are asked while waiting.
const POLL_MS: u64 = 500;

/// What one run did.
pub struct Resync<'a> {
    pub layout: &'a Layout,
    pub stamp: &'a str,
    pub bucket: &'a str,
    pub failed_too: bool,
    pub wait_s: u64,
}

impl Resync<'_> {
    pub async fn run(&self) -> anyhow::Result<Value> {
        let source = Stamp::new(self.layout, self.stamp)?;
        let Some(meta) = source.get_bucket(self.bucket).await? else {
            anyhow::bail!("no bucket {} on {}", self.bucket, self.stamp);
        };
        anyhow::ensure!(
            meta.replication.is_some_and(|r| !r.rules.is_empty()),
            "{} has no replication configuration",
            self.bucket
        );
        let progress = Progress::new();
        let (scanned, marked) = self.mark_all(&source, &progress).await?;
        progress.line(&format!(
            "{}: {marked} versions marked for replication ({scanned} rows read)",
            self.bucket
        ));
        let report = self.wait(&progress).await?;
        progress.finish();
        Ok(json!({
            "bucket": self.bucket,
            "rows_read": scanned,
            "versions_marked": marked,
            "owed_versions": report["owed_versions"],
            "replicated_through": report["replicated_through"],
            "done": report["owed_versions"] == 0,
        }))
    }

    /// Every page of the bucket's rows: its unmarked versions marked.
    async fn mark_all(&self, source: &Stamp, progress: &Progress) -> anyhow::Result<(u64, u64)> {
        let (mut scanned, mut marked) = (0u64, 0u64);
        let mut cursor = Cursor::default();
        loop {
            let page = source.scan(self.bucket, &cursor).await?;
            scanned += page.rows.len() as u64;
            let keys: Vec<Vec<u8>> = page
                .rows
                .iter()
                .filter(|row| unmarked(row, self.failed_too))
                .map(|row| row.key.clone())
                .collect();
            marked += self.mark(source, keys).await?;
            progress.update(&format!(
                "{}: {scanned} rows read, {marked} versions marked",
                self.bucket
            ));
            match page.next {
                Some(next) => cursor = next,
                None => return Ok((scanned, marked)),
            }
        }
    }

    /// One page's keys, at once; key by key when the page's range changed since (a split).
    async fn mark(&self, source: &Stamp, keys: Vec<Vec<u8>>) -> anyhow::Result<u64> {
        let bucket = self.bucket;
        match source
            .mark_for_replication(bucket, keys.clone(), self.failed_too)
            .await
        {
            Ok(marked) => Ok(marked),
            Err(_) => {
                let mut marked = 0;
                for key in keys {
                    marked += source
                        .mark_for_replication(bucket, vec![key], self.failed_too)
                        .await?;
                }
                Ok(marked)
            }
        }
    }

    /// Until nothing is owed (or `wait_s` passed): the last status report.
    async fn wait(&self, progress: &Progress) -> anyhow::Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(self.wait_s);
        loop {
            let report =
                crate::replication::status(&self.layout.view(self.stamp), self.bucket).await?;
            let owed = report["owed_versions"].as_u64().unwrap_or(0);
            let known = !report["replicated_through"].is_null();
            if (owed == 0 && known) || Instant::now() >= deadline {
                return Ok(report);
            }
            progress.update(&format!("{}: {owed} versions still owed", self.bucket));
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }
}

/// A version no rule marked (or a FAILED one, when those are sent again).
fn unmarked(row: &IndexEntry, failed_too: bool) -> bool {
    let record = match &row.value {
        Some(index_entry::Value::Object(record)) | Some(index_entry::Value::Version(record)) => {
            record
        }
        _ => return false,
    };
    record.replication_status == ReplicationStatus::None as i32
        || (failed_too && record.replication_status == ReplicationStatus::Failed as i32)
}

/// The final report as text.
pub fn print(report: &Value) {
    println!(
        "bucket              {}",
        report["bucket"].as_str().unwrap_or_default()
    );
    println!("rows read           {}", report["rows_read"]);
    println!("versions marked     {}", report["versions_marked"]);
    println!("versions owed       {}", report["owed_versions"]);
    println!(
        "replicated through  {}",
        report["replicated_through"].as_str().unwrap_or("unknown")
    );
    if report["done"] != true {
        println!("not done yet: the owners go on shipping; run again to see or to resume");
    }
}
