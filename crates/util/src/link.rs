//! The client side of the link between stamps (the front-ends' second listener,
//! `crates/frontend/src/link.rs`): HTTPS over the deployment's mutual TLS. Front-ends forward
//! S3 requests over it; partition servers send replicated versions over it (issue 16).
//!
//! Invariant: a link client presents this process's certificate and talks only to a server
//! whose certificate chains to the deployment CA, carries [`SERVER_NAME`] and names a
//! front-end; any other server fails the handshake before a byte of a request is sent.

use std::sync::Arc;

use anyhow::Context as _;
use hyper_rustls::FixedServerNameResolver;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use strata_types::Role;
use tokio_rustls::rustls;

use crate::tls::{peer_of_certificate, IdentityPems, SERVER_NAME};

/// The role of every link server (a front-end's link listener).
pub const LINK_SERVER_ROLE: Role = Role::Frontend;
/// The scheme of a link endpoint as a stamp reports it (`https://host:port`).
pub const LINK_SCHEME: &str = "https://";

/// A connector to other stamps' links.
pub type LinkConnector = hyper_rustls::HttpsConnector<HttpConnector>;

/// The connector to other stamps' links: presents this process's certificate and accepts only
/// a server certificate that chains to the CA, carries [`SERVER_NAME`] and names a front-end
/// (the URL's host is an address, never what is verified).
pub fn connector(pems: &IdentityPems, http: HttpConnector) -> anyhow::Result<LinkConnector> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = WebPkiServerVerifier::builder_with_provider(roots(pems)?, provider.clone())
        .build()
        .context("the link's server verifier")?;
    let (chain, key) = chain_and_key(&pems.cert, &pems.key)?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(FrontendServers { inner }))
        .with_client_auth_cert(chain, key)
        .context("the link's certificate and key")?;
    let mut http = http;
    // The connector below takes https:// URLs; the TCP connector under it must not refuse them.
    http.enforce_http(false);
    let name = ServerName::try_from(SERVER_NAME).context("the internal server name")?;
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .with_server_name_resolver(FixedServerNameResolver::new(name))
        .enable_http1()
        .wrap_connector(http))
}

/// The deployment CA's certificates, as rustls roots.
pub fn roots(pems: &IdentityPems) -> anyhow::Result<Arc<rustls::RootCertStore>> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&pems.ca) {
        roots
            .add(ca.context("parsing the CA PEM")?)
            .context("the CA certificate")?;
    }
    anyhow::ensure!(!roots.is_empty(), "no certificate in the CA PEM");
    Ok(Arc::new(roots))
}

/// A certificate chain and its private key from PEM.
pub fn chain_and_key(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .context("parsing the certificate PEM")?;
    anyhow::ensure!(!chain.is_empty(), "no certificate in the certificate PEM");
    let key = PrivateKeyDer::from_pem_slice(key_pem).context("parsing the private key PEM")?;
    Ok((chain, key))
}

/// Whether a certificate (already verified against the CA) names one of `roles`.
pub fn names_one_of(end_entity: &CertificateDer<'_>, roles: &[Role]) -> Result<(), Error> {
    match peer_of_certificate(end_entity.as_ref()) {
        Some(peer) if roles.contains(&peer.role) => Ok(()),
        _ => Err(Error::InvalidCertificate(
            CertificateError::ApplicationVerificationFailure,
        )),
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
        names_one_of(end_entity, &[LINK_SERVER_ROLE])?;
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
