//! Mutual TLS on the location service (issue 14), over real sockets: this test process holds a
//! location certificate of the deployment CA, and the service serves with it. Bucket names are
//! reserved and released by front-ends only, looked up by front-ends and the operator, Raft
//! messages taken only from location members; any other certificate of the deployment is
//! refused with PermissionDenied and changes nothing.

use std::time::Duration;
use strata_location::node::{start, LocationOptions};
use strata_proto::location::location_client::LocationClient;
use strata_proto::location::{
    BeginMoveRequest, EndMoveRequest, ListStampBucketsRequest, ListStampsRequest,
    LookupBucketRequest, ReleaseBucketRequest, ReportFillRequest, ReportStampRequest,
    ReserveBucketRequest, SetStampStateRequest,
};
use strata_proto::raft::raft_client::RaftClient;
use strata_proto::raft::RaftMessage;
use strata_types::error_detail::{from_status, ErrorDetail};
use strata_types::Role;
use strata_util::certs::Authority;
use strata_util::rpc::{self, Channel};
use strata_util::tls::{denied_role, Identity};
use tokio_util::sync::CancellationToken;

const STAMP: &str = "stamp-1";

fn identity_of(authority: &Authority, role: Role, node: &str) -> Identity {
    let issued = authority.issue(STAMP, role, node).expect("issue");
    authority.identity(&issued).expect("identity")
}

fn client(addr: &str, identity: &Identity) -> LocationClient<Channel> {
    let channel = rpc::channel_with(addr, Duration::from_secs(5), Some(identity)).expect("channel");
    LocationClient::new(channel)
}

fn assert_denied(status: tonic::Status, role: Role) {
    assert_eq!(denied_role(&status), Some(role), "{role}: {status:?}");
}

fn reserve(bucket: &str) -> ReserveBucketRequest {
    ReserveBucketRequest {
        bucket: bucket.into(),
        owner_access_key: "owner".into(),
        stamp: STAMP.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_reserved_by_front_ends_and_read_by_front_ends_and_the_operator() {
    let deployment = Authority::new(STAMP).expect("CA");
    let own = identity_of(&deployment, Role::Location, "location");
    rpc::install_identity(Some(own)).expect("install identity");
    let dir = tempfile::tempdir().expect("temp dir");
    let options = LocationOptions {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let token = CancellationToken::new();
    let location = start(&options, listener, token.clone())
        .await
        .expect("start location");
    let addr = location.addr.to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !location.takes_reservations() {
        assert!(
            std::time::Instant::now() < deadline,
            "the member never took reservations"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let frontend = identity_of(&deployment, Role::Frontend, "fe-1");
    let report = ReportStampRequest {
        stamp: STAMP.into(),
        region: "us-east-1".into(),
        endpoint: "http://fe-1:9000".into(),
    };
    client(&addr, &frontend)
        .report_stamp(report.clone())
        .await
        .expect("a front-end reports its stamp");
    let reserved = client(&addr, &frontend)
        .reserve_bucket(reserve("taken"))
        .await
        .expect("a front-end reserves")
        .into_inner();
    assert!(reserved.reserved);

    for role in [Role::PartitionServer, Role::ExtentNode, Role::Operator] {
        let identity = identity_of(&deployment, role, "not-a-front-end");
        let mut intruder = client(&addr, &identity);
        let status = intruder
            .reserve_bucket(reserve(&format!("forged-{role}")))
            .await
            .expect_err("reserve");
        assert_denied(status, role);
        let release = ReleaseBucketRequest {
            bucket: "taken".into(),
            owner_access_key: "owner".into(),
        };
        assert_denied(
            intruder.release_bucket(release).await.expect_err("release"),
            role,
        );
        let forged = ReportStampRequest {
            stamp: format!("forged-{role}"),
            ..report.clone()
        };
        assert_denied(
            intruder.report_stamp(forged).await.expect_err("report"),
            role,
        );
    }
    // Only a stream manager reports its stamp's fill.
    let fill = ReportFillRequest {
        stamp: STAMP.into(),
        capacity_bytes: 1_000,
        stored_bytes: 10,
    };
    let manager = identity_of(&deployment, Role::StreamManager, "sm-1");
    let reported = client(&addr, &manager)
        .report_fill(fill.clone())
        .await
        .expect("a stream manager reports fill")
        .into_inner();
    assert!(reported.changed);
    for role in [Role::Frontend, Role::PartitionServer, Role::Operator] {
        let identity = identity_of(&deployment, role, "not-a-stream-manager");
        let forged = ReportFillRequest {
            stored_bytes: 999,
            ..fill.clone()
        };
        let status = client(&addr, &identity)
            .report_fill(forged)
            .await
            .expect_err("fill");
        assert_denied(status, role);
    }
    for role in [
        Role::ExtentNode,
        Role::StreamManager,
        Role::PartitionManager,
    ] {
        let identity = identity_of(&deployment, role, "not-a-reader");
        let lookup = LookupBucketRequest {
            bucket: "taken".into(),
            applied_ok: false,
        };
        let mut intruder = client(&addr, &identity);
        assert_denied(
            intruder.lookup_bucket(lookup).await.expect_err("lookup"),
            role,
        );
        let list = ListStampsRequest::default();
        assert_denied(intruder.list_stamps(list).await.expect_err("list"), role);
    }

    // A partition server reads names and stamps (replication finds destinations on other
    // stamps), and reserves none.
    let partition = identity_of(&deployment, Role::PartitionServer, "s2-partition-1");
    let found = client(&addr, &partition)
        .lookup_bucket(LookupBucketRequest {
            bucket: "taken".into(),
            applied_ok: false,
        })
        .await
        .expect("a partition server looks a bucket up")
        .into_inner();
    assert!(found.location.is_some());
    client(&addr, &partition)
        .list_stamps(ListStampsRequest::default())
        .await
        .expect("a partition server lists stamps");

    // The operator reads: the name is still held, and no forged name was reserved.
    let operator = identity_of(&deployment, Role::Operator, "operator");
    for (bucket, held) in [("taken", true), ("forged-operator", false)] {
        let found = client(&addr, &operator)
            .lookup_bucket(LookupBucketRequest {
                bucket: bucket.into(),
                applied_ok: false,
            })
            .await
            .expect("the operator looks up")
            .into_inner();
        assert_eq!(found.location.is_some(), held, "{bucket}");
    }
    let stamps = client(&addr, &operator)
        .list_stamps(ListStampsRequest::default())
        .await
        .expect("the operator lists stamps")
        .into_inner()
        .stamps;
    let names: Vec<&str> = stamps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, [STAMP], "no forged stamp was registered");
    assert_eq!(stamps[0].stored_bytes, 10, "no forged fill was applied");

    // Only the operator moves buckets and opens or closes stamps; its move is answered with
    // the bucket's record (the move recorded), and a second move of the bucket is refused
    // with a reason while the first copies.
    let begin = |move_id: &str| BeginMoveRequest {
        bucket: "taken".into(),
        to: STAMP.into(),
        move_id: move_id.into(),
    };
    for role in [Role::Frontend, Role::PartitionServer, Role::StreamManager] {
        let identity = identity_of(&deployment, role, "not-the-operator");
        let mut intruder = client(&addr, &identity);
        assert_denied(
            intruder
                .begin_move(begin("m-forged"))
                .await
                .expect_err("move"),
            role,
        );
        let end = EndMoveRequest {
            bucket: "taken".into(),
            move_id: "m-forged".into(),
            complete: true,
            fence_ms: 0,
        };
        assert_denied(intruder.end_move(end).await.expect_err("end"), role);
        let close = SetStampStateRequest {
            stamp: STAMP.into(),
            state: "draining".into(),
        };
        assert_denied(
            intruder.set_stamp_state(close).await.expect_err("state"),
            role,
        );
        let list = ListStampBucketsRequest {
            stamp: STAMP.into(),
            limit: 10,
        };
        assert_denied(
            intruder.list_stamp_buckets(list).await.expect_err("list"),
            role,
        );
    }
    let mut operator_client = client(&addr, &operator);
    let homed = operator_client
        .list_stamp_buckets(ListStampBucketsRequest {
            stamp: STAMP.into(),
            limit: 10,
        })
        .await
        .expect("the operator lists a stamp's buckets")
        .into_inner();
    let names: Vec<&str> = homed.buckets.iter().map(|b| b.bucket.as_str()).collect();
    assert_eq!(names, ["taken"]);
    // The bucket is on STAMP already: moving it there is refused, with the reason.
    let refused = operator_client
        .begin_move(begin("m-1"))
        .await
        .expect("a refusal is an answer")
        .into_inner();
    assert!(!refused.accepted, "{refused:?}");
    assert!(refused.reason.contains("is on stamp"), "{refused:?}");
    assert_eq!(refused.location.expect("the bucket").stamp, STAMP);
    operator_client
        .set_stamp_state(SetStampStateRequest {
            stamp: STAMP.into(),
            state: "draining".into(),
        })
        .await
        .expect("the operator closes a stamp");
    let stamps = operator_client
        .list_stamps(ListStampsRequest::default())
        .await
        .expect("stamps")
        .into_inner()
        .stamps;
    assert_eq!(stamps[0].state, "draining");

    // Raft: only location members' messages get past the role check (a member's message of
    // another group is then refused by the group itself).
    let message = RaftMessage {
        cluster: "another-group".into(),
        data: b"{}".to_vec(),
    };
    for role in [Role::Frontend, Role::PartitionManager, Role::Operator] {
        let identity = identity_of(&deployment, role, "not-a-member");
        let mut raft = RaftClient::new(
            rpc::channel_with(&addr, Duration::from_secs(5), Some(&identity)).expect("channel"),
        );
        let status = raft
            .append_entries(message.clone())
            .await
            .expect_err("raft from a non-member must be refused");
        assert_denied(status, role);
    }
    let member = identity_of(&deployment, Role::Location, "location-2");
    let mut raft = RaftClient::new(
        rpc::channel_with(&addr, Duration::from_secs(5), Some(&member)).expect("channel"),
    );
    let status = raft
        .vote(message)
        .await
        .expect_err("another group's message is refused");
    assert!(
        matches!(from_status(&status), Some(ErrorDetail::Rejected { .. })),
        "{status:?}"
    );
    token.cancel();
    location.join().await;
}
