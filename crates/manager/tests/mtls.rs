//! Mutual TLS on the partition manager (issue 14), over real sockets: this test process holds
//! a partition-manager certificate of the deployment CA, and one manager serves with it. A
//! heartbeat (which asks for ranges to serve) is taken only from a partition server, and Raft
//! messages (which change the partition map) only from partition-manager members; anyone else
//! holding a deployment certificate is refused with PermissionDenied.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use strata_manager::{start, ManagerConfig};
use strata_proto::manager::partition_manager_client::PartitionManagerClient;
use strata_proto::manager::{GetPartitionMapRequest, ServerHeartbeat};
use strata_proto::raft::raft_client::RaftClient;
use strata_proto::raft::RaftMessage;
use strata_types::error_detail::{from_status, ErrorDetail};
use strata_types::Role;
use strata_util::certs::Authority;
use strata_util::rpc::{self, Channel};
use strata_util::tls::{denied_role, Identity};
use tokio::net::TcpListener;
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

fn beat(server_id: &str) -> ServerHeartbeat {
    ServerHeartbeat {
        server_id: server_id.into(),
        addr: "127.0.0.1:1".into(),
        ..Default::default()
    }
}

fn assert_denied(status: tonic::Status, role: Role) {
    assert_eq!(denied_role(&status), Some(role), "{role}: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_only_from_partition_servers_and_raft_only_from_members() {
    let deployment = Authority::new(STAMP).expect("CA");
    let own = identity_of(&deployment, Role::PartitionManager, "pm-under-test");
    rpc::install_identity(Some(own)).expect("install identity");
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let members = BTreeMap::from([(1, addr.clone())]);
    let config = ManagerConfig::new(1, members, dir.path().join("member-1"));
    let token = CancellationToken::new();
    let _manager = start(config, listener, token.clone())
        .await
        .expect("start manager");

    // A partition server is given the initial range once the group has elected itself.
    let server = identity_of(&deployment, Role::PartitionServer, "ps-1");
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
    loop {
        let answer = PartitionManagerClient::new(channel(&addr, &server))
            .heartbeat(beat("ps-1"))
            .await;
        if answer.is_ok_and(|a| !a.into_inner().assignments.is_empty()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the partition server got no range"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Any other role is refused.
    for role in [Role::Frontend, Role::Operator, Role::ExtentNode] {
        let identity = identity_of(&deployment, role, "fake-server");
        let status = PartitionManagerClient::new(channel(&addr, &identity))
            .heartbeat(beat("fake-server"))
            .await
            .expect_err("a heartbeat from a non-partition-server must be refused");
        assert_denied(status, role);
    }

    // The map is read by those who route by it and the operator, by no one else.
    for role in [Role::ExtentNode, Role::StreamManager, Role::Location] {
        let identity = identity_of(&deployment, role, "not-a-router");
        let status = PartitionManagerClient::new(channel(&addr, &identity))
            .get_partition_map(GetPartitionMapRequest::default())
            .await
            .expect_err("a wrong role must not read the map");
        assert_denied(status, role);
    }
    let frontend = identity_of(&deployment, Role::Frontend, "fe-1");
    let map = PartitionManagerClient::new(channel(&addr, &frontend))
        .get_partition_map(GetPartitionMapRequest::default())
        .await
        .expect("a front-end reads the map")
        .into_inner();
    assert!(!map.ranges.is_empty(), "{map:?}");

    // Raft: non-members are refused before their message is read; a member's message gets
    // past the role check to the group's own checks (here: another group's name).
    let message = RaftMessage {
        cluster: "another-group".into(),
        data: b"{}".to_vec(),
    };
    for role in [Role::StreamManager, Role::PartitionServer, Role::Operator] {
        let identity = identity_of(&deployment, role, "not-a-member");
        let status = RaftClient::new(channel(&addr, &identity))
            .append_entries(message.clone())
            .await
            .expect_err("raft from a non-member must be refused");
        assert_denied(status, role);
    }
    let member = identity_of(&deployment, Role::PartitionManager, "pm-2");
    let status = RaftClient::new(channel(&addr, &member))
        .vote(message)
        .await
        .expect_err("a message of another group is refused");
    assert!(
        matches!(from_status(&status), Some(ErrorDetail::Rejected { .. })),
        "{status:?}"
    );
    token.cancel();
}
