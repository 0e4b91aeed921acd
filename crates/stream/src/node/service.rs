//! The `ExtentNode` gRPC service over an [`ExtentStore`].

use crate::channels::{bounded, request_with_timeout, ChannelCache};
use crate::error::StreamError;
use crate::extent::{format, ExtentStore, RECORD_PAYLOAD_BYTES_MAX};
use crate::metrics;
use std::sync::Arc;
use std::time::Instant;
use strata_proto::stream::extent_node_server::ExtentNode;
use strata_proto::stream::*;
use strata_types::{ExtentId, Role};
use strata_util::tls::authorize;
use tonic::{Request, Response, Status};

/// Bound on forwarding one record to a secondary.
pub const REPLICATE_TIMEOUT_MS: u64 = 5_000;
/// More secondaries than this in one request is a caller bug.
pub const SECONDARIES_MAX: usize = 8;
/// Read batches are clamped to these.
pub const READ_RECORDS_MAX: u32 = 1024;
pub const READ_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// Who may touch a replica over mutual TLS, to change it (create, append, replicate, seal,
/// fence, copy, delete) or to read it (records, state): the writers and readers of streams
/// (partition servers, front-ends), peer extent nodes (the replication chain, repair copies)
/// and the stream manager (seal, repair, collection). Nobody else reads object bytes off a
/// disk. Over plain gRPC nobody is checked (see [`strata_util::tls::Caller::Plain`]).
pub const REPLICA_ROLES: [Role; 4] = [
    Role::PartitionServer,
    Role::Frontend,
    Role::ExtentNode,
    Role::StreamManager,
];

pub struct ExtentNodeService {
    store: Arc<ExtentStore>,
    channels: Arc<ChannelCache>,
}

impl ExtentNodeService {
    pub fn new(store: Arc<ExtentStore>) -> Self {
        Self {
            store,
            channels: Arc::new(ChannelCache::new()),
        }
    }
}

/// Forwards one record to every secondary at `offset`. A secondary that says the extent is
/// sealed (or fenced) is reported as such, so the writer learns it was fenced; any other
/// failure is UNAVAILABLE (the writer seals and moves on).
async fn replicate_to_all(
    channels: Arc<ChannelCache>,
    extent_id: ExtentId,
    offset: u64,
    payload: Arc<Vec<u8>>,
    secondaries: Vec<String>,
) -> crate::Result<()> {
    let calls = secondaries.iter().map(|addr| {
        let channels = channels.clone();
        let payload = payload.clone();
        async move {
            let mut client = channels.extent_node(addr)?;
            let request = ReplicateAppendRequest {
                extent_id: extent_id.get(),
                offset,
                payload: payload.as_ref().clone(),
            };
            let call = client.replicate_append(request_with_timeout(request, REPLICATE_TIMEOUT_MS));
            bounded(addr, REPLICATE_TIMEOUT_MS, call).await
        }
    });
    let results = futures::future::join_all(calls).await;
    let mut first_failure = None;
    for (addr, result) in secondaries.iter().zip(results) {
        match result {
            Ok(_) => {}
            Err(err @ StreamError::Rpc { .. }) if err.is_sealed() => {
                tracing::info!(extent_id = extent_id.get(), addr = %addr, "secondary refuses appends: extent sealed or fenced");
                return Err(StreamError::Sealed {
                    extent_id,
                    length: offset,
                });
            }
            Err(err) => {
                tracing::warn!(extent_id = extent_id.get(), offset, addr = %addr, %err, "replicating an append failed");
                first_failure.get_or_insert(err);
            }
        }
    }
    match first_failure {
        Some(err) => Err(StreamError::Unavailable(format!(
            "replication of {extent_id} failed: {err}"
        ))),
        None => Ok(()),
    }
}

#[tonic::async_trait]
impl ExtentNode for ExtentNodeService {
    async fn create_extent(
        &self,
        request: Request<CreateExtentRequest>,
    ) -> Result<Response<CreateExtentResponse>, Status> {
        authorize(&request, &REPLICA_ROLES)?;
        let extent_id = ExtentId::new(request.into_inner().extent_id);
        self.store.create(extent_id).await.inspect_err(
            |err| tracing::warn!(extent_id = extent_id.get(), %err, "create extent failed"),
        )?;
        tracing::debug!(extent_id = extent_id.get(), "extent created");
        Ok(Response::new(CreateExtentResponse {}))
    }

    async fn append(
        &self,
        request: Request<AppendRequest>,
    ) -> Result<Response<AppendResponse>, Status> {
        authorize(&request, &REPLICA_ROLES)?;
        let started = Instant::now();
        let AppendRequest {
            extent_id,
            payload,
            secondary_addrs,
        } = request.into_inner();
        let extent_id = ExtentId::new(extent_id);
        if payload.len() > RECORD_PAYLOAD_BYTES_MAX {
            return Err(StreamError::PayloadTooLarge {
                len_bytes: payload.len(),
                max_bytes: RECORD_PAYLOAD_BYTES_MAX,
            }
            .into());
        }
        if secondary_addrs.len() > SECONDARIES_MAX {
            return Err(StreamError::InvalidArgument(format!(
                "at most {SECONDARIES_MAX} secondaries"
            ))
            .into());
        }
        let payload_len = payload.len() as u64;
        let channels = self.channels.clone();
        let result = self
            .store
            .append(extent_id, payload, move |offset, payload| {
                replicate_to_all(channels, extent_id, offset, payload, secondary_addrs)
            })
            .await;
        let (offset, end_offset) = result.map_err(|err| {
            tracing::warn!(extent_id = extent_id.get(), %err, "append failed");
            match err {
                StreamError::Io(_) => StreamError::Unavailable(err.to_string()).into_status(),
                other => other.into_status(),
            }
        })?;
        metrics::appends().inc();
        metrics::append_bytes().inc_by(payload_len);
        metrics::append_seconds().observe(started.elapsed().as_secs_f64());
        Ok(Response::new(AppendResponse { offset, end_offset }))
    }

    async fn replicate_append(
        &self,
        request: Request<ReplicateAppendRequest>,
    ) -> Result<Response<ReplicateAppendResponse>, Status> {
        authorize(&request, &REPLICA_ROLES)?;
        let ReplicateAppendRequest {
            extent_id,
            offset,
            payload,
        } = request.into_inner();
        let extent_id = ExtentId::new(extent_id);
        let payload_len = payload.len() as u64;
        let end_offset = self
            .store
            .replicate(extent_id, offset, payload)
            .await
            .inspect_err(|err| {
                tracing::warn!(extent_id = extent_id.get(), offset, %err, "replicated append refused")
            })?;
        metrics::appends().inc();
        metrics::append_bytes().inc_by(payload_len);
        Ok(Response::new(ReplicateAppendResponse { end_offset }))
    }

    async fn read(&self, request: Request<ReadRequest>) -> Result<Response<ReadResponse>, Status> {
        authorize(&request, &REPLICA_ROLES)?;
        let request = request.into_inner();
        metrics::reads().inc();
        let max_records = request.max_records.clamp(1, READ_RECORDS_MAX) as usize;
        let max_bytes = request.max_bytes.clamp(1, READ_BYTES_MAX);
        let batch = self
            .store
            .read(
                ExtentId::new(request.extent_id),
                request.offset,
                max_records,
                max_bytes,
            )
            .await?;
        let damage = self.store.wire_damage_injected();
        Ok(Response::new(ReadResponse {
            records: batch
                .records
                .into_iter()
                .map(|(offset, mut payload)| {
                    let crc = format::record_crc(&payload);
                    if damage {
                        if let Some(byte) = payload.first_mut() {
                            *byte ^= 0x01;
                        }
                    }
                    Record {
                        offset,
                        crc,
                        payload,
                    }
                })
                .collect(),
            next_offset: batch.next_offset,
            length: batch.length,
            sealed: batch.sealed,
        }))
    }

    async fn seal(&self, request: Request<SealRequest>) -> Result<Response<SealResponse>, Status> {
        authorize(&request, &REPLICA_ROLES)?;
        let SealRequest { extent_id, length } = request.into_inner();
        let length = self
            .store
            .seal(ExtentId::new(extent_id), length)
            .await
            .inspect_err(|err| tracing::warn!(extent_id, length, %err, "seal refused"))?;
        tracing::info!(extent_id, length, "extent sealed");
        Ok(Response::new(SealResponse { length }))
    }

    async fn get_extent_info(
        &self,
        request: Request<ExtentInfoRequest>,
    ) -> Result<Response<ExtentInfoResponse>, Status> {
        // (With `fence` this call changes the replica: it stops taking appends.)
        authorize(&request, &REPLICA_ROLES)?;
        let ExtentInfoRequest { extent_id, fence } = request.into_inner();
        let state = if fence {
            self.store.fence(ExtentId::new(extent_id))?
        } else {
            self.store.state(ExtentId::new(extent_id))?
        };
        Ok(Response::new(ExtentInfoResponse {
            extent_id,
            length: state.length,
            sealed: state.sealed,
            verified_length: state.verified_length,
        }))
    }

    async fn delete_extent(
        &self,
        request: Request<DeleteExtentRequest>,
    ) -> Result<Response<DeleteExtentResponse>, Status> {
        authorize(&request, &REPLICA_ROLES)?;
        let extent_id = request.into_inner().extent_id;
        self.store
            .delete(ExtentId::new(extent_id))
            .await
            .inspect_err(|err| tracing::warn!(extent_id, %err, "delete failed"))?;
        tracing::info!(extent_id, "extent replica deleted");
        Ok(Response::new(DeleteExtentResponse {}))
    }

    async fn copy_extent(
        &self,
        request: Request<CopyExtentRequest>,
    ) -> Result<Response<CopyExtentResponse>, Status> {
        authorize(&request, &REPLICA_ROLES)?;
        let request = request.into_inner();
        let (extent_id, source) = (request.extent_id, request.source_addr.clone());
        let length = super::copy::copy_extent(&self.store, &self.channels, request)
            .await
            .inspect_err(|err| tracing::warn!(extent_id, %source, %err, "repair copy failed"))?;
        Ok(Response::new(CopyExtentResponse {
            length,
            bytes_copied: length,
        }))
    }
}
