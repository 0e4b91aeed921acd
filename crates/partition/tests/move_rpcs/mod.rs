//! The partition server's calls as the bucket-move tests (tests/moves.rs) make them: stamps
//! (a stream layer and a partition server each, in process), S3-like writes into bucket `b`
//! and the mover's calls.

#![allow(dead_code)] // a helper module: not every helper is used by every test

use strata_proto::common::{BucketMeta, ObjectMeta, VersioningState};
use strata_proto::manager::RangeAssignment;
use strata_proto::partition::partition_server_client::PartitionServerClient;
use strata_proto::partition::*;
use strata_proto::record::IndexEntry;
use strata_types::error_detail::{from_status, ErrorDetail, RejectReason};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::common;

pub type Client = PartitionServerClient<strata_util::rpc::Channel>;

/// Bytes per data message, as the front-end and the mover send them.
pub const MESSAGE_BYTES: usize = 1 << 20;

/// One stamp: a stream layer and a partition server serving every range over gRPC.
pub struct Stamp {
    pub client: Client,
    _serving: DropGuard,
    _layer: common::StreamLayer,
}

/// A stamp whose server serves the whole key space, cut into two ranges at `split_at`.
pub async fn stamp(id: &str, split_at: Option<Vec<u8>>) -> Stamp {
    let layer = common::stream_layer(64 << 20).await;
    let state = common::partition_server(id, &layer);
    let lows: Vec<Vec<u8>> = std::iter::once(Vec::new()).chain(split_at).collect();
    let assignments = (0..lows.len())
        .map(|at| RangeAssignment {
            range_id: at as u64 + 1,
            low: lows[at].clone(),
            high: lows.get(at + 1).cloned().unwrap_or_default(),
            owner_id: id.into(),
            owner_addr: format!("{id}:1"),
            epoch: 1,
        })
        .collect();
    state.assign(assignments);
    for low in &lows {
        common::wait_for("the ranges to load", || {
            let loaded = state.range_for(low).is_ok();
            async move { loaded.then_some(()) }
        })
        .await;
    }
    let (listener, addr) = strata_testkit::loopback_listener().await;
    let token = CancellationToken::new();
    common::serve_state(state, listener, token.clone());
    Stamp {
        client: PartitionServerClient::new(strata_util::rpc::channel(&addr).unwrap()),
        _serving: token.drop_guard(),
        _layer: layer,
    }
}

pub fn detail<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> ErrorDetail {
    let status = result.expect_err("the call must be refused");
    from_status(&status).unwrap_or_else(|| panic!("no detail in {status:?}"))
}

pub fn rejected(reason: RejectReason) -> ErrorDetail {
    ErrorDetail::Rejected { reason }
}

pub const ENABLED: i32 = VersioningState::Enabled as i32;

pub async fn create_bucket(client: &mut Client, name: &str, versioning: i32) {
    let bucket = BucketMeta {
        name: name.into(),
        versioning,
        ..Default::default()
    };
    let created = client
        .create_bucket(CreateBucketRequest {
            bucket: Some(bucket),
            geo_replica: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(created.created);
}

pub async fn get_bucket(client: &mut Client, name: &str) -> Option<BucketMeta> {
    let request = GetBucketRequest {
        name: name.into(),
        lease: false,
    };
    client
        .get_bucket(request)
        .await
        .unwrap()
        .into_inner()
        .bucket
}

pub async fn put(client: &mut Client, key: &str, body: &[u8]) -> Result<ObjectMeta, tonic::Status> {
    let header = PutObjectHeader {
        bucket: "b".into(),
        key: key.into(),
        size_bytes: body.len() as i64,
        versioning: ENABLED,
        ..Default::default()
    };
    let mut messages = vec![PutObjectRequest {
        part: Some(put_object_request::Part::Header(header)),
    }];
    messages.extend(body.chunks(MESSAGE_BYTES).map(|data| PutObjectRequest {
        part: Some(put_object_request::Part::Chunk(data.to_vec())),
    }));
    let answer = client.put_object(futures::stream::iter(messages)).await?;
    Ok(answer.into_inner().meta.unwrap())
}

pub async fn get(
    client: &mut Client,
    key: &str,
    version_id: &str,
) -> Result<Vec<u8>, tonic::Status> {
    let request = GetObjectRequest {
        bucket: "b".into(),
        key: key.into(),
        version_id: version_id.into(),
        ..Default::default()
    };
    let mut stream = client.get_object(request).await?.into_inner();
    let mut body = Vec::new();
    while let Some(message) = stream.message().await? {
        if let Some(get_object_response::Part::Chunk(data)) = message.part {
            body.extend_from_slice(&data);
        }
    }
    Ok(body)
}

pub async fn delete(client: &mut Client, key: &str, version_id: &str) -> Result<(), tonic::Status> {
    let request = DeleteObjectRequest {
        bucket: "b".into(),
        key: key.into(),
        version_id: version_id.into(),
        versioning: ENABLED,
    };
    client.delete_object(request).await.map(|_| ())
}

pub async fn create_upload(client: &mut Client, key: &str) -> Result<String, tonic::Status> {
    let request = CreateMultipartUploadRequest {
        bucket: "b".into(),
        key: key.into(),
        ..Default::default()
    };
    Ok(client
        .create_multipart_upload(request)
        .await?
        .into_inner()
        .upload_id)
}

pub async fn upload_part(client: &mut Client, key: &str, upload_id: &str, body: &[u8]) {
    let header = UploadPartHeader {
        bucket: "b".into(),
        key: key.into(),
        upload_id: upload_id.into(),
        part_number: 1,
        size_bytes: body.len() as i64,
        ..Default::default()
    };
    let messages = vec![
        UploadPartRequest {
            part: Some(upload_part_request::Part::Header(header)),
        },
        UploadPartRequest {
            part: Some(upload_part_request::Part::Chunk(body.to_vec())),
        },
    ];
    client
        .upload_part(futures::stream::iter(messages))
        .await
        .unwrap();
}

/// Every page ScanRows answers for bucket `b`, `limit` rows each, following its paging rule.
pub async fn scan_pages(client: &mut Client, limit: u32) -> Vec<ScanRowsResponse> {
    let mut pages = Vec::new();
    let (mut start_after, mut start_inclusive) = (Vec::new(), false);
    for _ in 0..100 {
        let request = ScanRowsRequest {
            bucket: "b".into(),
            start_after,
            limit,
            start_inclusive,
        };
        let page = client.scan_rows(request).await.unwrap().into_inner();
        (start_after, start_inclusive) = (page.next_after.clone(), page.next_inclusive);
        pages.push(page);
        if start_after.is_empty() {
            return pages;
        }
    }
    panic!("ScanRows never ended");
}

pub async fn scan_all(client: &mut Client) -> Vec<IndexEntry> {
    let pages = scan_pages(client, 1_000).await;
    pages.into_iter().flat_map(|page| page.rows).collect()
}

pub async fn read_row(
    client: &mut Client,
    key: &[u8],
) -> Result<(IndexEntry, Vec<u8>), tonic::Status> {
    let request = ReadRowRequest {
        bucket: "b".into(),
        key: key.to_vec(),
    };
    let mut stream = client.read_row(request).await?.into_inner();
    let Some(read_row_response::Part::Row(row)) = stream.message().await?.and_then(|m| m.part)
    else {
        panic!("ReadRow must open with the row");
    };
    let mut data = Vec::new();
    while let Some(message) = stream.message().await? {
        match message.part {
            Some(read_row_response::Part::Data(bytes)) => data.extend_from_slice(&bytes),
            other => panic!("only data follows the row: {other:?}"),
        }
    }
    Ok((row, data))
}

pub async fn import_row(
    client: &mut Client,
    move_id: &str,
    row: IndexEntry,
    data: &[u8],
) -> Result<(), tonic::Status> {
    let header = ImportRowHeader {
        bucket: "b".into(),
        move_id: move_id.into(),
        row: Some(row),
        size_bytes: data.len() as u64,
    };
    let mut messages = vec![ImportRowRequest {
        part: Some(import_row_request::Part::Header(header)),
    }];
    messages.extend(data.chunks(MESSAGE_BYTES).map(|data| ImportRowRequest {
        part: Some(import_row_request::Part::Data(data.to_vec())),
    }));
    client
        .import_row(futures::stream::iter(messages))
        .await
        .map(|_| ())
}

pub async fn set_step(
    client: &mut Client,
    move_id: &str,
    step: MoveStep,
) -> Result<Option<BucketMeta>, tonic::Status> {
    let request = SetMoveStateRequest {
        bucket: "b".into(),
        move_id: move_id.into(),
        step: step as i32,
        fenced_until_ms: strata_util::now_ms() + 60_000,
        moved_to: "stamp-2".into(),
    };
    Ok(client.set_move_state(request).await?.into_inner().bucket)
}

pub async fn remove_rows(
    client: &mut Client,
    move_id: &str,
    keys: Vec<Vec<u8>>,
) -> Result<u32, tonic::Status> {
    let request = RemoveRowsRequest {
        bucket: "b".into(),
        move_id: move_id.into(),
        keys,
    };
    Ok(client.remove_rows(request).await?.into_inner().removed)
}
