//! The certificates of a local stamp run with mutual TLS (`strata up`, unless `--no-mtls`), in
//! `<data-dir>/certs`: the deployment CA (`ca.pem`, `ca.key`), made once and kept; one
//! certificate per node (`<node-name>.pem` / `.key`, naming its role and the stamp), issued
//! afresh at every `strata up`; and `operator.pem` / `.key` for `strata status` and
//! `strata debug`. Every key is mode 0600.

use crate::layout::{Layout, NodeKind, RunningStamp};
use std::path::{Path, PathBuf};
use strata_types::Role;
use strata_util::certs::Authority;
use strata_util::tls::TlsFiles;

/// The holder name of the operator certificate.
pub const OPERATOR: &str = "operator";

/// The certificate folder of the stamp in `data_dir`.
pub fn certs_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("certs")
}

/// The role a node of `kind` holds.
pub fn role_of(kind: NodeKind) -> Role {
    match kind {
        NodeKind::Location => Role::Location,
        NodeKind::StreamManager => Role::StreamManager,
        NodeKind::ExtentNode => Role::ExtentNode,
        NodeKind::PartitionManager => Role::PartitionManager,
        NodeKind::PartitionServer => Role::PartitionServer,
        NodeKind::Frontend => Role::Frontend,
    }
}

/// The TLS files of node `name`.
pub fn node_files(data_dir: &Path, name: &str) -> TlsFiles {
    TlsFiles::in_dir(&certs_dir(data_dir), name)
}

/// The operator's TLS files.
pub fn operator_files(data_dir: &Path) -> TlsFiles {
    node_files(data_dir, OPERATOR)
}

/// Makes the deployment's CA if there is none, then issues every node of `layout` (each
/// naming its own stamp; location members, which serve every stamp, name the first) and the
/// operator a certificate.
pub fn issue_stamp(data_dir: &Path, layout: &Layout) -> anyhow::Result<()> {
    let dir = certs_dir(data_dir);
    let authority = Authority::open_or_create(&dir, &layout.stamp)?;
    for node in &layout.nodes {
        let role = role_of(node.kind);
        let stamp = layout.stamp_of(node).unwrap_or(&layout.stamp);
        authority.issue_into(&dir, &node.name, stamp, role, &node.name)?;
    }
    authority.issue_into(&dir, OPERATOR, &layout.stamp, Role::Operator, OPERATOR)?;
    Ok(())
}

/// The folder of the S3 endpoint's certificates (`strata up --tls`).
pub fn s3_tls_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("s3-tls")
}

/// `strata certs`: where and for whom.
#[derive(clap::Args, Debug)]
pub struct CertsArgs {
    /// The folder of `ca.pem` / `ca.key` (made there if absent, else kept) and the issued
    /// `<name>.pem` / `<name>.key` files.
    #[arg(long)]
    pub dir: PathBuf,
    /// The stamp every certificate names.
    #[arg(long, default_value = "stamp-1")]
    pub stamp: String,
    /// The holders, as `<name>=<role>` (roles: extent-node, stream-manager, partition-server,
    /// partition-manager, location, frontend, operator).
    #[arg(required = true)]
    pub holders: Vec<String>,
}

/// Issues `args.holders` their certificates (and `operator`) from the CA in `args.dir`.
pub fn issue_named(args: &CertsArgs) -> anyhow::Result<()> {
    let mut holders = Vec::with_capacity(args.holders.len() + 1);
    for holder in &args.holders {
        let (name, role) = holder
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("{holder:?} is not <name>=<role>"))?;
        anyhow::ensure!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "{name:?}: a holder name is letters, digits and '-'"
        );
        holders.push((name.to_string(), role.parse::<Role>()?));
    }
    holders.push((OPERATOR.to_string(), Role::Operator));
    let authority = Authority::open_or_create(&args.dir, &args.stamp)?;
    for (name, role) in &holders {
        authority.issue_into(&args.dir, name, &args.stamp, *role, name)?;
        println!("{name}: {role}");
    }
    Ok(())
}

/// The S3 endpoint's certificate and key (`endpoint.pem`, `endpoint.key`).
pub fn s3_endpoint_files(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = s3_tls_dir(data_dir);
    (dir.join("endpoint.pem"), dir.join("endpoint.key"))
}

/// Makes the S3 endpoint's CA if there is none (kept, so clients that trust it keep trusting
/// the endpoint across restarts), then issues the endpoint a certificate for `host` (the
/// address it listens on), `127.0.0.1` and `localhost`. Returns the CA file clients trust.
pub fn issue_s3_endpoint(data_dir: &Path, stamp: &str, host: &str) -> anyhow::Result<PathBuf> {
    let dir = s3_tls_dir(data_dir);
    let authority = Authority::open_or_create(&dir, &format!("{stamp} S3 endpoint"))?;
    let mut hosts = vec![host, "127.0.0.1", "localhost"];
    hosts.dedup();
    authority.issue_endpoint_into(&dir, "endpoint", &hosts)?;
    Ok(dir.join("ca.pem"))
}

/// The operator's identity when the stamp running in `data_dir` runs mutual TLS; `None` when
/// it runs plain (or is not running: then no call succeeds anyway).
pub fn operator_identity(data_dir: &Path) -> anyhow::Result<Option<strata_util::tls::Identity>> {
    holder_identity(data_dir, OPERATOR)
}

/// The identity of certificate holder `holder` (a node name or [`OPERATOR`]) of the stamp in
/// `data_dir` when that stamp runs mutual TLS, else `None` (plain gRPC).
pub fn holder_identity(
    data_dir: &Path,
    holder: &str,
) -> anyhow::Result<Option<strata_util::tls::Identity>> {
    let files = node_files(data_dir, holder);
    match RunningStamp::load(data_dir) {
        Ok(running) if running.mtls => files.load(),
        Ok(_) => Ok(None),
        // Not started by `strata up` (compose: `strata certs` issued the certificates into
        // <data-dir>/certs): that certificate when it is there.
        Err(_) if files.mtls_cert.as_ref().is_some_and(|cert| cert.exists()) => files.load(),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(dir: &Path, holders: &[&str]) -> CertsArgs {
        CertsArgs {
            dir: dir.to_path_buf(),
            stamp: "stamp-1".into(),
            holders: holders.iter().map(|h| h.to_string()).collect(),
        }
    }

    #[test]
    fn certs_issues_each_holder_and_the_operator_from_one_kept_ca() {
        let dir = tempfile::tempdir().unwrap();
        issue_named(&args(
            dir.path(),
            &["extent-r1-1=extent-node", "frontend-1=frontend"],
        ))
        .unwrap();
        let ca = std::fs::read(dir.path().join("ca.pem")).unwrap();
        for name in ["extent-r1-1", "frontend-1", OPERATOR] {
            let files = TlsFiles::in_dir(dir.path(), name);
            assert!(
                files.load().unwrap().is_some(),
                "{name} loads as an identity"
            );
        }
        // Again: the CA is kept, so nodes issued before still trust the new certificates.
        issue_named(&args(dir.path(), &["frontend-1=frontend"])).unwrap();
        assert_eq!(std::fs::read(dir.path().join("ca.pem")).unwrap(), ca);
    }

    #[test]
    fn certs_refuses_unknown_roles_and_bad_names_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["x=emperor", "no-role", "a/b=frontend", "=frontend"] {
            assert!(issue_named(&args(dir.path(), &[bad])).is_err(), "{bad}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
