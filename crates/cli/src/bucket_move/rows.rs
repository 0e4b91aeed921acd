//! One stamp's partition servers as the mover (`strata bucket move`) reaches them: its
//! partition map through the front-end's [`Router`] (bounded retries on NotOwner and
//! unavailable owners), the move RPCs (ScanRows, ReadRow, ImportRow, RemoveRows, SetMoveState,
//! GetBucket), and the copy of one row, ReadRow on the source streamed into ImportRow on the
//! target.
//!
//! Invariant: a row reaches the target whole or not at all. The import's request stream ends
//! cleanly only after every byte the row declares was read from the source; after any failure
//! it never ends (the call is dropped), so the target cannot take a short row for a whole one.
//! The bytes pass through a small bounded queue: a row is never held in memory whole.

use anyhow::{anyhow, ensure, Context};
use prost::Message;
use std::future::Future;
use std::time::Duration;
use strata_frontend::error::FrontendError;
use strata_frontend::routing::{classify, PartitionClient, Retry, Route, Router, Verdict};
use strata_proto::common::BucketMeta;
use strata_proto::partition::{
    import_row_request, read_row_response, GetBucketRequest, ImportRowHeader, ImportRowRequest,
    MarkForReplicationRequest, MoveStep, ReadRowRequest, ReadRowResponse, RemoveRowsRequest,
    ScanRowsRequest, SetMoveStateRequest,
};
use strata_proto::record::{index_entry, BucketRecord, IndexEntry};
use strata_types::error_detail::{from_status, ErrorDetail, RejectReason};
use strata_types::keys;
use tonic::{Status, Streaming};

#[cfg(test)]
use super::pump::TargetStopped;
use super::pump::{copy_outcome, import_requests, pump};

/// Rows in one ScanRows page (the RPC's largest).
pub const PAGE_ROWS_MAX: u32 = 1000;
/// Keys in one RemoveRows call (the RPC's largest).
const REMOVE_BATCH_KEYS_MAX: usize = 1000;
/// Largest data message sent to ImportRow.
pub(super) const DATA_MESSAGE_BYTES_MAX: usize = 1 << 20;
/// Data messages queued between a row's reader and its importer (with the one in hand on each
/// side, at most this + 2 MiB of a row are in memory).
const COPY_QUEUE_MESSAGES_MAX: usize = 4;
/// How long routing retries NotOwner, unavailable owners and keys without an owner for one
/// call (a range moving between servers or a server restarting takes seconds).
const ROUTE_RETRY_BUDGET_MS: u64 = 30_000;
/// How long a call refused with SlowDown (a throttled server) is retried.
const SLOW_DOWN_BUDGET_MS: u64 = 60_000;
/// Bound of a call on the streaming channel up to its first answer (that channel has no
/// per-request timeout of its own: it carries rows of any size).
const FIRST_ANSWER_TIMEOUT_MS: u64 = strata_util::rpc::REQUEST_TIMEOUT_MS;
/// Bound of one row's copy: this, plus its bytes at the slowest rate tolerated below.
const ROW_COPY_BASE_MS: u64 = 30_000;
/// Slowest copy rate tolerated before a row's copy is given up (the move then fails and a
/// rerun resumes it).
const ROW_COPY_RATE_BYTES_PER_S_MIN: u64 = 1 << 20;

/// One stamp, reached through its partition managers' map.
pub struct Stamp {
    pub name: String,
    router: Router,
}

/// Where a ScanRows page starts: after `after` (or at it when `inclusive`); empty `after`: the
/// bucket's first object key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    pub after: Vec<u8>,
    pub inclusive: bool,
}

impl Cursor {
    /// The smallest key the page may hold: where the page is routed.
    pub fn first_key(&self, bucket: &str) -> Vec<u8> {
        if self.after.is_empty() {
            return keys::object_prefix(bucket);
        }
        let mut key = self.after.clone();
        if !self.inclusive {
            // The smallest key above `after`: it is what the next range must hold.
            key.push(0);
        }
        key
    }
}

/// One page of a bucket's rows, and where the next starts (None: no more rows).
pub struct Page {
    pub rows: Vec<IndexEntry>,
    pub next: Option<Cursor>,
}

/// The outcome of one row's copy.
pub enum Copied {
    /// Imported, with this many bytes.
    Row { bytes: u64 },
    /// The source no longer has the key.
    Gone,
}

/// A failed import: worth another try on a fresh map (`Retry`), or not.
pub(super) enum ImportFailure {
    Retry(String),
    Fail(anyhow::Error),
}

/// What an ImportRow stream carries after its header.
pub(super) enum Piece {
    Data(Vec<u8>),
    /// Every byte was read: the stream may end.
    End,
}

pub fn is_not_found(err: &FrontendError) -> bool {
    match err {
        FrontendError::Rpc(status) => match from_status(status) {
            Some(detail) => matches!(detail, ErrorDetail::NotFound { .. }),
            None => status.code() == tonic::Code::NotFound,
        },
        _ => false,
    }
}

/// Whether `err` is a partition server's NotFound (no such row, no such bucket record).
pub fn is_not_found_error(err: &anyhow::Error) -> bool {
    err.downcast_ref::<FrontendError>()
        .is_some_and(is_not_found)
}

/// Whether `err` is DROP's refusal because rows of the bucket are left (an import raced the
/// removal).
pub fn is_not_empty_error(err: &anyhow::Error) -> bool {
    let Some(FrontendError::Rpc(status)) = err.downcast_ref::<FrontendError>() else {
        return false;
    };
    matches!(
        from_status(status),
        Some(ErrorDetail::Rejected {
            reason: RejectReason::BucketNotEmpty
        })
    )
}

/// Bytes that travel beside a row: objects, noncurrent versions and parts that are not delete
/// markers carry their size in bytes.
pub fn data_size_bytes(row: &IndexEntry) -> u64 {
    match &row.value {
        Some(index_entry::Value::Object(object) | index_entry::Value::Version(object)) => {
            if object.delete_marker {
                0
            } else {
                object.size_bytes
            }
        }
        Some(index_entry::Value::Part(part)) => part.size_bytes,
        _ => 0,
    }
}

/// The source's bucket record as the target imports it. The record keeps BucketMeta's field
/// numbers by design (proto/strata/record.proto), so BucketMeta's bytes decode as a
/// BucketRecord with every configuration in place.
pub fn bucket_record(meta: &BucketMeta, move_id: &str) -> anyhow::Result<BucketRecord> {
    let mut record = BucketRecord::decode(meta.encode_to_vec().as_slice())
        .context("a BucketMeta did not decode as a BucketRecord")?;
    // The source's own move state (its fence, a moved mark) is not the target's: the target's
    // copy is importing by this move.
    record.move_id = move_id.to_string();
    record.importing = true;
    record.fenced_until_ms = 0;
    record.moved_to.clear();
    Ok(record)
}

fn row_copy_bound(size_bytes: u64) -> Duration {
    let transfer_ms = size_bytes.saturating_mul(1000) / ROW_COPY_RATE_BYTES_PER_S_MIN;
    Duration::from_millis(ROW_COPY_BASE_MS.saturating_add(transfer_ms))
}

fn timed_out(what: &str) -> Status {
    Status::deadline_exceeded(format!("{what} did not answer in time"))
}

impl Stamp {
    /// `name`'s partition servers, from its partition managers in the layout.
    pub fn new(layout: &crate::layout::Layout, name: &str) -> anyhow::Result<Stamp> {
        anyhow::ensure!(
            layout.stamps().iter().any(|stamp| stamp == name),
            "this deployment has no stamp {name:?} (it has {})",
            layout.stamps().join(", ")
        );
        let managers: Vec<String> = layout
            .view(name)
            .of_kind(crate::layout::NodeKind::PartitionManager)
            .map(|node| node.addr.clone())
            .collect();
        let budget = Duration::from_millis(ROUTE_RETRY_BUDGET_MS);
        let router = Router::new(&managers, budget).map_err(|err| anyhow!("{name}: {err}"))?;
        Ok(Stamp {
            name: name.to_string(),
            router,
        })
    }

    /// `f` on the owner of `key`, with the router's retries and, for SlowDown, bounded retries
    /// of its own (a throttled server recovers in moments).
    async fn call<T, F, Fut>(
        &self,
        key: &[u8],
        streaming: bool,
        mut f: F,
    ) -> Result<T, FrontendError>
    where
        F: FnMut(PartitionClient) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let mut throttled = Retry::new(Duration::from_millis(SLOW_DOWN_BUDGET_MS))
            .with_pauses(Duration::from_millis(100), Duration::from_millis(2_000));
        loop {
            match self
                .router
                .call(key, streaming, |client, _| f(client))
                .await
            {
                Ok((value, _)) => return Ok(value),
                Err(FrontendError::SlowDown(message)) => {
                    if !throttled.wait().await {
                        return Err(FrontendError::SlowDown(message));
                    }
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Marks the versions at `keys` (one range's) for replication (`strata replication
    /// resync`): how many were marked.
    pub async fn mark_for_replication(
        &self,
        bucket: &str,
        keys: Vec<Vec<u8>>,
        failed_too: bool,
    ) -> anyhow::Result<u64> {
        let Some(first) = keys.first().cloned() else {
            return Ok(0);
        };
        let request = MarkForReplicationRequest {
            bucket: bucket.to_string(),
            keys,
            failed_too,
        };
        let answer = self
            .call(&first, false, |mut client| {
                let request = request.clone();
                async move { client.mark_for_replication(request).await }
            })
            .await
            .with_context(|| format!("MarkForReplication in {bucket} on {}", self.name))?;
        Ok(answer.into_inner().marked)
    }

    /// The bucket's record (None: no such bucket on this stamp).
    pub async fn get_bucket(&self, bucket: &str) -> anyhow::Result<Option<BucketMeta>> {
        let request = GetBucketRequest {
            name: bucket.to_string(),
            lease: false,
        };
        let answer = self
            .call(&keys::bucket_key(bucket), false, |mut client| {
                let request = request.clone();
                async move { client.get_bucket(request).await }
            })
            .await
            .with_context(|| format!("GetBucket {bucket} on {}", self.name))?;
        Ok(answer.into_inner().bucket)
    }

    /// One page of the bucket's rows from `cursor`, checked: in key order, inside the bucket,
    /// and with a next page that starts further on (so every scan ends).
    pub async fn scan(&self, bucket: &str, cursor: &Cursor) -> anyhow::Result<Page> {
        let first = cursor.first_key(bucket);
        let request = ScanRowsRequest {
            bucket: bucket.to_string(),
            start_after: cursor.after.clone(),
            limit: PAGE_ROWS_MAX,
            start_inclusive: cursor.inclusive,
        };
        let answer = self
            .call(&first, false, |mut client| {
                let request = request.clone();
                async move { client.scan_rows(request).await }
            })
            .await
            .with_context(|| format!("ScanRows of {bucket} on {}", self.name))?
            .into_inner();
        let prefix = keys::object_prefix(bucket);
        let mut floor = first.clone();
        for (i, row) in answer.rows.iter().enumerate() {
            let ordered = if i == 0 {
                row.key >= floor
            } else {
                row.key > floor
            };
            ensure!(
                ordered && row.key.starts_with(&prefix),
                "ScanRows on {} answered a key out of order or outside {bucket}: {}",
                self.name,
                keys::display(&row.key)
            );
            floor.clone_from(&row.key);
        }
        let next = (!answer.next_after.is_empty()).then_some(Cursor {
            after: answer.next_after,
            inclusive: answer.next_inclusive,
        });
        if let Some(next) = &next {
            // `floor` is the last row's key, or the page's first possible key when it is empty.
            let starts = next.first_key(bucket);
            ensure!(
                starts > floor,
                "ScanRows on {} did not advance past {}",
                self.name,
                keys::display(&floor)
            );
        }
        Ok(Page {
            rows: answer.rows,
            next,
        })
    }

    /// The row at `key` and the stream of its bytes (None: no such row).
    async fn read_row(
        &self,
        bucket: &str,
        key: &[u8],
    ) -> anyhow::Result<Option<(IndexEntry, Streaming<ReadRowResponse>)>> {
        let request = ReadRowRequest {
            bucket: bucket.to_string(),
            key: key.to_vec(),
        };
        let bound = Duration::from_millis(FIRST_ANSWER_TIMEOUT_MS);
        let answer = self
            .call(key, true, |mut client| {
                let request = request.clone();
                let first = async move {
                    let mut stream = client.read_row(request).await?.into_inner();
                    let first = stream.message().await?.and_then(|message| message.part);
                    match first {
                        Some(read_row_response::Part::Row(row)) => Ok((row, stream)),
                        _ => Err(Status::data_loss("ReadRow's first message is not a row")),
                    }
                };
                async move {
                    tokio::time::timeout(bound, first)
                        .await
                        .map_err(|_| timed_out("ReadRow"))?
                }
            })
            .await;
        match answer {
            Ok((row, _)) if row.key != key => Err(anyhow!(
                "ReadRow on {} answered {} for {}",
                self.name,
                keys::display(&row.key),
                keys::display(key)
            )),
            Ok(found) => Ok(Some(found)),
            Err(err) if is_not_found(&err) => Ok(None),
            Err(err) => {
                Err(err).with_context(|| format!("ReadRow {} on {}", keys::display(key), self.name))
            }
        }
    }

    /// Writes the bucket's record into this (the target) stamp, importing by `move_id`.
    pub async fn import_bucket_row(
        &self,
        bucket: &str,
        move_id: &str,
        record: BucketRecord,
    ) -> anyhow::Result<()> {
        let key = keys::bucket_key(bucket);
        let header = ImportRowHeader {
            bucket: bucket.to_string(),
            move_id: move_id.to_string(),
            row: Some(IndexEntry {
                key: key.clone(),
                value: Some(index_entry::Value::Bucket(record)),
            }),
            size_bytes: 0,
        };
        let message = ImportRowRequest {
            part: Some(import_row_request::Part::Header(header)),
        };
        let bound = Duration::from_millis(FIRST_ANSWER_TIMEOUT_MS);
        self.call(&key, true, |mut client| {
            let message = message.clone();
            async move {
                let call = client.import_row(futures::stream::iter([message]));
                tokio::time::timeout(bound, call)
                    .await
                    .map_err(|_| timed_out("ImportRow"))?
            }
        })
        .await
        .with_context(|| format!("ImportRow of {bucket}'s record into {}", self.name))?;
        Ok(())
    }

    /// Streams `data` (the row's bytes, as ReadRow gives them) into ImportRow on the owner of
    /// `key`, within [`row_copy_bound`] of the row's size.
    async fn import_row(
        &self,
        key: &[u8],
        header: ImportRowHeader,
        data: Streaming<ReadRowResponse>,
        retry: &mut Retry,
    ) -> Result<(), ImportFailure> {
        let route = self
            .router
            .route(key, retry)
            .await
            .map_err(|err| ImportFailure::Fail(err.into()))?;
        let mut client = self
            .router
            .streaming_client(&route.owner_addr)
            .map_err(|err| ImportFailure::Fail(err.into()))?;
        let size_bytes = header.size_bytes;
        let (tx, rx) = tokio::sync::mpsc::channel(COPY_QUEUE_MESSAGES_MAX);
        let import = async {
            match client.import_row(import_requests(header, rx)).await {
                Ok(_) => Ok(()),
                Err(status) => Err(self.import_refused(&route, status).await),
            }
        };
        let copied = copy_outcome(pump(data, tx, size_bytes), import);
        match tokio::time::timeout(row_copy_bound(size_bytes), copied).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(failure)) => Err(failure),
            Err(_) => Err(ImportFailure::Fail(anyhow!(
                "copying {} ({size_bytes} bytes) into {} took longer than {:?}",
                keys::display(key),
                self.name,
                row_copy_bound(size_bytes)
            ))),
        }
    }

    /// What an ImportRow refusal means: a map to refresh (and another try), or the end.
    async fn import_refused(&self, route: &Route, status: Status) -> ImportFailure {
        match classify(&status) {
            Verdict::Retry | Verdict::SlowDown => {
                if let Err(err) = self.router.refresh(Some(route.map_fetched_at)).await {
                    tracing::debug!(%err, "map refresh failed, will retry");
                }
                ImportFailure::Retry(format!("{}: {status}", route.owner_addr))
            }
            Verdict::Fail => ImportFailure::Fail(anyhow!(
                "ImportRow into {} ({}): {status}",
                self.name,
                route.owner_addr
            )),
        }
    }

    /// Removes `keys` (sorted) of the bucket: one call per range they fall in, at most
    /// [`REMOVE_BATCH_KEYS_MAX`] keys each; a batch its owner refuses as not its own is sent
    /// again one key per call (each routed afresh). Answers how many rows were removed.
    pub async fn remove_rows(
        &self,
        bucket: &str,
        move_id: &str,
        keys: &[Vec<u8>],
    ) -> anyhow::Result<u64> {
        let mut removed = 0;
        let mut rest = keys;
        while let Some(first) = rest.first() {
            let mut retry = Retry::new(Duration::from_millis(ROUTE_RETRY_BUDGET_MS));
            let route = self.router.route(first, &mut retry).await?;
            let in_range = rest
                .iter()
                .take(REMOVE_BATCH_KEYS_MAX)
                .take_while(|key| route.high.is_empty() || key.as_slice() < route.high.as_slice())
                .count()
                .max(1);
            let (batch, tail) = rest.split_at(in_range);
            removed += self.remove_batch(&route, bucket, move_id, batch).await?;
            rest = tail;
        }
        Ok(removed)
    }

    async fn remove_batch(
        &self,
        route: &Route,
        bucket: &str,
        move_id: &str,
        batch: &[Vec<u8>],
    ) -> anyhow::Result<u64> {
        let request = |keys: Vec<Vec<u8>>| RemoveRowsRequest {
            bucket: bucket.to_string(),
            move_id: move_id.to_string(),
            keys,
        };
        let mut client = self.router.unary_client(&route.owner_addr)?;
        let status = match client.remove_rows(request(batch.to_vec())).await {
            Ok(answer) => return Ok(u64::from(answer.into_inner().removed)),
            Err(status) => status,
        };
        if classify(&status) == Verdict::Fail {
            return Err(anyhow!("RemoveRows on {}: {status}", self.name));
        }
        let mut removed = 0;
        for key in batch {
            let request = request(vec![key.clone()]);
            let answer = self
                .call(key, false, |mut client| {
                    let request = request.clone();
                    async move { client.remove_rows(request).await }
                })
                .await
                .with_context(|| format!("RemoveRows {} on {}", keys::display(key), self.name))?;
            removed += u64::from(answer.into_inner().removed);
        }
        Ok(removed)
    }

    /// Changes the bucket record's move state on its owner; answers the record (None: this
    /// stamp has no record of the bucket, or DROP deleted it).
    pub async fn set_move_state(
        &self,
        bucket: &str,
        move_id: &str,
        step: MoveStep,
        fenced_until_ms: i64,
        moved_to: &str,
    ) -> anyhow::Result<Option<BucketMeta>> {
        let request = SetMoveStateRequest {
            bucket: bucket.to_string(),
            move_id: move_id.to_string(),
            step: step.into(),
            fenced_until_ms,
            moved_to: moved_to.to_string(),
        };
        let answer = self
            .call(&keys::bucket_key(bucket), false, |mut client| {
                let request = request.clone();
                async move { client.set_move_state(request).await }
            })
            .await;
        match answer {
            // DROP answers no record once it is deleted.
            Ok(answer) => Ok(answer.into_inner().bucket),
            Err(err) if is_not_found(&err) => Ok(None),
            Err(err) => Err(err).with_context(|| {
                format!(
                    "SetMoveState {} of {bucket} on {}",
                    step.as_str_name(),
                    self.name
                )
            }),
        }
    }
}

/// Copies the row at `key` from `source` into `target` (re-reading it when the target's
/// owner moved, within the routing budget).
pub async fn copy_row(
    source: &Stamp,
    target: &Stamp,
    bucket: &str,
    move_id: &str,
    key: &[u8],
) -> anyhow::Result<Copied> {
    let mut retry = Retry::new(Duration::from_millis(ROUTE_RETRY_BUDGET_MS));
    loop {
        let Some((row, data)) = source.read_row(bucket, key).await? else {
            return Ok(Copied::Gone);
        };
        let size_bytes = data_size_bytes(&row);
        let header = ImportRowHeader {
            bucket: bucket.to_string(),
            move_id: move_id.to_string(),
            row: Some(row),
            size_bytes,
        };
        match target.import_row(key, header, data, &mut retry).await {
            Ok(()) => return Ok(Copied::Row { bytes: size_bytes }),
            Err(ImportFailure::Fail(err)) => return Err(err),
            Err(ImportFailure::Retry(why)) => {
                tracing::debug!(key = %keys::display(key), %why, "import refused, retrying");
                if !retry.wait().await {
                    anyhow::bail!(
                        "ImportRow of {} into {} kept failing: {why}",
                        keys::display(key),
                        target.name
                    );
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "rows_tests.rs"]
mod tests;
