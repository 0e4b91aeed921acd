//! Mutual TLS on the stream manager (issue 14), over real sockets: this test process holds a
//! stream-manager certificate of the deployment CA, and one stream manager serves with it. A
//! heartbeat (which registers its sender as a home for replicas) is taken only from an extent
//! node, and Raft messages only from stream-manager members; anyone else holding a deployment
//! certificate is refused with PermissionDenied and changes nothing.

use std::time::{Duration, Instant};
use strata_proto::common::NodeAddr;
use strata_proto::raft::raft_client::RaftClient;
use strata_proto::raft::RaftMessage;
use strata_proto::stream::stream_manager_client::StreamManagerClient;
use strata_proto::stream::{
    CreateStreamRequest, ListStreamsRequest, NodeHeartbeat, ReportBadReplicaRequest,
    StreamStatusRequest,
};
use strata_stream::{start_stream_manager, ManagerSettings, StreamManagerConfig};
use strata_types::error_detail::{from_status, ErrorDetail};
use strata_types::Role;
use strata_util::certs::Authority;
use strata_util::rpc::{self, Channel};
use strata_util::tls::{denied_role, Identity};
use tokio_util::sync::CancellationToken;

const STAMP: &str = "stamp-1";
const WAIT_MS: u64 = 20_000;

fn identity_of(authority: &Authority, role: Role, node: &str) -> Identity {
    let issued = authority.issue(STAMP, role, node).expect("issue");
    authority.identity(&issued).expect("identity")
}

fn channel(addr: &str, identity: &Identity) -> Channel {
    rpc::channel_with(addr, Duration::from_secs(5), Some(identity)).expect("channel")
}

fn heartbeat_of(node_id: &str) -> NodeHeartbeat {
    NodeHeartbeat {
        node: Some(NodeAddr {
            node_id: node_id.into(),
            addr: "127.0.0.1:1".into(),
            rack: "r1".into(),
        }),
        ..Default::default()
    }
}

/// The node ids the manager lists, asked as the operator.
async fn registered(addr: &str, operator: &Identity) -> Vec<String> {
    try_registered(addr, operator).await.expect("status")
}

/// As `registered`, but a refusal (a manager not yet leader answers Unavailable) is returned.
async fn try_registered(addr: &str, operator: &Identity) -> Result<Vec<String>, tonic::Status> {
    let status = StreamManagerClient::new(channel(addr, operator))
        .get_status(StreamStatusRequest::default())
        .await?
        .into_inner();
    Ok(status
        .nodes
        .into_iter()
        .filter_map(|n| n.node.map(|node| node.node_id))
        .collect())
}

fn assert_denied(status: tonic::Status, role: Role) {
    assert_eq!(denied_role(&status), Some(role), "{role}: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_only_from_extent_nodes_and_raft_only_from_members() {
    let deployment = Authority::new(STAMP).expect("CA");
    let own = identity_of(&deployment, Role::StreamManager, "sm-under-test");
    rpc::install_identity(Some(own)).expect("install identity");
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let token = CancellationToken::new();
    let config = StreamManagerConfig::single(dir.path(), &addr, ManagerSettings::default());
    let manager = start_stream_manager(config, listener, token.clone())
        .await
        .expect("start manager");
    let operator = identity_of(&deployment, Role::Operator, "operator");

    // An extent node registers (once the one-member group has elected itself: until then the
    // status call may answer "not leader", which is waited out like a refused heartbeat).
    let extent_node = identity_of(&deployment, Role::ExtentNode, "en-1");
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
    loop {
        let mut client = StreamManagerClient::new(channel(&manager.addr, &extent_node));
        if client.heartbeat(heartbeat_of("en-1")).await.is_ok()
            && try_registered(&manager.addr, &operator).await.ok() == Some(vec!["en-1".into()])
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the extent node never registered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Any other role is refused, and registers nothing.
    for role in [Role::PartitionServer, Role::Frontend, Role::Operator] {
        let identity = identity_of(&deployment, role, "fake-node");
        let status = StreamManagerClient::new(channel(&manager.addr, &identity))
            .heartbeat(heartbeat_of("fake-node"))
            .await
            .expect_err("a heartbeat from a non-extent-node must be refused");
        assert_denied(status, role);
    }
    assert_eq!(registered(&manager.addr, &operator).await, ["en-1"]);

    // Streams are created, listed and changed by partition servers only; bad-replica reports
    // come from those who read replicas. Refused calls change nothing.
    for role in [Role::Frontend, Role::Operator, Role::ExtentNode] {
        let identity = identity_of(&deployment, role, "not-a-writer");
        let mut client = StreamManagerClient::new(channel(&manager.addr, &identity));
        let create = CreateStreamRequest {
            name: format!("forged-by-{role}"),
            extent_ids: vec![],
        };
        assert_denied(
            client.create_stream(create).await.expect_err("create"),
            role,
        );
        let list = ListStreamsRequest::default();
        assert_denied(client.list_streams(list).await.expect_err("list"), role);
    }
    for role in [Role::Operator, Role::Location] {
        let identity = identity_of(&deployment, role, "not-a-reader");
        let report = ReportBadReplicaRequest {
            extent_id: 1,
            node_id: "en-1".into(),
            offset: 0,
        };
        let status = StreamManagerClient::new(channel(&manager.addr, &identity))
            .report_bad_replica(report)
            .await
            .expect_err("a report from a non-reader must be refused");
        assert_denied(status, role);
    }
    let server = identity_of(&deployment, Role::PartitionServer, "ps-1");
    let names = StreamManagerClient::new(channel(&manager.addr, &server))
        .list_streams(ListStreamsRequest::default())
        .await
        .expect("a partition server lists streams")
        .into_inner()
        .names;
    assert!(names.iter().all(|n| !n.starts_with("forged")), "{names:?}");

    // Raft: a non-member is refused before its message is read; a member's (undecodable)
    // message gets past the role check to the group's own checks.
    let message = RaftMessage {
        cluster: "any".into(),
        data: b"{}".to_vec(),
    };
    for role in [
        Role::PartitionManager,
        Role::PartitionServer,
        Role::ExtentNode,
    ] {
        let identity = identity_of(&deployment, role, "not-a-member");
        let status = RaftClient::new(channel(&manager.addr, &identity))
            .append_entries(message.clone())
            .await
            .expect_err("raft from a non-member must be refused");
        assert_denied(status, role);
    }
    let member = identity_of(&deployment, Role::StreamManager, "sm-2");
    let status = RaftClient::new(channel(&manager.addr, &member))
        .vote(message)
        .await
        .expect_err("a message of another group is refused");
    assert!(
        matches!(from_status(&status), Some(ErrorDetail::Rejected { .. })),
        "{status:?}"
    );
    token.cancel();
}
