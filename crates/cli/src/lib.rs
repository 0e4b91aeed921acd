//! The `strata` command-line tool.
//!
//! - [`layout`]: the stamp's shape (which nodes, on which racks, on which ports), written to
//!   `<data-dir>/stamp.json` on first start and reused after, so restarts keep every address.
//! - [`up`]: starts every node of a local stamp as a child process and supervises it; stops them
//!   in dependency order on SIGINT/SIGTERM.
//! - [`status`]: finds a running stamp by its data folder and reports nodes by rack, ranges and
//!   extents, as a table or `--json`.
//! - [`supervisor`]: the stamp's processes, started, stopped and acted on one at a time.
//! - [`control`]: `strata up`'s loopback control endpoint and its client (`strata node ...`).
//! - [`probe`]: health checks over HTTP (also `strata probe <addr>`, for container healthchecks).
//! - [`debug`]: `strata debug put-object`, straight to one partition server (fault tests).
//! - [`namespace`]: `strata bucket locate` and the stamps of `strata status`, from the
//!   location group.
//! - [`bucket_move`]: `strata bucket move NAME --to STAMP`, a bucket's online move to another
//!   stamp (copy passes, a fence, a verified switch of its home in the location group).
//! - [`drain`]: `strata stamp drain STAMP` (close a stamp to new buckets and move every
//!   bucket off it) and `strata stamp open STAMP`.
//! - [`replication`]: `strata replication status BUCKET` (watermark, versions owed) and what
//!   `strata status` shows of replication; [`replication_resync`]: `strata replication resync
//!   BUCKET`, replicating what was written before a rule.
//! - [`certs`]: the stamp's CA and certificates for `strata up` (mutual TLS unless `--no-mtls`).
//! - [`grpc_channel`]: how every command reaches a node over gRPC (with the operator
//!   certificate when the stamp runs mutual TLS).
//!
//! Invariant: `strata up` on an existing data folder brings back the same stamp (same node ids,
//! racks and addresses), so every acknowledged object is served again.

pub mod bucket_move;
pub mod certs;
pub mod control;
pub mod debug;
pub mod drain;
pub mod layout;
pub mod namespace;
pub mod probe;
pub mod replication;
pub mod replication_resync;
pub mod status;
pub mod supervisor;
pub mod up;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "strata",
    version,
    about = "Strata: an S3-compatible object store built as a storage stamp"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start a whole local stamp on loopback (runs until Ctrl-C).
    Up(up::UpArgs),
    /// Show the nodes, ranges and extents of a running stamp.
    Status(status::StatusArgs),
    /// Bucket placement across stamps (asks the location group) and bucket moves.
    Bucket(namespace::BucketArgs),
    /// Stamps: drain one (move its buckets off and close it to new ones), open it again.
    Stamp(drain::StampArgs),
    /// Replication of a bucket's versions to its destinations: how far it got.
    Replication(replication::ReplicationArgs),
    /// Kill, stop, start, pause or resume one node of a running stamp (fault injection).
    Node(NodeArgs),
    /// Low-level calls for fault tests (bypassing the front-end).
    Debug(debug::DebugArgs),
    /// Exit 0 when a node's admin address answers `GET /health` with 200, else 1 (for
    /// container healthchecks: a `FROM scratch` image has no shell or curl).
    Probe(ProbeArgs),
    /// Issue a deployment's mutual-TLS certificates into a folder (for docker compose and
    /// other deployments `strata up` does not start): the CA once, then one certificate per
    /// node given as `<name>=<role>`, and the operator's.
    Certs(certs::CertsArgs),
}

#[derive(clap::Args, Debug)]
pub struct ProbeArgs {
    /// The node's admin HTTP address, e.g. 10.0.0.5:8080 (several with --reach).
    #[arg(required = true)]
    pub addrs: Vec<String>,
    /// The path to GET.
    #[arg(long, default_value = "/health")]
    pub path: String,
    /// Report, for each address, whether anything answered at all (one JSON line each:
    /// `{"addr": ..., "status": <code or null>}`), and exit 0: how the fault suite shows which
    /// addresses a network can reach.
    #[arg(long)]
    pub reach: bool,
}

#[derive(clap::Args, Debug)]
pub struct NodeArgs {
    /// What to do to the node.
    #[arg(value_enum)]
    pub action: supervisor::NodeAction,
    /// The node's name, as `strata status` lists it (e.g. extent-r1-1, partition-2, manager-1).
    pub name: String,
    /// The data folder given to `strata up`.
    #[arg(long, default_value = "strata-data")]
    pub data_dir: PathBuf,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Up(args) => up::run(args).await,
        Command::Status(args) => {
            strata_util::rpc::install_identity(certs::operator_identity(&args.data_dir)?)?;
            status::run(args).await
        }
        Command::Debug(args) => debug::run(args).await,
        Command::Bucket(args) => namespace::run(args).await,
        Command::Stamp(args) => drain::run(args).await,
        Command::Replication(args) => replication::run(args).await,
        Command::Certs(args) => certs::issue_named(&args),
        Command::Node(args) => {
            let report = control::request(&args.data_dir, &args.name, args.action).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::Probe(args) => probe::run(&args).await,
    }
}

/// The one way the CLI reaches a node over gRPC: a channel per call, every call bounded by
/// `request_timeout`, with the process identity (the operator certificate, installed by the
/// command when its stamp runs mutual TLS). A command makes a few calls and exits, so a pooled channel
/// (`strata_util::rpc::ChannelPool`, for servers) would save nothing.
pub fn grpc_channel(
    addr: &str,
    request_timeout: std::time::Duration,
) -> anyhow::Result<strata_util::rpc::Channel> {
    strata_util::rpc::channel_with_timeout(addr, request_timeout)
}

/// The default data folder, shared by `up` and `status`.
pub fn default_data_dir() -> PathBuf {
    PathBuf::from("strata-data")
}
