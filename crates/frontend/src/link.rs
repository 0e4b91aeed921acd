//! The link between stamps: front-ends forward requests to other stamps' front-ends over the
//! deployment's mutual TLS, not over the public S3 port. A front-end with an mTLS identity and
//! `--link-listen` serves the same S3 service on a second listener ([`acceptor`]) that takes
//! only callers holding a front-end certificate of the deployment CA; its forwarder reaches
//! other stamps' links with its own certificate ([`connector`]) and talks only to a server
//! whose certificate names a front-end.
//!
//! Invariant: a link connection is established only between two holders of front-end
//! certificates signed by the deployment CA; any other certificate fails the handshake, on
//! either side, before a byte of a request is read or sent. The forwarded request still
//! carries its client's signature, which the home checks: the link adds a hop's identity, it
//! takes away nothing of the client's.

use anyhow::Context as _;
use hyper_rustls::FixedServerNameResolver;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use std::sync::Arc;
use strata_types::Role;
use strata_util::tls::{peer_of_certificate, IdentityPems, SERVER_NAME};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

/// The only role on either end of a link connection.
pub const LINK_ROLE: Role = Role::Frontend;
/// The scheme of a link endpoint as a stamp reports it (`https://host:port`).
pub const LINK_SCHEME: &str = "https://";

/// The forwarder's connector to other stamps' links.
pub type LinkConnector = hyper_rustls::HttpsConnector<HttpConnector>;

/// The acceptor of the link listener: TLS with this front-end's certificate, requiring a
/// client certificate that chains to the CA and names a front-end.
pub fn acceptor(pems: &IdentityPems) -> anyhow::Result<TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = WebPkiClientVerifier::builder_with_provider(roots(pems)?, provider.clone())
        .build()
        .context("the link's client verifier")?;
    let verifier = Arc::new(FrontendClients { inner });
    let (chain, key) = own_certificate(pems)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("the link's certificate and key")?;
    // The S3 service is served over HTTP/1.1 (connections.rs).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The connector to other stamps' links: presents this front-end's certificate and accepts
/// only a server certificate that chains to the CA, carries [`SERVER_NAME`] and names a
/// front-end (the URL's host is an address, never what is verified).
pub fn connector(pems: &IdentityPems, http: HttpConnector) -> anyhow::Result<LinkConnector> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = WebPkiServerVerifier::builder_with_provider(roots(pems)?, provider.clone())
        .build()
        .context("the link's server verifier")?;
    let (chain, key) = own_certificate(pems)?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(FrontendServers { inner }))
        .with_client_auth_cert(chain, key)
        .context("the link's certificate and key")?;
    let mut http = http;
    // The connector below takes https:// URLs; the TCP connector under it must not refuse them.
    http.enforce_http(false);
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .with_server_name_resolver(FixedServerNameResolver::new(server_name()?))
        .enable_http1()
        .wrap_connector(http))
}

/// The name every node certificate carries (and the only one verified).
fn server_name() -> anyhow::Result<ServerName<'static>> {
    ServerName::try_from(SERVER_NAME).context("the internal server name")
}

fn roots(pems: &IdentityPems) -> anyhow::Result<Arc<rustls::RootCertStore>> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&pems.ca) {
        roots
            .add(ca.context("parsing the CA PEM")?)
            .context("the CA certificate")?;
    }
    anyhow::ensure!(!roots.is_empty(), "no certificate in the CA PEM");
    Ok(Arc::new(roots))
}

fn own_certificate(
    pems: &IdentityPems,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    crate::s3_tls::chain_and_key(&pems.cert, &pems.key)
}

/// Whether a certificate (already verified against the CA) names a front-end.
fn names_a_frontend(end_entity: &CertificateDer<'_>) -> Result<(), Error> {
    match peer_of_certificate(end_entity.as_ref()) {
        Some(peer) if peer.role == LINK_ROLE => Ok(()),
        _ => Err(Error::InvalidCertificate(
            CertificateError::ApplicationVerificationFailure,
        )),
    }
}

/// The CA's client verification, then: the holder is a front-end.
#[derive(Debug)]
struct FrontendClients {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for FrontendClients {
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
        names_a_frontend(end_entity)?;
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

/// The CA's server verification (for [`SERVER_NAME`]), then: the holder is a front-end.
#[derive(Debug)]
struct FrontendServers {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for FrontendServers {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        names_a_frontend(end_entity)?;
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
