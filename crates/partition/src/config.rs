//! The partition server's configuration, apart from the behaviour it steers: the server's own
//! settings and those of its background work (compaction, lifecycle) and request-rate limits.
//! Every module reads these; this one depends on none of them.

/// One partition server's settings.
#[derive(Clone, Debug)]
pub struct PartitionServerConfig {
    pub server_id: String,
    /// gRPC address other nodes reach this server at.
    pub advertise_addr: String,
    pub http_addr: String,
    pub manager_addrs: Vec<String>,
    pub heartbeat_interval_ms: u64,
    /// The server serves only while its last answered heartbeat was sent less than this long
    /// ago. Must stay below the manager's server timeout: the manager gives a silent server's
    /// ranges away only after that, when this server has stopped serving them for sure.
    pub lease_ms: u64,
    /// Write a checkpoint once this many log entries were applied since the last one.
    pub checkpoint_every_entries: u64,
    /// Data-stream compaction (reclaiming deleted and overwritten objects' bytes).
    pub compaction: CompactionConfig,
    /// Request-rate limits per range and per bucket.
    pub throttle: ThrottleConfig,
    /// Carrying out buckets' lifecycle rules.
    pub lifecycle: LifecycleConfig,
    /// This server's stamp and the location group, where replication finds destination
    /// buckets on other stamps.
    pub stamps: StampsConfig,
}

/// Where this server stands among stamps (issue 16's shipping between stamps).
#[derive(Clone, Debug, Default)]
pub struct StampsConfig {
    /// This server's stamp (empty: one stamp alone).
    pub stamp: String,
    /// The location group members' gRPC addresses (empty: every destination is on this stamp).
    pub location_addrs: Vec<String>,
}

/// How a range's data stream is compacted.
#[derive(Clone, Debug)]
pub struct CompactionConfig {
    /// A sealed extent whose live bytes / length is below this is compacted (one with no live
    /// bytes always is).
    pub live_ratio_max: f64,
    /// At most this many live bytes are copied per pass.
    pub bytes_per_pass_max: u64,
    /// Copying is paced to at most this many bytes per second, so foreground traffic wins.
    pub bytes_per_sec_max: u64,
    /// Pause between passes over the server's ranges.
    pub interval_ms: u64,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        Self {
            live_ratio_max: 0.5,
            bytes_per_pass_max: 64 * 1024 * 1024,
            bytes_per_sec_max: 32 * 1024 * 1024,
            interval_ms: 5_000,
        }
    }
}

/// How lifecycle rules are carried out.
#[derive(Clone, Debug)]
pub struct LifecycleConfig {
    /// Pause between passes over the server's ranges.
    pub interval_ms: u64,
    /// Length of one lifecycle "day" (tests shorten it).
    pub day_ms: u64,
    /// Index entries one pass looks at per range, at most.
    pub entries_per_pass_max: usize,
    /// Expirations and aborts one pass carries out per range, at most.
    pub actions_per_pass_max: usize,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            interval_ms: 60_000,
            day_ms: 86_400_000,
            entries_per_pass_max: 100_000,
            actions_per_pass_max: 1_000,
        }
    }
}

/// The request-rate limits of one partition server (0 = no limit).
#[derive(Clone, Debug)]
pub struct ThrottleConfig {
    /// Requests per second one range accepts (S3 documents 3,500 writes / 5,500 reads per
    /// prefix; the default is the latter).
    pub range_requests_per_sec_max: u32,
    /// Requests per second one bucket accepts on this server, over all its ranges here.
    pub bucket_requests_per_sec_max: u32,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            range_requests_per_sec_max: 5_500,
            bucket_requests_per_sec_max: 11_000,
        }
    }
}
