//! Sealing extents: SealExtent (seal the stream's last extent at the commit length the
//! replicas agree on, then append a fresh one) and the repair's seal of an open extent that
//! lost a replica. Sealing fences the replicas first, so no acknowledged record is lost.

use super::meta::{Mutation, SealMark};
use super::state::ManagerState;
use crate::channels::{bounded, request_with_timeout, CONTROL_RPC_TIMEOUT_MS};
use crate::error::{Result, StreamError};
use strata_proto::common::NodeAddr;
use strata_proto::stream::*;
use strata_types::ExtentId;

impl ManagerState {
    /// Seals the stream's last extent and appends a fresh one (see `SealExtentRequest`).
    pub async fn seal_extent(&self, request: SealExtentRequest) -> Result<StreamInfo> {
        let name = request.stream.as_str();
        let extent_id = ExtentId::new(request.extent_id);
        self.require_leader()?;
        let lock = self.stream_lock(name)?;
        let _serialized = lock.lock().await;
        let existing = self
            .meta
            .stream(name)?
            .ok_or_else(|| StreamError::StreamNotFound(name.to_string()))?;
        let mut record = existing.clone();
        let Some(&last) = record.extent_ids.last() else {
            return Err(StreamError::CorruptMetadata(format!(
                "stream {name:?} has no extents"
            )));
        };
        if last != extent_id {
            let own_retry = !request.writer_id.is_empty()
                && record.last_seal
                    == Some(SealMark {
                        extent_id,
                        writer_id: request.writer_id.clone(),
                    });
            if own_retry {
                tracing::info!(
                    stream = name,
                    extent_id = extent_id.get(),
                    "a writer's retried seal was applied already; answering the stream"
                );
                return self.stream_info(name, &record);
            }
            if request.expect_open {
                return Err(StreamError::Fenced {
                    stream: name.to_string(),
                    reason: format!(
                        "{extent_id} was sealed by another writer; the last extent is {last}"
                    ),
                });
            }
            return self.stream_info(name, &record);
        }
        // The seal and the fresh extent are recorded together; if no fresh extent can be
        // placed, the seal is recorded alone (the writer retries later).
        let mut mutations: Vec<Mutation> = self
            .seal_open_extent(name, last, request.length)
            .await?
            .into_iter()
            .collect();
        let (fresh, extent) = match self.allocate_extent(name).await {
            Ok(allocated) => allocated,
            Err(err) => {
                if !mutations.is_empty() {
                    self.meta.commit(mutations).await?;
                }
                return Err(err);
            }
        };
        record.extent_ids.push(fresh);
        record.last_seal = (!request.writer_id.is_empty()).then(|| SealMark {
            extent_id: last,
            writer_id: request.writer_id.clone(),
        });
        mutations.push(Mutation::Extent {
            extent_id: fresh,
            expected: None,
            record: Some(extent),
        });
        mutations.push(Mutation::Stream {
            name: name.to_string(),
            expected: Some(existing),
            record: Some(record.clone()),
        });
        self.meta.commit(mutations).await?;
        self.update_gauges();
        tracing::info!(
            stream = name,
            extent_id = fresh.get(),
            "fresh extent appended to stream"
        );
        self.stream_info(name, &record)
    }

    /// Seals the replicas of open extent `extent_id` of `stream` at the commit length the
    /// reachable replicas agree on, never below `floor_length` (0 = none; see commit_length),
    /// and returns the mutation that records the seal (None when the extent is sealed already).
    /// The caller holds the stream's lock.
    async fn seal_open_extent(
        &self,
        stream: &str,
        extent_id: ExtentId,
        floor_length: u64,
    ) -> Result<Option<Mutation>> {
        let before = self
            .meta
            .extent(extent_id)?
            .ok_or(StreamError::ExtentNotFound(extent_id))?;
        if before.sealed {
            return Ok(None);
        }
        let mut extent = before.clone();
        let replicas = extent
            .replicas
            .iter()
            .map(|id| self.node_addr(id))
            .collect::<Result<Vec<_>>>()?;
        // A writer that filled the extent names the end of its last append; the seal is never
        // below it, nor below what any other writer appended meanwhile (fenced and asked).
        let length = self
            .commit_length(extent_id, &replicas, floor_length)
            .await?;
        self.seal_replicas(extent_id, length, &replicas).await?;
        extent.sealed = true;
        extent.sealed_length = length;
        tracing::info!(stream, extent_id = extent_id.get(), length, "extent sealed");
        Ok(Some(Mutation::Extent {
            extent_id,
            expected: Some(before),
            record: Some(extent),
        }))
    }

    /// The repair's seal of an open extent that lost a replica (or holds a bad one): sealed at
    /// the commit length like SealExtent does, but no fresh extent is appended, so the stream's
    /// writer is not fenced: its next append fails (sealed), and its own SealExtent then
    /// finds the extent sealed and gets a fresh one.
    pub(super) async fn seal_for_repair(&self, stream: &str, extent_id: ExtentId) -> Result<()> {
        let lock = self.stream_lock(stream)?;
        let _serialized = lock.lock().await;
        let Some(record) = self.meta.stream(stream)? else {
            return Ok(());
        };
        if record.extent_ids.last() != Some(&extent_id) {
            return Ok(());
        }
        if let Some(seal) = self.seal_open_extent(stream, extent_id, 0).await? {
            self.meta.commit(vec![seal]).await?;
        }
        tracing::info!(
            stream,
            extent_id = extent_id.get(),
            "open extent with a dead or bad replica sealed for repair"
        );
        Ok(())
    }

    /// Fences every reachable replica and returns the length to seal at, never below `floor`
    /// (a length the writer was acknowledged). A replica already sealed decides it. Otherwise
    /// the replicas whose tails verify decide: the smallest of their lengths (an acknowledged
    /// append is on every replica, so the smallest still holds it, and fencing stops lengths
    /// from growing). A replica whose tail does not verify (restarted with a torn or damaged
    /// last record) may have lost an acknowledged record's integrity, so it never decides;
    /// only when no replica verifies does the longest verified prefix decide (every record
    /// past it is damaged everywhere, so none of it can be read back anyway).
    async fn commit_length(
        &self,
        extent_id: ExtentId,
        replicas: &[NodeAddr],
        floor: u64,
    ) -> Result<u64> {
        let calls = replicas.iter().map(|node| async move {
            let mut client = self.channels.extent_node(&node.addr)?;
            let request = ExtentInfoRequest {
                extent_id: extent_id.get(),
                fence: true,
            };
            bounded(
                &node.addr,
                CONTROL_RPC_TIMEOUT_MS,
                client.get_extent_info(request_with_timeout(request, CONTROL_RPC_TIMEOUT_MS)),
            )
            .await
        });
        let mut answers = Vec::with_capacity(replicas.len());
        for (node, result) in replicas.iter().zip(futures::future::join_all(calls).await) {
            match result {
                Ok(info) if info.sealed => return Ok(info.length),
                Ok(info) => answers.push((node, info)),
                Err(err) => {
                    tracing::warn!(extent_id = extent_id.get(), node_id = %node.node_id, %err, "replica unreachable while sealing")
                }
            }
        }
        let verified = |info: &ExtentInfoResponse| match info.verified_length {
            0 => info.length,
            verified => verified.min(info.length),
        };
        let clean = answers
            .iter()
            .filter(|(_, info)| verified(info) == info.length)
            .map(|(_, info)| info.length)
            .min();
        let length = match clean {
            Some(length) => length,
            None => answers
                .iter()
                .map(|(_, info)| verified(info))
                .max()
                .ok_or_else(|| {
                    StreamError::Unavailable(format!("no replica of {extent_id} answered"))
                })?,
        };
        for (node, info) in answers.iter().filter(|(_, info)| verified(info) < length) {
            tracing::warn!(extent_id = extent_id.get(), node_id = %node.node_id, verified_length = verified(info), length, "replica cannot verify up to the seal; it will be rewritten");
            if let Err(err) = self.report_bad_replica(extent_id, &node.node_id, verified(info)) {
                tracing::warn!(extent_id = extent_id.get(), %err, "could not mark a replica bad");
            }
        }
        if length < floor {
            // Some replica lost acknowledged bytes and no good replica answered: sealing now
            // would cut them for good. Refuse; the writer retries and the repair heals.
            return Err(StreamError::Unavailable(format!(
                "{extent_id}: the answering replicas agree on {length} bytes, below the acknowledged {floor}"
            )));
        }
        Ok(length)
    }

    /// Seals every reachable replica at `length`; at least one must confirm.
    async fn seal_replicas(
        &self,
        extent_id: ExtentId,
        length: u64,
        replicas: &[NodeAddr],
    ) -> Result<()> {
        let calls = replicas.iter().map(|node| async move {
            let mut client = self.channels.extent_node(&node.addr)?;
            let request = SealRequest {
                extent_id: extent_id.get(),
                length,
            };
            bounded(
                &node.addr,
                CONTROL_RPC_TIMEOUT_MS,
                client.seal(request_with_timeout(request, CONTROL_RPC_TIMEOUT_MS)),
            )
            .await
        });
        let mut sealed = 0;
        for (node, result) in replicas.iter().zip(futures::future::join_all(calls).await) {
            match result {
                Ok(_) => sealed += 1,
                Err(err) => {
                    tracing::warn!(extent_id = extent_id.get(), length, node_id = %node.node_id, %err, "replica not sealed")
                }
            }
        }
        if sealed == 0 {
            return Err(StreamError::Unavailable(format!(
                "no replica of {extent_id} could be sealed"
            )));
        }
        Ok(())
    }
}
