//! The stream client the partition layer uses: open a stream for appending
//! ([`StreamWriter`]), read one record by position, read a whole stream in order.
//!
//! Every RPC is bounded (channel timeouts plus a deadline per call); channels are cached per
//! address. The stream manager is a Raft group: calls go to the member that last answered,
//! follow a follower's "not leader" hint, try the next member when one is unreachable, and
//! wait out an election within a bounded budget.

mod reader;
mod writer;

pub use writer::StreamWriter;

use crate::channels::{bounded, request_with_timeout, ChannelCache};
use crate::error::{Result, StreamError};
use crate::metrics;
use bytes::Bytes;
use futures::Stream;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use strata_proto::stream::stream_manager_client::StreamManagerClient;
use strata_proto::stream::*;
use strata_types::ExtentId;
use strata_util::rpc::Channel;
use tonic::Code;

/// Bound on one stream-manager RPC (a seal may fence, seal and place a fresh extent).
pub const MANAGER_RPC_TIMEOUT_MS: u64 = 10_000;
/// How long a call keeps looking for the stream manager's leader (an election takes a few
/// seconds at most) before it fails.
pub const MANAGER_FAILOVER_BUDGET_MS: u64 = 10_000;
/// Attempts of one call at most, whatever the budget.
const MANAGER_ATTEMPTS_MAX: usize = 256;
/// Pause after a failed attempt (but the first jump to a hinted leader), so a follower that
/// still names a dead leader is not asked in a busy loop during an election.
const MANAGER_RETRY_PAUSE_MS: u64 = 50;
/// Bound on one append (the primary's fsync plus replication to the secondaries).
pub const APPEND_TIMEOUT_MS: u64 = 10_000;
/// Bound on one read RPC.
pub const READ_TIMEOUT_MS: u64 = 10_000;
/// Extent replica sets cached at most; the cache is cleared when it grows past this.
const EXTENT_CACHE_ENTRIES_MAX: usize = 65_536;
/// Bad-replica reports in flight at most; more are dropped (the scrubber finds them too).
const BAD_REPLICA_REPORTS_MAX: usize = 16;
/// Bound on one bad-replica report.
const REPORT_TIMEOUT_MS: u64 = 3_000;

/// Where a record lives: what `StreamWriter::append` returns and `read_record` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordPos {
    pub extent_id: ExtentId,
    /// Offset of the record (its header) inside the extent.
    pub offset: u64,
    /// Payload bytes.
    pub length: u64,
}

struct Inner {
    manager_addrs: Vec<String>,
    preferred_manager: AtomicUsize,
    next_replica: AtomicUsize,
    channels: ChannelCache,
    extents: Mutex<HashMap<ExtentId, ExtentInfo>>,
    reports: Arc<tokio::sync::Semaphore>,
}

/// Cheap to clone; clones share channels and caches.
#[derive(Clone)]
pub struct StreamClient {
    inner: Arc<Inner>,
}

/// Whether a manager error means "try another member" (unreachable, or not the leader).
fn manager_unreachable(err: &StreamError) -> bool {
    match err {
        StreamError::Rpc { status, .. } => {
            matches!(
                status.code(),
                Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled
            )
        }
        StreamError::InvalidArgument(_) => false,
        _ => true,
    }
}

impl StreamClient {
    /// A client of the stream manager at `manager_addrs` ("host:port", tried in turn).
    pub fn new(manager_addrs: Vec<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                manager_addrs,
                preferred_manager: AtomicUsize::new(0),
                next_replica: AtomicUsize::new(rand::random::<u32>() as usize),
                channels: ChannelCache::new(),
                extents: Mutex::new(HashMap::new()),
                reports: Arc::new(tokio::sync::Semaphore::new(BAD_REPLICA_REPORTS_MAX)),
            }),
        }
    }

    /// Calls the stream manager's leader: starts with the member that answered last, follows
    /// "not leader" hints, moves on from unreachable members, and pauses between rounds while
    /// an election runs, within [`MANAGER_FAILOVER_BUDGET_MS`].
    async fn call_manager<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: Fn(StreamManagerClient<Channel>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let addrs = &self.inner.manager_addrs;
        if addrs.is_empty() {
            return Err(StreamError::InvalidArgument(
                "no stream manager address".into(),
            ));
        }
        let pause = std::time::Duration::from_millis(MANAGER_RETRY_PAUSE_MS);
        let mut backoff = strata_util::retry::Backoff::new(std::time::Duration::from_millis(
            MANAGER_FAILOVER_BUDGET_MS,
        ))
        .with_pauses(pause, pause);
        let mut index = self.inner.preferred_manager.load(Ordering::Relaxed) % addrs.len();
        let mut last_error = None;
        let mut followed_hint = false;
        for attempt in 1..=MANAGER_ATTEMPTS_MAX {
            let addr = &addrs[index];
            let client = self.inner.channels.stream_manager(addr)?;
            let err = match bounded(addr, MANAGER_RPC_TIMEOUT_MS, call(client)).await {
                Ok(value) => {
                    self.inner.preferred_manager.store(index, Ordering::Relaxed);
                    return Ok(value);
                }
                Err(err) if !manager_unreachable(&err) => return Err(err),
                Err(err) => err,
            };
            tracing::debug!(%addr, %err, attempt, "stream manager member did not take the call");
            let hinted = err
                .not_leader_hint()
                .and_then(|hint| addrs.iter().position(|a| *a == hint))
                .filter(|&hinted| hinted != index);
            last_error = Some(err);
            if backoff.expired() {
                break;
            }
            index = match hinted {
                Some(hinted) if !followed_hint => {
                    followed_hint = true;
                    hinted
                }
                hinted => {
                    followed_hint = false;
                    if !backoff.wait().await {
                        break;
                    }
                    hinted.unwrap_or((index + 1) % addrs.len())
                }
            };
        }
        Err(last_error
            .unwrap_or_else(|| StreamError::Unavailable("no stream manager answered".into())))
    }

    /// Opens (creating if needed) stream `name` for appending. This does not fence earlier
    /// writers; call [`StreamWriter::seal_current`] for that.
    pub async fn open(&self, name: &str) -> Result<StreamWriter> {
        let request = OpenStreamRequest {
            name: name.to_string(),
        };
        let info = self
            .call_manager(|mut c| {
                let request = request_with_timeout(request.clone(), MANAGER_RPC_TIMEOUT_MS);
                async move { c.open_stream(request).await }
            })
            .await?;
        Ok(StreamWriter::new(self.clone(), info))
    }

    /// The stream's extents as the stream manager has them now.
    pub async fn stream_info(&self, name: &str) -> Result<StreamInfo> {
        let request = GetStreamRequest {
            name: name.to_string(),
        };
        self.call_manager(|mut c| {
            let request = request_with_timeout(request.clone(), MANAGER_RPC_TIMEOUT_MS);
            async move { c.get_stream(request).await }
        })
        .await
    }

    /// Nodes and extents as the stream manager sees them.
    pub async fn status(&self) -> Result<StreamStatusResponse> {
        self.call_manager(|mut c| {
            let request = request_with_timeout(StreamStatusRequest {}, MANAGER_RPC_TIMEOUT_MS);
            async move { c.get_status(request).await }
        })
        .await
    }

    /// Drops stream `name`: its extents are deleted from the nodes after the stream manager's
    /// safety delay. Returns how many extents it held (0 when it did not exist).
    pub async fn delete_stream(&self, name: &str) -> Result<u32> {
        let request = DeleteStreamRequest {
            name: name.to_string(),
        };
        let response = self
            .call_manager(|mut c| {
                let request = request_with_timeout(request.clone(), MANAGER_RPC_TIMEOUT_MS);
                async move { c.delete_stream(request).await }
            })
            .await?;
        Ok(response.extents_released)
    }

    /// Drops every extent before `keep_from` from stream `name` (call it after a checkpoint
    /// made the older records unnecessary); the dropped extents are deleted after the safety
    /// delay. Idempotent. Returns the stream as it is now.
    pub async fn trim_stream(&self, name: &str, keep_from: ExtentId) -> Result<StreamInfo> {
        let request = TrimStreamRequest {
            name: name.to_string(),
            keep_from_extent_id: keep_from.get(),
        };
        self.call_manager(|mut c| {
            let request = request_with_timeout(request.clone(), MANAGER_RPC_TIMEOUT_MS);
            async move { c.trim_stream(request).await }
        })
        .await
    }

    /// Creates stream `name` holding the given sealed extents (see the `CreateStream` RPC);
    /// idempotent for the same extents.
    pub async fn create_stream(&self, name: &str, extent_ids: &[ExtentId]) -> Result<StreamInfo> {
        let request = CreateStreamRequest {
            name: name.to_string(),
            extent_ids: extent_ids.iter().map(|id| id.get()).collect(),
        };
        self.call_manager(|mut c| {
            let request = request_with_timeout(request.clone(), MANAGER_RPC_TIMEOUT_MS);
            async move { c.create_stream(request).await }
        })
        .await
    }

    /// Names of the streams starting with `prefix`, in order.
    pub async fn list_streams(&self, prefix: &str) -> Result<Vec<String>> {
        let request = ListStreamsRequest {
            prefix: prefix.to_string(),
        };
        let response = self
            .call_manager(|mut c| {
                let request = request_with_timeout(request.clone(), MANAGER_RPC_TIMEOUT_MS);
                async move { c.list_streams(request).await }
            })
            .await?;
        Ok(response.names)
    }

    /// Tells the stream manager that `node_id`'s replica of `extent_id` holds a record failing
    /// its checksum at `offset`. Runs in the background, bounded in time and in number.
    fn report_bad_replica(&self, extent_id: ExtentId, node_id: &str, offset: u64) {
        let Ok(permit) = self.inner.reports.clone().try_acquire_owned() else {
            tracing::debug!(
                extent_id = extent_id.get(),
                node_id,
                "too many bad-replica reports in flight; dropped"
            );
            return;
        };
        let client = self.clone();
        let request = ReportBadReplicaRequest {
            extent_id: extent_id.get(),
            node_id: node_id.to_string(),
            offset,
        };
        tokio::spawn(async move {
            let _permit = permit;
            let call = client.call_manager(|mut c| {
                let request = request_with_timeout(request.clone(), REPORT_TIMEOUT_MS);
                async move { c.report_bad_replica(request).await }
            });
            match tokio::time::timeout(
                std::time::Duration::from_millis(MANAGER_RPC_TIMEOUT_MS),
                call,
            )
            .await
            {
                Ok(Ok(_)) => {
                    tracing::info!(extent_id = request.extent_id, node_id = %request.node_id, "bad replica reported")
                }
                Ok(Err(err)) => {
                    tracing::warn!(extent_id = request.extent_id, %err, "could not report a bad replica")
                }
                Err(_) => {
                    tracing::warn!(
                        extent_id = request.extent_id,
                        "reporting a bad replica timed out"
                    )
                }
            }
        });
    }

    /// SealExtent passthrough (see `SealExtentRequest`).
    pub(crate) async fn seal_extent(
        &self,
        stream: &str,
        extent_id: ExtentId,
        length: u64,
        writer_id: &str,
    ) -> Result<StreamInfo> {
        let request = SealExtentRequest {
            stream: stream.to_string(),
            extent_id: extent_id.get(),
            length,
            expect_open: true,
            writer_id: writer_id.to_string(),
        };
        self.call_manager(|mut c| {
            let request = request_with_timeout(request.clone(), MANAGER_RPC_TIMEOUT_MS);
            async move { c.seal_extent(request).await }
        })
        .await
    }

    /// One extent's replica set, from the cache unless `refresh`.
    pub async fn extent_info(&self, extent_id: ExtentId, refresh: bool) -> Result<ExtentInfo> {
        if !refresh {
            if let Some(info) = self
                .inner
                .extents
                .lock()
                .ok()
                .and_then(|c| c.get(&extent_id).cloned())
            {
                return Ok(info);
            }
        }
        let request = GetExtentRequest {
            extent_id: extent_id.get(),
        };
        let info = self
            .call_manager(|mut c| {
                let request = request_with_timeout(request, MANAGER_RPC_TIMEOUT_MS);
                async move { c.get_extent(request).await }
            })
            .await?;
        if let Ok(mut cache) = self.inner.extents.lock() {
            if cache.len() >= EXTENT_CACHE_ENTRIES_MAX {
                cache.clear();
            }
            cache.insert(extent_id, info.clone());
        }
        Ok(info)
    }

    /// Reads the record at `offset` of extent `extent_id` from any replica that can serve it
    /// (starting at a rotating replica, moving on after any error, a bad checksum included).
    pub async fn read_record(&self, extent_id: ExtentId, offset: u64) -> Result<Bytes> {
        let mut last_error = None;
        for refresh in [false, true] {
            let info = self.extent_info(extent_id, refresh).await?;
            match self.read_replicas(&info, offset, 1, 1, true).await {
                Ok(response) => {
                    if let Some(record) = response.records.into_iter().next() {
                        return Ok(Bytes::from(record.payload));
                    }
                }
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or(StreamError::OutOfRange {
            extent_id,
            offset,
            length: 0,
        }))
    }

    /// Reads a batch from the first replica (rotating start) that answers; with
    /// `need_record`, a replica that has no record at `offset` counts as failing.
    async fn read_replicas(
        &self,
        info: &ExtentInfo,
        offset: u64,
        max_records: u32,
        max_bytes: u64,
        need_record: bool,
    ) -> Result<ReadResponse> {
        let extent_id = ExtentId::new(info.extent_id);
        let replicas = &info.replicas;
        if replicas.is_empty() {
            return Err(StreamError::Unavailable(format!(
                "{extent_id} has no replicas"
            )));
        }
        let start = self.inner.next_replica.fetch_add(1, Ordering::Relaxed);
        let mut last_error = None;
        for step in 0..replicas.len() {
            let node = &replicas[(start + step) % replicas.len()];
            let result = async {
                let mut client = self.inner.channels.extent_node(&node.addr)?;
                let request = ReadRequest {
                    extent_id: extent_id.get(),
                    offset,
                    max_records,
                    max_bytes,
                };
                bounded(
                    &node.addr,
                    READ_TIMEOUT_MS,
                    client.read(request_with_timeout(request, READ_TIMEOUT_MS)),
                )
                .await
            }
            .await;
            match result {
                Ok(response)
                    if need_record
                        && response.records.first().is_none_or(|r| r.offset != offset) =>
                {
                    last_error = Some(StreamError::OutOfRange {
                        extent_id,
                        offset,
                        length: response.length,
                    });
                }
                Ok(response) => match first_wire_mismatch(&response) {
                    None => return Ok(response),
                    Some(bad_offset) => {
                        // Damaged after the node verified it (memory, network): never hand
                        // it on; another replica serves the read.
                        metrics::wire_checksum_failures().inc();
                        tracing::warn!(extent_id = extent_id.get(), offset = bad_offset, node_id = %node.node_id, "record received with a payload that fails its CRC; trying the next replica");
                        last_error = Some(StreamError::DataLoss {
                            extent_id,
                            offset: bad_offset,
                            reason: "record payload does not match the CRC the node sent".into(),
                        });
                    }
                },
                Err(err) => {
                    if let StreamError::Rpc { status, .. } = &err {
                        if status.code() == Code::DataLoss {
                            self.report_bad_replica(extent_id, &node.node_id, offset);
                        }
                    }
                    tracing::warn!(extent_id = extent_id.get(), offset, node_id = %node.node_id, %err, "replica read failed; trying the next");
                    last_error = Some(err);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| {
            StreamError::Unavailable(format!("no replica of {extent_id} answered"))
        }))
    }

    /// Every record of stream `name` in order, starting at `from` = (extent id, offset)
    /// inclusive, or at the beginning. Sealed extents are read up to their sealed length; the
    /// last extent (as of the first call) up to what its replica holds.
    pub fn read_stream(
        &self,
        name: &str,
        from: Option<(ExtentId, u64)>,
    ) -> impl Stream<Item = Result<(RecordPos, Bytes)>> + Send + 'static {
        reader::read_stream(self.clone(), name.to_string(), from)
    }
}

/// The offset of the first record whose payload does not match the CRC its extent node sent
/// (computed over the record header's first 8 bytes and the payload, as stored on disk).
fn first_wire_mismatch(response: &ReadResponse) -> Option<u64> {
    response
        .records
        .iter()
        .find(|record| crate::extent::format::record_crc(&record.payload) != record.crc)
        .map(|record| record.offset)
}
