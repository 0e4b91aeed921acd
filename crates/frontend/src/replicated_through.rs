//! `x-strata-replicated-through` (issue 16, item 4): on a destination bucket's HeadBucket and
//! ListObjects, a time T such that every version a rule covers, acknowledged by one of the
//! bucket's sources before T, is readable here. A reader that processes files in order waits
//! until T passes the file it wants.
//!
//! - Sources: before a source stores rules naming a destination, its front-end registers the
//!   source in the destination's record (`replication_sources`, UpdateBucket; over the
//!   destination stamp's link when it is homed elsewhere, `replica_sink.rs`). So every source
//!   that may owe a version here is listed before it marks one.
//! - A source's watermark: the lowest over the ranges spanning its keys of what their owners
//!   report (GetReplicationState: the owner's wall clock when asked, or the lowest mark still
//!   owed), asked of the source's home stamp. Unknown when a range does not answer or was not
//!   scanned yet; a source that no longer exists holds nothing back.
//! - T is the lowest over the sources, and the header is left out while any is unknown: a
//!   missing header never lies, a wrong one would.
//!
//! T is computed before the listing it goes with is read (arrivals only add to what a later
//! read sees), and kept for [`RECENT_MS`] per bucket, which only makes it older.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prost::Message;
use s3s::S3Result;
use strata_proto::common::BucketMeta;
use strata_proto::partition::{
    update_bucket_request, ReplicaSourceRequest, ReplicaWatermarkAnswer,
};
use strata_proto::replica_link::{SOURCE_PATH, WATERMARK_PATH};

use crate::error::FrontendError;
use crate::forward::{Forwarder, Home};
use crate::frontend::Frontend;
use crate::replication_state::{Ask, BucketReplication};

/// The response header.
pub const REPLICATED_THROUGH: &str = "x-strata-replicated-through";
/// A destination's T is reused this long.
pub const RECENT_MS: u64 = 1_000;
/// Destinations whose T is remembered, at most.
const RECENT_MAX: usize = 10_000;
/// How a source's range owners are asked (GetReplicationState): one after another, each within
/// 3 s, and the first silent one settles it (the watermark is unknown then).
const STATE_ASK: Ask = Ask {
    timeout_ms: 3_000,
    concurrency: 1,
    stop_at_silence: true,
};
/// A source that no longer exists (it holds nothing back).
const GONE: i64 = -1;

/// Destinations' recently computed T (None: not known then).
#[derive(Default)]
pub struct Recent(Mutex<HashMap<String, (Instant, Option<i64>)>>);

impl Frontend {
    /// Registers `source` with `destination`, wherever it is homed; refused when that cannot
    /// be done now (the rules must not be stored before it is).
    pub(crate) async fn register_replication_source(
        &self,
        destination: &str,
        source: &str,
    ) -> S3Result<()> {
        if let Ok(Some(_)) = self.get_bucket(destination).await {
            return self.register_source_here(destination, source).await;
        }
        let unavailable = |why: String| {
            FrontendError::Unavailable(format!(
                "registering {source} with the destination {destination}: {why}"
            ))
        };
        let forwarder = self
            .forwarder()
            .ok_or_else(|| unavailable("no links".into()))?;
        let Home::Elsewhere { endpoints, .. } = forwarder.home_of(destination).await else {
            return Err(unavailable("its home is not known now".into()).into());
        };
        let body = ReplicaSourceRequest {
            destination: destination.to_string(),
            source: source.to_string(),
            geo_replica: false,
        }
        .encode_to_vec();
        match forwarder
            .call_link(&endpoints, http::Method::POST, SOURCE_PATH, body)
            .await
        {
            Ok((status, _)) if status == http::StatusCode::OK => Ok(()),
            Ok((status, text)) => {
                Err(unavailable(format!("{status}: {}", String::from_utf8_lossy(&text))).into())
            }
            Err(err) => Err(unavailable(err).into()),
        }
    }

    /// Registers `source` with `destination`, a bucket of this stamp.
    pub(crate) async fn register_source_here(
        &self,
        destination: &str,
        source: &str,
    ) -> S3Result<()> {
        let change = update_bucket_request::Change::AddReplicationSource(source.to_string());
        self.update_bucket(destination, change).await.map(|_| ())
    }

    /// The destination's T for its header (see the module comment).
    pub(crate) async fn replicated_through_ms(&self, bucket: &BucketMeta) -> Option<i64> {
        if bucket.replication_sources.is_empty() {
            return None;
        }
        if let Some(known) = self.through.recent(&bucket.name) {
            return known;
        }
        let mut through: Option<i64> = None;
        for source in &bucket.replication_sources {
            match self.source_watermark_ms(source).await {
                Some(GONE) => {}
                Some(ms) if ms > 0 => through = Some(through.map_or(ms, |t| t.min(ms))),
                _ => {
                    through = None;
                    break;
                }
            }
        }
        crate::metrics::METRICS.replicated_through(&bucket.name, through);
        self.through.remember(&bucket.name, through);
        through
    }

    /// T for a listing of `bucket` (None when it is no destination or T is not known; the
    /// listing itself answers a missing bucket).
    pub(crate) async fn listed_through_ms(&self, bucket: &str) -> Option<i64> {
        let meta = self.get_bucket(bucket).await.ok()??;
        self.replicated_through_ms(&meta).await
    }

    /// A source's watermark: here, or asked of its home stamp; None when not known now.
    async fn source_watermark_ms(&self, source: &str) -> Option<i64> {
        // The record read here is passed down, not read again.
        if let Ok(Some(record)) = self.get_bucket(source).await {
            return Some(self.watermark_of_ms(&record).await);
        }
        let forwarder = self.forwarder()?;
        let endpoints = match forwarder.home_of(source).await {
            Home::Elsewhere { endpoints, .. } => endpoints,
            Home::Here => return Some(GONE),
            Home::Unknown => return None,
        };
        let query = format!("{WATERMARK_PATH}?bucket={}", urlencoding::encode(source));
        let (status, body) = forwarder
            .call_link(&endpoints, http::Method::GET, &query, Vec::new())
            .await
            .ok()?;
        if status != http::StatusCode::OK {
            return None;
        }
        Some(ReplicaWatermarkAnswer::decode(body).ok()?.watermark_ms)
    }

    /// The watermark of `bucket`, homed here: the lowest its ranges' owners report, 0 when a
    /// range does not answer or does not know yet, [`GONE`] when there is no such bucket.
    pub(crate) async fn watermark_here_ms(&self, bucket: &str) -> i64 {
        match self.get_bucket(bucket).await {
            Ok(Some(record)) => self.watermark_of_ms(&record).await,
            Ok(None) => GONE,
            Err(_) => 0,
        }
    }

    /// The watermark of `bucket`, a record of this stamp: 0 when not known now (see
    /// [`crate::replication_state`]: every range of the map spanning it, as the map names it,
    /// must have answered).
    async fn watermark_of_ms(&self, bucket: &BucketMeta) -> i64 {
        let Ok(map) = self.router.snapshot().await else {
            return 0;
        };
        let connect = |owner: &str| self.router.unary_client(owner).ok();
        let state = BucketReplication::ask(&map.ranges, &bucket.name, STATE_ASK, &connect).await;
        state.watermark_ms().unwrap_or(0)
    }

    fn forwarder(&self) -> Option<std::sync::Arc<Forwarder>> {
        self.links.get()?.upgrade()
    }
}

impl Recent {
    fn recent(&self, bucket: &str) -> Option<Option<i64>> {
        let recent = self.0.lock().ok()?;
        let (at, through) = recent.get(bucket)?;
        (at.elapsed() < Duration::from_millis(RECENT_MS)).then_some(*through)
    }

    fn remember(&self, bucket: &str, through: Option<i64>) {
        if let Ok(mut recent) = self.0.lock() {
            if recent.len() >= RECENT_MAX {
                recent.clear();
            }
            recent.insert(bucket.to_string(), (Instant::now(), through));
        }
    }
}

/// T as the header shows it: RFC 3339 in UTC with milliseconds.
pub fn header_value(through_ms: i64) -> Option<http::HeaderValue> {
    let at =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(through_ms) * 1_000_000).ok()?;
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    http::HeaderValue::from_str(&at.format(&format).ok()?).ok()
}

/// Adds the header to `headers` when T is known.
pub fn add_header(headers: &mut http::HeaderMap, through_ms: Option<i64>) {
    if let Some(value) = through_ms.and_then(header_value) {
        headers.insert(REPLICATED_THROUGH, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_rfc_3339_utc_with_milliseconds() {
        let value = header_value(1_764_967_200_123).unwrap();
        assert_eq!(value.to_str().unwrap(), "2025-12-05T20:40:00.123Z");
        let mut headers = http::HeaderMap::new();
        add_header(&mut headers, None);
        assert!(headers.is_empty(), "unknown: no header");
        add_header(&mut headers, Some(5));
        assert_eq!(headers[REPLICATED_THROUGH], "1970-01-01T00:00:00.005Z");
    }

    #[test]
    fn a_recent_value_is_reused_then_forgotten() {
        let recent = Recent::default();
        assert_eq!(recent.recent("d"), None);
        recent.remember("d", Some(7));
        assert_eq!(recent.recent("d"), Some(Some(7)));
        recent.remember("e", None);
        assert_eq!(recent.recent("e"), Some(None));
    }
}
