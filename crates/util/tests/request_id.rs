//! A request id set around a client call arrives at a second hop: client -> server A -> server
//! B, two tonic servers on real sockets, A calling B from inside its handler as a partition
//! server calls extent nodes.

use std::sync::{Arc, Mutex};
use strata_proto::location::location_client::LocationClient;
use strata_proto::location::location_server::{Location, LocationServer};
use strata_proto::location::*;
use strata_util::trace::{self, REQUEST_ID_HEADER};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

/// What one hop saw of the request id: in the call's metadata and as the scoped current id.
#[derive(Clone, Debug, Default, PartialEq)]
struct Seen {
    metadata: Option<String>,
    current: Option<String>,
}

/// A Location server that records what it saw on LookupBucket and, with `next`, calls the next
/// hop's LookupBucket before answering.
#[derive(Clone, Default)]
struct Hop {
    seen: Arc<Mutex<Vec<Seen>>>,
    next: Option<String>,
}

#[tonic::async_trait]
impl Location for Hop {
    async fn lookup_bucket(
        &self,
        request: Request<LookupBucketRequest>,
    ) -> Result<Response<LookupBucketResponse>, Status> {
        let seen = Seen {
            metadata: request
                .metadata()
                .get(REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            current: trace::current().map(|id| id.to_string()),
        };
        self.seen.lock().unwrap().push(seen);
        if let Some(next) = &self.next {
            let mut client = LocationClient::new(strata_util::rpc::channel(next).unwrap());
            client.lookup_bucket(request.into_inner()).await?;
        }
        Ok(Response::new(LookupBucketResponse { location: None }))
    }

    async fn reserve_bucket(
        &self,
        _: Request<ReserveBucketRequest>,
    ) -> Result<Response<ReserveBucketResponse>, Status> {
        Err(Status::unimplemented("test hop"))
    }

    async fn release_bucket(
        &self,
        _: Request<ReleaseBucketRequest>,
    ) -> Result<Response<ReleaseBucketResponse>, Status> {
        Err(Status::unimplemented("test hop"))
    }

    async fn list_stamps(
        &self,
        _: Request<ListStampsRequest>,
    ) -> Result<Response<ListStampsResponse>, Status> {
        Err(Status::unimplemented("test hop"))
    }

    async fn report_stamp(
        &self,
        _: Request<ReportStampRequest>,
    ) -> Result<Response<ReportStampResponse>, Status> {
        Err(Status::unimplemented("test hop"))
    }

    async fn list_owned_buckets(
        &self,
        _: Request<ListOwnedBucketsRequest>,
    ) -> Result<Response<ListOwnedBucketsResponse>, Status> {
        Err(Status::unimplemented("test hop"))
    }

    async fn report_fill(
        &self,
        _: Request<ReportFillRequest>,
    ) -> Result<Response<ReportFillResponse>, Status> {
        Err(Status::unimplemented("test hop"))
    }
    async fn begin_move(
        &self,
        _: Request<BeginMoveRequest>,
    ) -> Result<Response<MoveResponse>, Status> {
        Err(Status::unimplemented("test hop"))
    }

    async fn end_move(&self, _: Request<EndMoveRequest>) -> Result<Response<MoveResponse>, Status> {
        Err(Status::unimplemented("test hop"))
    }

    async fn set_stamp_state(
        &self,
        _: Request<SetStampStateRequest>,
    ) -> Result<Response<SetStampStateResponse>, Status> {
        Err(Status::unimplemented("test hop"))
    }

    async fn list_stamp_buckets(
        &self,
        _: Request<ListStampBucketsRequest>,
    ) -> Result<Response<ListStampBucketsResponse>, Status> {
        Err(Status::unimplemented("test hop"))
    }
}

async fn start(hop: Hop, token: &CancellationToken) -> String {
    let (listener, addr) = strata_util::rpc::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let router = strata_util::rpc::server().add_service(LocationServer::new(hop));
    tokio::spawn(strata_util::rpc::serve(router, listener, token.clone()));
    addr.to_string()
}

#[tokio::test]
async fn the_request_id_follows_the_call_through_two_hops() {
    let token = CancellationToken::new();
    let second = Hop::default();
    let second_addr = start(second.clone(), &token).await;
    let first = Hop {
        next: Some(second_addr),
        ..Hop::default()
    };
    let first_addr = start(first.clone(), &token).await;
    let mut client = LocationClient::new(strata_util::rpc::channel(&first_addr).unwrap());
    let lookup = || LookupBucketRequest {
        bucket: "b".into(),
        applied_ok: false,
    };

    trace::scope("REQ-1", client.lookup_bucket(lookup()))
        .await
        .unwrap();
    let expected = Seen {
        metadata: Some("REQ-1".into()),
        current: Some("REQ-1".into()),
    };
    assert_eq!(*first.seen.lock().unwrap(), vec![expected.clone()]);
    assert_eq!(*second.seen.lock().unwrap(), vec![expected]);

    // Outside a request nothing is sent and nothing is scoped.
    client.lookup_bucket(lookup()).await.unwrap();
    assert_eq!(first.seen.lock().unwrap()[1], Seen::default());
    assert_eq!(second.seen.lock().unwrap()[1], Seen::default());
    token.cancel();
}
