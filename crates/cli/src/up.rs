//! `strata up`: a whole local deployment as child processes on loopback: the location group
//! and one stamp, or `--stamps N` of them (see `layout.rs` for their names and ports).
//!
//! Start order follows the dependencies (location, stream manager, extent nodes, partition
//! managers, partition servers, front-end); each node's stdout and stderr go to
//! `<data-dir>/logs/<node>.log`. Ctrl-C (SIGINT) or SIGTERM stops the nodes in the reverse
//! order with SIGTERM, waiting for each to exit cleanly (SIGKILL after a grace period). A node
//! that dies while the stamp runs is reported, not restarted: fault tests kill nodes on
//! purpose and restart them with `strata up` semantics of their own.

use crate::control;
use crate::layout::{Layout, NodeKind, NodeSpec, RunningStamp, Shape};
use crate::supervisor::Supervisor;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

#[derive(clap::Args, Debug, Clone)]
pub struct UpArgs {
    /// Folder for every node's data, logs and the stamp's layout.
    #[arg(long, default_value = "strata-data")]
    pub data_dir: PathBuf,
    /// Port of the S3 endpoint on 127.0.0.1 (of the first stamp; stamp k serves on
    /// port + k - 1).
    #[arg(long, default_value_t = 9000)]
    pub port: u16,
    /// Stamps to run, each complete (its racks, extent nodes, managers, partition servers and
    /// front-end) under one location group [default: 1, or as many as the data folder holds].
    /// A larger number adds stamps to an existing deployment.
    #[arg(long)]
    pub stamps: Option<usize>,
    /// Each stamp's region, first stamp first ("us-east-1,eu-west-1"; one region for all)
    /// [default: us-east-1, or what the data folder holds]. A CreateBucket with a
    /// LocationConstraint goes to a stamp of that region.
    #[arg(long, value_delimiter = ',')]
    pub regions: Vec<String>,
    /// Racks of extent nodes (3 replicas need at least 3).
    #[arg(long, default_value_t = 3)]
    pub racks: usize,
    #[arg(long, default_value_t = 2)]
    pub extent_nodes_per_rack: usize,
    #[arg(long, default_value_t = 2)]
    pub partition_servers: usize,
    /// Extents are sealed once they reach this size.
    #[arg(long, default_value_t = 256 * 1024 * 1024)]
    pub extent_size_bytes_max: u64,
    /// Folder holding the node binaries (default: next to this `strata`).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// How long to wait for the stamp to serve before giving up.
    #[arg(long, default_value_t = 60_000)]
    pub ready_timeout_ms: u64,
    /// Stream manager: extents no stream references are deleted after this delay. It must
    /// exceed the longest GET (compaction relies on it).
    #[arg(long, default_value_t = 60_000)]
    pub gc_delay_ms: u64,
    /// Partition servers: pause between data-stream compaction passes.
    #[arg(long, default_value_t = 5_000)]
    pub compaction_interval_ms: u64,
    /// Partition servers: requests per second one range accepts before answering
    /// `503 SlowDown` (0 = no limit).
    #[arg(long, default_value_t = 5_500)]
    pub range_requests_per_sec_max: u32,
    /// Partition servers: requests per second one bucket accepts on one server (0 = no limit).
    #[arg(long, default_value_t = 11_000)]
    pub bucket_requests_per_sec_max: u32,
    /// Partition manager: split a range serving more requests/s than this for
    /// --split-sustain-ms (0 = never). Low enough that one small machine's sustained hot load
    /// on one prefix triggers a split.
    #[arg(long, default_value_t = 250.0)]
    pub split_requests_per_sec: f64,
    /// Partition manager: split a range moving more body bytes/s than this, sustained.
    #[arg(long, default_value_t = 32.0 * 1024.0 * 1024.0)]
    pub split_bytes_per_sec: f64,
    #[arg(long, default_value_t = 10_000)]
    pub split_sustain_ms: u64,
    /// Partition manager: split a range holding more keys than this.
    #[arg(long, default_value_t = 2_000_000)]
    pub split_keys_max: u64,
    /// Partition manager: merge neighbours both under this many requests/s for
    /// --merge-sustain-ms.
    #[arg(long, default_value_t = 10.0)]
    pub merge_requests_per_sec: f64,
    #[arg(long, default_value_t = 120_000)]
    pub merge_sustain_ms: u64,
    /// Partition manager: ranges at least this busy move between servers to balance load.
    #[arg(long, default_value_t = 50.0)]
    pub move_requests_per_sec_min: f64,
    /// Partition manager: a range is left alone this long after it was made or moved.
    #[arg(long, default_value_t = 10_000)]
    pub reshape_cooldown_ms: u64,
    /// Plain gRPC inside the stamp. By default every internal connection is mutual TLS: a CA
    /// made once in <data-dir>/certs, a certificate per node naming its role, an operator
    /// certificate for `strata status` and `strata debug`.
    #[arg(long = "no-mtls", action = clap::ArgAction::SetFalse)]
    pub mtls: bool,
    /// HTTPS on the S3 endpoint: a CA made once in <data-dir>/s3-tls (clients trust its
    /// ca.pem), an endpoint certificate for 127.0.0.1 and localhost issued at every start.
    #[arg(long, env = "STRATA_TLS")]
    pub tls: bool,
}

pub(crate) struct Credentials {
    pub access_key: String,
    pub secret_key: String,
}

/// From STRATA_ACCESS_KEY / STRATA_SECRET_KEY, or generated once and kept in the data folder.
fn credentials(data_dir: &Path) -> anyhow::Result<Credentials> {
    if let (Ok(access_key), Ok(secret_key)) = (
        std::env::var("STRATA_ACCESS_KEY"),
        std::env::var("STRATA_SECRET_KEY"),
    ) {
        return Ok(Credentials {
            access_key,
            secret_key,
        });
    }
    let path = data_dir.join("credentials");
    let text = strata_util::files::read_or_init_private(&path, || {
        let access_key = format!("STRATA{}", hex::encode_upper(rand::random::<[u8; 7]>()));
        let secret_key = hex::encode(rand::random::<[u8; 20]>());
        format!("{access_key}\n{secret_key}")
    })?;
    let mut lines = text.lines();
    match (lines.next(), lines.next()) {
        (Some(access_key), Some(secret_key)) => Ok(Credentials {
            access_key: access_key.trim().into(),
            secret_key: secret_key.trim().into(),
        }),
        _ => anyhow::bail!(
            "{} is malformed; delete it to generate new credentials",
            path.display()
        ),
    }
}

/// Where the node binaries are. When `strata` was started by `cargo run` and its siblings were
/// never built, build them (cargo builds only the binary it runs).
fn bin_dir(args: &UpArgs) -> anyhow::Result<PathBuf> {
    let dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("strata has no parent folder")?
            .to_path_buf(),
    };
    let missing: Vec<&str> = [
        NodeKind::Location,
        NodeKind::StreamManager,
        NodeKind::ExtentNode,
        NodeKind::PartitionManager,
        NodeKind::PartitionServer,
        NodeKind::Frontend,
    ]
    .iter()
    .map(|k| k.binary())
    .filter(|b| !dir.join(b).exists())
    .collect();
    if missing.is_empty() {
        return Ok(dir);
    }
    let (Ok(cargo), Ok(manifest)) = (std::env::var("CARGO"), std::env::var("CARGO_MANIFEST_DIR"))
    else {
        anyhow::bail!(
            "node binaries missing from {}: {}; build them with `cargo build --release`",
            dir.display(),
            missing.join(", ")
        );
    };
    eprintln!(
        "strata: building the node binaries ({}) ...",
        missing.join(", ")
    );
    let mut build = std::process::Command::new(cargo);
    build
        .current_dir(&manifest)
        .args(["build", "--workspace", "--bins"]);
    if dir.ends_with("release") {
        build.arg("--release");
    }
    anyhow::ensure!(
        build.status()?.success(),
        "building the node binaries failed"
    );
    Ok(dir)
}

fn node_args(
    spec: &NodeSpec,
    layout: &Layout,
    args: &UpArgs,
    node_dir: &Path,
    creds: &Credentials,
) -> Vec<String> {
    let mut out = vec![
        "--listen".to_string(),
        spec.addr.clone(),
        "--http-listen".to_string(),
        spec.http_addr.clone(),
    ];
    // The node's own stamp (and the location group, which every view holds).
    let stamp = layout.stamp_of(spec).unwrap_or(&layout.stamp).to_string();
    let layout = &layout.view(&stamp);
    let stream_manager = layout.addrs_of(NodeKind::StreamManager);
    let managers = layout.addrs_of(NodeKind::PartitionManager);
    let data_dir = node_dir.display().to_string();
    let mut push = |flag: &str, value: String| {
        out.push(flag.to_string());
        out.push(value);
    };
    match spec.kind {
        NodeKind::Location => {
            push("--data-dir", data_dir);
            push("--node-id", spec.member_id.unwrap_or(1).to_string());
            push("--members", layout.members_of(NodeKind::Location));
        }
        NodeKind::StreamManager => {
            push("--data-dir", data_dir);
            push("--node-id", spec.member_id.unwrap_or(0).to_string());
            push("--members", layout.members_of(NodeKind::StreamManager));
            push(
                "--extent-size-bytes-max",
                args.extent_size_bytes_max.to_string(),
            );
            push("--gc-delay-ms", args.gc_delay_ms.to_string());
            push("--location", layout.addrs_of(NodeKind::Location));
            push("--stamp", stamp);
        }
        NodeKind::ExtentNode => {
            push("--data-dir", data_dir);
            push("--rack", spec.rack.clone().unwrap_or_default());
            push("--stream-manager", stream_manager);
        }
        NodeKind::PartitionManager => {
            push("--data-dir", data_dir);
            push("--node-id", spec.member_id.unwrap_or(0).to_string());
            push("--members", layout.members_of(NodeKind::PartitionManager));
            push(
                "--split-requests-per-sec",
                args.split_requests_per_sec.to_string(),
            );
            push(
                "--split-bytes-per-sec",
                args.split_bytes_per_sec.to_string(),
            );
            push("--split-sustain-ms", args.split_sustain_ms.to_string());
            push("--split-keys-max", args.split_keys_max.to_string());
            push(
                "--merge-requests-per-sec",
                args.merge_requests_per_sec.to_string(),
            );
            push("--merge-sustain-ms", args.merge_sustain_ms.to_string());
            push(
                "--move-requests-per-sec-min",
                args.move_requests_per_sec_min.to_string(),
            );
            push(
                "--reshape-cooldown-ms",
                args.reshape_cooldown_ms.to_string(),
            );
        }
        NodeKind::PartitionServer => {
            push("--data-dir", data_dir);
            push("--manager", managers);
            push("--stream-manager", stream_manager);
            // Replication finds destination buckets on other stamps through the group.
            push("--location", layout.addrs_of(NodeKind::Location));
            push("--stamp", stamp.clone());
            push(
                "--compaction-interval-ms",
                args.compaction_interval_ms.to_string(),
            );
            push(
                "--range-requests-per-sec-max",
                args.range_requests_per_sec_max.to_string(),
            );
            push(
                "--bucket-requests-per-sec-max",
                args.bucket_requests_per_sec_max.to_string(),
            );
        }
        NodeKind::Frontend => {
            push("--manager", managers);
            push("--location", layout.addrs_of(NodeKind::Location));
            push("--region", layout.region_of(&stamp).to_string());
            push("--stamp", stamp);
            push("--access-key", creds.access_key.clone());
            if args.tls {
                let (cert, key) = crate::certs::s3_endpoint_files(&args.data_dir);
                push("--tls-cert", cert.display().to_string());
                push("--tls-key", key.display().to_string());
            }
            // Other stamps forward over the link when there is mutual TLS to run it on.
            if let Some(link) = spec.link_addr.as_ref().filter(|_| args.mtls) {
                push("--link-listen", link.clone());
            }
        }
    }
    if args.mtls {
        let files = crate::certs::node_files(&args.data_dir, &spec.name);
        for (flag, path) in [
            ("--mtls-ca", files.mtls_ca),
            ("--mtls-cert", files.mtls_cert),
            ("--mtls-key", files.mtls_key),
        ] {
            push(flag, path.unwrap_or_default().display().to_string());
        }
    }
    out
}

/// Everything needed to start (and restart) any node of the stamp.
pub(crate) struct Launcher {
    pub layout: Layout,
    pub args: UpArgs,
    pub bins: PathBuf,
    pub creds: Credentials,
}

impl Launcher {
    pub fn spawn(&self, spec: &NodeSpec) -> anyhow::Result<Spawned> {
        spawn(spec, &self.layout, &self.args, &self.bins, &self.creds)
    }
}

/// A freshly started node process.
pub(crate) struct Spawned {
    pub child: Child,
    pub data_dir: PathBuf,
    pub log_file: PathBuf,
}

fn spawn(
    spec: &NodeSpec,
    layout: &Layout,
    args: &UpArgs,
    bins: &Path,
    creds: &Credentials,
) -> anyhow::Result<Spawned> {
    let node_dir = args.data_dir.join("nodes").join(&spec.name);
    std::fs::create_dir_all(&node_dir)?;
    let logs = args.data_dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let log_file = logs.join(format!("{}.log", spec.name));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_file)?;
    let mut command = Command::new(bins.join(spec.kind.binary()));
    command
        .args(node_args(spec, layout, args, &node_dir, creds))
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // The secret travels by environment, never on a command line others can read.
        .env("STRATA_SECRET_KEY", &creds.secret_key)
        .env("STRATA_ACCESS_KEY", &creds.access_key)
        // Children get their own process group: a Ctrl-C in the terminal reaches only
        // `strata up`, which then stops them in order.
        .process_group(0);
    let child = command
        .spawn()
        .with_context(|| format!("starting {} ({})", spec.name, spec.kind.binary()))?;
    Ok(Spawned {
        child,
        data_dir: node_dir,
        log_file,
    })
}

/// The deployment serves once, on every stamp, every range of the partition map has an owner
/// that has loaded it, and the location group lists every stamp (its front-end reported it).
async fn wait_serving(layout: &Layout, deadline: Instant) -> anyhow::Result<()> {
    for stamp in layout.stamps() {
        let view = layout.view(&stamp);
        while !crate::status::ranges_served(&view).await {
            anyhow::ensure!(
                Instant::now() < deadline,
                "{stamp} did not start serving in time; see the logs folder"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    loop {
        let listed: Vec<String> = crate::namespace::stamps_report(layout, &Default::default())
            .await
            .iter()
            .filter_map(|stamp| stamp["name"].as_str().map(str::to_string))
            .collect();
        let missing: Vec<String> = layout
            .stamps()
            .into_iter()
            .filter(|stamp| !listed.contains(stamp))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the location group does not list {missing:?} in time; see the front-end logs"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;
    let args = UpArgs { data_dir, ..args };
    let bins = bin_dir(&args)?;
    let creds = credentials(&args.data_dir)?;
    let existing = Layout::load(&args.data_dir)?;
    let shape = Shape {
        stamps: args
            .stamps
            .unwrap_or_else(|| existing.as_ref().map_or(1, |l| l.stamps().len())),
        racks: args.racks,
        extent_nodes_per_rack: args.extent_nodes_per_rack,
        partition_servers: args.partition_servers,
        managers: 3,
        stream_managers: 3,
        locations: 3,
        s3_port: args.port,
    };
    let running_before = existing.as_ref().map(Layout::stamps).unwrap_or_default();
    let layout = match existing {
        Some(mut layout) => {
            // Same nodes and internal addresses as before; the S3 port may change, stamps
            // may be added.
            layout.set_s3_port(args.port)?;
            layout.grow_to(&shape)?;
            layout
        }
        None => Layout::new(&shape)?,
    };
    let mut layout = layout;
    if !args.regions.is_empty() {
        layout.set_regions(&args.regions, &running_before)?;
    }
    layout.save(&args.data_dir)?;
    if args.mtls {
        crate::certs::issue_stamp(&args.data_dir, &layout)?;
        let operator = crate::certs::operator_files(&args.data_dir).load()?;
        // `strata up` itself asks the nodes whether they serve (wait_serving).
        strata_util::rpc::install_identity(operator)?;
    }

    let s3_ca = if args.tls {
        Some(crate::certs::issue_s3_endpoint(
            &args.data_dir,
            &layout.stamp,
            "127.0.0.1",
        )?)
    } else {
        None
    };
    let scheme = if args.tls { "https" } else { "http" };

    let deadline = Instant::now() + Duration::from_millis(args.ready_timeout_ms);
    let data_dir = args.data_dir.clone();
    let credentials_text = (creds.access_key.clone(), creds.secret_key.clone());
    let supervisor = Arc::new(Supervisor::new(Launcher {
        layout: layout.clone(),
        args,
        bins,
        creds,
    }));
    let control_token = tokio_util::sync::CancellationToken::new();
    let started = async {
        let control_addr = control::serve(supervisor.clone(), control_token.clone()).await?;
        supervisor.set_control_addr(control_addr.to_string()).await;
        supervisor.start_all(deadline).await?;
        supervisor.wait_healthy(deadline).await?;
        wait_serving(&layout, deadline).await
    };
    let outcome = tokio::select! {
        result = started => result,
        _ = strata_util::shutdown::wait_for_signal() => Err(anyhow::anyhow!("interrupted while starting")),
    };
    if let Err(err) = outcome {
        supervisor.stop_all().await;
        control_token.cancel();
        let _ = std::fs::remove_file(RunningStamp::path(&data_dir));
        return Err(err);
    }

    let (access_key, secret_key) = credentials_text;
    let endpoints = layout.s3_endpoints(scheme);
    let s3_endpoint = endpoints[0].1.clone();
    if endpoints.len() == 1 {
        println!("Strata stamp is up.");
        println!("  S3 endpoint:  {s3_endpoint}");
    } else {
        println!(
            "Strata stamps are up: {} stamps under one location group.",
            endpoints.len()
        );
        for (stamp, endpoint) in &endpoints {
            println!("  S3 endpoint:  {endpoint}  ({stamp})");
        }
    }
    println!("  access key:   {access_key}");
    println!("  secret key:   {secret_key}");
    println!("  data folder:  {}", data_dir.display());
    println!("  try:          AWS_ACCESS_KEY_ID={access_key} AWS_SECRET_ACCESS_KEY={secret_key} aws --endpoint-url {s3_endpoint} s3 mb s3://photos");
    if let Some(ca) = &s3_ca {
        // What the CA signs is only this stamp's endpoint; trusting it is scoped to the
        // clients given the bundle, not the machine.
        println!(
            "  trust:        the endpoint's CA is {0}: AWS_CA_BUNDLE={0} for the aws cli and SDKs, --ca-bundle {0} for one aws command, verify=\"{0}\" in boto3",
            ca.display()
        );
    }
    println!(
        "  status:       strata status --data-dir {}",
        data_dir.display()
    );
    println!(
        "  faults:       strata node kill|stop|start|pause|resume <node> --data-dir {}",
        data_dir.display()
    );
    println!("Press Ctrl-C to stop every node.");

    supervisor.supervise().await;
    println!("strata: stopping every node ...");
    supervisor.stop_all().await;
    control_token.cancel();
    let _ = std::fs::remove_file(RunningStamp::path(&data_dir));
    println!("strata: stopped.");
    Ok(())
}
