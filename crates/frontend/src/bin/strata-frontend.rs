//! strata-frontend: the S3 HTTP endpoint of a stamp.

use clap::Parser;
use std::net::SocketAddr;
use strata_frontend::FrontendConfig;
use strata_util::config::{load, pick};

#[derive(Parser, Debug)]
#[command(about = "Strata S3 front-end")]
struct Args {
    /// TOML file whose keys are these flags' long names with `_`; flags win.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// S3 listen address [default: 127.0.0.1:9000].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Admin HTTP (/health, /metrics) listen address [default: 127.0.0.1:9001].
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// Comma-separated gRPC addresses of the partition manager members.
    #[arg(long)]
    manager: Option<String>,
    /// gRPC address of the location service.
    #[arg(long)]
    location: Option<String>,
    #[arg(long, env = "STRATA_ACCESS_KEY")]
    access_key: Option<String>,
    #[arg(long, env = "STRATA_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// [default: us-east-1]
    #[arg(long)]
    region: Option<String>,
    /// Base domain for virtual-hosted-style requests [default: localhost].
    #[arg(long)]
    domain: Option<String>,
    /// This stamp's name [default: stamp-1].
    #[arg(long)]
    stamp: Option<String>,
    /// How long a bucket record is reused before it is read again, in ms; 0 disables the
    /// cache. Bucket changes made through other front-ends show within this bound
    /// [default: 1000].
    #[arg(long)]
    bucket_cache_ttl_ms: Option<u64>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    http_listen: Option<SocketAddr>,
    manager: Option<String>,
    location: Option<String>,
    access_key: Option<String>,
    secret_key: Option<String>,
    region: Option<String>,
    domain: Option<String>,
    stamp: Option<String>,
    bucket_cache_ttl_ms: Option<u64>,
}

/// s3s logs every client error (NoSuchKey, AccessDenied, ...) at ERROR level; the front-end
/// logs what matters itself, so s3s is silenced unless RUST_LOG says otherwise.
const DEFAULT_LOG_FILTER: &str = "info,h2=warn,hyper=warn,tower=warn,s3s=off";

fn main() -> anyhow::Result<()> {
    if std::env::var_os("RUST_LOG").is_none() {
        // Single-threaded here: no runtime has started yet.
        std::env::set_var("RUST_LOG", DEFAULT_LOG_FILTER);
    }
    strata_util::init_tracing();
    tokio::runtime::Runtime::new()?.block_on(run(Args::parse()))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let file: FileConfig = load(args.config.as_deref())?;
    let listen = pick(args.listen, file.listen, "127.0.0.1:9000".parse()?);
    let http_listen = pick(
        args.http_listen,
        file.http_listen,
        "127.0.0.1:9001".parse()?,
    );
    let managers = pick(args.manager, file.manager, String::new());
    let managers: Vec<String> = managers
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(String::from)
        .collect();
    let mut config = FrontendConfig::new(
        managers,
        pick(args.access_key, file.access_key, String::new()),
        pick(args.secret_key, file.secret_key, String::new()),
    );
    config.location_addr = args.location.or(file.location);
    config.region = pick(args.region, file.region, config.region);
    config.domain = pick(args.domain, file.domain, config.domain);
    config.stamp = pick(args.stamp, file.stamp, config.stamp);
    config.bucket_cache_ttl_ms = pick(
        args.bucket_cache_ttl_ms,
        file.bucket_cache_ttl_ms,
        config.bucket_cache_ttl_ms,
    );

    let shutdown = strata_util::shutdown::Shutdown::new();
    shutdown.trigger_on_signals();
    let (listener, _) = strata_util::rpc::bind(listen).await?;
    let running = strata_frontend::start(config, listener, shutdown.token()).await?;
    let health = strata_frontend::health_check(running.router.clone());
    let (admin_addr, admin_task) =
        strata_util::admin::serve(http_listen, health, shutdown.token()).await?;
    tracing::info!(s3 = %running.s3_addr, admin = %admin_addr, "strata-frontend listening");
    shutdown.spawn(async move {
        let _ = running.task.await;
        let _ = admin_task.await;
    });
    shutdown.wait(std::time::Duration::from_secs(10)).await;
    Ok(())
}
