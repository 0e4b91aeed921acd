//! The `StreamManager` gRPC service: a thin layer over [`ManagerState`].

use super::state::ManagerState;
use std::sync::Arc;
use strata_proto::stream::stream_manager_server::StreamManager;
use strata_proto::stream::*;
use strata_types::{ExtentId, Role};
use tonic::{Request, Response, Status};

/// Who may open, read, seal, trim, create and delete streams over mutual TLS: the partition
/// servers, the only writers of streams. (GetStatus is read-only and open to every certificate
/// of the deployment; heartbeats and bad-replica reports have rules of their own.)
pub const STREAM_CLIENT_ROLES: [Role; 1] = [Role::PartitionServer];
/// Who may report a damaged replica: whoever reads replicas (readers, the scrubbing nodes).
pub const REPORTER_ROLES: [Role; 3] = [Role::PartitionServer, Role::Frontend, Role::ExtentNode];

fn stream_client<T>(request: &Request<T>) -> Result<(), Status> {
    strata_util::tls::authorize(request, &STREAM_CLIENT_ROLES)
}

pub struct StreamManagerService {
    state: Arc<ManagerState>,
}

impl StreamManagerService {
    pub fn new(state: Arc<ManagerState>) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl StreamManager for StreamManagerService {
    async fn heartbeat(
        &self,
        request: Request<NodeHeartbeat>,
    ) -> Result<Response<NodeHeartbeatResponse>, Status> {
        // A heartbeat registers its sender as a place for replicas: extent nodes only.
        strata_util::tls::authorize(&request, &[Role::ExtentNode])?;
        self.state
            .heartbeat(request.into_inner())
            .await
            .inspect_err(|err| tracing::warn!(%err, "heartbeat refused"))?;
        // (Liveness is kept by every member; only the leader registers nodes.)
        Ok(Response::new(NodeHeartbeatResponse {}))
    }

    async fn open_stream(
        &self,
        request: Request<OpenStreamRequest>,
    ) -> Result<Response<StreamInfo>, Status> {
        stream_client(&request)?;
        let name = request.into_inner().name;
        let info = self
            .state
            .open_stream(&name)
            .await
            .inspect_err(|err| tracing::warn!(stream = %name, %err, "open stream failed"))?;
        Ok(Response::new(info))
    }

    async fn get_stream(
        &self,
        request: Request<GetStreamRequest>,
    ) -> Result<Response<StreamInfo>, Status> {
        stream_client(&request)?;
        Ok(Response::new(
            self.state.get_stream(&request.into_inner().name).await?,
        ))
    }

    async fn get_extent(
        &self,
        request: Request<GetExtentRequest>,
    ) -> Result<Response<ExtentInfo>, Status> {
        stream_client(&request)?;
        Ok(Response::new(
            self.state
                .get_extent(ExtentId::new(request.into_inner().extent_id))
                .await?,
        ))
    }

    async fn seal_extent(
        &self,
        request: Request<SealExtentRequest>,
    ) -> Result<Response<StreamInfo>, Status> {
        stream_client(&request)?;
        let request = request.into_inner();
        let (stream, extent_id) = (request.stream.clone(), request.extent_id);
        let info =
            self.state.seal_extent(request).await.inspect_err(
                |err| tracing::warn!(%stream, extent_id, %err, "seal extent failed"),
            )?;
        Ok(Response::new(info))
    }

    async fn get_status(
        &self,
        _request: Request<StreamStatusRequest>,
    ) -> Result<Response<StreamStatusResponse>, Status> {
        Ok(Response::new(self.state.status().await?))
    }

    async fn report_bad_replica(
        &self,
        request: Request<ReportBadReplicaRequest>,
    ) -> Result<Response<ReportBadReplicaResponse>, Status> {
        strata_util::tls::authorize(&request, &REPORTER_ROLES)?;
        let ReportBadReplicaRequest {
            extent_id,
            node_id,
            offset,
        } = request.into_inner();
        self.state
            .report_bad_replica(ExtentId::new(extent_id), &node_id, offset)
            .inspect_err(|err| tracing::warn!(%err, "bad-replica report refused"))?;
        Ok(Response::new(ReportBadReplicaResponse {}))
    }

    async fn delete_stream(
        &self,
        request: Request<DeleteStreamRequest>,
    ) -> Result<Response<DeleteStreamResponse>, Status> {
        stream_client(&request)?;
        let name = request.into_inner().name;
        let extents_released = self
            .state
            .delete_stream(&name)
            .await
            .inspect_err(|err| tracing::warn!(stream = %name, %err, "delete stream failed"))?;
        Ok(Response::new(DeleteStreamResponse { extents_released }))
    }

    async fn trim_stream(
        &self,
        request: Request<TrimStreamRequest>,
    ) -> Result<Response<StreamInfo>, Status> {
        stream_client(&request)?;
        let TrimStreamRequest {
            name,
            keep_from_extent_id,
        } = request.into_inner();
        let info = self
            .state
            .trim_stream(&name, ExtentId::new(keep_from_extent_id))
            .await
            .inspect_err(|err| tracing::warn!(stream = %name, keep_from_extent_id, %err, "trim stream failed"))?;
        Ok(Response::new(info))
    }

    async fn create_stream(
        &self,
        request: Request<CreateStreamRequest>,
    ) -> Result<Response<StreamInfo>, Status> {
        stream_client(&request)?;
        let CreateStreamRequest { name, extent_ids } = request.into_inner();
        let extent_ids: Vec<ExtentId> = extent_ids.into_iter().map(ExtentId::new).collect();
        let info = self
            .state
            .create_stream(&name, &extent_ids)
            .await
            .inspect_err(|err| tracing::warn!(stream = %name, %err, "create stream failed"))?;
        Ok(Response::new(info))
    }

    async fn list_streams(
        &self,
        request: Request<ListStreamsRequest>,
    ) -> Result<Response<ListStreamsResponse>, Status> {
        stream_client(&request)?;
        let names = self
            .state
            .list_streams(&request.into_inner().prefix)
            .await?;
        Ok(Response::new(ListStreamsResponse { names }))
    }
}
