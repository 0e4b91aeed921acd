//! Re-replication throughput of the stream layer: how fast the stream manager's repair
//! restores 3 replicas after a node holding many sealed extents dies.
//!
//! A stream manager and 6 extent nodes on 3 racks run in this process on 127.0.0.1. Several
//! writers fill `--total-mib` of 1 MiB records into `--extent-mib` extents (sealed as they
//! fill); once every extent has 3 healthy replicas, the node holding the most bytes is
//! stopped, and the manager's status is polled until the node is seen dead (extents under-
//! replicated) and then until `extents_under_replicated == 0 && repair_bytes_left == 0`.
//! Done twice on a fresh cluster: with the repair bandwidth limit off and with the default.
//!
//! `cargo run --release -p strata-stream --example rereplication_throughput -- --total-mib 256`

#[path = "support/mod.rs"]
mod support;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Parser;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use strata_stream::manager::REPAIR_BANDWIDTH_BYTES_PER_SEC_DEFAULT;
use strata_stream::{ManagerSettings, RecordPos, RepairSettings};
use strata_types::ExtentId;
use support::{fully_replicated, wait_until, Cluster};

const MIB: u64 = 1024 * 1024;

#[derive(Parser, Debug)]
#[command(about = "Time to re-replicate a dead node's extents")]
struct Args {
    /// Data written before the node is killed (each byte stored 3 times).
    #[arg(long, default_value_t = 256)]
    total_mib: u64,
    /// The manager's extent size: a writer seals its extent once it reaches this.
    #[arg(long, default_value_t = 32)]
    extent_mib: u64,
    /// Concurrent writers, one stream each.
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Payload bytes of each record.
    #[arg(long, default_value_t = 1024 * 1024)]
    record_bytes: usize,
    /// The manager's node timeout (heartbeats are every 100 ms).
    #[arg(long, default_value_t = 1_000)]
    node_timeout_ms: u64,
}

struct Outcome {
    write: Duration,
    victim_extents: usize,
    victim_bytes: u64,
    copied_bytes: u64,
    detected: Duration,
    healed: Duration,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

/// Writes `total` bytes through `writers` concurrent streams; returns one position per stream.
async fn fill(cluster: &Cluster, args: &Args) -> Result<Vec<(RecordPos, Bytes)>> {
    let records = (args.total_mib * MIB).div_ceil(args.record_bytes as u64) as usize;
    let per_writer = records.div_ceil(args.writers);
    let tasks = (0..args.writers).map(|index| {
        let client = cluster.client.clone();
        let record_bytes = args.record_bytes;
        async move {
            let writer = client.open(&format!("fill-{index}")).await?;
            let mut body = vec![(index % 251) as u8; record_bytes];
            body[..8].copy_from_slice(&(index as u64).to_be_bytes());
            let body = Bytes::from(body);
            let mut first = None;
            for _ in 0..per_writer {
                let pos = writer.append(body.clone()).await.context("append")?;
                first.get_or_insert((pos, body.clone()));
            }
            first.context("no record written")
        }
    });
    futures::future::try_join_all(tasks).await
}

async fn run(args: &Args, bandwidth_bytes_per_sec: u64) -> Result<Outcome> {
    let racks = ["a", "a", "b", "b", "c", "c"];
    let settings = ManagerSettings {
        extent_size_bytes_max: args.extent_mib * MIB,
        node_timeout_ms: args.node_timeout_ms,
    };
    let repair = RepairSettings {
        bandwidth_bytes_per_sec,
        ..RepairSettings::default()
    };
    let mut cluster = Cluster::start(&racks, settings, repair).await?;
    let started = Instant::now();
    let samples = fill(&cluster, args).await?;
    let write = started.elapsed();
    let status = cluster
        .wait_status("3 healthy replicas of every extent", fully_replicated)
        .await?;

    // The node holding the most bytes.
    let mut held: HashMap<String, (usize, u64)> = HashMap::new();
    for extent in &status.extents {
        let info = cluster
            .client
            .extent_info(ExtentId::new(extent.extent_id), true)
            .await?;
        for replica in &info.replicas {
            let entry = held.entry(replica.node_id.clone()).or_default();
            entry.0 += 1;
            entry.1 += extent.length;
        }
    }
    let Some((victim, (victim_extents, victim_bytes))) =
        held.into_iter().max_by_key(|(_, (_, bytes))| *bytes)
    else {
        bail!("no extent has replicas");
    };

    let copied_before = strata_stream::metrics::repair_bytes_copied().get();
    let killed = Instant::now();
    cluster.stop_node(&victim).await?;
    let detected = wait_until("the dead node's extents under-replicated", || async {
        let status = cluster.client.status().await.ok()?;
        (status.extents_under_replicated > 0).then(|| killed.elapsed())
    })
    .await?;
    cluster
        .wait_status("every extent re-replicated", |s| {
            s.extents_under_replicated == 0 && s.repair_bytes_left == 0
        })
        .await?;
    let healed = killed.elapsed();
    let copied_bytes = strata_stream::metrics::repair_bytes_copied().get() - copied_before;

    for (pos, data) in &samples {
        let read = cluster
            .client
            .read_record(pos.extent_id, pos.offset)
            .await?;
        if read != *data {
            bail!("record at {pos:?} reads back different bytes");
        }
    }
    cluster.stop().await;
    Ok(Outcome {
        write,
        victim_extents,
        victim_bytes,
        copied_bytes,
        detected,
        healed,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> Result<()> {
    support::init_logging();
    let args = Args::parse();
    let mut rows = Vec::new();
    for (label, limit) in [
        ("off (0)".to_string(), 0),
        (
            format!(
                "default ({} MiB/s)",
                REPAIR_BANDWIDTH_BYTES_PER_SEC_DEFAULT / MIB
            ),
            REPAIR_BANDWIDTH_BYTES_PER_SEC_DEFAULT,
        ),
    ] {
        let outcome = run(&args, limit).await?;
        eprintln!(
            "bandwidth limit {label}: wrote {} MiB in {:.1} s; killed a node holding {} extents",
            args.total_mib,
            outcome.write.as_secs_f64(),
            outcome.victim_extents
        );
        rows.push((label, outcome));
    }
    println!(
        "\nre-replication after one node of 6 dies: {} MiB written, {} MiB extents, node timeout {} ms\n",
        args.total_mib, args.extent_mib, args.node_timeout_ms
    );
    println!("| repair bandwidth limit | write MiB/s | node's extents | MiB held | MiB copied | kill -> detected | detected -> healed | copy MiB/s |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (label, o) in &rows {
        let repairing = o.healed.saturating_sub(o.detected).as_secs_f64();
        println!(
            "| {label} | {:.1} | {} | {:.1} | {:.1} | {:.2} s | {:.2} s | {:.1} |",
            args.total_mib as f64 / o.write.as_secs_f64(),
            o.victim_extents,
            mib(o.victim_bytes),
            mib(o.copied_bytes),
            o.detected.as_secs_f64(),
            repairing,
            mib(o.copied_bytes) / repairing.max(f64::EPSILON),
        );
    }
    Ok(())
}
