//! HTTPS on the S3 endpoint (optional): the certificate chain and key an operator gives
//! (`--tls-cert`, `--tls-key`), loaded once at start into a rustls acceptor (the ring
//! provider, as the internal mTLS uses). With them the endpoint speaks only TLS: a plain HTTP
//! request is never served, it fails in the handshake.
//!
//! Bounds: a handshake not done within the connection's header-read timeout is dropped
//! (`connections.rs`), so a client that opens a connection and stalls holds nothing for long.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

/// The PEM files of the S3 endpoint's certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The leaf's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl S3TlsFiles {
    /// The acceptor for these files; fails on a missing or unreadable file, a file without a
    /// certificate or key, or a key that does not match the certificate.
    pub fn acceptor(&self) -> anyhow::Result<TlsAcceptor> {
        let cert_pem = std::fs::read(&self.cert)
            .with_context(|| format!("reading {}", self.cert.display()))?;
        let key_pem =
            std::fs::read(&self.key).with_context(|| format!("reading {}", self.key.display()))?;
        acceptor_from_pem(&cert_pem, &key_pem)
    }
}

/// The acceptor for a PEM certificate chain and key held in memory.
pub fn acceptor_from_pem(cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<TlsAcceptor> {
    let (chain, key) = chain_and_key(cert_pem, key_pem)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the key does not fit the certificate")?;
    // The endpoint serves HTTP/1.1 only (see connections.rs).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

pub use strata_util::link::chain_and_key;

#[cfg(test)]
mod tests {
    use super::*;
    use strata_util::certs::Authority;

    #[test]
    fn an_endpoint_certificate_and_its_key_make_an_acceptor() {
        let ca = Authority::new("test").unwrap();
        let endpoint = ca.issue_endpoint(&["127.0.0.1", "localhost"]).unwrap();
        let other = ca.issue_endpoint(&["localhost"]).unwrap();
        assert!(
            acceptor_from_pem(endpoint.cert_pem.as_bytes(), endpoint.key_pem.as_bytes()).is_ok()
        );
        // A key that is not the certificate's, no certificate, no key: refused at start.
        assert!(acceptor_from_pem(endpoint.cert_pem.as_bytes(), other.key_pem.as_bytes()).is_err());
        assert!(acceptor_from_pem(b"", endpoint.key_pem.as_bytes()).is_err());
        assert!(acceptor_from_pem(endpoint.cert_pem.as_bytes(), b"").is_err());
    }

    #[test]
    fn missing_files_are_named_in_the_error() {
        let files = S3TlsFiles {
            cert: PathBuf::from("/nonexistent/endpoint.pem"),
            key: PathBuf::from("/nonexistent/endpoint.key"),
        };
        let err = format!(
            "{:#}",
            files.acceptor().err().expect("missing files refused")
        );
        assert!(err.contains("/nonexistent/endpoint.pem"), "{err}");
    }
}
