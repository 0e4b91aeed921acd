//! The `PartitionServer` gRPC service. One module per operation family:
//! `buckets` (records and configurations), `objects` (put, get, head, delete, copy, tags),
//! `body` (receiving a streamed write's bytes), `versions` (what writes and deletes do to a
//! key's versions), `list`, `list_versions`,
//! `multipart` (uploads, parts, ListMultipartUploads); `walk` is the listing walker `list` and
//! `list_versions` share; `moves` (paging, reading and removing a bucket's rows for the
//! operator's mover), `move_import` (writing them on the target) and `move_state` (a move's
//! marks on the bucket record) move buckets between stamps; `replica_apply` takes replicated
//! versions and `resync` marks versions written before a rule.

mod body;
mod buckets;
mod list;
mod list_versions;
mod move_import;
mod move_state;
mod moves;
mod multipart;
mod objects;
mod replica_apply;
mod resync;

pub(crate) use objects::read_chunks;
pub(crate) mod versions;
mod walk;

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use strata_proto::partition::partition_server_server::PartitionServer;
use strata_proto::partition::*;
use strata_types::Role;
use tonic::{Request, Response, Status, Streaming};

pub(crate) use crate::bucket_gate::Write;
use crate::bucket_gate::{RecordState, Rules};
use crate::error::PartitionError;
use crate::index::Change;
use crate::index::IndexValue;
use crate::range::Range;
use crate::server::PartitionServerState;

/// [`crate::bucket_gate::require_writable`] with this server's gate and bucket records;
/// answers the replication rules the write's new versions are marked by.
pub(crate) async fn require_writable(
    state: &PartitionServerState,
    bucket: &str,
    write: Write,
) -> Result<Rules, PartitionError> {
    let lookup = async {
        let (record, deleting) = state.bucket_record_with_lease(bucket, true).await?;
        let rules = crate::bucket_gate::rules_of(record.as_ref());
        Ok((RecordState::of_meta(record.as_ref(), deleting), rules))
    };
    crate::bucket_gate::require_writable(&state.buckets, bucket, write, lookup).await
}

/// Marks the version a write creates at `key`'s object entry in `changes` (see
/// [`crate::replication_rules`]); call it only for writes that create that version (a put,
/// copy, completion or new delete marker), never for one that promotes an older version.
/// Call it with `range`'s commit lock held (the mark is the range's clock).
pub(crate) fn mark_new_version(
    range: &Range,
    rules: &Rules,
    bucket: &str,
    key: &str,
    changes: &mut [Change],
) {
    let object = strata_types::keys::object_key(bucket, key);
    let mark_ms = range.mark_clock_ms();
    for (changed, value) in changes.iter_mut() {
        if let (true, Some(IndexValue::Object(version))) = (*changed == object, value.as_mut()) {
            crate::replication_rules::mark(rules.as_deref(), key, version, mark_ms);
        }
    }
}

/// `version` of a key of `bucket` as clients see it, with COMPLETED for a PENDING version
/// its range's watermark has passed ([`crate::replication_cursors`]).
pub(crate) fn shown_meta(
    range: &Range,
    bucket: &str,
    version: &crate::records::ObjectRecord,
) -> strata_proto::common::ObjectMeta {
    let mut meta = crate::records::wire::object_meta(version);
    meta.replication_status =
        crate::replication_cursors::shown_status(version, range.replication_watermark_ms(bucket));
    meta
}

/// Who may read and change buckets and objects over mutual TLS: the front-ends (after SigV4),
/// peer partition servers (a bucket's record lives with one range's owner) and the operator's
/// tools (`strata debug`). GetStatus is read-only and open to every certificate of the
/// deployment; PrepareReshape has its own rule.
pub const CLIENT_ROLES: [Role; 3] = [Role::Frontend, Role::PartitionServer, Role::Operator];

fn client<T>(request: &Request<T>) -> Result<(), Status> {
    strata_util::tls::authorize(request, &CLIENT_ROLES)
}

/// The bucket-move calls copy and remove whole buckets: only the operator's mover makes them.
fn operator<T>(request: &Request<T>) -> Result<(), Status> {
    strata_util::tls::authorize(request, &[Role::Operator])
}

pub struct PartitionService {
    state: Arc<PartitionServerState>,
}

impl PartitionService {
    pub fn new(state: Arc<PartitionServerState>) -> Self {
        Self { state }
    }
}

pub type GetObjectStream = Pin<Box<dyn Stream<Item = Result<GetObjectResponse, Status>> + Send>>;
pub type ReadRowStream = Pin<Box<dyn Stream<Item = Result<ReadRowResponse, Status>> + Send>>;

#[tonic::async_trait]
impl PartitionServer for PartitionService {
    async fn create_bucket(
        &self,
        request: Request<CreateBucketRequest>,
    ) -> Result<Response<CreateBucketResponse>, Status> {
        client(&request)?;
        Ok(Response::new(
            buckets::create(&self.state, request.into_inner()).await?,
        ))
    }

    async fn get_bucket(
        &self,
        request: Request<GetBucketRequest>,
    ) -> Result<Response<GetBucketResponse>, Status> {
        client(&request)?;
        Ok(Response::new(buckets::get(
            &self.state,
            request.into_inner(),
        )?))
    }

    async fn delete_bucket(
        &self,
        request: Request<DeleteBucketRequest>,
    ) -> Result<Response<DeleteBucketResponse>, Status> {
        client(&request)?;
        Ok(Response::new(
            buckets::delete(&self.state, request.into_inner()).await?,
        ))
    }

    async fn list_buckets(
        &self,
        request: Request<ListBucketsRequest>,
    ) -> Result<Response<ListBucketsResponse>, Status> {
        client(&request)?;
        Ok(Response::new(buckets::list(&self.state)))
    }

    async fn update_bucket(
        &self,
        request: Request<UpdateBucketRequest>,
    ) -> Result<Response<UpdateBucketResponse>, Status> {
        client(&request)?;
        Ok(Response::new(
            buckets::update(&self.state, request.into_inner()).await?,
        ))
    }

    async fn put_object_tags(
        &self,
        request: Request<PutObjectTagsRequest>,
    ) -> Result<Response<PutObjectTagsResponse>, Status> {
        client(&request)?;
        Ok(Response::new(
            objects::put_tags(&self.state, request.into_inner()).await?,
        ))
    }

    async fn list_object_versions(
        &self,
        request: Request<ListObjectVersionsRequest>,
    ) -> Result<Response<ListObjectVersionsResponse>, Status> {
        client(&request)?;
        Ok(Response::new(list_versions::list_versions(
            &self.state,
            request.into_inner(),
        )?))
    }

    async fn list_multipart_uploads(
        &self,
        request: Request<ListMultipartUploadsRequest>,
    ) -> Result<Response<ListMultipartUploadsResponse>, Status> {
        client(&request)?;
        Ok(Response::new(multipart::list_uploads(
            &self.state,
            request.into_inner(),
        )?))
    }

    async fn put_object(
        &self,
        request: Request<Streaming<PutObjectRequest>>,
    ) -> Result<Response<PutObjectResponse>, Status> {
        client(&request)?;
        Ok(Response::new(
            objects::put(&self.state, request.into_inner()).await?,
        ))
    }

    async fn head_object(
        &self,
        request: Request<HeadObjectRequest>,
    ) -> Result<Response<HeadObjectResponse>, Status> {
        client(&request)?;
        Ok(Response::new(objects::head(
            &self.state,
            request.into_inner(),
        )?))
    }

    type GetObjectStream = GetObjectStream;

    async fn get_object(
        &self,
        request: Request<GetObjectRequest>,
    ) -> Result<Response<GetObjectStream>, Status> {
        client(&request)?;
        Ok(Response::new(objects::get(
            &self.state,
            request.into_inner(),
        )?))
    }

    async fn delete_object(
        &self,
        request: Request<DeleteObjectRequest>,
    ) -> Result<Response<DeleteObjectResponse>, Status> {
        client(&request)?;
        Ok(Response::new(
            objects::delete(&self.state, request.into_inner()).await?,
        ))
    }

    async fn copy_object(
        &self,
        request: Request<CopyObjectRequest>,
    ) -> Result<Response<CopyObjectResponse>, Status> {
        client(&request)?;
        Ok(Response::new(
            objects::copy(&self.state, request.into_inner()).await?,
        ))
    }

    async fn list_objects(
        &self,
        request: Request<ListObjectsRequest>,
    ) -> Result<Response<ListObjectsResponse>, Status> {
        client(&request)?;
        Ok(Response::new(list::list_objects(
            &self.state,
            request.into_inner(),
        )?))
    }

    async fn count_objects(
        &self,
        request: Request<CountObjectsRequest>,
    ) -> Result<Response<CountObjectsResponse>, Status> {
        client(&request)?;
        Ok(Response::new(
            list::count_objects(&self.state, request.into_inner()).await?,
        ))
    }

    async fn create_multipart_upload(
        &self,
        request: Request<CreateMultipartUploadRequest>,
    ) -> Result<Response<CreateMultipartUploadResponse>, Status> {
        client(&request)?;
        Ok(Response::new(
            multipart::create(&self.state, request.into_inner()).await?,
        ))
    }

    async fn upload_part(
        &self,
        request: Request<Streaming<UploadPartRequest>>,
    ) -> Result<Response<UploadPartResponse>, Status> {
        client(&request)?;
        Ok(Response::new(
            multipart::upload_part(&self.state, request.into_inner()).await?,
        ))
    }

    async fn complete_multipart_upload(
        &self,
        request: Request<CompleteMultipartUploadRequest>,
    ) -> Result<Response<CompleteMultipartUploadResponse>, Status> {
        client(&request)?;
        Ok(Response::new(
            multipart::complete(&self.state, request.into_inner()).await?,
        ))
    }

    async fn abort_multipart_upload(
        &self,
        request: Request<AbortMultipartUploadRequest>,
    ) -> Result<Response<AbortMultipartUploadResponse>, Status> {
        client(&request)?;
        Ok(Response::new(
            multipart::abort(&self.state, request.into_inner()).await?,
        ))
    }

    async fn list_parts(
        &self,
        request: Request<ListPartsRequest>,
    ) -> Result<Response<ListPartsResponse>, Status> {
        client(&request)?;
        Ok(Response::new(multipart::list_parts(
            &self.state,
            request.into_inner(),
        )?))
    }

    async fn prepare_reshape(
        &self,
        request: Request<PrepareReshapeRequest>,
    ) -> Result<Response<PrepareReshapeResponse>, Status> {
        // Freezes ranges for a split or merge: only the partition manager asks.
        strata_util::tls::authorize(&request, &[Role::PartitionManager])?;
        Ok(Response::new(
            crate::reshape::prepare(&self.state, request.into_inner()).await?,
        ))
    }

    async fn mark_for_replication(
        &self,
        request: Request<MarkForReplicationRequest>,
    ) -> Result<Response<MarkForReplicationResponse>, Status> {
        operator(&request)?;
        Ok(Response::new(
            resync::mark_for_replication(&self.state, request.into_inner()).await?,
        ))
    }

    async fn scan_rows(
        &self,
        request: Request<ScanRowsRequest>,
    ) -> Result<Response<ScanRowsResponse>, Status> {
        operator(&request)?;
        Ok(Response::new(
            moves::scan_rows(&self.state, request.into_inner()).await?,
        ))
    }

    type ReadRowStream = ReadRowStream;

    async fn read_row(
        &self,
        request: Request<ReadRowRequest>,
    ) -> Result<Response<ReadRowStream>, Status> {
        operator(&request)?;
        Ok(Response::new(moves::read_row(
            &self.state,
            request.into_inner(),
        )?))
    }

    async fn apply_replica(
        &self,
        request: Request<Streaming<ApplyReplicaRequest>>,
    ) -> Result<Response<ApplyReplicaResponse>, Status> {
        client(&request)?;
        Ok(Response::new(
            replica_apply::apply_replica(&self.state, request.into_inner()).await?,
        ))
    }

    async fn get_replication_state(
        &self,
        request: Request<GetReplicationStateRequest>,
    ) -> Result<Response<GetReplicationStateResponse>, Status> {
        client(&request)?;
        let bucket = request.into_inner().bucket;
        Ok(Response::new(crate::replication::state_of(
            &self.state,
            &bucket,
        )))
    }

    async fn import_row(
        &self,
        request: Request<Streaming<ImportRowRequest>>,
    ) -> Result<Response<ImportRowResponse>, Status> {
        operator(&request)?;
        Ok(Response::new(
            move_import::import_row(&self.state, request.into_inner()).await?,
        ))
    }

    async fn remove_rows(
        &self,
        request: Request<RemoveRowsRequest>,
    ) -> Result<Response<RemoveRowsResponse>, Status> {
        operator(&request)?;
        Ok(Response::new(
            moves::remove_rows(&self.state, request.into_inner()).await?,
        ))
    }

    async fn set_move_state(
        &self,
        request: Request<SetMoveStateRequest>,
    ) -> Result<Response<SetMoveStateResponse>, Status> {
        // A front-end ends a move whose mover left its fence behind (lifting the fence after
        // an abort, or marking the bucket moved after a completion; the location group
        // decided which): crates/frontend/src/move_fence.rs. It also serves a completed
        // move's copy whose mover died before SERVE: crates/frontend/src/move_serve.rs. FENCE,
        // imports and DROP are the mover's alone.
        let step = request.get_ref().step();
        if matches!(step, MoveStep::Unfence | MoveStep::Moved | MoveStep::Serve) {
            strata_util::tls::authorize(&request, &[Role::Operator, Role::Frontend])?;
        } else {
            operator(&request)?;
        }
        Ok(Response::new(
            move_state::set_move_state(&self.state, request.into_inner()).await?,
        ))
    }

    async fn get_status(
        &self,
        _request: Request<PartitionStatusRequest>,
    ) -> Result<Response<PartitionStatusResponse>, Status> {
        let ranges = self
            .state
            .ready_ranges()
            .into_iter()
            .map(|range| {
                let (objects, bytes) = range.stats();
                RangeStatus {
                    range_id: range.bounds.range_id.get(),
                    low: range.bounds.low.clone(),
                    high: range.bounds.high.clone(),
                    epoch: range.bounds.epoch.get(),
                    objects,
                    bytes,
                }
            })
            .collect();
        Ok(Response::new(PartitionStatusResponse {
            server_id: self.state.config.server_id.clone(),
            ranges,
        }))
    }
}
