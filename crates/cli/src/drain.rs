//! `strata stamp drain STAMP` (and `strata stamp open STAMP`): closes a stamp to new buckets
//! and moves every bucket homed on it to the other open stamps of its region, one bucket at a
//! time, each to the stamp placement would choose for a new bucket now (least full, then
//! fewest buckets; `crates/location/src/fill.rs`).
//!
//! Invariant: the stamp is closed (draining) before the first bucket is listed, so no new
//! bucket lands on it behind the drain; buckets are listed again until none is left (a
//! CreateBucket placed just before the close is moved too), at most [`LISTINGS_MAX`] times.

use crate::layout::Layout;
use anyhow::{bail, Context};
use serde_json::json;
use std::path::PathBuf;
use strata_location::LocationClient;
use strata_proto::location::Stamp;

/// Listings of the stamp's buckets at most (each followed by moving what it found).
pub const LISTINGS_MAX: u32 = 3;
/// Buckets one listing returns at most (the location group's own bound).
const LISTED_MAX: u32 = 10_000;

#[derive(clap::Args, Debug)]
pub struct StampArgs {
    #[command(subcommand)]
    pub command: StampCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum StampCommand {
    /// Close a stamp to new buckets and move every bucket it holds to the other open stamps
    /// of its region.
    Drain {
        /// The stamp's name, as `strata status` lists it.
        stamp: String,
        /// Seconds between each bucket's switch and removing its copy on the drained stamp.
        #[arg(long, default_value_t = 10)]
        grace_s: u64,
        /// Print the summary as one JSON object.
        #[arg(long)]
        json: bool,
        /// The data folder given to `strata up`.
        #[arg(long, default_value = "strata-data")]
        data_dir: PathBuf,
    },
    /// Open a stamp to new buckets again (after a drain).
    Open {
        stamp: String,
        #[arg(long, default_value = "strata-data")]
        data_dir: PathBuf,
    },
}

pub async fn run(args: StampArgs) -> anyhow::Result<()> {
    match args.command {
        StampCommand::Drain {
            stamp,
            grace_s,
            json,
            data_dir,
        } => {
            strata_util::rpc::install_identity(crate::certs::operator_identity(&data_dir)?)?;
            let layout = crate::namespace::load_layout(&data_dir)?;
            drain(&layout, &stamp, grace_s, json).await
        }
        StampCommand::Open { stamp, data_dir } => {
            strata_util::rpc::install_identity(crate::certs::operator_identity(&data_dir)?)?;
            let layout = crate::namespace::load_layout(&data_dir)?;
            let location = crate::namespace::location_client(&layout)?;
            location
                .set_stamp_state(&stamp, "open")
                .await
                .with_context(|| format!("opening stamp {stamp}"))?;
            println!("stamp {stamp} is open to new buckets");
            Ok(())
        }
    }
}

async fn drain(layout: &Layout, stamp: &str, grace_s: u64, json: bool) -> anyhow::Result<()> {
    let location = crate::namespace::location_client(layout)?;
    let region = region_of(&location, stamp).await?;
    location
        .set_stamp_state(stamp, "draining")
        .await
        .with_context(|| format!("closing stamp {stamp}"))?;
    eprintln!("stamp {stamp} takes no new buckets; moving its buckets off");
    let mut moved = Vec::new();
    for _ in 0..LISTINGS_MAX {
        let listed = location
            .list_stamp_buckets(stamp, LISTED_MAX)
            .await
            .context("listing the stamp's buckets")?;
        if listed.buckets.is_empty() {
            return report(stamp, &moved, json);
        }
        for bucket in listed.buckets {
            let stamps = location
                .list_stamps()
                .await
                .context("listing stamps")?
                .stamps;
            let to = target(&stamps, stamp, &region)?;
            eprintln!("moving {} to {to}", bucket.bucket);
            let summary =
                crate::bucket_move::move_bucket(layout, &location, &bucket.bucket, &to, grace_s)
                    .await
                    .with_context(|| format!("moving bucket {}", bucket.bucket))?;
            moved.push(
                json!({"bucket": bucket.bucket, "to": to, "rows_copied": summary.rows_copied}),
            );
        }
    }
    bail!("stamp {stamp} still holds buckets after {LISTINGS_MAX} listings (are buckets still created on it?)")
}

async fn region_of(location: &LocationClient, stamp: &str) -> anyhow::Result<String> {
    let stamps = location
        .list_stamps()
        .await
        .context("listing stamps")?
        .stamps;
    match stamps.into_iter().find(|s| s.name == stamp) {
        Some(found) => Ok(found.region),
        None => bail!("no stamp named {stamp:?} is registered"),
    }
}

/// Where the next bucket of the drained stamp goes: the open stamp of its region placement
/// ranks first.
fn target(stamps: &[Stamp], drained: &str, region: &str) -> anyhow::Result<String> {
    stamps
        .iter()
        .filter(|s| s.name != drained && s.region == region && s.state == "open")
        .min_by_key(|s| {
            let rank =
                strata_location::fill::placement_rank(s.capacity_bytes, s.stored_bytes, s.buckets);
            (rank, s.name.clone())
        })
        .map(|s| s.name.clone())
        .ok_or_else(|| anyhow::anyhow!("no other open stamp serves region {region:?}"))
}

fn report(stamp: &str, moved: &[serde_json::Value], json: bool) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            json!({"stamp": stamp, "state": "draining", "moved": moved})
        );
    } else {
        println!("stamp {stamp} is drained: {} bucket(s) moved", moved.len());
        for bucket in moved {
            println!("  {} -> {}", bucket["bucket"], bucket["to"]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(name: &str, region: &str, state: &str, stored: u64, buckets: u64) -> Stamp {
        Stamp {
            name: name.into(),
            region: region.into(),
            state: state.into(),
            capacity_bytes: 1_000,
            stored_bytes: stored,
            buckets,
            ..Default::default()
        }
    }

    #[test]
    fn buckets_go_to_the_open_stamp_of_the_region_placement_prefers() {
        let stamps = [
            stamp("stamp-1", "r1", "draining", 100, 5),
            stamp("stamp-2", "r1", "open", 500, 1),
            stamp("stamp-3", "r1", "open", 200, 9),
            stamp("stamp-4", "r2", "open", 0, 0),
            stamp("stamp-5", "r1", "draining", 0, 0),
        ];
        assert_eq!(target(&stamps, "stamp-1", "r1").unwrap(), "stamp-3");
        let alone = [
            stamp("stamp-1", "r1", "draining", 0, 0),
            stamp("stamp-4", "r2", "open", 0, 0),
        ];
        assert!(target(&alone, "stamp-1", "r1").is_err());
    }
}
