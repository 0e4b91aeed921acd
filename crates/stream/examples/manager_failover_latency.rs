//! Stream-manager failover: how long a writer that needs the manager (to seal its extent and
//! get a fresh one) waits when the manager group's leader has just died. The manager is a Raft
//! group of 3; the call fails on the dead leader (connection refused), the client tries the
//! other members, which answer "not leader" until one of them is elected (an election timeout
//! of 1-2 s, then a vote), and the seal then goes through the new leader.
//!
//! A 3-member manager group and 6 extent nodes on 3 racks run in this process on 127.0.0.1.
//! Every iteration stops the leader, times a planned `seal_current` (fence + seal + fresh
//! extent, all through the manager) and the append after it, then restarts the stopped member
//! on its folder and waits until every member has caught up and the extents are fully
//! replicated.
//!
//! `cargo run --release -p strata-stream --example manager_failover_latency -- --iterations 10`

#[path = "support/mod.rs"]
mod support;

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Parser;
use std::time::{Duration, Instant};
use strata_stream::{ManagerSettings, RepairSettings};
use support::{fully_replicated, ms, row, Cluster};

#[derive(Parser, Debug)]
#[command(about = "Writer stall when the stream manager's Raft leader dies")]
struct Args {
    /// Leaders to kill.
    #[arg(long, default_value_t = 10)]
    iterations: usize,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> Result<()> {
    support::init_logging();
    let args = Args::parse();
    let racks = ["a", "a", "b", "b", "c", "c"];
    let mut cluster = Cluster::start(
        &racks,
        ManagerSettings {
            node_timeout_ms: 1_000,
            ..ManagerSettings::default()
        },
        RepairSettings::default(),
    )
    .await?;
    let writer = cluster.client.open("bench/log").await?;
    let mut baseline = Vec::new();
    let mut failover = Vec::new();
    for iteration in 0..args.iterations {
        // Baseline: the same planned seal with a healthy group.
        let started = Instant::now();
        writer.seal_current().await.context("baseline seal")?;
        baseline.push(started.elapsed());

        let leader = cluster.manager_leader().await?;
        cluster.stop_manager(leader).await?;
        let started = Instant::now();
        writer
            .seal_current()
            .await
            .context("seal after the leader died")?;
        writer
            .append(Bytes::from_static(b"after failover"))
            .await
            .context("append after the leader died")?;
        let elapsed = started.elapsed();
        failover.push(elapsed);
        let new_leader = cluster.manager_leader().await?;
        println!(
            "iteration {iteration:>3}: leader {leader} stopped; seal + append done in {:>7.1} ms through leader {new_leader}",
            ms(elapsed)
        );
        cluster.restart_manager(leader).await?;
        cluster
            .wait_status("fully replicated again", fully_replicated)
            .await?;
        // Steady state before the next kill: a member still catching up makes an election
        // slower (openraft's voters hold off after seeing a candidate with a shorter log).
        cluster.wait_managers_caught_up().await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        cluster.wait_managers_caught_up().await?;
    }
    println!("\nseal + fresh extent through the stream manager group (ms)\n");
    println!("| case | n | min | median | p90 | max |");
    println!("| --- | --- | --- | --- | --- | --- |");
    row("healthy group", &baseline);
    row("leader just died (election included)", &failover);
    cluster.stop().await;
    Ok(())
}
