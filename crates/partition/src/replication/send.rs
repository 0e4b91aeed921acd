//! Sending one owed version to its destination bucket: the rule that covers it now, where the
//! destination lives ([`super::destinations`]: this stamp's owner from the partition map, or
//! another stamp's link), ApplyReplica without bytes and, when the destination lacks the
//! version, again with them; then what the answer means.

use std::time::Duration;

use futures::StreamExt;
use strata_proto::common::{ReplicationConfig, ReplicationStatus};
use strata_proto::partition::*;
use strata_types::error_detail::{from_status, ErrorDetail, RejectReason};
use strata_types::keys;
use tonic::Status;

use crate::bucket_gate::Write;
use crate::error::PartitionError;
use crate::range::{IndexValue, Range};
use crate::records::{CommitOrigin, ObjectRecord};
use crate::replication_backlog::Owed;
use crate::server::PartitionServerState;
use crate::service::versions;

use super::destinations::{Destinations, Target, Unresolved};

/// An ApplyReplica without bytes answers within this.
const OFFER_TIMEOUT_MS: u64 = 10_000;
/// An ApplyReplica with bytes answers within this plus a second per MiB.
const APPLY_TIMEOUT_MS_BASE: u64 = 30_000;
const APPLY_TIMEOUT_MS_MAX: u64 = 3_600_000;

/// What became of one owed version.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    /// It is at the destination (applied now, or there already); its size.
    Arrived { size_bytes: u64 },
    /// It is no longer owed: deleted, no longer PENDING, or its geo-replica's stamp became its
    /// bucket's home (the copy is the bucket).
    Gone,
    /// It can never arrive, for this cause (a permanent refusal).
    Failed(String),
    /// It did not arrive this time (a transient cause); the backlog keeps it.
    Retry(String),
}

/// Sends `owed` (a version of `range`) to the destination its bucket's rules name now.
pub async fn send(
    state: &PartitionServerState,
    destinations: &Destinations,
    range: &Range,
    config: Option<&ReplicationConfig>,
    owed: &Owed,
) -> Sent {
    let Some(found) = versions::find(range, &owed.bucket, &owed.key, &owed.version_id) else {
        return Sent::Gone;
    };
    let version = found.meta;
    if version.replication_status != ReplicationStatus::Pending as i32 {
        return Sent::Gone;
    }
    let Some(config) = config else {
        return Sent::Failed("the bucket has no replication configuration any more".into());
    };
    let Some(rule) = crate::replication_rules::rule_for(config, &owed.key, &version) else {
        return Sent::Failed("no enabled rule covers this version any more".into());
    };
    let Some(destination) = rule.destination.as_ref() else {
        return Sent::Failed(format!("rule {} names no destination", rule.id));
    };
    let bucket = &destination.bucket;
    let geo = !destination.stamp.is_empty();
    let resolved = if geo {
        destinations.stamp_target(&destination.stamp).await
    } else {
        destinations.resolve(bucket).await
    };
    let target = match resolved {
        // A move made the geo-replica's stamp this bucket's home (its copy became the bucket):
        // the version is where the rule wants it.
        Ok(Target::Here) if geo => return Sent::Gone,
        Ok(target) => target,
        Err(Unresolved::Missing) => {
            return Sent::Failed(format!("the destination bucket {bucket} does not exist"))
        }
        Err(Unresolved::Transient(why)) => return Sent::Retry(format!("{bucket}: {why}")),
    };
    let size_bytes = version.size_bytes;
    let outcome = Offer {
        state,
        destinations,
        range,
        target: &target,
        header: ApplyReplicaHeader {
            bucket: bucket.clone(),
            key: owed.key.clone(),
            version: Some(ObjectRecord {
                chunks: Vec::new(),
                ..version.clone()
            }),
            with_bytes: false,
            geo_replica: geo,
        },
        version: &version,
    }
    .apply()
    .await;
    match outcome {
        Ok(()) => Sent::Arrived { size_bytes },
        Err(status) => {
            destinations.forget(bucket);
            // A geo-replica's copy is where its stamp holds it; an S3 destination may have moved.
            if is_missing(&status) && !geo {
                // Gone from where it was looked up: served elsewhere now (it moved), or gone.
                match destinations.resolve(bucket).await {
                    Ok(now) if now != target => return Sent::Retry(format!("{bucket} moved")),
                    Err(Unresolved::Transient(why)) => return Sent::Retry(why),
                    _ => {}
                }
            }
            classify(bucket, &status)
        }
    }
}

fn is_missing(status: &Status) -> bool {
    matches!(from_status(status), Some(ErrorDetail::NotFound { .. }))
}

/// One version on its way to `target`.
struct Offer<'a> {
    state: &'a PartitionServerState,
    destinations: &'a Destinations,
    range: &'a Range,
    target: &'a Target,
    /// Without bytes; sent again with them when the destination lacks the version.
    header: ApplyReplicaHeader,
    version: &'a ObjectRecord,
}

impl Offer<'_> {
    /// Offers the version, then sends its bytes when the destination lacks it.
    async fn apply(self) -> Result<(), Status> {
        let offered = self
            .call(false, futures::stream::empty(), OFFER_TIMEOUT_MS)
            .await?;
        if offered != ApplyOutcome::NeedBytes {
            return Ok(());
        }
        let timeout_ms = (APPLY_TIMEOUT_MS_BASE + self.version.size_bytes / (1024 * 1024) * 1_000)
            .min(APPLY_TIMEOUT_MS_MAX);
        self.call(true, self.bytes(), timeout_ms).await.map(|_| ())
    }

    async fn call<S>(
        &self,
        with_bytes: bool,
        data: S,
        timeout_ms: u64,
    ) -> Result<ApplyOutcome, Status>
    where
        S: futures::Stream<Item = bytes::Bytes> + Send + 'static,
    {
        let header = ApplyReplicaHeader {
            with_bytes,
            ..self.header.clone()
        };
        let exchange = async {
            match self.target {
                Target::Here => apply_here(self.state, header, data).await,
                Target::Link { endpoints, .. } => {
                    self.destinations
                        .apply_over_link(endpoints, &header, data, timeout_ms)
                        .await
                }
            }
        };
        tokio::time::timeout(Duration::from_millis(timeout_ms), exchange)
            .await
            .map_err(|_| Status::deadline_exceeded("sending a replica timed out"))?
    }

    /// The version's bytes, read through the index at send time. A chunk that cannot be read
    /// ends the stream early: the destination refuses the short body (IncompleteBody) and the
    /// version is retried.
    fn bytes(&self) -> impl futures::Stream<Item = bytes::Bytes> + Send + 'static {
        let wanted = self
            .version
            .chunks
            .iter()
            .map(|c| (*c, 0, c.length))
            .collect();
        crate::service::read_chunks(self.range.stream_client().clone(), wanted)
            .take_while(|chunk| futures::future::ready(chunk.is_ok()))
            .filter_map(|chunk| async move { chunk.ok() })
    }
}

/// Straight to the destination key's owner on this stamp.
async fn apply_here<S>(
    state: &PartitionServerState,
    header: ApplyReplicaHeader,
    data: S,
) -> Result<ApplyOutcome, Status>
where
    S: futures::Stream<Item = bytes::Bytes> + Send + 'static,
{
    let encoded = keys::object_key(&header.bucket, &header.key);
    let owner = state.owner_of(&encoded).ok_or_else(|| {
        Status::from(PartitionError::Loading {
            range_id: strata_types::RangeId::new(0),
        })
    })?;
    let mut peer = state
        .peer(&owner)
        .map_err(|err| Status::unavailable(format!("destination owner {owner}: {err}")))?;
    let body = futures::stream::iter([ApplyReplicaRequest {
        part: Some(apply_replica_request::Part::Header(header)),
    }])
    .chain(data.map(data_part as fn(bytes::Bytes) -> ApplyReplicaRequest));
    let answer = peer.apply_replica(body).await?;
    Ok(answer.into_inner().outcome())
}

fn data_part(bytes: bytes::Bytes) -> ApplyReplicaRequest {
    ApplyReplicaRequest {
        part: Some(apply_replica_request::Part::Data(bytes.to_vec())),
    }
}

/// A destination's refusal that no retry can change, or a transient failure.
fn classify(bucket: &str, status: &Status) -> Sent {
    let permanent = match from_status(status) {
        Some(ErrorDetail::NotFound { .. }) => {
            return Sent::Failed(format!("the destination bucket {bucket} does not exist"));
        }
        Some(ErrorDetail::PermissionDenied { .. }) => true,
        Some(ErrorDetail::Rejected { reason }) => matches!(
            reason,
            RejectReason::InvalidBucketState
                | RejectReason::Conflict
                | RejectReason::EntityTooLarge
                | RejectReason::InvalidArgument
                | RejectReason::KeyTooLong
                | RejectReason::BadDigest
        ),
        _ => false,
    };
    let cause = format!("{bucket}: {}", status.message());
    if permanent {
        Sent::Failed(cause)
    } else {
        Sent::Retry(cause)
    }
}

/// Marks `owed` FAILED with `cause`, unless it changed since (deleted, or marked again).
pub async fn mark_failed(
    state: &PartitionServerState,
    range: &Range,
    owed: &Owed,
    cause: &str,
) -> Result<(), PartitionError> {
    let guard = range.lock_commits().await;
    let Some(found) = versions::find(range, &owed.bucket, &owed.key, &owed.version_id) else {
        return Ok(());
    };
    let mut version = found.meta;
    let unchanged = version.replication_status == ReplicationStatus::Pending as i32
        && version.replication_mark_ms == owed.mark_ms;
    if !unchanged {
        return Ok(());
    }
    version.replication_status = ReplicationStatus::Failed as i32;
    version.replication_mark_ms = 0;
    version.replication_failure = cause.chars().take(1_024).collect();
    let value = if found.is_current {
        IndexValue::Object(version)
    } else {
        IndexValue::Version(version)
    };
    crate::service::require_writable(state, &owed.bucket, Write::ChangesKeys).await?;
    range
        .commit_locked_as(
            guard,
            vec![(found.index_key, Some(value))],
            CommitOrigin::Replication,
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_types::error_detail::to_status;

    #[test]
    fn only_refusals_no_retry_can_change_fail_a_version() {
        let status = |detail| to_status(detail, "refused");
        let missing = status(ErrorDetail::NotFound {
            what: strata_types::error_detail::Missing::Bucket,
            name: "d".into(),
        });
        assert!(matches!(classify("d", &missing), Sent::Failed(_)));
        let conflict = status(ErrorDetail::Rejected {
            reason: RejectReason::Conflict,
        });
        assert!(matches!(classify("d", &conflict), Sent::Failed(_)));
        for transient in [
            status(ErrorDetail::Throttled { retry_after_ms: 5 }),
            status(ErrorDetail::BucketMoved { stamp: None }),
            status(ErrorDetail::Rejected {
                reason: RejectReason::IncompleteBody,
            }),
            Status::unavailable("connection refused"),
        ] {
            assert!(
                matches!(classify("d", &transient), Sent::Retry(_)),
                "{transient:?}"
            );
        }
    }
}
