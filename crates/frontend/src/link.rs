//! The link between stamps: front-ends forward requests to other stamps' front-ends over the
//! deployment's mutual TLS, not over the public S3 port, and partition servers send replicated
//! versions to their destination stamp over it (`replica_sink.rs`). A front-end with an mTLS
//! identity and `--link-listen` serves the same S3 service on a second listener ([`acceptor`])
//! that takes only callers holding a front-end's or a partition server's certificate of the
//! deployment CA; its forwarder reaches other stamps' links with its own certificate
//! ([`connector`], `strata_util::link`) and talks only to a server whose certificate names a
//! front-end.
//!
//! Invariant: a link connection is established only between a holder of a front-end
//! certificate (the server) and a holder of a front-end's or partition server's certificate,
//! all signed by the deployment CA; any other certificate fails the handshake, on either side,
//! before a byte of a request is read or sent. A partition server's requests reach only the
//! replica sink ([`admits`]), a front-end's only the S3 service. A forwarded request still
//! carries its client's signature, which the home checks: the link adds a hop's identity, it
//! takes away nothing of the client's.

use anyhow::Context as _;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use std::sync::Arc;
use strata_types::Role;
use strata_util::link::{chain_and_key, names_one_of, roots};
use strata_util::tls::IdentityPems;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

pub use strata_util::link::{connector, LinkConnector, LINK_SCHEME};

use crate::connections::LinkPeer;

/// The roles a link listener completes a handshake with.
pub const LINK_CLIENT_ROLES: [Role; 2] = [Role::Frontend, Role::PartitionServer];
/// The paths of the replica sink (`replica_sink.rs`), for partition servers only.
pub const REPLICA_PATH_PREFIX: &str = "/_strata/replica/";

/// The acceptor of the link listener: TLS with this front-end's certificate, requiring a
/// client certificate that chains to the CA and names a front-end or a partition server.
pub fn acceptor(pems: &IdentityPems) -> anyhow::Result<TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = WebPkiClientVerifier::builder_with_provider(roots(pems)?, provider.clone())
        .build()
        .context("the link's client verifier")?;
    let verifier = Arc::new(LinkClients { inner });
    let (chain, key) = chain_and_key(&pems.cert, &pems.key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("the link's certificate and key")?;
    // The S3 service is served over HTTP/1.1 (connections.rs).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// What a link caller may reach: the replica sink's apply path is a partition server's, and a
/// partition server reaches nothing else; its source and watermark paths are front-ends'; a
/// request without a [`LinkPeer`] came in on the public listener and is judged by the S3
/// service alone.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Served by the S3 service (and its forwarder).
    S3,
    /// Served by the replica sink.
    ReplicaSink,
    /// Refused with 403.
    Refused,
}

pub fn admits(peer: Option<&LinkPeer>, path: &str) -> Admission {
    use strata_proto::replica_link::{APPLY_PATH, SOURCE_PATH, WATERMARK_PATH};
    let to_sink = path.starts_with(REPLICA_PATH_PREFIX);
    match peer.map(|p| p.0.role) {
        Some(Role::PartitionServer) if path == APPLY_PATH => Admission::ReplicaSink,
        Some(Role::PartitionServer) => Admission::Refused,
        // A front-end registers sources and reads watermarks; it never delivers replicas.
        Some(Role::Frontend) if path == SOURCE_PATH || path == WATERMARK_PATH => {
            Admission::ReplicaSink
        }
        _ if to_sink => Admission::Refused,
        _ => Admission::S3,
    }
}

/// The CA's client verification, then: the holder is a front-end or a partition server.
#[derive(Debug)]
struct LinkClients {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for LinkClients {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        names_one_of(end_entity, &LINK_CLIENT_ROLES)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
#[path = "link_tests.rs"]
mod tests;
