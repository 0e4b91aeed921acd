//! ApplyReplica: a replicated version arriving at its destination bucket (issue 16; the
//! sender is [`crate::replication`]).
//!
//! Invariants:
//! - Idempotent by version id: a version already in the bucket (same id, ETag, size and kind)
//!   is never written twice; it only takes the sender's tags (a tag change replicates). So a
//!   sender that retries, or ships a version again after a reload or a reshape, changes
//!   nothing.
//! - Placed by its version stamp, not by arrival: newer than the key's current version, it
//!   becomes current (the current one is demoted); older, it is stored noncurrent under its
//!   stamp. A stamp slot or current stamp held by another version refuses it (Conflict, a
//!   permanent cause the sender marks FAILED).
//! - Stored exactly: version id, stamp, metadata, tags, checksum and last-modified time as the
//!   source had them, status REPLICA (never replicated again, so two buckets replicating to
//!   each other do not loop), pointing only at bytes this server appended and checked (length,
//!   and MD5 when the ETag is one).
//! - Written only into a served bucket with versioning Enabled, under the bucket's write
//!   gate (checked under the commit lock, as a PUT is: DeleteBucket and a move's fence order
//!   against it), or into a geo-replica copy, checked as a move's import is (a move that
//!   takes the copy over, or a DROP, orders against it).

use strata_proto::common::{ReplicationStatus, VersioningState};
use strata_proto::partition::*;
use strata_types::error_detail::RejectReason;
use strata_types::keys;
use strata_types::limits::OBJECT_BYTES_MAX;
use strata_types::GEO_REPLICA_MOVE_ID;
use tonic::{Status, Streaming};

use super::move_import::{etag_md5, receive_row_bytes, DataMessages};
use super::moves::writable_range;
use super::versions::{self, FoundVersion};
use crate::bucket_gate::Write;
use crate::error::PartitionError;
use crate::range::{Change, IndexValue, Range};
use crate::records::{CommitOrigin, ObjectRecord};
use crate::server::PartitionServerState;

impl DataMessages for Streaming<ApplyReplicaRequest> {
    async fn next_data(&mut self) -> Result<Option<Vec<u8>>, Status> {
        match self.message().await? {
            None => Ok(None),
            Some(ApplyReplicaRequest {
                part: Some(apply_replica_request::Part::Data(data)),
            }) => Ok(Some(data)),
            Some(_) => Err(PartitionError::InvalidArgument(
                "only data may follow the header".into(),
            )
            .into()),
        }
    }
}

/// Where a version that is not in the bucket yet goes.
enum Placement {
    /// The version is there already.
    Present(Box<FoundVersion>),
    /// These changes store it.
    New(Vec<Change>),
}

fn conflict(message: String) -> PartitionError {
    PartitionError::rejected(RejectReason::Conflict, message)
}

/// The header, checked: a key a client could write, a version with an id its stamp names,
/// a size within S3's and nothing for a delete marker. Returns it with the version as it will
/// be stored (REPLICA, no mark, no write id, no chunks).
fn replica_header(
    first: Option<ApplyReplicaRequest>,
) -> Result<(ApplyReplicaHeader, ObjectRecord), PartitionError> {
    let Some(apply_replica_request::Part::Header(mut header)) = first.and_then(|m| m.part) else {
        return Err(PartitionError::InvalidArgument(
            "the first message must be the header".into(),
        ));
    };
    super::objects::object_key(&header.bucket, &header.key)?;
    let mut version = header
        .version
        .take()
        .ok_or_else(|| PartitionError::InvalidArgument("the header carries no version".into()))?;
    if versions::stamp_of_id(&version.version_id) != Some(version.version_stamp) {
        return Err(PartitionError::InvalidArgument(format!(
            "version {:?} is not a versioned bucket's id for stamp {}",
            version.version_id, version.version_stamp
        )));
    }
    if version.size_bytes > OBJECT_BYTES_MAX || (version.delete_marker && version.size_bytes != 0) {
        return Err(PartitionError::InvalidArgument(format!(
            "a version of {} bytes (at most {OBJECT_BYTES_MAX}, none for a delete marker)",
            version.size_bytes
        )));
    }
    version.replication_status = ReplicationStatus::Replica as i32;
    version.replication_mark_ms = 0;
    version.write_id.clear();
    version.chunks.clear();
    Ok((header, version))
}

/// Where `version` of `key` goes in `range` (call with the commit lock held).
fn place(
    range: &Range,
    bucket: &str,
    key: &str,
    version: &ObjectRecord,
) -> Result<Placement, PartitionError> {
    if let Some(found) = versions::find(range, bucket, key, &version.version_id) {
        let same = found.meta.etag == version.etag
            && found.meta.size_bytes == version.size_bytes
            && found.meta.delete_marker == version.delete_marker;
        if !same {
            return Err(conflict(format!(
                "version {} of {key} is here with other contents",
                version.version_id
            )));
        }
        return Ok(Placement::Present(Box::new(found)));
    }
    let object = keys::object_key(bucket, key);
    let stamp = version.version_stamp;
    let current = match range.get(&object) {
        Some(IndexValue::Object(current)) => Some(current),
        _ => None,
    };
    match current {
        None => Ok(Placement::New(vec![(
            object,
            Some(IndexValue::Object(version.clone())),
        )])),
        Some(current) if versions::stamp_of(&current) < stamp => Ok(Placement::New(vec![
            versions::demote(bucket, key, current),
            (object, Some(IndexValue::Object(version.clone()))),
        ])),
        Some(current) if versions::stamp_of(&current) == stamp => Err(conflict(format!(
            "the current version of {key} has the stamp of version {}",
            version.version_id
        ))),
        Some(_) => {
            let slot = keys::version_key(bucket, key, stamp);
            if range.get(&slot).is_some() {
                return Err(conflict(format!(
                    "another version of {key} has the stamp of version {}",
                    version.version_id
                )));
            }
            Ok(Placement::New(vec![(
                slot,
                Some(IndexValue::Version(version.clone())),
            )]))
        }
    }
}

/// What kind of destination the bucket is here, which decides how each write into it is
/// admitted.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// A served bucket with versioning Enabled (the destination's rule, as S3's): its write
    /// gate admits each write, as a PUT's.
    Served,
    /// A geo-replica copy (importing by [`GEO_REPLICA_MOVE_ID`]): admitted as a move's
    /// import is, so a move that takes the copy over, or a DROP, orders against it.
    GeoCopy,
}

/// The kind of destination `bucket` is here; refused when it is neither.
async fn kind_of_destination(
    state: &PartitionServerState,
    bucket: &str,
) -> Result<Kind, PartitionError> {
    let (record, _) = state.bucket_record_with_lease(bucket, false).await?;
    let record = record.ok_or_else(|| PartitionError::NoSuchBucket(bucket.to_string()))?;
    if record.importing && record.move_id == GEO_REPLICA_MOVE_ID {
        return Ok(Kind::GeoCopy);
    }
    if record.versioning != VersioningState::Enabled as i32 {
        return Err(PartitionError::rejected(
            RejectReason::InvalidBucketState,
            format!("the destination bucket {bucket} does not have versioning enabled"),
        ));
    }
    Ok(Kind::Served)
}

/// Admits one write into the destination (call it holding the commit lock, right before
/// the commit: see [`crate::bucket_gate`] and [`super::move_import`]).
async fn admit(
    state: &PartitionServerState,
    bucket: &str,
    kind: Kind,
    write: Write,
) -> Result<(), PartitionError> {
    match kind {
        Kind::Served => super::require_writable(state, bucket, write)
            .await
            .map(drop),
        Kind::GeoCopy => {
            super::move_import::require_importing(state, bucket, GEO_REPLICA_MOVE_ID).await
        }
    }
}

/// Commits the tags of a version that is there already, if they changed.
async fn update_present(
    state: &PartitionServerState,
    range: &Range,
    guard: tokio::sync::MutexGuard<'_, crate::range::CommitState>,
    (bucket, kind): (&str, Kind),
    found: FoundVersion,
    version: &ObjectRecord,
) -> Result<ApplyReplicaResponse, PartitionError> {
    let present = ApplyReplicaResponse {
        outcome: ApplyOutcome::Present as i32,
    };
    if found.meta.tags == version.tags {
        return Ok(present);
    }
    let mut meta = found.meta;
    meta.tags = version.tags.clone();
    let value = if found.is_current {
        IndexValue::Object(meta)
    } else {
        IndexValue::Version(meta)
    };
    admit(state, bucket, kind, Write::ChangesKeys).await?;
    range
        .commit_locked_as(
            guard,
            vec![(found.index_key, Some(value))],
            CommitOrigin::ReplicaApply,
        )
        .await?;
    Ok(present)
}

pub async fn apply_replica(
    state: &PartitionServerState,
    mut body: Streaming<ApplyReplicaRequest>,
) -> Result<ApplyReplicaResponse, Status> {
    let (header, mut version) = replica_header(body.message().await?)?;
    let (bucket, key) = (header.bucket.as_str(), header.key.as_str());
    let range = writable_range(state, &keys::object_key(bucket, key))?;
    let kind = kind_of_destination(state, bucket).await?;
    if header.geo_replica && !matches!(kind, Kind::GeoCopy) {
        // A fail-over or a move made the copy the bucket's home: what the old home still owes
        // stays there (a fail-over reported it lost).
        return Err(super::moves::move_conflict(format!(
            "{bucket} is no geo-replica copy here any more"
        ))
        .into());
    }
    let needs_bytes = !version.delete_marker && version.size_bytes > 0;
    let applied = ApplyReplicaResponse {
        outcome: ApplyOutcome::Applied as i32,
    };
    // Decide before any byte moves: most offers after a retry or a reshape are present.
    {
        let guard = range.lock_commits().await;
        match place(&range, bucket, key, &version)? {
            Placement::Present(found) => {
                return Ok(
                    update_present(state, &range, guard, (bucket, kind), *found, &version).await?,
                );
            }
            Placement::New(changes) if !needs_bytes => {
                admit(state, bucket, kind, Write::AddsKeys).await?;
                range
                    .commit_locked_as(guard, changes, CommitOrigin::ReplicaApply)
                    .await?;
                return Ok(applied);
            }
            Placement::New(_) if !header.with_bytes => {
                return Ok(ApplyReplicaResponse {
                    outcome: ApplyOutcome::NeedBytes as i32,
                });
            }
            Placement::New(_) => {}
        }
    }
    // Until the commit below, compaction keeps the extents these bytes land in.
    let _upload = range.begin_upload();
    let md5 = etag_md5(&IndexValue::Object(version.clone()));
    version.chunks = receive_row_bytes(&range, &mut body, version.size_bytes, md5).await?;
    let guard = range.lock_commits().await;
    // Placed again: another sender may have applied it while the bytes streamed (then these
    // bytes are never referenced, and compaction frees them).
    match place(&range, bucket, key, &version)? {
        Placement::Present(found) => {
            Ok(update_present(state, &range, guard, (bucket, kind), *found, &version).await?)
        }
        Placement::New(changes) => {
            admit(state, bucket, kind, Write::AddsKeys).await?;
            range
                .commit_locked_as(guard, changes, CommitOrigin::ReplicaApply)
                .await?;
            Ok(applied)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(version: ObjectRecord, key: &str) -> Option<ApplyReplicaRequest> {
        Some(ApplyReplicaRequest {
            part: Some(apply_replica_request::Part::Header(ApplyReplicaHeader {
                bucket: "dst".into(),
                key: key.into(),
                version: Some(version),
                with_bytes: false,
                geo_replica: false,
            })),
        })
    }

    fn version(stamp: u64) -> ObjectRecord {
        ObjectRecord {
            version_id: format!("{stamp:016x}0000abcd"),
            version_stamp: stamp,
            size_bytes: 3,
            replication_status: ReplicationStatus::Pending as i32,
            replication_mark_ms: 77,
            write_id: "w".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_header_is_checked_and_its_version_stored_as_a_replica() {
        let (_, stored) = replica_header(header(version(1 << 40), "k")).unwrap();
        assert_eq!(stored.replication_status, ReplicationStatus::Replica as i32);
        assert_eq!(
            (stored.replication_mark_ms, stored.write_id.as_str()),
            (0, "")
        );
        // An id that does not name the stamp, the null version, an empty key, a marker with
        // bytes, and no header at all are refused.
        let mut other_stamp = version(1 << 40);
        other_stamp.version_stamp += 1;
        assert!(replica_header(header(other_stamp, "k")).is_err());
        let mut null = version(1 << 40);
        null.version_id.clear();
        assert!(replica_header(header(null, "k")).is_err());
        assert!(replica_header(header(version(1 << 40), "")).is_err());
        let mut marker = version(1 << 40);
        marker.delete_marker = true;
        assert!(replica_header(header(marker, "k")).is_err());
        assert!(replica_header(None).is_err());
    }
}
