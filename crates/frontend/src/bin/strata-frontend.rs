//! strata-frontend: the S3 HTTP endpoint of a stamp.

use clap::Parser;
use strata_frontend::FrontendOptions;
use strata_util::config::NodeFlags;

/// Strata S3 front-end. Every flag can also be set in the `--config` TOML file (key = flag
/// name with `_`) or as `STRATA_<FLAG_NAME>`; flags win over the environment, which wins over
/// the file.
#[derive(Parser, Debug, serde::Serialize)]
#[command(about = "Strata S3 front-end")]
struct Flags {
    #[command(flatten)]
    #[serde(flatten)]
    node: NodeFlags,
    /// Comma-separated gRPC addresses of the partition manager members.
    #[arg(long)]
    manager: Option<String>,
    /// Comma-separated gRPC addresses of the location group's members.
    #[arg(long)]
    location: Option<String>,
    /// Also STRATA_ACCESS_KEY.
    #[arg(long)]
    access_key: Option<String>,
    /// Also STRATA_SECRET_KEY.
    #[arg(long)]
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
    /// Where other stamps' front-ends reach this one, reported to the location group
    /// ("http://host:port") [default: the S3 listen address].
    #[arg(long)]
    stamp_endpoint: Option<String>,
    /// How long a bucket record is reused before it is read again, in ms; 0 disables the
    /// cache. Bucket changes made through other front-ends show within this bound
    /// [default: 1000].
    #[arg(long)]
    bucket_cache_ttl_ms: Option<u64>,
    /// Accept SigV2 signatures (header and presigned), dated within 15 minutes; refused
    /// otherwise [default: false].
    #[arg(long)]
    sigv2_enabled: Option<bool>,
    /// Store replication rules before replication is carried out (tests of the
    /// configuration API only; otherwise PutBucketReplication answers 501) [default: false].
    #[arg(long)]
    replication_preview: Option<bool>,
    /// Time a request head has to arrive whole, from its first byte, in ms [default: 10000].
    #[arg(long)]
    header_read_timeout_ms: Option<u64>,
    /// Time a connection with no request in progress may stay silent, in ms [default: 20000].
    #[arg(long)]
    idle_timeout_ms: Option<u64>,
    /// Connections served at once; at the cap the idlest is closed for a new one
    /// [default: 4096].
    #[arg(long)]
    connections_max: Option<usize>,
    /// Certificate chain (PEM) of the S3 endpoint; with --tls-key, S3 is served over HTTPS
    /// only [default: plain HTTP].
    #[arg(long)]
    tls_cert: Option<std::path::PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long)]
    tls_key: Option<std::path::PathBuf>,
    /// Where other stamps' front-ends forward requests to this one, over the deployment's
    /// mutual TLS (front-end certificates only; needs --mtls-*). Reported to the location
    /// group as https://ADDR unless --stamp-endpoint says otherwise [default: no link; other
    /// stamps forward to the S3 endpoint].
    #[arg(long)]
    link_listen: Option<std::net::SocketAddr>,
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
    tokio::runtime::Runtime::new()?.block_on(run(Flags::parse()))
}

async fn run(flags: Flags) -> anyhow::Result<()> {
    let (options, identity): (FrontendOptions, _) =
        strata_util::config::load_node(&flags.node, &flags)?;
    strata_util::rpc::install_identity(identity)?;
    let shutdown = strata_util::shutdown::Shutdown::new();
    shutdown.trigger_on_signals();
    let (listener, _) = strata_util::rpc::bind(options.listen).await?;
    let config = options.frontend_config()?;
    let running = strata_frontend::start(config, listener, shutdown.token()).await?;
    let health = strata_frontend::health_check(running.router.clone());
    let (admin_addr, admin_task) =
        strata_util::admin::serve(options.http_listen, health, shutdown.token()).await?;
    let link = running.link_addr.map(|addr| addr.to_string());
    tracing::info!(s3 = %running.s3_addr, admin = %admin_addr, link = ?link, "strata-frontend listening");
    shutdown.spawn(async move {
        let _ = running.task.await;
        let _ = admin_task.await;
    });
    shutdown.wait(std::time::Duration::from_secs(10)).await;
    Ok(())
}
