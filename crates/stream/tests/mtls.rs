//! Mutual TLS on the extent node (issue 14), over real sockets: this test process holds an
//! extent-node certificate of the deployment CA (its servers require client certificates of
//! that CA), and each test dials the node with another identity: none, another CA's, the
//! right role's, a wrong role's. A refused call must also leave the replica untouched.

use std::sync::OnceLock;
use std::time::Duration;
use strata_proto::stream::extent_node_client::ExtentNodeClient;
use strata_proto::stream::{AppendRequest, CreateExtentRequest, ExtentInfoRequest, ReadRequest};
use strata_stream::{start_extent_node, ExtentNodeConfig, RunningExtentNode};
use strata_types::error_detail::from_status;
use strata_types::{ExtentId, Role};
use strata_util::certs::Authority;
use strata_util::rpc::{self, Channel};
use strata_util::tls::{denied_role, Identity};
use tokio_util::sync::CancellationToken;

const STAMP: &str = "stamp-1";

/// The deployment CA, made once per test process.
fn deployment() -> &'static Authority {
    static AUTHORITY: OnceLock<Authority> = OnceLock::new();
    AUTHORITY.get_or_init(|| Authority::new(STAMP).expect("make CA"))
}

fn identity_of(authority: &Authority, role: Role, node: &str) -> Identity {
    let issued = authority.issue(STAMP, role, node).expect("issue");
    deployment().identity(&issued).expect("identity")
}

/// An extent node serving mutual TLS as the process's extent-node identity.
async fn start_node() -> (RunningExtentNode, CancellationToken, tempfile::TempDir) {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let own = identity_of(deployment(), Role::ExtentNode, "en-under-test");
        rpc::install_identity(Some(own)).expect("install identity");
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let token = CancellationToken::new();
    let config = ExtentNodeConfig {
        data_dir: dir.path().to_path_buf(),
        rack: "r1".into(),
        node_id: None,
        stream_manager_addrs: vec![],
        heartbeat_interval_ms: 1_000,
        advertise_addr: None,
        capacity_bytes: 0,
    };
    let node = start_extent_node(config, listener, token.clone())
        .await
        .expect("start node");
    (node, token, dir)
}

fn client(node: &RunningExtentNode, identity: Option<&Identity>) -> ExtentNodeClient<Channel> {
    let channel = rpc::channel_with(&node.addr, Duration::from_secs(5), identity).expect("channel");
    ExtentNodeClient::new(channel)
}

async fn create(
    client: &mut ExtentNodeClient<Channel>,
    extent_id: u64,
) -> Result<(), tonic::Status> {
    client
        .create_extent(CreateExtentRequest { extent_id })
        .await
        .map(|_| ())
}

async fn append(
    client: &mut ExtentNodeClient<Channel>,
    extent_id: u64,
    payload: &[u8],
) -> Result<u64, tonic::Status> {
    let request = AppendRequest {
        extent_id,
        payload: payload.to_vec(),
        secondary_addrs: vec![],
    };
    Ok(client.append(request).await?.into_inner().end_offset)
}

/// A refusal made by the TLS handshake: the transport's status, no Strata detail.
fn assert_refused_by_handshake(result: Result<(), tonic::Status>) {
    let status = result.expect_err("the handshake must refuse the caller");
    assert_eq!(
        from_status(&status),
        None,
        "not a service's verdict: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_client_is_refused_by_a_tls_server() {
    let (node, token, _dir) = start_node().await;
    assert_refused_by_handshake(create(&mut client(&node, None), 1).await);
    assert!(
        node.store.state(ExtentId::new(1)).is_err(),
        "nothing created"
    );
    token.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_another_ca_is_refused() {
    let (node, token, _dir) = start_node().await;
    // It trusts the deployment CA (so the client side is satisfied) but presents a
    // partition-server certificate made by a CA of its own.
    let foreign = Authority::new(STAMP).expect("foreign CA");
    let issued = foreign
        .issue(STAMP, Role::PartitionServer, "intruder")
        .expect("issue");
    let intruder = deployment().identity(&issued).expect("identity");
    assert_refused_by_handshake(create(&mut client(&node, Some(&intruder)), 2).await);
    assert!(
        node.store.state(ExtentId::new(2)).is_err(),
        "nothing created"
    );
    token.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_right_role_client_is_served() {
    let (node, token, _dir) = start_node().await;
    for (role, extent_id) in [(Role::PartitionServer, 3), (Role::Frontend, 4)] {
        let identity = identity_of(deployment(), role, "writer");
        let mut writer = client(&node, Some(&identity));
        create(&mut writer, extent_id).await.expect("create");
        let end = append(&mut writer, extent_id, b"hello over mtls")
            .await
            .expect("append");
        let state = node.store.state(ExtentId::new(extent_id)).expect("state");
        assert_eq!(state.length, end, "{role}: the record is stored");
        assert!(end > 0);
    }
    token.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_role_client_is_refused_on_append() {
    let (node, token, _dir) = start_node().await;
    let writer_identity = identity_of(deployment(), Role::PartitionServer, "ps-1");
    create(&mut client(&node, Some(&writer_identity)), 5)
        .await
        .expect("create");
    let created = node.store.state(ExtentId::new(5)).expect("state").length;
    for role in [Role::Operator, Role::Location, Role::PartitionManager] {
        let identity = identity_of(deployment(), role, "not-a-writer");
        let status = append(&mut client(&node, Some(&identity)), 5, b"forged")
            .await
            .expect_err("a wrong role must be refused");
        assert_eq!(denied_role(&status), Some(role), "{status:?}");
    }
    let state = node.store.state(ExtentId::new(5)).expect("state");
    assert_eq!(state.length, created, "no forged record was stored");
    token.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_stamps_node_is_refused_whatever_its_role() {
    let (node, token, _dir) = start_node().await;
    let writer = identity_of(deployment(), Role::PartitionServer, "ps-1");
    create(&mut client(&node, Some(&writer)), 7)
        .await
        .expect("create");
    let created = node.store.state(ExtentId::new(7)).expect("state").length;
    // Same CA, the right role, but stamp-2's certificate: one stamp's nodes never write to,
    // read from or fence another stamp's replicas.
    let foreign = deployment()
        .issue("stamp-2", Role::PartitionServer, "s2-partition-1")
        .expect("issue");
    let foreign = deployment().identity(&foreign).expect("identity");
    let status = append(&mut client(&node, Some(&foreign)), 7, b"forged")
        .await
        .expect_err("another stamp's partition server must be refused");
    assert_eq!(
        denied_role(&status),
        Some(Role::PartitionServer),
        "{status:?}"
    );
    assert!(status.message().contains("stamp-2"), "{status:?}");
    let state = node.store.state(ExtentId::new(7)).expect("state");
    assert_eq!(state.length, created, "no forged record was stored");
    token.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_fencing_only_from_the_roles_that_touch_replicas() {
    let (node, token, _dir) = start_node().await;
    let writer = identity_of(deployment(), Role::PartitionServer, "ps-1");
    create(&mut client(&node, Some(&writer)), 6)
        .await
        .expect("create");
    append(&mut client(&node, Some(&writer)), 6, b"secret object bytes")
        .await
        .expect("append");
    let read = ReadRequest {
        extent_id: 6,
        offset: strata_stream::extent::FILE_HEADER_LEN,
        max_records: 16,
        max_bytes: 1 << 20,
    };
    let fence = ExtentInfoRequest {
        extent_id: 6,
        fence: true,
    };
    for role in [Role::Operator, Role::Location, Role::PartitionManager] {
        let identity = identity_of(deployment(), role, "not-a-reader");
        let status = client(&node, Some(&identity))
            .read(read)
            .await
            .expect_err("a wrong role must not read object bytes");
        assert_eq!(denied_role(&status), Some(role), "{status:?}");
        let status = client(&node, Some(&identity))
            .get_extent_info(fence)
            .await
            .expect_err("a wrong role must not fence a replica");
        assert_eq!(denied_role(&status), Some(role), "{status:?}");
    }
    // Still open for appends (nobody fenced it), and readable by a reader.
    let end = append(&mut client(&node, Some(&writer)), 6, b"more")
        .await
        .expect("the replica was not fenced");
    let batch = client(&node, Some(&writer))
        .read(read)
        .await
        .expect("a partition server reads")
        .into_inner();
    assert_eq!(batch.records.len(), 2);
    assert_eq!(batch.records[0].payload, b"secret object bytes");
    assert_eq!(batch.next_offset, end);
    token.cancel();
}
