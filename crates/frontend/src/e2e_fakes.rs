//! In-memory partition servers and manager, served over real gRPC on 127.0.0.1, for the
//! front-end's end-to-end tests. They keep the proto contract the front-end relies on: one
//! shared store (the "streams"), per-server owned ranges answering NotOwner elsewhere, typed
//! error details in statuses (`strata_types::error_detail`), PutObject and UploadPart
//! committing only on a clean end of stream, and multipart uploads with the partition server's
//! refusals (no such upload, invalid part, part order, entity too small, invalid request).

use base64::Engine;
use md5::{Digest, Md5};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use strata_proto::common::{BucketMeta, ObjectMeta, PartMeta, UploadMeta};
use strata_proto::manager::partition_manager_server::{PartitionManager, PartitionManagerServer};
use strata_proto::manager::*;
use strata_proto::partition::partition_server_server::{PartitionServer, PartitionServerServer};
use strata_proto::partition::*;
use strata_types::error_detail::{to_status, ErrorDetail, Missing, NotOwner, RejectReason};
use strata_types::{keys, CHUNK_SIZE_BYTES};
use strata_types::{Epoch, RangeId};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

#[derive(Default)]
pub struct Store {
    pub buckets: BTreeMap<String, BucketMeta>,
    /// encoded object key -> (meta, bytes)
    pub objects: BTreeMap<Vec<u8>, (ObjectMeta, Vec<u8>)>,
    pub puts_committed: usize,
    pub puts_aborted: usize,
    pub largest_chunk_bytes: usize,
    /// upload id -> upload
    pub uploads: BTreeMap<String, FakeUpload>,
    pub uploads_created: u64,
}

pub struct FakeUpload {
    pub object_key: Vec<u8>,
    pub upload: UploadMeta,
    /// part number -> (meta, bytes)
    pub parts: BTreeMap<u32, (PartMeta, Vec<u8>)>,
}

const PART_SIZE_BYTES_MIN: u64 = 5 * 1024 * 1024;

/// Owned ranges as (low, high) encoded keys.
pub type Owned = Arc<Mutex<Vec<(Vec<u8>, Vec<u8>)>>>;

#[derive(Clone)]
pub struct FakePartition {
    pub store: Arc<Mutex<Store>>,
    pub owned: Owned,
}

impl FakePartition {
    fn owns(&self, key: &[u8]) -> Result<(), Status> {
        let owned = self.owned.lock().unwrap();
        if owned
            .iter()
            .any(|(low, high)| keys::range_contains(low, high, key))
        {
            Ok(())
        } else {
            Err(NotOwner {
                range_id: RangeId::new(0),
                epoch: Epoch::ZERO,
                owner_hint: None,
            }
            .into_status())
        }
    }

    /// The contiguous run of owned ranges from the one holding `from` (or, when `from` is
    /// empty, `fallback`): (start, end) with end empty = +infinity, like the real server's
    /// `run_from`.
    fn run_from(&self, from: &[u8], fallback: Vec<u8>) -> Result<(Vec<u8>, Vec<u8>), Status> {
        let from = if from.is_empty() {
            fallback
        } else {
            from.to_vec()
        };
        self.owns(&from)?;
        let owned = self.owned.lock().unwrap();
        let mut end = owned
            .iter()
            .find(|(low, high)| keys::range_contains(low, high, &from))
            .map(|(_, high)| high.clone())
            .unwrap_or_default();
        while !end.is_empty() {
            match owned.iter().find(|(low, _)| *low == end) {
                Some((_, high)) => end = high.clone(),
                None => break,
            }
        }
        Ok((from, end))
    }

    /// The bucket's objects whose encoded keys lie in `[start, end)` (end empty = +infinity).
    fn run_keys(&self, bucket: &str, start: &[u8], end: &[u8]) -> Vec<(String, ObjectMeta)> {
        let store = self.store.lock().unwrap();
        store
            .objects
            .iter()
            .filter(|(encoded, _)| in_run(encoded, start, end))
            .filter_map(|(encoded, (meta, _))| {
                let (b, k) = keys::decode_object_key(encoded)?;
                (b == bucket).then(|| (k.to_string(), meta.clone()))
            })
            .collect()
    }

    fn bucket_exists(&self, bucket: &str) -> Result<(), Status> {
        if self.store.lock().unwrap().buckets.contains_key(bucket) {
            Ok(())
        } else {
            Err(missing(Missing::Bucket, bucket))
        }
    }
}

impl FakePartition {
    /// The data chunks after the header, checked like the real server checks them.
    async fn receive<M>(
        &self,
        stream: &mut Streaming<M>,
        take_chunk: impl Fn(M) -> Option<Vec<u8>>,
        size_bytes: i64,
        content_md5: &str,
    ) -> Result<Vec<u8>, Status> {
        let mut data = Vec::new();
        loop {
            match stream.message().await {
                Ok(Some(message)) => {
                    let chunk = take_chunk(message)
                        .ok_or_else(|| Status::invalid_argument("unexpected message"))?;
                    let mut store = self.store.lock().unwrap();
                    store.largest_chunk_bytes = store.largest_chunk_bytes.max(chunk.len());
                    drop(store);
                    if chunk.len() > CHUNK_SIZE_BYTES {
                        return Err(Status::invalid_argument("chunk too large"));
                    }
                    data.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(status) => {
                    self.store.lock().unwrap().puts_aborted += 1;
                    return Err(status);
                }
            }
        }
        if size_bytes >= 0 && data.len() as i64 != size_bytes {
            self.store.lock().unwrap().puts_aborted += 1;
            return Err(rejected(RejectReason::IncompleteBody, "short body"));
        }
        if !content_md5.is_empty() {
            let expected = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&data));
            if expected != content_md5 {
                return Err(rejected(RejectReason::BadDigest, "Content-MD5 mismatch"));
            }
        }
        Ok(data)
    }
}

/// What the real partition server answers when the named thing does not exist.
fn missing(what: Missing, message: impl Into<String>) -> Status {
    let name = String::new();
    to_status(ErrorDetail::NotFound { what, name }, message)
}

/// What the real partition server answers when it refuses a request.
fn rejected(reason: RejectReason, message: &str) -> Status {
    to_status(ErrorDetail::Rejected { reason }, message)
}

fn no_such_upload() -> Status {
    missing(Missing::Upload, "the upload does not exist")
}

/// The upload `upload_id` of `bucket`/`key`, checking that this server owns the key.
fn upload_mut<'a>(
    store: &'a mut Store,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<&'a mut FakeUpload, Status> {
    let object_key = keys::object_key(bucket, key);
    store
        .uploads
        .get_mut(upload_id)
        .filter(|upload| upload.object_key == object_key)
        .ok_or_else(no_such_upload)
}

fn in_run(encoded: &[u8], start: &[u8], end: &[u8]) -> bool {
    encoded >= start && (end.is_empty() || encoded < end)
}

/// (covered_until, covered_to_end) of an answer for a run ending at `end`.
fn coverage(truncated: bool, end: &[u8]) -> (Vec<u8>, bool) {
    if truncated {
        (Vec::new(), false)
    } else {
        (end.to_vec(), end.is_empty())
    }
}

fn etag_of(bytes: &[u8]) -> String {
    format!("\"{}\"", hex::encode(Md5::digest(bytes)))
}

fn common_prefix(key: &str, prefix: &str, delimiter: &str) -> Option<String> {
    if delimiter.is_empty() {
        return None;
    }
    let rest = key.strip_prefix(prefix)?;
    let at = rest.find(delimiter)?;
    Some(format!("{prefix}{}", &rest[..at + delimiter.len()]))
}

type GetStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<GetObjectResponse, Status>> + Send>>;

#[tonic::async_trait]
impl PartitionServer for FakePartition {
    async fn create_bucket(
        &self,
        request: Request<CreateBucketRequest>,
    ) -> Result<Response<CreateBucketResponse>, Status> {
        let bucket = request
            .into_inner()
            .bucket
            .ok_or_else(|| Status::invalid_argument("no bucket"))?;
        self.owns(&keys::bucket_key(&bucket.name))?;
        let mut store = self.store.lock().unwrap();
        if let Some(existing) = store.buckets.get(&bucket.name) {
            return Ok(Response::new(CreateBucketResponse {
                created: false,
                bucket: Some(existing.clone()),
            }));
        }
        store.buckets.insert(bucket.name.clone(), bucket.clone());
        Ok(Response::new(CreateBucketResponse {
            created: true,
            bucket: Some(bucket),
        }))
    }

    async fn get_bucket(
        &self,
        request: Request<GetBucketRequest>,
    ) -> Result<Response<GetBucketResponse>, Status> {
        let name = request.into_inner().name;
        self.owns(&keys::bucket_key(&name))?;
        let bucket = self.store.lock().unwrap().buckets.get(&name).cloned();
        Ok(Response::new(GetBucketResponse {
            bucket,
            deleting: false,
        }))
    }

    async fn delete_bucket(
        &self,
        request: Request<DeleteBucketRequest>,
    ) -> Result<Response<DeleteBucketResponse>, Status> {
        let name = request.into_inner().name;
        self.owns(&keys::bucket_key(&name))?;
        let existed = self.store.lock().unwrap().buckets.remove(&name).is_some();
        Ok(Response::new(DeleteBucketResponse { existed }))
    }

    async fn list_buckets(
        &self,
        _: Request<ListBucketsRequest>,
    ) -> Result<Response<ListBucketsResponse>, Status> {
        let owned = self.owned.lock().unwrap().clone();
        let buckets = self
            .store
            .lock()
            .unwrap()
            .buckets
            .values()
            .filter(|b| {
                owned
                    .iter()
                    .any(|(l, h)| keys::range_contains(l, h, &keys::bucket_key(&b.name)))
            })
            .cloned()
            .collect();
        Ok(Response::new(ListBucketsResponse { buckets }))
    }

    async fn put_object(
        &self,
        request: Request<Streaming<PutObjectRequest>>,
    ) -> Result<Response<PutObjectResponse>, Status> {
        let mut stream = request.into_inner();
        let header = match stream.message().await? {
            Some(PutObjectRequest {
                part: Some(put_object_request::Part::Header(header)),
            }) => header,
            _ => return Err(Status::invalid_argument("first message must be the header")),
        };
        self.owns(&keys::object_key(&header.bucket, &header.key))?;
        self.bucket_exists(&header.bucket)?;
        let take_chunk = |message: PutObjectRequest| match message.part {
            Some(put_object_request::Part::Chunk(chunk)) => Some(chunk),
            _ => None,
        };
        let data = self
            .receive(
                &mut stream,
                take_chunk,
                header.size_bytes,
                &header.content_md5,
            )
            .await?;
        let mut meta = header.meta.unwrap_or_default();
        meta.size_bytes = data.len() as u64;
        meta.etag = etag_of(&data);
        meta.last_modified_ms = strata_util::now_ms();
        let mut store = self.store.lock().unwrap();
        store.objects.insert(
            keys::object_key(&header.bucket, &header.key),
            (meta.clone(), data),
        );
        store.puts_committed += 1;
        Ok(Response::new(PutObjectResponse { meta: Some(meta) }))
    }

    async fn head_object(
        &self,
        request: Request<HeadObjectRequest>,
    ) -> Result<Response<HeadObjectResponse>, Status> {
        let request = request.into_inner();
        let key = keys::object_key(&request.bucket, &request.key);
        self.owns(&key)?;
        let meta = self
            .store
            .lock()
            .unwrap()
            .objects
            .get(&key)
            .map(|(m, _)| m.clone());
        Ok(Response::new(HeadObjectResponse { meta }))
    }

    type GetObjectStream = GetStream;

    async fn get_object(
        &self,
        request: Request<GetObjectRequest>,
    ) -> Result<Response<GetStream>, Status> {
        let request = request.into_inner();
        let key = keys::object_key(&request.bucket, &request.key);
        self.owns(&key)?;
        let (meta, data) = self
            .store
            .lock()
            .unwrap()
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| missing(Missing::Key, &request.key))?;
        if !request.expected_etag.is_empty() && request.expected_etag != meta.etag {
            return Err(to_status(ErrorDetail::PreconditionFailed, "etag changed"));
        }
        let end = if request.range_end == 0 {
            data.len()
        } else {
            request.range_end as usize
        };
        let slice = data[request.range_start as usize..end].to_vec();
        let mut messages = vec![Ok(GetObjectResponse {
            part: Some(get_object_response::Part::Meta(meta)),
        })];
        for chunk in slice.chunks(CHUNK_SIZE_BYTES) {
            messages.push(Ok(GetObjectResponse {
                part: Some(get_object_response::Part::Chunk(chunk.to_vec())),
            }));
        }
        Ok(Response::new(Box::pin(futures::stream::iter(messages))))
    }

    async fn delete_object(
        &self,
        request: Request<DeleteObjectRequest>,
    ) -> Result<Response<DeleteObjectResponse>, Status> {
        let request = request.into_inner();
        let key = keys::object_key(&request.bucket, &request.key);
        self.owns(&key)?;
        let existed = self.store.lock().unwrap().objects.remove(&key).is_some();
        Ok(Response::new(DeleteObjectResponse {
            existed,
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        request: Request<CopyObjectRequest>,
    ) -> Result<Response<CopyObjectResponse>, Status> {
        let request = request.into_inner();
        let src = keys::object_key(&request.src_bucket, &request.src_key);
        let dst = keys::object_key(&request.dst_bucket, &request.dst_key);
        self.owns(&src)?;
        self.owns(&dst)?;
        let mut store = self.store.lock().unwrap();
        let (mut meta, data) = store
            .objects
            .get(&src)
            .cloned()
            .ok_or_else(|| missing(Missing::Key, &request.src_key))?;
        if request.replace {
            let replacement = request.replace_meta.unwrap_or_default();
            meta = ObjectMeta {
                size_bytes: meta.size_bytes,
                etag: meta.etag,
                ..replacement
            };
        }
        meta.last_modified_ms = strata_util::now_ms();
        store.objects.insert(dst, (meta.clone(), data));
        Ok(Response::new(CopyObjectResponse { meta: Some(meta) }))
    }

    async fn list_objects(
        &self,
        request: Request<ListObjectsRequest>,
    ) -> Result<Response<ListObjectsResponse>, Status> {
        let request = request.into_inner();
        let prefix_start = keys::object_key(&request.bucket, &request.prefix);
        let (start, end) = self.run_from(&request.from, prefix_start)?;
        let mut items = Vec::new();
        let mut truncated = false;
        let mut last_prefix: Option<String> = None;
        for (key, meta) in self.run_keys(&request.bucket, &start, &end) {
            if key.as_str() <= request.start_after.as_str() || !key.starts_with(&request.prefix) {
                continue;
            }
            let item = match common_prefix(&key, &request.prefix, &request.delimiter) {
                Some(p) if last_prefix.as_deref() == Some(p.as_str()) => continue,
                Some(p) => {
                    last_prefix = Some(p.clone());
                    ListItem {
                        entry: None,
                        common_prefix: p,
                    }
                }
                None => ListItem {
                    entry: Some(ListEntry {
                        key,
                        meta: Some(meta),
                    }),
                    common_prefix: String::new(),
                },
            };
            if items.len() == request.max_keys as usize {
                truncated = true;
                break;
            }
            items.push(item);
        }
        let (covered_until, covered_to_end) = coverage(truncated, &end);
        Ok(Response::new(ListObjectsResponse {
            items,
            truncated,
            covered_until,
            covered_to_end,
        }))
    }

    async fn count_objects(
        &self,
        request: Request<CountObjectsRequest>,
    ) -> Result<Response<CountObjectsResponse>, Status> {
        let request = request.into_inner();
        let bucket_start = keys::object_prefix(&request.bucket);
        let (start, end) = self.run_from(&request.from, bucket_start)?;
        let count =
            (self.run_keys(&request.bucket, &start, &end).len() as u64).min(request.limit.max(1));
        let (covered_until, covered_to_end) = coverage(false, &end);
        Ok(Response::new(CountObjectsResponse {
            count,
            covered_until,
            covered_to_end,
        }))
    }

    async fn create_multipart_upload(
        &self,
        request: Request<CreateMultipartUploadRequest>,
    ) -> Result<Response<CreateMultipartUploadResponse>, Status> {
        let request = request.into_inner();
        let object_key = keys::object_key(&request.bucket, &request.key);
        self.owns(&object_key)?;
        let mut store = self.store.lock().unwrap();
        store.uploads_created += 1;
        let upload_id = format!("upload{}", store.uploads_created);
        let upload = UploadMeta {
            upload_id: upload_id.clone(),
            initiated_ms: strata_util::now_ms(),
            meta: request.meta,
            ..Default::default()
        };
        store.uploads.insert(
            upload_id.clone(),
            FakeUpload {
                object_key,
                upload,
                parts: BTreeMap::new(),
            },
        );
        Ok(Response::new(CreateMultipartUploadResponse { upload_id }))
    }

    async fn upload_part(
        &self,
        request: Request<Streaming<UploadPartRequest>>,
    ) -> Result<Response<UploadPartResponse>, Status> {
        let mut stream = request.into_inner();
        let header = match stream.message().await? {
            Some(UploadPartRequest {
                part: Some(upload_part_request::Part::Header(header)),
            }) => header,
            _ => return Err(Status::invalid_argument("first message must be the header")),
        };
        self.owns(&keys::object_key(&header.bucket, &header.key))?;
        if !(1..=10_000).contains(&header.part_number) {
            return Err(rejected(
                RejectReason::InvalidArgument,
                "part numbers are 1 to 10000",
            ));
        }
        let exists = |store: &mut Store| {
            upload_mut(store, &header.bucket, &header.key, &header.upload_id).map(|_| ())
        };
        exists(&mut self.store.lock().unwrap())?;
        let take_chunk = |message: UploadPartRequest| match message.part {
            Some(upload_part_request::Part::Chunk(chunk)) => Some(chunk),
            _ => None,
        };
        let data = self
            .receive(
                &mut stream,
                take_chunk,
                header.size_bytes,
                &header.content_md5,
            )
            .await?;
        let part = PartMeta {
            part_number: header.part_number,
            etag: etag_of(&data),
            size_bytes: data.len() as u64,
            last_modified_ms: strata_util::now_ms(),
            chunks: Vec::new(),
            checksum: None,
        };
        let mut store = self.store.lock().unwrap();
        let upload = upload_mut(&mut store, &header.bucket, &header.key, &header.upload_id)?;
        upload
            .parts
            .insert(header.part_number, (part.clone(), data));
        Ok(Response::new(UploadPartResponse { part: Some(part) }))
    }

    async fn complete_multipart_upload(
        &self,
        request: Request<CompleteMultipartUploadRequest>,
    ) -> Result<Response<CompleteMultipartUploadResponse>, Status> {
        let request = request.into_inner();
        let object_key = keys::object_key(&request.bucket, &request.key);
        self.owns(&object_key)?;
        let mut store = self.store.lock().unwrap();
        let upload = upload_mut(
            &mut store,
            &request.bucket,
            &request.key,
            &request.upload_id,
        )?;
        if request.parts.is_empty() {
            return Err(rejected(
                RejectReason::InvalidRequest,
                "you must specify at least one part",
            ));
        }
        if request
            .parts
            .windows(2)
            .any(|pair| pair[0].part_number >= pair[1].part_number)
        {
            return Err(rejected(
                RejectReason::InvalidPartOrder,
                "the list of parts was not in ascending order",
            ));
        }
        let mut etag_md5 = Md5::new();
        let mut data = Vec::new();
        for (index, wanted) in request.parts.iter().enumerate() {
            let (part, bytes) = upload
                .parts
                .get(&wanted.part_number)
                .filter(|(part, _)| part.etag.trim_matches('"') == wanted.etag.trim_matches('"'))
                .ok_or_else(|| rejected(RejectReason::InvalidPart, "no such part or ETag"))?;
            if index + 1 < request.parts.len() && part.size_bytes < PART_SIZE_BYTES_MIN {
                return Err(rejected(
                    RejectReason::EntityTooSmall,
                    "a part other than the last is smaller than 5 MiB",
                ));
            }
            etag_md5.update(hex::decode(part.etag.trim_matches('"')).unwrap());
            data.extend_from_slice(bytes);
        }
        let mut meta = upload.upload.meta.clone().unwrap_or_default();
        meta.size_bytes = data.len() as u64;
        meta.etag = format!(
            "\"{}-{}\"",
            hex::encode(etag_md5.finalize()),
            request.parts.len()
        );
        meta.last_modified_ms = strata_util::now_ms();
        store.uploads.remove(&request.upload_id);
        store.objects.insert(object_key, (meta.clone(), data));
        Ok(Response::new(CompleteMultipartUploadResponse {
            meta: Some(meta),
        }))
    }

    async fn abort_multipart_upload(
        &self,
        request: Request<AbortMultipartUploadRequest>,
    ) -> Result<Response<AbortMultipartUploadResponse>, Status> {
        let request = request.into_inner();
        self.owns(&keys::object_key(&request.bucket, &request.key))?;
        let mut store = self.store.lock().unwrap();
        upload_mut(
            &mut store,
            &request.bucket,
            &request.key,
            &request.upload_id,
        )?;
        store.uploads.remove(&request.upload_id);
        Ok(Response::new(AbortMultipartUploadResponse {}))
    }

    async fn list_parts(
        &self,
        request: Request<ListPartsRequest>,
    ) -> Result<Response<ListPartsResponse>, Status> {
        let request = request.into_inner();
        self.owns(&keys::object_key(&request.bucket, &request.key))?;
        let mut store = self.store.lock().unwrap();
        let upload = upload_mut(
            &mut store,
            &request.bucket,
            &request.key,
            &request.upload_id,
        )?;
        let limit = request.max_parts.clamp(1, 1000) as usize;
        let mut parts: Vec<PartMeta> = upload
            .parts
            .range(request.part_number_marker.saturating_add(1)..)
            .map(|(_, (part, _))| part.clone())
            .take(limit + 1)
            .collect();
        let truncated = parts.len() > limit;
        parts.truncate(limit);
        Ok(Response::new(ListPartsResponse {
            upload: Some(upload.upload.clone()),
            parts,
            truncated,
        }))
    }

    // Bucket configurations and tags are proven against the real partition server (tests/);
    // the fakes only keep the contract compiling.
    async fn update_bucket(
        &self,
        _: Request<UpdateBucketRequest>,
    ) -> Result<Response<UpdateBucketResponse>, Status> {
        Err(Status::unimplemented("not faked"))
    }

    async fn put_object_tags(
        &self,
        _: Request<PutObjectTagsRequest>,
    ) -> Result<Response<PutObjectTagsResponse>, Status> {
        Err(Status::unimplemented("not faked"))
    }

    // Versions: the fakes keep one (current) version per key, so a version id marker skips
    // its key like an empty one does.
    async fn list_object_versions(
        &self,
        request: Request<ListObjectVersionsRequest>,
    ) -> Result<Response<ListObjectVersionsResponse>, Status> {
        let request = request.into_inner();
        let prefix_start = keys::object_key(&request.bucket, &request.prefix);
        let (start, end) = self.run_from(&request.from, prefix_start)?;
        let mut items: Vec<ListedVersion> = Vec::new();
        let mut truncated = false;
        let mut last_prefix: Option<String> = None;
        for (key, meta) in self.run_keys(&request.bucket, &start, &end) {
            if !key.starts_with(&request.prefix)
                || (!request.key_marker.is_empty() && key <= request.key_marker)
            {
                continue;
            }
            let common = common_prefix(&key, &request.prefix, &request.delimiter);
            let repeats = common.is_some() && common == last_prefix;
            if repeats {
                continue;
            }
            if items.len() == request.max_keys as usize {
                truncated = true;
                break;
            }
            match common {
                Some(common) => {
                    last_prefix = Some(common.clone());
                    if common > request.key_marker {
                        items.push(ListedVersion {
                            common_prefix: common,
                            ..Default::default()
                        });
                    }
                }
                None => items.push(ListedVersion {
                    key,
                    meta: Some(meta),
                    is_latest: true,
                    common_prefix: String::new(),
                }),
            }
        }
        let (covered_until, covered_to_end) = coverage(truncated, &end);
        Ok(Response::new(ListObjectVersionsResponse {
            items,
            truncated,
            covered_until,
            covered_to_end,
        }))
    }

    async fn list_multipart_uploads(
        &self,
        request: Request<ListMultipartUploadsRequest>,
    ) -> Result<Response<ListMultipartUploadsResponse>, Status> {
        let request = request.into_inner();
        let prefix_start = keys::object_key(&request.bucket, &request.prefix);
        let (start, end) = self.run_from(&request.from, prefix_start)?;
        let mut uploads: Vec<(String, UploadMeta)> = {
            let store = self.store.lock().unwrap();
            store
                .uploads
                .values()
                .filter_map(|upload| {
                    let (bucket, key) = keys::decode_object_key(&upload.object_key)?;
                    let encoded = keys::upload_key(bucket, key, &upload.upload.upload_id);
                    (bucket == request.bucket && in_run(&encoded, &start, &end))
                        .then(|| (key.to_string(), upload.upload.clone()))
                })
                .collect()
        };
        uploads.sort_by(|a, b| (&a.0, &a.1.upload_id).cmp(&(&b.0, &b.1.upload_id)));
        let mut items: Vec<ListedUpload> = Vec::new();
        let mut truncated = false;
        let mut last_prefix: Option<String> = None;
        for (key, upload) in uploads {
            let after_marker = request.key_marker.is_empty()
                || key > request.key_marker
                || (key == request.key_marker
                    && !request.upload_id_marker.is_empty()
                    && upload.upload_id > request.upload_id_marker);
            if !key.starts_with(&request.prefix) || !after_marker {
                continue;
            }
            let common = common_prefix(&key, &request.prefix, &request.delimiter);
            if common.is_some() && common == last_prefix {
                continue;
            }
            if items.len() == request.max_uploads as usize {
                truncated = true;
                break;
            }
            match common {
                Some(common) => {
                    last_prefix = Some(common.clone());
                    if common > request.key_marker {
                        items.push(ListedUpload {
                            common_prefix: common,
                            ..Default::default()
                        });
                    }
                }
                None => items.push(ListedUpload {
                    key,
                    upload: Some(upload),
                    common_prefix: String::new(),
                }),
            }
        }
        let (covered_until, covered_to_end) = coverage(truncated, &end);
        Ok(Response::new(ListMultipartUploadsResponse {
            items,
            truncated,
            covered_until,
            covered_to_end,
        }))
    }

    async fn get_status(
        &self,
        _: Request<PartitionStatusRequest>,
    ) -> Result<Response<PartitionStatusResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn prepare_reshape(
        &self,
        _: Request<PrepareReshapeRequest>,
    ) -> Result<Response<PrepareReshapeResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
}

/// Answers GetPartitionMap with queued maps, repeating the last one.
#[derive(Clone, Default)]
pub struct FakeManager {
    pub maps: Arc<Mutex<VecDeque<PartitionMap>>>,
    pub calls: Arc<Mutex<usize>>,
}

#[tonic::async_trait]
impl PartitionManager for FakeManager {
    async fn heartbeat(
        &self,
        _: Request<ServerHeartbeat>,
    ) -> Result<Response<ServerHeartbeatResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn get_partition_map(
        &self,
        _: Request<GetPartitionMapRequest>,
    ) -> Result<Response<PartitionMap>, Status> {
        *self.calls.lock().unwrap() += 1;
        let mut maps = self.maps.lock().unwrap();
        let map = if maps.len() > 1 {
            maps.pop_front()
        } else {
            maps.front().cloned()
        };
        map.map(Response::new)
            .ok_or_else(|| Status::unavailable("no map yet"))
    }

    async fn get_status(
        &self,
        _: Request<ManagerStatusRequest>,
    ) -> Result<Response<ManagerStatusResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
}

pub async fn serve_partition(fake: FakePartition, token: CancellationToken) -> SocketAddr {
    let (listener, addr) = strata_util::rpc::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let service = PartitionServerServer::new(fake)
        .max_decoding_message_size(strata_proto::GRPC_MESSAGE_SIZE_BYTES_MAX)
        .max_encoding_message_size(strata_proto::GRPC_MESSAGE_SIZE_BYTES_MAX);
    let router = strata_util::rpc::server().add_service(service);
    tokio::spawn(strata_util::rpc::serve(router, listener, token));
    addr
}

pub async fn serve_manager(fake: FakeManager, token: CancellationToken) -> SocketAddr {
    let (listener, addr) = strata_util::rpc::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let router = strata_util::rpc::server().add_service(PartitionManagerServer::new(fake));
    tokio::spawn(strata_util::rpc::serve(router, listener, token));
    addr
}

/// The location service: bucket name -> (owner, stamp), reservations idempotent per owner.
#[derive(Clone, Default)]
pub struct FakeLocation {
    pub names: Arc<Mutex<BTreeMap<String, strata_proto::location::BucketLocation>>>,
}

#[tonic::async_trait]
impl strata_proto::location::location_server::Location for FakeLocation {
    async fn reserve_bucket(
        &self,
        request: Request<strata_proto::location::ReserveBucketRequest>,
    ) -> Result<Response<strata_proto::location::ReserveBucketResponse>, Status> {
        let request = request.into_inner();
        let mut names = self.names.lock().unwrap();
        let location = names
            .entry(request.bucket.clone())
            .or_insert_with(|| strata_proto::location::BucketLocation {
                bucket: request.bucket.clone(),
                stamp: request.stamp.clone(),
                owner_access_key: request.owner_access_key.clone(),
                created_ms: strata_util::now_ms(),
            })
            .clone();
        Ok(Response::new(
            strata_proto::location::ReserveBucketResponse {
                reserved: location.owner_access_key == request.owner_access_key,
                location: Some(location),
            },
        ))
    }

    async fn lookup_bucket(
        &self,
        request: Request<strata_proto::location::LookupBucketRequest>,
    ) -> Result<Response<strata_proto::location::LookupBucketResponse>, Status> {
        let location = self
            .names
            .lock()
            .unwrap()
            .get(&request.into_inner().bucket)
            .cloned();
        Ok(Response::new(
            strata_proto::location::LookupBucketResponse { location },
        ))
    }

    async fn release_bucket(
        &self,
        request: Request<strata_proto::location::ReleaseBucketRequest>,
    ) -> Result<Response<strata_proto::location::ReleaseBucketResponse>, Status> {
        let request = request.into_inner();
        let mut names = self.names.lock().unwrap();
        let released = names
            .get(&request.bucket)
            .is_some_and(|l| l.owner_access_key == request.owner_access_key);
        if released {
            names.remove(&request.bucket);
        }
        Ok(Response::new(
            strata_proto::location::ReleaseBucketResponse { released },
        ))
    }

    async fn list_stamps(
        &self,
        _: Request<strata_proto::location::ListStampsRequest>,
    ) -> Result<Response<strata_proto::location::ListStampsResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
}

pub async fn serve_location(fake: FakeLocation, token: CancellationToken) -> SocketAddr {
    let (listener, addr) = strata_util::rpc::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let router = strata_util::rpc::server()
        .add_service(strata_proto::location::location_server::LocationServer::new(fake));
    tokio::spawn(strata_util::rpc::serve(router, listener, token));
    addr
}
