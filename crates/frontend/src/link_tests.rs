//! The link's handshake on real sockets: front-ends and partition servers to front-ends only,
//! and what each may reach ([`admits`]).

use super::*;
use axum::body::Body;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use strata_util::certs::{Authority, Issued};

fn pems(ca: &Authority, issued: &Issued) -> IdentityPems {
    IdentityPems {
        ca: ca.issued.cert_pem.as_bytes().to_vec(),
        cert: issued.cert_pem.as_bytes().to_vec(),
        key: issued.key_pem.as_bytes().to_vec(),
    }
}

fn holder(ca: &Authority, role: Role, node: &str) -> IdentityPems {
    pems(ca, &ca.issue("stamp-1", role, node).unwrap())
}

/// A link listener answering every request "linked" (one connection at a time).
async fn serve(server: IdentityPems) -> std::net::SocketAddr {
    let acceptor = acceptor(&server).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let Ok(tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let service = hyper::service::service_fn(|_request| async {
                Ok::<_, std::convert::Infallible>(hyper::Response::new(Body::from("linked")))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        }
    });
    addr
}

/// What a GET over the link answers: the body, or the error's text.
async fn get(client: IdentityPems, addr: std::net::SocketAddr) -> Result<String, String> {
    let connector = connector(&client, HttpConnector::new()).unwrap();
    let client = Client::builder(TokioExecutor::new()).build::<_, Body>(connector);
    let uri: http::Uri = format!("https://{addr}/bucket/key").parse().unwrap();
    let response = client.get(uri).await.map_err(|err| format!("{err:?}"))?;
    let body = axum::body::to_bytes(Body::new(response.into_body()), 1024)
        .await
        .map_err(|err| err.to_string())?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn front_ends_of_the_deployment_reach_each_other() {
    let ca = Authority::new("stamp-1").unwrap();
    let addr = serve(holder(&ca, Role::Frontend, "frontend-1")).await;
    let answer = get(holder(&ca, Role::Frontend, "s2-frontend-1"), addr).await;
    assert_eq!(answer.as_deref(), Ok("linked"));
}

#[tokio::test]
async fn partition_servers_of_the_deployment_complete_the_handshake() {
    let ca = Authority::new("stamp-1").unwrap();
    let addr = serve(holder(&ca, Role::Frontend, "frontend-1")).await;
    let answer = get(holder(&ca, Role::PartitionServer, "s2-partition-1"), addr).await;
    assert_eq!(answer.as_deref(), Ok("linked"));
}

#[test]
fn a_partition_server_reaches_the_replica_sink_only_and_a_front_end_never() {
    let ca = Authority::new("stamp-1").unwrap();
    let peer = |role, node: &str| {
        let issued = ca.issue("stamp-2", role, node).unwrap();
        let der = rustls_pki_types::pem::PemObject::from_pem_slice(issued.cert_pem.as_bytes());
        let der: CertificateDer<'static> = der.unwrap();
        let peer = strata_util::tls::peer_of_certificate(der.as_ref()).unwrap();
        LinkPeer(Arc::new(peer))
    };
    let partition = peer(Role::PartitionServer, "s2-partition-1");
    let frontend = peer(Role::Frontend, "s2-frontend");
    let apply = "/_strata/replica/apply";
    assert_eq!(admits(Some(&partition), apply), Admission::ReplicaSink);
    assert_eq!(admits(Some(&partition), "/bucket/key"), Admission::Refused);
    assert_eq!(admits(Some(&frontend), apply), Admission::Refused);
    assert_eq!(admits(Some(&frontend), "/bucket/key"), Admission::S3);
    for path in ["/_strata/replica/source", "/_strata/replica/watermark"] {
        assert_eq!(admits(Some(&frontend), path), Admission::ReplicaSink);
        assert_eq!(admits(Some(&partition), path), Admission::Refused);
        assert_eq!(admits(None, path), Admission::Refused);
    }
    assert_eq!(
        admits(Some(&frontend), "/_strata/replica/other"),
        Admission::Refused
    );
    // The public listener's requests carry no peer: never the sink.
    assert_eq!(admits(None, apply), Admission::Refused);
    assert_eq!(admits(None, "/bucket/key"), Admission::S3);
}

#[tokio::test]
async fn a_caller_that_is_neither_a_front_end_nor_a_partition_server_is_refused_in_the_handshake() {
    let ca = Authority::new("stamp-1").unwrap();
    let addr = serve(holder(&ca, Role::Frontend, "frontend-1")).await;
    for role in [Role::Operator, Role::ExtentNode, Role::Location] {
        let answer = get(holder(&ca, role, "someone"), addr).await;
        assert!(answer.is_err(), "{role} reached the link: {answer:?}");
    }
    // A front-end certificate of another CA is refused too.
    let other = Authority::new("stamp-1").unwrap();
    let foreign = pems(
        &ca,
        &other
            .issue("stamp-1", Role::Frontend, "frontend-9")
            .unwrap(),
    );
    assert!(get(foreign, addr).await.is_err());
}

#[tokio::test]
async fn a_server_that_is_not_a_front_end_is_refused_by_the_caller() {
    let ca = Authority::new("stamp-1").unwrap();
    let addr = serve(holder(&ca, Role::PartitionServer, "partition-1")).await;
    let answer = get(holder(&ca, Role::Frontend, "frontend-1"), addr).await;
    let err = answer.expect_err("a partition server's certificate was taken for a link");
    assert!(err.contains("ApplicationVerificationFailure"), "{err}");
}
