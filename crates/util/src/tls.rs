//! Mutual TLS on internal gRPC (issue 14): a node's identity (the deployment CA, its own
//! certificate and key), and who called, read from the caller's certificate.
//!
//! Every certificate of a deployment is signed by its CA and names its holder in one SAN URI,
//! `strata://<stamp>/<role>/<node-name>` ([`peer_uri`]); a server takes only clients whose
//! certificate chains to the CA, and a service that limits its callers checks the role with
//! [`authorize`]. Every node certificate also carries the DNS name [`SERVER_NAME`], the name
//! clients verify, so a node is reached by any address (loopback, a compose host name) without
//! one certificate per address: the CA, not the host name, is what is trusted.
//!
//! [`TlsFiles`] names the three PEM files in a node's options (`--mtls-ca`, `--mtls-cert`,
//! `--mtls-key`, or the same keys in the config file / `STRATA_MTLS_*`); none set = plain gRPC, as
//! before. How an identity reaches servers and channels: see [`crate::rpc`].

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use strata_types::error_detail::{to_status, ErrorDetail};
use strata_types::Role;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::transport::{Certificate, ClientTlsConfig, ServerTlsConfig};

/// The DNS name in every node certificate, and the name every channel verifies.
pub const SERVER_NAME: &str = "strata.internal";
/// The scheme of the SAN URI that names a certificate's holder.
pub const URI_SCHEME: &str = "strata";
/// A TLS handshake not done in this long is dropped (a silent client holds no server task).
pub const HANDSHAKE_TIMEOUT_MS: u64 = 5_000;

/// The PEM files of a node's identity; all three or none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct TlsFiles {
    /// Deployment CA certificate (PEM). With --mtls-cert and --mtls-key: mutual TLS on every
    /// internal gRPC server and channel.
    #[arg(long)]
    pub mtls_ca: Option<PathBuf>,
    /// This node's certificate (PEM), signed by --mtls-ca.
    #[arg(long)]
    pub mtls_cert: Option<PathBuf>,
    /// This node's private key (PEM).
    #[arg(long)]
    pub mtls_key: Option<PathBuf>,
}

impl TlsFiles {
    /// The files [`crate::certs`] writes for `name` in `dir`: `ca.pem`, `<name>.pem`,
    /// `<name>.key`.
    pub fn in_dir(dir: &Path, name: &str) -> Self {
        Self {
            mtls_ca: Some(dir.join("ca.pem")),
            mtls_cert: Some(dir.join(format!("{name}.pem"))),
            mtls_key: Some(dir.join(format!("{name}.key"))),
        }
    }

    /// The identity these files hold; `None` when none is set (plain gRPC). Some but not all
    /// set is an error, never a silent fall-back to plain.
    pub fn load(&self) -> anyhow::Result<Option<Identity>> {
        match (&self.mtls_ca, &self.mtls_cert, &self.mtls_key) {
            (None, None, None) => Ok(None),
            (Some(ca), Some(cert), Some(key)) => {
                let read = |path: &PathBuf| {
                    std::fs::read(path)
                        .map_err(|err| anyhow::anyhow!("reading {}: {err}", path.display()))
                };
                Identity::from_pem(&read(ca)?, &read(cert)?, &read(key)?).map(Some)
            }
            _ => anyhow::bail!("mutual TLS needs all of mtls_ca, mtls_cert and mtls_key, or none"),
        }
    }
}

/// A node's TLS identity: what its servers require of callers and what its channels present.
#[derive(Clone)]
pub struct Identity {
    client: ClientTlsConfig,
    /// A server builder with the acceptor made: building it is where a bad key shows.
    server: tonic::transport::Server,
    /// The PEMs themselves, for servers and clients that are not gRPC (the front-ends'
    /// link between stamps, crates/frontend/src/link.rs).
    pems: Arc<IdentityPems>,
    /// The holder the certificate names (its stamp is the one this process serves).
    own: Option<Peer>,
}

/// The three PEM files of an [`Identity`], as read.
#[derive(Clone)]
pub struct IdentityPems {
    pub ca: Vec<u8>,
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").finish_non_exhaustive()
    }
}

impl Identity {
    /// The identity of the certificate `cert_pem` (with key `key_pem`) in the deployment whose
    /// CA is `ca_pem`. Bad PEM is an error here, not at the first connection.
    pub fn from_pem(ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<Self> {
        let ca = Certificate::from_pem(ca_pem);
        let own = tonic::transport::Identity::from_pem(cert_pem, key_pem);
        let server = ServerTlsConfig::new()
            .identity(own.clone())
            .client_ca_root(ca.clone())
            .client_auth_optional(false)
            .timeout(std::time::Duration::from_millis(HANDSHAKE_TIMEOUT_MS));
        let client = ClientTlsConfig::new()
            .ca_certificate(ca)
            .identity(own)
            .domain_name(SERVER_NAME);
        let server = tonic::transport::Server::builder()
            .tls_config(server)
            .map_err(|err| anyhow::anyhow!("TLS identity: {err}"))?;
        let pems = Arc::new(IdentityPems {
            ca: ca_pem.to_vec(),
            cert: cert_pem.to_vec(),
            key: key_pem.to_vec(),
        });
        let own = x509_parser::pem::parse_x509_pem(cert_pem)
            .ok()
            .and_then(|(_, pem)| peer_of_certificate(&pem.contents));
        Ok(Self {
            client,
            server,
            pems,
            own,
        })
    }

    /// The holder this identity's certificate names; None when it names no Strata holder.
    pub fn holder(&self) -> Option<&Peer> {
        self.own.as_ref()
    }

    /// The PEMs this identity was made of.
    pub fn pems(&self) -> &IdentityPems {
        &self.pems
    }

    /// For [`tonic::transport::Endpoint::tls_config`].
    pub fn client_config(&self) -> ClientTlsConfig {
        self.client.clone()
    }

    /// A server builder that requires callers' certificates signed by the CA.
    pub fn server_builder(&self) -> tonic::transport::Server {
        self.server.clone()
    }
}

/// Who holds a certificate, as its SAN URI names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub stamp: String,
    pub role: Role,
    pub node: String,
}

/// The SAN URI naming `node` of `role` in `stamp`.
pub fn peer_uri(stamp: &str, role: Role, node: &str) -> String {
    format!("{URI_SCHEME}://{stamp}/{role}/{node}")
}

/// The holder named by a SAN URI; `None` for any other URI.
pub fn parse_peer_uri(uri: &str) -> Option<Peer> {
    let rest = uri.strip_prefix(URI_SCHEME)?.strip_prefix("://")?;
    let mut parts = rest.splitn(3, '/');
    let (stamp, role, node) = (parts.next()?, parts.next()?, parts.next()?);
    if stamp.is_empty() || node.is_empty() {
        return None;
    }
    Some(Peer {
        stamp: stamp.to_string(),
        role: role.parse().ok()?,
        node: node.to_string(),
    })
}

/// The holder named in a DER certificate; `None` when it names none.
pub fn peer_of_certificate(der: &[u8]) -> Option<Peer> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let names = cert.subject_alternative_name().ok()??;
    names
        .value
        .general_names
        .iter()
        .find_map(|name| match name {
            x509_parser::extensions::GeneralName::URI(uri) => parse_peer_uri(uri),
            _ => None,
        })
}

/// How a request reached this server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// Over plain gRPC: the server runs without TLS, so callers are not checked (as before
    /// issue 14; tests and plain deployments).
    Plain,
    /// Over mutual TLS, from the holder of a CA-signed certificate; `None` when the certificate
    /// names no Strata holder.
    Tls(Option<Peer>),
}

/// Who sent `request`.
pub fn caller<T>(request: &tonic::Request<T>) -> Caller {
    if request
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .is_none()
    {
        return Caller::Plain;
    }
    let leaf = request.peer_certs().and_then(|certs| {
        let leaf = certs.first()?;
        peer_of_certificate(leaf.as_ref())
    });
    Caller::Tls(leaf)
}

/// `Ok` when `request` came over plain gRPC, or from a holder of one of `allowed` of this
/// process's stamp (or an operator, whose certificate serves the whole deployment); else the
/// typed refusal ([`ErrorDetail::PermissionDenied`], gRPC PermissionDenied). Every stamp's
/// nodes share the deployment CA, so the certificate's stamp is what keeps one stamp's nodes
/// from calling another's.
#[allow(clippy::result_large_err)] // tonic::Status is what every handler returns
pub fn authorize<T>(request: &tonic::Request<T>, allowed: &[Role]) -> Result<(), tonic::Status> {
    let own_stamp = crate::rpc::process_identity()
        .and_then(Identity::holder)
        .map(|own| own.stamp.as_str());
    admit(request, allowed, own_stamp)
}

/// [`authorize`] for services of the whole deployment (the location group): a holder of one
/// of `allowed` of any stamp.
#[allow(clippy::result_large_err)]
pub fn authorize_any_stamp<T>(
    request: &tonic::Request<T>,
    allowed: &[Role],
) -> Result<(), tonic::Status> {
    admit(request, allowed, None)
}

#[allow(clippy::result_large_err)]
fn admit<T>(
    request: &tonic::Request<T>,
    allowed: &[Role],
    own_stamp: Option<&str>,
) -> Result<(), tonic::Status> {
    let Caller::Tls(peer) = caller(request) else {
        return Ok(());
    };
    admits(peer.as_ref(), allowed, own_stamp)
        .map_err(|(role, why)| to_status(ErrorDetail::PermissionDenied { role }, why))
}

/// Whether a caller holding `peer`'s certificate may make a call open to `allowed`, on a
/// server of `own_stamp` (None: of every stamp); the refusal names the caller's role and why.
pub fn admits(
    peer: Option<&Peer>,
    allowed: &[Role],
    own_stamp: Option<&str>,
) -> Result<(), (Option<Role>, String)> {
    let Some(peer) = peer else {
        return Err((None, "caller with no role may not make this call".into()));
    };
    if !allowed.contains(&peer.role) {
        let why = format!("caller with {} may not make this call", peer.role);
        return Err((Some(peer.role), why));
    }
    match own_stamp {
        Some(own) if peer.role != Role::Operator && peer.stamp != own => {
            let why = format!(
                "{} {} of {} may not call {own}",
                peer.role, peer.node, peer.stamp
            );
            Err((Some(peer.role), why))
        }
        _ => Ok(()),
    }
}

/// The role a `PermissionDenied` answer of [`authorize`] names: `Some(role)` only for that
/// refusal of a caller holding a certificate with a role.
pub fn denied_role(status: &tonic::Status) -> Option<Role> {
    if status.code() != tonic::Code::PermissionDenied {
        return None;
    }
    match strata_types::error_detail::from_status(status) {
        Some(ErrorDetail::PermissionDenied { role }) => role,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_uris_round_trip_and_foreign_uris_name_no_one() {
        let uri = peer_uri("stamp-1", Role::PartitionServer, "ps-1");
        assert_eq!(uri, "strata://stamp-1/partition-server/ps-1");
        assert_eq!(
            parse_peer_uri(&uri),
            Some(Peer {
                stamp: "stamp-1".into(),
                role: Role::PartitionServer,
                node: "ps-1".into(),
            })
        );
        for other in [
            "https://stamp-1/partition-server/ps-1",
            "strata://stamp-1/root/ps-1",
            "strata://stamp-1/frontend",
            "strata:///frontend/fe-1",
        ] {
            assert_eq!(parse_peer_uri(other), None, "{other}");
        }
    }

    #[test]
    fn partial_tls_files_are_an_error() {
        assert!(TlsFiles::default().load().unwrap().is_none());
        let partial = TlsFiles {
            mtls_ca: Some("ca.pem".into()),
            ..TlsFiles::default()
        };
        let err = partial.load().unwrap_err().to_string();
        assert!(err.contains("all of"), "{err}");
    }

    fn peer(stamp: &str, role: Role) -> Peer {
        Peer {
            stamp: stamp.into(),
            role,
            node: "n".into(),
        }
    }

    #[test]
    fn callers_are_admitted_by_role_and_by_stamp() {
        let allowed = [Role::Frontend, Role::Operator];
        let own = Some("stamp-1");
        assert!(admits(Some(&peer("stamp-1", Role::Frontend)), &allowed, own).is_ok());
        // Another stamp's node with an allowed role: refused, naming both stamps.
        let (role, why) =
            admits(Some(&peer("stamp-2", Role::Frontend)), &allowed, own).unwrap_err();
        assert_eq!(role, Some(Role::Frontend));
        assert!(why.contains("stamp-2") && why.contains("stamp-1"), "{why}");
        // The operator's certificate serves the whole deployment.
        assert!(admits(Some(&peer("stamp-2", Role::Operator)), &allowed, own).is_ok());
        // A role not allowed, or none, is refused whatever the stamp.
        let refused = admits(Some(&peer("stamp-1", Role::ExtentNode)), &allowed, own);
        assert_eq!(refused.unwrap_err().0, Some(Role::ExtentNode));
        assert_eq!(admits(None, &allowed, own).unwrap_err().0, None);
        // A service of every stamp (own_stamp None) admits any stamp's holders of the role.
        assert!(admits(Some(&peer("stamp-2", Role::Frontend)), &allowed, None).is_ok());
    }

    #[test]
    fn an_identity_knows_the_holder_its_certificate_names() {
        let ca = crate::certs::Authority::new("stamp-1").unwrap();
        let issued = ca
            .issue("stamp-2", Role::PartitionServer, "s2-partition-1")
            .unwrap();
        let identity = ca.identity(&issued).unwrap();
        assert_eq!(
            identity.holder(),
            Some(&peer_named(
                "stamp-2",
                Role::PartitionServer,
                "s2-partition-1"
            ))
        );
    }

    fn peer_named(stamp: &str, role: Role, node: &str) -> Peer {
        Peer {
            stamp: stamp.into(),
            role,
            node: node.into(),
        }
    }
}
