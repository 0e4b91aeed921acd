//! The `strata` command-line tool.
//!
//! - [`layout`]: the stamp's shape (which nodes, on which racks, on which ports), written to
//!   `<data-dir>/stamp.json` on first start and reused after, so restarts keep every address.
//! - [`up`]: starts every node of a local stamp as a child process and supervises it; stops them
//!   in dependency order on SIGINT/SIGTERM.
//! - [`status`]: finds a running stamp by its data folder and reports nodes by rack, ranges and
//!   extents, as a table or `--json`.
//! - [`probe`]: health checks over HTTP.
//!
//! Invariant: `strata up` on an existing data folder brings back the same stamp (same node ids,
//! racks and addresses), so every acknowledged object is served again.

pub mod layout;
pub mod probe;
pub mod status;
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
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Up(args) => up::run(args).await,
        Command::Status(args) => status::run(args).await,
    }
}

/// The default data folder, shared by `up` and `status`.
pub fn default_data_dir() -> PathBuf {
    PathBuf::from("strata-data")
}
