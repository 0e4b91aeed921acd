//! Making a deployment's certificates (rcgen): its CA once, then one certificate per node
//! naming the node's role and stamp (see [`crate::tls`]), and the S3 endpoint's certificate.
//! `strata up` (and `--tls`) and `strata certs` write them; tests make them in memory.
//! Validity: the CA [`CA_VALID_DAYS`], every other certificate [`CERT_VALID_DAYS`], both from a
//! day before issue (clocks of nodes differ).
//!
//! Files in a certificate folder: `ca.pem`, `ca.key`, and `<name>.pem` / `<name>.key` per
//! holder. Every key file is created with mode 0600 (never readable by others, not even for a
//! moment); certificates are public.

use crate::tls::{peer_uri, TlsFiles, SERVER_NAME};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::path::Path;
use strata_types::Role;

/// How long a CA certificate is valid.
pub const CA_VALID_DAYS: i64 = 3_650;
/// How long a node or endpoint certificate is valid; `strata up` and compose's `certs` service
/// issue new ones at every start.
pub const CERT_VALID_DAYS: i64 = 365;

/// `params` made valid from a day ago for `days` days.
fn valid_for(mut params: CertificateParams, days: i64) -> CertificateParams {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(days);
    params
}

/// A certificate (PEM) and its private key (PEM).
#[derive(Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of logs and panic messages.
        f.debug_struct("Issued").finish_non_exhaustive()
    }
}

/// A deployment's certificate authority.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate and key as stored.
    pub issued: Issued,
}

impl Authority {
    /// A new CA for `stamp`.
    pub fn new(stamp: &str) -> anyhow::Result<Self> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(&format!("Strata {stamp} CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let params = valid_for(params, CA_VALID_DAYS);
        let cert = params.self_signed(&key)?;
        let issued = Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        Ok(Self {
            issuer: Issuer::new(params, key),
            issued,
        })
    }

    /// The CA stored as `issued`.
    pub fn from_pem(issued: Issued) -> anyhow::Result<Self> {
        let key = KeyPair::from_pem(&issued.key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&issued.cert_pem, key)?;
        Ok(Self { issuer, issued })
    }

    /// The CA in `dir` (`ca.pem`, `ca.key`), made and written there if there is none.
    pub fn open_or_create(dir: &Path, stamp: &str) -> anyhow::Result<Self> {
        let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
        if cert_path.exists() && key_path.exists() {
            return Self::from_pem(Issued {
                cert_pem: std::fs::read_to_string(&cert_path)?,
                key_pem: std::fs::read_to_string(&key_path)?,
            });
        }
        std::fs::create_dir_all(dir)?;
        let authority = Self::new(stamp)?;
        write_pair(dir, "ca", &authority.issued)?;
        Ok(authority)
    }

    /// A certificate for `node` of `role` in `stamp`, good as server and as client.
    pub fn issue(&self, stamp: &str, role: Role, node: &str) -> anyhow::Result<Issued> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(&format!("{role} {node}"));
        params.subject_alt_names = vec![
            SanType::URI(peer_uri(stamp, role, node).try_into()?),
            SanType::DnsName(SERVER_NAME.try_into()?),
        ];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = valid_for(params, CERT_VALID_DAYS).signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A server certificate for an HTTPS endpoint reached at `hosts` (DNS names or IP
    /// addresses), for the S3 endpoint of `strata up --tls`: what S3 clients verify.
    pub fn issue_endpoint(&self, hosts: &[&str]) -> anyhow::Result<Issued> {
        let key = KeyPair::generate()?;
        let names: Vec<String> = hosts.iter().map(|host| host.to_string()).collect();
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name = name(hosts.first().copied().unwrap_or("localhost"));
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = valid_for(params, CERT_VALID_DAYS).signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issues the endpoint certificate for `hosts` into `dir` as `<stem>.pem` / `<stem>.key`.
    pub fn issue_endpoint_into(
        &self,
        dir: &Path,
        stem: &str,
        hosts: &[&str],
    ) -> anyhow::Result<()> {
        write_pair(dir, stem, &self.issue_endpoint(hosts)?)
    }

    /// Issues `node`'s certificate into `dir` (`<file_name>.pem`, `<file_name>.key`, next to
    /// `ca.pem`) and returns the files to start the node with.
    pub fn issue_into(
        &self,
        dir: &Path,
        file_name: &str,
        stamp: &str,
        role: Role,
        node: &str,
    ) -> anyhow::Result<TlsFiles> {
        let issued = self.issue(stamp, role, node)?;
        write_pair(dir, file_name, &issued)?;
        Ok(TlsFiles::in_dir(dir, file_name))
    }

    /// The identity of `issued` in this CA's deployment.
    pub fn identity(&self, issued: &Issued) -> anyhow::Result<crate::tls::Identity> {
        crate::tls::Identity::from_pem(
            self.issued.cert_pem.as_bytes(),
            issued.cert_pem.as_bytes(),
            issued.key_pem.as_bytes(),
        )
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "Strata");
    name.push(DnType::CommonName, common_name);
    name
}

/// Writes `<stem>.pem` (the certificate) and `<stem>.key` (mode 0600) into `dir`.
fn write_pair(dir: &Path, stem: &str, issued: &Issued) -> anyhow::Result<()> {
    crate::files::write_private(&dir.join(format!("{stem}.key")), issued.key_pem.as_bytes())?;
    crate::files::write_durably(&dir.join(format!("{stem}.pem")), issued.cert_pem.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_ca_is_made_once_and_keys_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = Authority::open_or_create(dir.path(), "stamp-1").unwrap();
        let again = Authority::open_or_create(dir.path(), "stamp-1").unwrap();
        assert_eq!(
            first.issued.cert_pem, again.issued.cert_pem,
            "kept, not remade"
        );
        let files = again
            .issue_into(dir.path(), "en-1", "stamp-1", Role::ExtentNode, "en-1")
            .unwrap();
        for key in [dir.path().join("ca.key"), files.mtls_key.clone().unwrap()] {
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", key.display());
        }
        // A certificate of the re-opened CA names its holder and loads as an identity.
        let der = std::fs::read_to_string(files.mtls_cert.as_ref().unwrap()).unwrap();
        let parsed = x509_parser::pem::parse_x509_pem(der.as_bytes()).unwrap().1;
        let peer = crate::tls::peer_of_certificate(&parsed.contents).unwrap();
        assert_eq!(
            (peer.stamp.as_str(), peer.role),
            ("stamp-1", Role::ExtentNode)
        );
        assert!(files.load().unwrap().is_some());
    }

    #[test]
    fn certificates_expire_a_year_after_issue_and_the_ca_in_ten() {
        let authority = Authority::new("stamp-1").unwrap();
        let node = authority
            .issue("stamp-1", Role::PartitionServer, "ps-1")
            .unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        for (issued, days) in [(&authority.issued, CA_VALID_DAYS), (&node, CERT_VALID_DAYS)] {
            let pem = x509_parser::pem::parse_x509_pem(issued.cert_pem.as_bytes())
                .unwrap()
                .1;
            let cert = pem.parse_x509().unwrap();
            let validity = cert.validity();
            let day = 86_400;
            assert!(validity.not_before.timestamp() <= now - day + 60);
            let left = validity.not_after.timestamp() - now;
            assert!(
                (left - days * day).abs() < 60,
                "{left} s left, wanted {days} days"
            );
        }
    }
}
