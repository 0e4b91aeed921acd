//! Orders DeleteBucket against writes into the bucket (issue 12, item 7).
//!
//! A bucket's record and its objects usually live in different ranges, often on different
//! servers, and front-ends cache records, so "count the objects, then delete the record" let a
//! PUT land after the count: the object was orphaned, and reappeared when the name was created
//! again. Now:
//!
//! - Every write that adds a key to a bucket (PUT, CopyObject, CreateMultipartUpload,
//!   UploadPart, CompleteMultipartUpload, a delete marker) calls [`require_writable`] under the
//!   commit lock of the range it commits to, right before committing. It needs a *write lease*
//!   on the bucket: the record read from its owner (`GetBucket` with `lease`) said the bucket
//!   exists and is not being deleted; the lease lasts [`WRITE_LEASE_MS`] from before the read
//!   was sent. Deleting or missing records are never leased: those writes fail NoSuchBucket.
//! - DeleteBucket, on the record's owner (`service::buckets::delete`), first commits the record
//!   as deleting (`BucketMeta.deleting_until_ms`), then waits until every lease it granted
//!   before has run out ([`BucketGate::leases_outstanding`]), then counts the bucket's objects
//!   on every range, under each range's commit lock, then deletes the record (or unmarks it and
//!   answers BucketNotEmpty).
//!
//! Why that is atomic: a write that commits holds its range's commit lock from its lease check
//! until the index shows it. A lease checked valid was read before the mark (a read after it
//! says deleting), so it ran out before the count began, so the count's lock on that range
//! comes after the write's and sees it. A write checked after the mark finds no lease and reads
//! the record: deleting (refused) or gone (refused).
//!
//! The owner remembers when it last granted a lease on each bucket (in memory), so a bucket
//! nobody wrote to recently is deleted at once. A range's new owner (epoch above 1) does not
//! know its predecessor's grants: it waits as if one was granted at its load plus the server
//! lease (until when the previous owner could still have answered). A range at epoch 1 has
//! had no other owner: it is new, or a split's or merge's child, which the parents' owner
//! loads (its grants are this server's).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::records::BucketRecord;

use crate::error::PartitionError;

/// How long a write lease on a bucket lasts, from before the record was asked for.
pub const WRITE_LEASE_MS: u64 = 1_000;
/// Added to every wait for leases: clock rates of two servers differ slightly.
const LEASE_MARGIN_MS: u64 = 250;
/// How long a bucket stays marked deleting at most: a deleter that died leaves the bucket
/// writable again after this, instead of wedged.
pub const DELETING_MS: i64 = 30_000;
/// Entries kept before expired ones are swept.
const ENTRIES_SWEPT_ABOVE: usize = 10_000;

/// True while a DeleteBucket holds the record (decided on the record owner's clock only).
pub fn deleting(bucket: &BucketRecord, now_ms: i64) -> bool {
    bucket.deleting_until_ms > now_ms
}

/// Per server: the write leases it holds and the ones it granted.
#[derive(Default)]
pub struct BucketGate {
    /// Buckets this server may commit writes into, each until when.
    leases: Mutex<HashMap<String, Instant>>,
    /// Bucket records this server holds: when it last granted a write lease on each.
    grants: Mutex<HashMap<String, Instant>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

fn sweep(entries: &mut HashMap<String, Instant>, keep_while: impl Fn(Instant) -> bool) {
    if entries.len() > ENTRIES_SWEPT_ABOVE {
        entries.retain(|_, at| keep_while(*at));
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
        sweep(&mut grants, |at| at + lease > now);
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

    fn leased(&self, bucket: &str) -> bool {
        lock(&self.leases)
            .get(bucket)
            .is_some_and(|until| *until > Instant::now())
    }

    fn lease(&self, bucket: &str, until: Instant) {
        let mut leases = lock(&self.leases);
        leases.insert(bucket.to_string(), until);
        let now = Instant::now();
        sweep(&mut leases, |until| until > now);
    }
}

/// Refuses a write into `bucket` unless this server holds a write lease on it (taking one when
/// the record says the bucket is there and not being deleted). Call it holding the commit lock
/// of the range the write commits to, right before the commit (see the module doc).
/// `lookup` reads the bucket's record taking a lease on it (the owner notes the grant), and
/// answers whether a DeleteBucket holds it; it runs only when no lease is held.
pub async fn require_writable<T>(
    gate: &BucketGate,
    bucket: &str,
    lookup: impl std::future::Future<Output = Result<(Option<T>, bool), PartitionError>>,
) -> Result<(), PartitionError> {
    if gate.leased(bucket) {
        return Ok(());
    }
    let asked = Instant::now();
    match lookup.await? {
        (Some(_), false) => {
            gate.lease(bucket, asked + Duration::from_millis(WRITE_LEASE_MS));
            Ok(())
        }
        (Some(_), true) => Err(PartitionError::NoSuchBucket(format!(
            "{bucket} (being deleted)"
        ))),
        (None, _) => Err(PartitionError::NoSuchBucket(bucket.to_string())),
    }
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
