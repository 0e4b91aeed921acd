//! What the leader of the location group does on its own, in one loop every member runs: the
//! lowest-id member (the one that initializes the group) imports the bucket names of the
//! single-process table of earlier versions once, if its data folder holds one, then marks the
//! import done. Reservations wait for that mark (see `namespace.rs`), so no name of the
//! earlier table can be handed to someone else in between. While the import is not done and
//! another member leads, the lowest-id member asks for an election, since only it holds the
//! table. (Stamps register themselves: their front-ends report them, see `ReportStamp`.)
//! Every member also refreshes the per-stamp gauges of `/metrics` from its own state.

use crate::machine::{BucketRecord, IMPORT_BATCH_MAX, NAME_BYTES_MAX};
use crate::namespace::Namespace;
use crate::store::LocationStore;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Period of the loop.
const DUTY_INTERVAL_MS: u64 = 300;
/// How long the importing member lets another member lead before asking for an election, and
/// how long it waits between two such asks.
const ELECT_AFTER_MS: u64 = 3_000;

/// One member's duties; see the module comment.
pub struct Duties {
    pub namespace: Namespace,
    /// Whether this member has the lowest id of the group (it alone imports).
    pub imports: bool,
    /// Folder of the earlier single-process table (a sled database), when there is one.
    pub old_table: Option<PathBuf>,
}

impl Duties {
    pub async fn run(self, token: CancellationToken) {
        let mut last_elect_ask = Instant::now();
        let mut last_publish: Option<Instant> = None;
        let mut ticker = tokio::time::interval(Duration::from_millis(DUTY_INTERVAL_MS));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = ticker.tick() => {}
            }
            if last_publish.is_none_or(|at| elapsed_ms(at) >= crate::metrics::PUBLISH_INTERVAL_MS) {
                last_publish = Some(Instant::now());
                match self.namespace.local_stamps() {
                    Ok(stamps) => crate::metrics::publish(&stamps),
                    Err(err) => tracing::warn!(%err, "could not read the stamps for /metrics"),
                }
            }
            let group = self.namespace.group();
            if group.is_ready_leader() {
                if self.imports {
                    if let Err(err) = self.import_once().await {
                        tracing::warn!(%err, "importing the earlier bucket table failed; retrying");
                    }
                }
            } else if self.imports
                && self.import_pending()
                && elapsed_ms(last_elect_ask) > ELECT_AFTER_MS
            {
                last_elect_ask = Instant::now();
                if group.leader_view().leader_id != 0 {
                    tracing::info!("another member leads before the bucket names are imported; asking for an election");
                    if let Err(err) = group.raft().trigger().elect().await {
                        tracing::warn!(%err, "could not start an election");
                    }
                }
            }
        }
    }

    fn import_pending(&self) -> bool {
        !matches!(self.namespace.import_progress(), Ok(progress) if progress.done)
    }

    /// Imports the earlier table (all of it, in bounded batches) unless that is done.
    async fn import_once(&self) -> anyhow::Result<()> {
        if !self.import_pending() {
            return Ok(());
        }
        let names = match &self.old_table {
            Some(dir) => read_old_table(dir)?,
            None => Vec::new(),
        };
        let total = names.len();
        let mut batches: Vec<Vec<BucketRecord>> = names
            .chunks(IMPORT_BATCH_MAX)
            .map(<[BucketRecord]>::to_vec)
            .collect();
        if batches.is_empty() {
            batches.push(Vec::new());
        }
        let count = batches.len();
        for (i, batch) in batches.into_iter().enumerate() {
            let progress = self.namespace.import(batch, i + 1 == count).await?;
            if progress.done {
                tracing::info!(imported = progress.imported, read = total, from = ?self.old_table, "bucket names imported; reservations are open");
            }
        }
        Ok(())
    }
}

/// Every name in the earlier table that fits the machine's bounds (others are logged and
/// left out: the earlier service never wrote such names).
fn read_old_table(dir: &std::path::Path) -> anyhow::Result<Vec<BucketRecord>> {
    let store = LocationStore::open(dir)?;
    let mut names = Vec::new();
    for location in store.all()? {
        let fits = |field: &str| !field.is_empty() && field.len() <= NAME_BYTES_MAX;
        if !(fits(&location.bucket) && fits(&location.owner_access_key) && fits(&location.stamp)) {
            tracing::error!(
                ?location,
                "bucket record of the earlier table is out of bounds; not imported"
            );
            continue;
        }
        names.push(BucketRecord {
            bucket: location.bucket,
            owner_access_key: location.owner_access_key,
            stamp: location.stamp,
            created_ms: location.created_ms,
            last_move: None,
        });
    }
    Ok(names)
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}
