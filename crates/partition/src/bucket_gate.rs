//! Orders DeleteBucket and a bucket move's fence against writes into the bucket (issue 12,
//! item 7; issue 15, item 5).
//!
//! A bucket's record and its objects usually live in different ranges, often on different
//! servers, and front-ends cache records, so "count the objects, then delete the record" let a
//! PUT land after the count: the object was orphaned, and reappeared when the name was created
//! again. Likewise "fence the bucket, then copy what is left" would let a write land after the
//! copy, on a source the bucket is about to leave. Now:
//!
//! - Every write into a bucket calls [`require_writable`] under the commit lock of the range
//!   it commits to, right before committing, saying whether it adds a key ([`Write`]). It
//!   needs a *write lease* on the bucket: the record read from its owner (`GetBucket` with
//!   `lease`) said the bucket exists and is writable ([`RecordState::Writable`]); the lease
//!   lasts [`WRITE_LEASE_MS`] from before the read was sent. Other records are never leased:
//!   - a fenced record ([`RecordState::Fenced`]) refuses every write with SlowDown, an
//!     importing or moved one ([`RecordState::Importing`], [`RecordState::Moved`]) with
//!     BucketMoved, so no key of a moving bucket changes after the fence;
//!   - a deleting or missing record refuses writes that add keys (NoSuchBucket); writes that
//!     only change or remove keys (hard deletes, tags, aborts, lifecycle removals) proceed
//!     without a lease, as they always did: they cannot orphan anything.
//! - DeleteBucket, on the record's owner (`service::buckets::delete`), first commits the record
//!   as deleting (`BucketMeta.deleting_until_ms`), then waits until every lease it granted
//!   before has run out ([`BucketGate::leases_outstanding`]), then counts the bucket's objects
//!   on every range, under each range's commit lock, then deletes the record (or unmarks it and
//!   answers BucketNotEmpty).
//! - A move's FENCE, on the record's owner (`service::moves`), does the same up to the wait:
//!   commit the record as fenced (`fenced_until_ms` not 0), wait the leases out, answer. The
//!   mover then reads every range under its commit lock (`ScanRows`), which sees every write
//!   that was allowed. A fence holds until UNFENCE or MOVED lifts it; its deadline is only
//!   recorded, never obeyed here (front-ends end a move whose fence outlived it).
//!
//! Why that is atomic: a write that commits holds its range's commit lock from its lease check
//! until the index shows it. A lease checked valid was read before the mark (a read after it
//! says deleting or fenced), so it ran out before the count or copy began, so that read's lock
//! on the range comes after the write's and sees it. A write checked after the mark finds no
//! lease and reads the record: deleting, fenced, moved or gone (refused).
//!
//! The owner remembers when it last granted a lease on each bucket (in memory), so a bucket
//! nobody wrote to recently is deleted (or fenced) at once. A range's new owner (epoch above 1)
//! does not know its predecessor's grants: it waits as if one was granted at its load plus the
//! server lease (until when the previous owner could still have answered). A range at epoch 1
//! has had no other owner: it is new, or a split's or merge's child, which the parents' owner
//! loads (its grants are this server's).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_proto::common::{BucketMeta, ReplicationConfig};

use crate::error::PartitionError;
use crate::index::Change;
use crate::records::BucketRecord;

/// How long a write lease on a bucket lasts, from before the record was asked for.
pub const WRITE_LEASE_MS: u64 = 1_000;
/// Added to every wait for leases: clock rates of two servers differ slightly.
const LEASE_MARGIN_MS: u64 = 250;
/// How long a bucket stays marked deleting at most: a deleter that died leaves the bucket
/// writable again after this, instead of wedged.
pub const DELETING_MS: i64 = 30_000;
/// When a write refused by a move's fence is worth retrying (SlowDown's retry-after): the
/// fence lasts while the mover copies the last rows and switches the home, seconds at most.
pub const FENCED_RETRY_AFTER_MS: u64 = 1_000;
/// Entries kept before expired ones are swept.
const ENTRIES_SWEPT_ABOVE: usize = 10_000;

/// True while a DeleteBucket (or a move's DROP) holds the record (decided on the record owner's
/// clock only).
pub fn deleting(bucket: &BucketRecord, now_ms: i64) -> bool {
    bucket.deleting_until_ms > now_ms
}

/// The replication rules of the record a write lease was granted on (None: no rules), which
/// mark the versions written under the lease (`crate::replication_rules`).
pub type Rules = Option<Arc<ReplicationConfig>>;

/// The rules of a record as a lease keeps them.
pub fn rules_of(record: Option<&BucketMeta>) -> Rules {
    let config = record?.replication.as_ref()?;
    (!config.rules.is_empty()).then(|| Arc::new(config.clone()))
}

/// Per server: the write leases it holds and the ones it granted.
#[derive(Default)]
pub struct BucketGate {
    /// Buckets this server may commit writes into, each until when, with the record's
    /// replication rules.
    leases: Mutex<HashMap<String, (Instant, Rules)>>,
    /// Bucket records this server holds: when it last granted a write lease on each.
    grants: Mutex<HashMap<String, Instant>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

fn sweep<V>(entries: &mut HashMap<String, V>, keep_while: impl Fn(&V) -> bool) {
    if entries.len() > ENTRIES_SWEPT_ABOVE {
        entries.retain(|_, value| keep_while(value));
    }
}

impl BucketGate {
    /// Called by the record's owner BEFORE it reads the record for a lease, so a DeleteBucket
    /// that reads the grants after committing its mark sees every grant of a pre-mark read.
    pub fn note_grant(&self, bucket: &str) {
        let now = Instant::now();
        let mut grants = lock(&self.grants);
        grants.insert(bucket.to_string(), now);
        let lease = Duration::from_millis(WRITE_LEASE_MS);
        sweep(&mut grants, |at| *at + lease > now);
    }

    /// How long a DeleteBucket that has just marked `bucket` (in a range loaded here at
    /// `range_loaded_at`) waits before counting: until every lease granted before the mark,
    /// here or by the range's previous owner (which served for at most `server_lease_ms` after
    /// our load), has run out.
    pub fn leases_outstanding(
        &self,
        bucket: &str,
        range_loaded_at: Instant,
        server_lease_ms: u64,
    ) -> Duration {
        let lease = Duration::from_millis(WRITE_LEASE_MS + LEASE_MARGIN_MS);
        let previous_owner = range_loaded_at + Duration::from_millis(server_lease_ms) + lease;
        let granted_here = lock(&self.grants).get(bucket).map(|at| *at + lease);
        let until = granted_here.map_or(previous_owner, |here| here.max(previous_owner));
        until.saturating_duration_since(Instant::now())
    }

    /// The rules of a live lease on `bucket` (None: no live lease).
    fn leased(&self, bucket: &str) -> Option<Rules> {
        lock(&self.leases)
            .get(bucket)
            .filter(|(until, _)| *until > Instant::now())
            .map(|(_, rules)| rules.clone())
    }

    fn lease(&self, bucket: &str, until: Instant, rules: Rules) {
        let mut leases = lock(&self.leases);
        leases.insert(bucket.to_string(), (until, rules));
        let now = Instant::now();
        sweep(&mut leases, |(until, _)| *until > now);
    }
}

/// What a bucket's record says about writes into it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordState {
    /// No record: no such bucket.
    Missing,
    /// A DeleteBucket holds the record.
    Deleting,
    /// A move's fence holds the record (on the source, from FENCE to UNFENCE or MOVED).
    Fenced,
    /// A move's copy being filled (on the target, until SERVE).
    Importing,
    /// The bucket moved to stamp `stamp`.
    Moved { stamp: String },
    /// Exists and takes writes: the only state that is leased.
    Writable,
}

impl RecordState {
    /// The state of a record as its owner answered it (`deleting` on the owner's clock).
    pub fn of_meta(record: Option<&BucketMeta>, deleting: bool) -> RecordState {
        match record {
            None => RecordState::Missing,
            Some(r) => Self::of_fields(&r.moved_to, r.importing, r.fenced_until_ms, deleting),
        }
    }

    /// The state of a record read on its owner at `now_ms`.
    pub fn of_record(record: &BucketRecord, now_ms: i64) -> RecordState {
        let deleting = deleting(record, now_ms);
        Self::of_fields(
            &record.moved_to,
            record.importing,
            record.fenced_until_ms,
            deleting,
        )
    }

    /// A move's marks first: a move refuses even writes a deletion lets through.
    fn of_fields(
        moved_to: &str,
        importing: bool,
        fenced_until_ms: i64,
        deleting: bool,
    ) -> RecordState {
        if !moved_to.is_empty() {
            RecordState::Moved {
                stamp: moved_to.to_string(),
            }
        } else if importing {
            RecordState::Importing
        } else if fenced_until_ms != 0 {
            RecordState::Fenced
        } else if deleting {
            RecordState::Deleting
        } else {
            RecordState::Writable
        }
    }

    /// Why a move refuses a change to the bucket (its keys or its record), if one does.
    pub fn move_refusal(&self) -> Option<PartitionError> {
        match self {
            RecordState::Fenced => Some(PartitionError::SlowDown {
                retry_after_ms: FENCED_RETRY_AFTER_MS,
                reason: "bucket is switching stamps".into(),
            }),
            RecordState::Importing => Some(PartitionError::BucketMoved {
                stamp: String::new(),
            }),
            RecordState::Moved { stamp } => Some(PartitionError::BucketMoved {
                stamp: stamp.clone(),
            }),
            RecordState::Missing | RecordState::Deleting | RecordState::Writable => None,
        }
    }
}

/// What a write does to the bucket's keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// Adds a key (PUT, CopyObject, CreateMultipartUpload, UploadPart, CompleteMultipartUpload,
    /// a delete marker, a noncurrent version promoted to current).
    AddsKeys,
    /// Only changes or removes keys (a hard delete, tags, an abort, a lifecycle removal).
    ChangesKeys,
}

impl Write {
    /// What committing `changes` does: a change that sets a value may add its key.
    pub fn of_changes(changes: &[Change]) -> Write {
        if changes.iter().any(|(_, value)| value.is_some()) {
            Write::AddsKeys
        } else {
            Write::ChangesKeys
        }
    }
}

/// What the gate lets a write do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Commit, and keep a lease so the next writes skip the lookup.
    Lease,
    /// Commit without a lease (a change in a deleting or missing bucket).
    Proceed,
}

/// The gate's decision on a `write` into `bucket` whose record is in `state`.
pub fn decide(state: &RecordState, write: Write, bucket: &str) -> Result<Verdict, PartitionError> {
    if let Some(refusal) = state.move_refusal() {
        return Err(refusal);
    }
    match (state, write) {
        (RecordState::Writable, _) => Ok(Verdict::Lease),
        (_, Write::ChangesKeys) => Ok(Verdict::Proceed),
        (RecordState::Deleting, Write::AddsKeys) => Err(PartitionError::NoSuchBucket(format!(
            "{bucket} (being deleted)"
        ))),
        (_, Write::AddsKeys) => Err(PartitionError::NoSuchBucket(bucket.to_string())),
    }
}

/// Refuses a `write` into `bucket` unless this server holds a write lease on it (taking one
/// when the record says the bucket is writable) or [`decide`] lets it through without one.
/// Call it holding the commit lock of the range the write commits to, right before the commit
/// (see the module doc). `lookup` reads the bucket's record taking a lease on it (the owner
/// notes the grant), with the record's replication rules; it runs only when no lease is held.
/// Answers the rules of the lease the write commits under (None without one).
pub async fn require_writable(
    gate: &BucketGate,
    bucket: &str,
    write: Write,
    lookup: impl std::future::Future<Output = Result<(RecordState, Rules), PartitionError>>,
) -> Result<Rules, PartitionError> {
    if let Some(rules) = gate.leased(bucket) {
        return Ok(rules);
    }
    let asked = Instant::now();
    let (state, rules) = lookup.await?;
    if decide(&state, write, bucket)? == Verdict::Lease {
        let until = asked + Duration::from_millis(WRITE_LEASE_MS);
        gate.lease(bucket, until, rules.clone());
        return Ok(rules);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delete_waits_for_grants_and_for_a_fresh_owner_only() {
        let gate = BucketGate::default();
        let long_ago = Instant::now() - Duration::from_secs(60);
        assert_eq!(
            gate.leases_outstanding("b", long_ago, 1_000),
            Duration::ZERO
        );
        gate.note_grant("b");
        let wait = gate.leases_outstanding("b", long_ago, 1_000);
        assert!(wait > Duration::from_millis(WRITE_LEASE_MS), "{wait:?}");
        assert_eq!(
            gate.leases_outstanding("other", long_ago, 1_000),
            Duration::ZERO
        );
        // Just loaded: the previous owner may have granted until our load plus its lease.
        let wait = gate.leases_outstanding("other", Instant::now(), 1_000);
        assert!(wait > Duration::from_millis(2_000), "{wait:?}");
    }

    fn meta(change: impl FnOnce(&mut BucketMeta)) -> BucketMeta {
        let mut meta = BucketMeta {
            name: "b".into(),
            ..Default::default()
        };
        change(&mut meta);
        meta
    }

    #[test]
    fn a_move_s_marks_come_before_a_deletion() {
        assert_eq!(RecordState::of_meta(None, true), RecordState::Missing);
        let plain = meta(|_| {});
        assert_eq!(
            RecordState::of_meta(Some(&plain), false),
            RecordState::Writable
        );
        assert_eq!(
            RecordState::of_meta(Some(&plain), true),
            RecordState::Deleting
        );
        let fenced = meta(|m| m.fenced_until_ms = 1);
        assert_eq!(
            RecordState::of_meta(Some(&fenced), true),
            RecordState::Fenced
        );
        let importing = meta(|m| m.importing = true);
        assert_eq!(
            RecordState::of_meta(Some(&importing), false),
            RecordState::Importing
        );
        let moved = meta(|m| {
            m.moved_to = "stamp-2".into();
            m.importing = true;
        });
        assert_eq!(
            RecordState::of_meta(Some(&moved), false),
            RecordState::Moved {
                stamp: "stamp-2".into()
            }
        );
        // A fence's deadline is not obeyed: only UNFENCE or MOVED lift it.
        let past_deadline = BucketRecord {
            fenced_until_ms: 1_000,
            ..Default::default()
        };
        assert_eq!(
            RecordState::of_record(&past_deadline, 9_000),
            RecordState::Fenced
        );
        let deleting = BucketRecord {
            deleting_until_ms: 2_000,
            ..Default::default()
        };
        assert_eq!(
            RecordState::of_record(&deleting, 1_000),
            RecordState::Deleting
        );
        assert_eq!(
            RecordState::of_record(&deleting, 2_000),
            RecordState::Writable
        );
    }

    #[test]
    fn the_gate_refuses_every_write_to_a_moving_bucket_and_only_adds_to_a_deleted_one() {
        use RecordState::*;
        use Write::*;
        let moved = Moved {
            stamp: "stamp-2".into(),
        };
        for write in [AddsKeys, ChangesKeys] {
            assert_eq!(decide(&Writable, write, "b").unwrap(), Verdict::Lease);
            match decide(&Fenced, write, "b") {
                Err(PartitionError::SlowDown {
                    retry_after_ms,
                    reason,
                }) => {
                    assert_eq!(retry_after_ms, 1_000);
                    assert_eq!(reason, "bucket is switching stamps");
                }
                other => panic!("fenced: {other:?}"),
            }
            match decide(&Importing, write, "b") {
                Err(PartitionError::BucketMoved { stamp }) => assert_eq!(stamp, ""),
                other => panic!("importing: {other:?}"),
            }
            match decide(&moved, write, "b") {
                Err(PartitionError::BucketMoved { stamp }) => assert_eq!(stamp, "stamp-2"),
                other => panic!("moved: {other:?}"),
            }
        }
        for state in [Missing, Deleting] {
            assert_eq!(decide(&state, ChangesKeys, "b").unwrap(), Verdict::Proceed);
            match decide(&state, AddsKeys, "b") {
                Err(PartitionError::NoSuchBucket(name)) => assert!(name.starts_with('b')),
                other => panic!("{state:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn only_a_writable_record_is_leased() {
        let gate = BucketGate::default();
        let lookups = std::cell::Cell::new(0);
        let check = |state: RecordState, write| {
            let lookup = async {
                lookups.set(lookups.get() + 1);
                Ok((state, None))
            };
            futures::executor::block_on(require_writable(&gate, "b", write, lookup))
        };
        assert!(check(RecordState::Deleting, Write::ChangesKeys).is_ok());
        assert!(check(RecordState::Fenced, Write::ChangesKeys).is_err());
        assert_eq!(lookups.get(), 2, "no lease was taken: each write looked");
        assert!(check(RecordState::Writable, Write::AddsKeys).is_ok());
        // Leased now: the next write does not look (a fence waits this lease out).
        assert!(check(RecordState::Fenced, Write::AddsKeys).is_ok());
        assert_eq!(lookups.get(), 3);
    }

    #[test]
    fn a_lease_keeps_the_rules_it_was_granted_with() {
        let gate = BucketGate::default();
        let rules: Rules = Some(Arc::new(ReplicationConfig {
            role: "r".into(),
            ..Default::default()
        }));
        let granted = rules.clone();
        let lookup = async { Ok((RecordState::Writable, granted)) };
        let first =
            futures::executor::block_on(require_writable(&gate, "b", Write::AddsKeys, lookup));
        assert_eq!(first.unwrap(), rules);
        // Under the lease, the rules come from it, not from a lookup.
        let unused = async { Err(PartitionError::NoSuchBucket("looked".into())) };
        let leased =
            futures::executor::block_on(require_writable(&gate, "b", Write::AddsKeys, unused));
        assert_eq!(leased.unwrap(), rules);
        // Without a lease (a deleting bucket's removal), no rules mark anything.
        let deleting = async { Ok((RecordState::Deleting, rules.clone())) };
        let other =
            futures::executor::block_on(require_writable(&gate, "c", Write::ChangesKeys, deleting));
        assert_eq!(other.unwrap(), None);
    }

    #[test]
    fn removals_change_keys_and_values_may_add_them() {
        assert_eq!(
            Write::of_changes(&[(b"k".to_vec(), None)]),
            Write::ChangesKeys
        );
        let marker = Some(crate::index::IndexValue::Object(Default::default()));
        assert_eq!(
            Write::of_changes(&[(b"v".to_vec(), None), (b"k".to_vec(), marker)]),
            Write::AddsKeys
        );
    }

    #[test]
    fn a_deleting_mark_lasts_until_its_deadline() {
        let bucket = BucketRecord {
            deleting_until_ms: 1_000,
            ..Default::default()
        };
        assert!(deleting(&bucket, 999));
        assert!(!deleting(&bucket, 1_000));
        assert!(!deleting(&BucketRecord::default(), 0));
    }
}
