//! Object versions (S3 versioning), decided by the key's owner under its commit lock.
//!
//! The current version of a key stays at `keys::object_key` (so reads, listing and conditional
//! writes keep working as for unversioned buckets); older versions move to
//! `keys::version_key(bucket, key, stamp)`, newest first, in the same range. A version's stamp
//! is above every earlier stamp of the key, so demoted versions never collide. Version ids
//! carry their stamp (`<stamp 16 hex><random 8 hex>`), so a version is found without a scan;
//! only the "null" version (written while the bucket was unversioned or suspended) is found by
//! walking the key's versions.
//!
//! What a write does to the key's current version, by bucket state (as AWS documents it):
//! - unversioned: it is replaced;
//! - enabled: it becomes noncurrent, the write gets a new version id;
//! - suspended: the write is the null version: a current null version is replaced, a current
//!   non-null one becomes noncurrent, and a noncurrent null version is removed.

use strata_proto::common::VersioningState;
use strata_types::keys;

use crate::error::PartitionError;
use crate::range::{Change, IndexValue, Range};
use crate::records::ObjectRecord;

/// The id S3 shows for the null version.
pub const NULL_VERSION_ID: &str = "null";

/// The version ordering stamp of a stored version (records from before versioning have none).
pub fn stamp_of(meta: &ObjectRecord) -> u64 {
    if meta.version_stamp != 0 {
        meta.version_stamp
    } else {
        (meta.last_modified_ms.max(0) as u64) << 20
    }
}

/// A new version's stamp: above the key's current version's, and never below the range's
/// clock (`clock_ms`, see `LogEntry.committed_ms`), so a version's stamp is at least the
/// clock of every commit before its own (replication's watermark relies on it).
fn new_stamp(current: Option<&ObjectRecord>, clock_ms: i64) -> u64 {
    let now = (strata_util::now_ms().max(clock_ms).max(0) as u64) << 20;
    current.map_or(now, |c| now.max(stamp_of(c) + 1))
}

fn new_version_id(stamp: u64) -> String {
    format!("{stamp:016x}{:08x}", rand::random::<u32>())
}

/// The stamp a non-null version id carries.
pub(super) fn stamp_of_id(version_id: &str) -> Option<u64> {
    if version_id.len() != 24 || !version_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(&version_id[..16], 16).ok()
}

/// The stored form of a requested version id ("null" is stored as empty).
fn stored_id(version_id: &str) -> &str {
    if version_id == NULL_VERSION_ID {
        ""
    } else {
        version_id
    }
}

pub fn versioning_of(raw: i32) -> Result<VersioningState, PartitionError> {
    VersioningState::try_from(raw)
        .map_err(|_| PartitionError::InvalidArgument(format!("unknown versioning state {raw}")))
}

fn current_of(range: &Range, object: &[u8]) -> Option<ObjectRecord> {
    match range.get(object) {
        Some(IndexValue::Object(meta)) => Some(meta),
        _ => None,
    }
}

/// The noncurrent versions of `key`, newest first, as (index key, meta), until `visit` says stop.
fn scan_noncurrent(
    range: &Range,
    bucket: &str,
    key: &str,
    mut visit: impl FnMut(&[u8], &ObjectRecord) -> bool,
) {
    let prefix = keys::version_prefix(bucket, key);
    let end = keys::prefix_end(&prefix);
    range.scan(&prefix, end.as_deref(), |index_key, value| match value {
        IndexValue::Version(meta) => visit(index_key, meta),
        _ => true,
    });
}

/// Where the noncurrent null version of `key` is, if it has one.
fn noncurrent_null(range: &Range, bucket: &str, key: &str) -> Option<Vec<u8>> {
    let mut found = None;
    scan_noncurrent(range, bucket, key, |index_key, meta| {
        if meta.version_id.is_empty() {
            found = Some(index_key.to_vec());
            return false;
        }
        true
    });
    found
}

/// The changes that make `meta` the key's current version under `versioning`; fills in its
/// version id and stamp. Call with the commit lock held.
pub fn write_changes(
    range: &Range,
    bucket: &str,
    key: &str,
    meta: &mut ObjectRecord,
    versioning: VersioningState,
) -> Vec<Change> {
    let object = keys::object_key(bucket, key);
    let current = current_of(range, &object);
    meta.version_stamp = new_stamp(current.as_ref(), range.clock_ms());
    let mut changes = Vec::with_capacity(3);
    match versioning {
        VersioningState::Unversioned => meta.version_id.clear(),
        VersioningState::Enabled => {
            meta.version_id = new_version_id(meta.version_stamp);
            if let Some(current) = current {
                changes.push(demote(bucket, key, current));
            }
        }
        VersioningState::Suspended => {
            meta.version_id.clear();
            if let Some(current) = current.filter(|c| !c.version_id.is_empty()) {
                changes.push(demote(bucket, key, current));
            }
            if let Some(null) = noncurrent_null(range, bucket, key) {
                changes.push((null, None));
            }
        }
    }
    changes.push((object, Some(IndexValue::Object(meta.clone()))));
    changes
}

pub(super) fn demote(bucket: &str, key: &str, current: ObjectRecord) -> Change {
    let stamp = stamp_of(&current);
    (
        keys::version_key(bucket, key, stamp),
        Some(IndexValue::Version(current)),
    )
}

/// One stored version: its index key, its metadata and whether it is the current one.
pub struct FoundVersion {
    pub index_key: Vec<u8>,
    pub meta: ObjectRecord,
    pub is_current: bool,
}

/// The version `version_id` ("null" for the null version) of `key`; None when it does not
/// exist. An empty id is the current version.
pub fn find(range: &Range, bucket: &str, key: &str, version_id: &str) -> Option<FoundVersion> {
    let object = keys::object_key(bucket, key);
    let current = current_of(range, &object);
    if version_id.is_empty() {
        return current.map(|meta| FoundVersion {
            index_key: object,
            meta,
            is_current: true,
        });
    }
    let wanted = stored_id(version_id);
    if let Some(current) = current.filter(|c| c.version_id == wanted) {
        return Some(FoundVersion {
            index_key: object,
            meta: current,
            is_current: true,
        });
    }
    if wanted.is_empty() {
        let index_key = noncurrent_null(range, bucket, key)?;
        let Some(IndexValue::Version(meta)) = range.get(&index_key) else {
            return None;
        };
        return Some(FoundVersion {
            index_key,
            meta,
            is_current: false,
        });
    }
    let index_key = keys::version_key(bucket, key, stamp_of_id(wanted)?);
    match range.get(&index_key) {
        Some(IndexValue::Version(meta)) if meta.version_id == wanted => Some(FoundVersion {
            index_key,
            meta,
            is_current: false,
        }),
        _ => None,
    }
}

/// What a delete did: the version id removed or created ("null" for the null version, empty
/// in an unversioned bucket) and whether that is a delete marker.
pub struct Deleted {
    pub existed: bool,
    pub version_id: String,
    pub delete_marker: bool,
}

fn shown_id(stored: &str) -> String {
    if stored.is_empty() {
        NULL_VERSION_ID.to_string()
    } else {
        stored.to_string()
    }
}

/// The changes of a DeleteObject: without a version id, the unversioned delete or a new
/// delete marker; with one, that version removed for good (and, if it was current, the newest
/// noncurrent version promoted). Call with the commit lock held.
pub fn delete_changes(
    range: &Range,
    bucket: &str,
    key: &str,
    version_id: &str,
    versioning: VersioningState,
) -> (Vec<Change>, Deleted) {
    let object = keys::object_key(bucket, key);
    if !version_id.is_empty() {
        let Some(found) = find(range, bucket, key, version_id) else {
            // S3 answers 204 for a version that does not exist.
            return (
                Vec::new(),
                Deleted {
                    existed: false,
                    version_id: version_id.to_string(),
                    delete_marker: false,
                },
            );
        };
        let mut changes = vec![(found.index_key.clone(), None)];
        if found.is_current {
            let mut newest: Option<(Vec<u8>, ObjectRecord)> = None;
            scan_noncurrent(range, bucket, key, |index_key, meta| {
                newest = Some((index_key.to_vec(), meta.clone()));
                false
            });
            if let Some((index_key, meta)) = newest {
                changes = vec![(index_key, None), (object, Some(IndexValue::Object(meta)))];
            }
        }
        let deleted = Deleted {
            existed: true,
            version_id: shown_id(&found.meta.version_id),
            delete_marker: found.meta.delete_marker,
        };
        return (changes, deleted);
    }
    if versioning == VersioningState::Unversioned {
        let existed = current_of(range, &object).is_some();
        let changes = if existed {
            vec![(object, None)]
        } else {
            Vec::new()
        };
        return (
            changes,
            Deleted {
                existed,
                version_id: String::new(),
                delete_marker: false,
            },
        );
    }
    let mut marker = ObjectRecord {
        delete_marker: true,
        last_modified_ms: strata_util::now_ms(),
        ..Default::default()
    };
    let changes = write_changes(range, bucket, key, &mut marker, versioning);
    (
        changes,
        Deleted {
            existed: true,
            version_id: shown_id(&marker.version_id),
            delete_marker: true,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ids_carry_their_stamp() {
        let id = new_version_id(0x0123_4567_89ab_cdef);
        assert_eq!(id.len(), 24);
        assert_eq!(stamp_of_id(&id), Some(0x0123_4567_89ab_cdef));
        assert_eq!(stamp_of_id("null"), None);
        assert_eq!(stamp_of_id("zz23456789abcdef01234567"), None);
        let old = ObjectRecord {
            last_modified_ms: 5,
            ..Default::default()
        };
        assert_eq!(stamp_of(&old), 5 << 20);
        assert!(
            new_stamp(
                Some(&ObjectRecord {
                    version_stamp: u64::MAX - 1,
                    ..Default::default()
                }),
                0
            ) == u64::MAX
        );
        // A range clock ahead of the wall clock (it ran back) holds the stamps up.
        let ahead_ms = strata_util::now_ms() + 3_600_000;
        assert_eq!(new_stamp(None, ahead_ms) >> 20, ahead_ms as u64);
    }
}
