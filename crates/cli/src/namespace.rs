//! What the CLI asks the location group: `strata bucket locate NAME` (a bucket's home stamp),
//! `strata bucket move` (carried out by [`crate::bucket_move`]) and the `stamps` section of
//! `strata status` (each stamp's region, endpoint, state, fill and bucket count). All reach the
//! group's leader through [`LocationClient`], with the operator certificate when the stamp
//! runs mutual TLS.

use crate::layout::{Layout, NodeKind};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use strata_location::LocationClient;

/// Bound of the stamps query in `strata status` (the client's own budget covers an election;
/// a status report should not wait that long for one section).
const STATUS_STAMPS_TIMEOUT_MS: u64 = 3_000;

#[derive(clap::Args, Debug)]
pub struct BucketArgs {
    #[command(subcommand)]
    pub command: BucketCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum BucketCommand {
    /// Print the stamp that holds a bucket (its home in the location group).
    Locate {
        /// The bucket's name.
        name: String,
        /// Print `{"bucket": ..., "stamp": ...}` instead of the stamp's name.
        #[arg(long)]
        json: bool,
        /// The data folder given to `strata up`.
        #[arg(long, default_value = "strata-data")]
        data_dir: PathBuf,
    },
    /// Move a bucket to another stamp while it stays online (or `--abort` a move in progress);
    /// rerun after a failure to resume.
    Move(crate::bucket_move::MoveArgs),
    /// Make a bucket's geo-replica its home now (disaster recovery), reporting the
    /// acknowledged versions that had not arrived there (the RPO); rerun to resume.
    FailOver(crate::bucket_move::failover::FailOverArgs),
    /// Move a failed-over bucket back to the stamp it failed over from.
    FailBack(crate::bucket_move::failover::FailBackArgs),
    /// Remove a geo-replica copy that no rule fills any more.
    DropCopy(crate::bucket_move::failover::DropCopyArgs),
}

pub(crate) fn location_client(layout: &Layout) -> anyhow::Result<LocationClient> {
    LocationClient::new(&layout.addrs_of(NodeKind::Location)).map_err(anyhow::Error::msg)
}

pub(crate) fn load_layout(data_dir: &std::path::Path) -> anyhow::Result<Layout> {
    Layout::load(data_dir)?.ok_or_else(|| {
        anyhow::anyhow!(
            "no stamp in {}; start one with `strata up --data-dir {}`",
            data_dir.display(),
            data_dir.display()
        )
    })
}

pub async fn run(args: BucketArgs) -> anyhow::Result<()> {
    match args.command {
        BucketCommand::Locate {
            name,
            json,
            data_dir,
        } => {
            strata_util::rpc::install_identity(crate::certs::operator_identity(&data_dir)?)?;
            let layout = load_layout(&data_dir)?;
            let found = location_client(&layout)?
                .lookup_bucket(&name)
                .await
                .map_err(|status| anyhow::anyhow!("the location group did not answer: {status}"))?;
            let Some(location) = found.location else {
                anyhow::bail!("no bucket named {name:?} exists on any stamp");
            };
            if json {
                println!("{}", json!({"bucket": name, "stamp": location.stamp}));
            } else {
                println!("{}", location.stamp);
            }
            Ok(())
        }
        BucketCommand::Move(args) => crate::bucket_move::run(args).await,
        BucketCommand::FailOver(args) => crate::bucket_move::failover::fail_over(args).await,
        BucketCommand::FailBack(args) => crate::bucket_move::failover::fail_back(args).await,
        BucketCommand::DropCopy(args) => crate::bucket_move::failover::drop_copy(args).await,
    }
}

/// The stamps the location group knows, for `strata status` (empty when it does not answer
/// in time).
pub async fn stamps_report(layout: &Layout, s3_endpoints: &BTreeMap<String, String>) -> Vec<Value> {
    let Ok(client) = location_client(layout) else {
        return Vec::new();
    };
    let timeout = Duration::from_millis(STATUS_STAMPS_TIMEOUT_MS);
    let Ok(Ok(answer)) = tokio::time::timeout(timeout, client.list_stamps()).await else {
        return Vec::new();
    };
    answer
        .stamps
        .into_iter()
        .map(|stamp| {
            // Stored over offered raw bytes; null until the stamp's stream manager reports.
            let fill = strata_location::fill::fill_ratio(stamp.capacity_bytes, stamp.stored_bytes);
            // Where clients point S3 at; the reported endpoints are where other stamps'
            // front-ends forward to (links, when the deployment runs mutual TLS).
            let endpoint = s3_endpoints
                .get(&stamp.name)
                .cloned()
                .unwrap_or(stamp.frontend_endpoint);
            json!({
                "name": stamp.name,
                "region": stamp.region,
                "endpoint": endpoint,
                "forwarding_endpoints": stamp.endpoints,
                "state": stamp.state,
                "fill": fill,
                "buckets": stamp.buckets,
                "capacity_bytes": stamp.capacity_bytes,
                "stored_bytes": stamp.stored_bytes,
            })
        })
        .collect()
}
