//! What a front-end needs to know to serve: where the manager and location service answer,
//! the one credential it accepts, and how it names itself (region, domain, stamp).

/// Default bound on how long one request keeps retrying a key whose owner is unreachable or
/// moving before it answers 503.
pub const RETRY_BUDGET_MS_DEFAULT: u64 = 5_000;

#[derive(Clone, Debug)]
pub struct FrontendConfig {
    /// gRPC addresses of the partition manager members.
    pub manager_addrs: Vec<String>,
    /// Comma-separated gRPC addresses of the location group's members; None runs without a
    /// global namespace (the stamp's
    /// own bucket records are then the only check for name collisions).
    pub location_addr: Option<String>,
    pub access_key: String,
    pub secret_key: String,
    /// Region reported by GetBucketLocation and accepted in CreateBucket.
    pub region: String,
    /// Base domain for virtual-hosted-style addressing (`bucket.<domain>`).
    pub domain: String,
    /// This stamp's name, as the location service knows it.
    pub stamp: String,
    /// Where other stamps' front-ends reach this one (`http://host:port`, or `https://` for a
    /// link), as reported to the location group; None: the link's address when there is a
    /// link, else this front-end's S3 listen address.
    pub stamp_endpoint: Option<String>,
    /// See [`RETRY_BUDGET_MS_DEFAULT`].
    pub retry_budget_ms: u64,
    /// Largest accepted clock skew of a signed request (s3s's knob; S3 uses 15 minutes).
    pub clock_skew_secs_max: u32,
    /// Requests served at once (each holds at most a few chunks); beyond it 503 SlowDown.
    pub requests_in_flight_max: usize,
    /// How long a bucket record read by this front-end is reused (0: never); see
    /// `bucket_cache.rs`.
    pub bucket_cache_ttl_ms: u64,
    /// Whether SigV2 signatures are checked (false: refused, as S3 refuses them in regions
    /// without SigV2); enabled, a SigV2 request's date must be within `clock_skew_secs_max`.
    pub sigv2_enabled: bool,
    /// Whether PutBucketReplication stores rules whose destination is on another stamp (or a
    /// geo-replica) when this front-end holds no mutual-TLS identity (partition servers ship
    /// over the stamps' links, which need it; such a rule is answered 501 unless this is set,
    /// so no client believes its writes replicate there). For tests of the configuration API
    /// only.
    pub replication_preview: bool,
    /// Time a request head has to arrive whole, from its first byte (`connections.rs`).
    pub header_read_timeout_ms: u64,
    /// Time a connection with no request in progress may stay silent before it is closed.
    pub idle_timeout_ms: u64,
    /// Connections served at once; at the cap the idlest one is closed for a new one.
    pub connections_max: usize,
    /// HTTPS on the S3 endpoint (`s3_tls.rs`); None: plain HTTP.
    pub tls: Option<crate::s3_tls::S3TlsFiles>,
    /// Where the link for other stamps' front-ends listens (`link.rs`: mutual TLS, front-end
    /// certificates only; needs this process's mTLS identity); None: no link, other stamps
    /// forward to the S3 endpoint.
    pub link_listen: Option<std::net::SocketAddr>,
}

/// Default for [`FrontendConfig::header_read_timeout_ms`]: a slow client on a slow link sends
/// a few KiB of headers well within it.
pub const HEADER_READ_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Default for [`FrontendConfig::idle_timeout_ms`]: long enough for SDKs to reuse pooled
/// connections between requests, as S3 keeps them about this long.
pub const IDLE_TIMEOUT_MS_DEFAULT: u64 = 20_000;
/// Default for [`FrontendConfig::connections_max`]: well under the usual 64 Ki file
/// descriptors, and far above `requests_in_flight_max`.
pub const CONNECTIONS_MAX_DEFAULT: usize = 4_096;

/// Default for [`FrontendConfig::requests_in_flight_max`]: with ~3 MiB per request, about
/// 1.5 GiB of bodies at most.
pub const REQUESTS_IN_FLIGHT_MAX_DEFAULT: usize = 512;

impl FrontendConfig {
    /// A config with defaults for everything but the addresses and the credential.
    pub fn new(
        manager_addrs: Vec<String>,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> Self {
        Self {
            manager_addrs,
            location_addr: None,
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            region: "us-east-1".into(),
            domain: "localhost".into(),
            stamp: "stamp-1".into(),
            stamp_endpoint: None,
            retry_budget_ms: RETRY_BUDGET_MS_DEFAULT,
            clock_skew_secs_max: 900,
            requests_in_flight_max: REQUESTS_IN_FLIGHT_MAX_DEFAULT,
            bucket_cache_ttl_ms: crate::bucket_cache::BUCKET_CACHE_TTL_MS_DEFAULT,
            sigv2_enabled: false,
            replication_preview: false,
            header_read_timeout_ms: HEADER_READ_TIMEOUT_MS_DEFAULT,
            idle_timeout_ms: IDLE_TIMEOUT_MS_DEFAULT,
            connections_max: CONNECTIONS_MAX_DEFAULT,
            tls: None,
            link_listen: None,
        }
    }
}

/// What an operator sets for `strata-frontend` (file / environment / flags, see
/// [`strata_util::config`]); the keys are its long flag names with `_`. The credential is
/// usually given as `STRATA_ACCESS_KEY` / `STRATA_SECRET_KEY`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FrontendOptions {
    /// S3 listen address.
    pub listen: std::net::SocketAddr,
    /// Admin HTTP (/health, /metrics) listen address.
    pub http_listen: std::net::SocketAddr,
    /// Comma-separated gRPC addresses of the partition manager members.
    pub manager: String,
    /// Comma-separated gRPC addresses of the location group's members.
    pub location: Option<String>,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    pub domain: String,
    pub stamp: String,
    /// See [`FrontendConfig::stamp_endpoint`].
    pub stamp_endpoint: Option<String>,
    pub bucket_cache_ttl_ms: u64,
    pub sigv2_enabled: bool,
    /// See [`FrontendConfig::replication_preview`].
    pub replication_preview: bool,
    pub header_read_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub connections_max: usize,
    /// Certificate chain (PEM) of the S3 endpoint: with `tls_key`, S3 is served over HTTPS.
    pub tls_cert: Option<std::path::PathBuf>,
    /// Private key (PEM) of `tls_cert`.
    pub tls_key: Option<std::path::PathBuf>,
    /// See [`FrontendConfig::link_listen`].
    pub link_listen: Option<std::net::SocketAddr>,
}

impl Default for FrontendOptions {
    fn default() -> Self {
        let config = FrontendConfig::new(Vec::new(), "", "");
        Self {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 9000)),
            http_listen: std::net::SocketAddr::from(([127, 0, 0, 1], 9001)),
            manager: String::new(),
            location: None,
            access_key: config.access_key,
            secret_key: config.secret_key,
            region: config.region,
            domain: config.domain,
            stamp: config.stamp,
            stamp_endpoint: None,
            bucket_cache_ttl_ms: config.bucket_cache_ttl_ms,
            sigv2_enabled: config.sigv2_enabled,
            replication_preview: config.replication_preview,
            header_read_timeout_ms: config.header_read_timeout_ms,
            idle_timeout_ms: config.idle_timeout_ms,
            connections_max: config.connections_max,
            tls_cert: None,
            tls_key: None,
            link_listen: None,
        }
    }
}

impl FrontendOptions {
    /// The front-end's config (the rest at [`FrontendConfig::new`]'s defaults).
    /// Fails when only one of `tls_cert` and `tls_key` is given (never a silent fall-back to
    /// plain HTTP).
    pub fn frontend_config(&self) -> anyhow::Result<FrontendConfig> {
        let managers = strata_util::config::split_list(&self.manager);
        let mut config = FrontendConfig::new(managers, &self.access_key, &self.secret_key);
        config.location_addr = self.location.clone();
        config.region = self.region.clone();
        config.domain = self.domain.clone();
        config.stamp = self.stamp.clone();
        config.stamp_endpoint = self.stamp_endpoint.clone();
        config.bucket_cache_ttl_ms = self.bucket_cache_ttl_ms;
        config.sigv2_enabled = self.sigv2_enabled;
        config.replication_preview = self.replication_preview;
        config.header_read_timeout_ms = self.header_read_timeout_ms;
        config.idle_timeout_ms = self.idle_timeout_ms;
        config.connections_max = self.connections_max;
        config.link_listen = self.link_listen;
        config.tls = match (&self.tls_cert, &self.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(crate::s3_tls::S3TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => anyhow::bail!("HTTPS on the S3 endpoint needs both tls_cert and tls_key"),
        };
        Ok(config)
    }
}
