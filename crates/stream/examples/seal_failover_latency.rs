//! Seal-on-failure latency of the stream layer: how long an append takes end to end when a
//! replica of the open extent died just before it. The writer's append RPC fails (the failure
//! is seen by the RPC itself, long before the manager's node timeout), the writer asks the
//! manager to seal the extent (fence + commit length + seal on the reachable replicas) and to
//! place a fresh extent (the dead node, still "healthy" by heartbeat, refuses the create and is
//! skipped), then the same append succeeds on the fresh extent.
//!
//! A stream manager and 6 extent nodes on 3 racks run in this process on 127.0.0.1. Every
//! iteration kills the primary (even iterations) or a secondary (odd ones) of the writer's
//! open extent, times the next append, reads the record back, then starts a replacement node
//! on the same rack and waits until the cluster is healthy and fully replicated again.
//!
//! `cargo run --release -p strata-stream --example seal_failover_latency -- --iterations 30`

#[path = "support/mod.rs"]
mod support;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Parser;
use std::time::{Duration, Instant};
use strata_stream::{ManagerSettings, RepairSettings, StreamWriter};
use support::{fully_replicated, ms, row, Cluster};

#[derive(Parser, Debug)]
#[command(about = "Append latency across a replica failure (seal on failure + fresh extent)")]
struct Args {
    /// Failures to inject (half kill the primary, half a secondary).
    #[arg(long, default_value_t = 30)]
    iterations: usize,
    /// Payload bytes of each record.
    #[arg(long, default_value_t = 4096)]
    record_bytes: usize,
    /// The manager's node timeout (heartbeats are every 100 ms).
    #[arg(long, default_value_t = 1_000)]
    node_timeout_ms: u64,
    /// Appends timed between failures, as the no-failure baseline.
    #[arg(long, default_value_t = 10)]
    baseline_appends: usize,
}

fn payload(index: usize, len: usize) -> Bytes {
    let mut bytes = format!("record-{index:08}-").into_bytes();
    bytes.resize(len.max(bytes.len()), (index % 251) as u8);
    Bytes::from(bytes)
}

/// Appends `count` records, returning each one's latency.
async fn timed_appends(
    writer: &StreamWriter,
    next: &mut usize,
    count: usize,
    len: usize,
) -> Result<Vec<Duration>> {
    let mut latencies = Vec::with_capacity(count);
    for _ in 0..count {
        let data = payload(*next, len);
        *next += 1;
        let started = Instant::now();
        writer.append(data).await.context("baseline append")?;
        latencies.push(started.elapsed());
    }
    Ok(latencies)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> Result<()> {
    support::init_logging();
    let args = Args::parse();
    let racks = ["a", "a", "b", "b", "c", "c"];
    let settings = ManagerSettings {
        node_timeout_ms: args.node_timeout_ms,
        ..ManagerSettings::default()
    };
    let repair = RepairSettings {
        interval_ms: 200,
        ..RepairSettings::default()
    };
    let mut cluster = Cluster::start(&racks, settings, repair).await?;
    let writer = cluster.client.open("failover").await?;
    let mut next = 0;
    let mut baseline = timed_appends(&writer, &mut next, 5, args.record_bytes).await?;
    let (mut primary, mut secondary, mut planned) = (Vec::new(), Vec::new(), Vec::new());
    for iteration in 0..args.iterations {
        let info = writer.info().await;
        let Some(extent) = info.extents.last().filter(|e| !e.sealed).cloned() else {
            bail!("the writer has no open extent");
        };
        let kill_primary = iteration % 2 == 0;
        let victim = extent.replicas[if kill_primary { 0 } else { 1 }]
            .node_id
            .clone();
        let rack = cluster.stop_node(&victim).await?;

        let data = payload(next, args.record_bytes);
        next += 1;
        let started = Instant::now();
        let pos = writer
            .append(data.clone())
            .await
            .context("append after the failure")?;
        let elapsed = started.elapsed();
        if pos.extent_id.get() == extent.extent_id {
            bail!("the append stayed on {}: no failover", pos.extent_id);
        }
        let read = cluster
            .client
            .read_record(pos.extent_id, pos.offset)
            .await?;
        if read != data {
            bail!("record at {pos:?} reads back different bytes");
        }
        let role = if kill_primary { "primary" } else { "secondary" };
        eprintln!(
            "iteration {iteration:>3}: killed {role:<9} {victim}: append acknowledged in {:>7.1} ms on extent {} (was {})",
            ms(elapsed),
            pos.extent_id,
            extent.extent_id
        );
        if kill_primary {
            primary.push(elapsed);
        } else {
            secondary.push(elapsed);
        }

        cluster.add_node(&rack).await?;
        cluster.wait_nodes_healthy(racks.len()).await?;
        cluster
            .wait_status("fully replicated", fully_replicated)
            .await?;
        baseline.extend(
            timed_appends(&writer, &mut next, args.baseline_appends, args.record_bytes).await?,
        );
        // The same seal + fresh extent + append with every replica alive.
        let started = Instant::now();
        writer.seal_current().await.context("planned seal")?;
        writer
            .append(payload(next, args.record_bytes))
            .await
            .context("append after the planned seal")?;
        next += 1;
        planned.push(started.elapsed());
    }
    cluster.stop().await;

    let all: Vec<Duration> = primary.iter().chain(&secondary).copied().collect();
    println!(
        "\nappend latency, {} B records, node timeout {} ms (ms)\n",
        args.record_bytes, args.node_timeout_ms
    );
    println!("| case | n | min | median | p90 | max |");
    println!("| --- | --- | --- | --- | --- | --- |");
    row("no failure (baseline)", &baseline);
    row("planned seal + fresh extent + append, no failure", &planned);
    row("primary killed", &primary);
    row("secondary killed", &secondary);
    row("any replica killed", &all);
    Ok(())
}
