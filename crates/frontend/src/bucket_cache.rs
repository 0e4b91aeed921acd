//! A short-lived cache of bucket records, so that every S3 request on a bucket does not read
//! the record from the one range holding the bucket's key (a hot spot under load on any of the
//! bucket's prefixes).
//!
//! Only positive answers are cached (a bucket created elsewhere is seen at once), for at most
//! the TTL (`--bucket-cache-ttl-ms`, 0 disables the cache), in at most `capacity` entries (the
//! oldest insertion is evicted first). This front-end's own CreateBucket, DeleteBucket and
//! bucket configuration updates forget the entry at once; changes made through another
//! front-end are seen within the TTL, which is S3's documented eventual consistency for bucket
//! configuration. A fetch that started before an invalidation does not put its (possibly
//! stale) answer back.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strata_proto::common::BucketMeta;

/// Where the cache reads the time (injected by tests).
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// Default TTL of a cached bucket record.
pub const BUCKET_CACHE_TTL_MS_DEFAULT: u64 = 1_000;
/// Default bound on cached records.
pub const BUCKET_CACHE_ENTRIES_MAX: usize = 10_000;

struct Entry {
    meta: BucketMeta,
    expires: Instant,
    /// Insertion number, matching this entry's place in `Inner::order`.
    seq: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// (insertion number, name), oldest first; stale pairs are skipped.
    order: VecDeque<(u64, String)>,
    next_seq: u64,
    /// Bumped by every invalidation.
    generation: u64,
}

pub struct BucketCache {
    ttl: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
    clock: Clock,
}

impl BucketCache {
    pub fn new(ttl_ms: u64, capacity: usize) -> Self {
        Self::with_clock(ttl_ms, capacity, Arc::new(Instant::now))
    }

    pub fn with_clock(ttl_ms: u64, capacity: usize, clock: Clock) -> Self {
        Self {
            ttl: Duration::from_millis(ttl_ms),
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
            clock,
        }
    }

    fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The cached record of `name`, if fresh.
    pub fn get(&self, name: &str) -> Option<BucketMeta> {
        if !self.enabled() {
            return None;
        }
        let mut inner = self.lock();
        match inner.entries.get(name) {
            Some(entry) if entry.expires > (self.clock)() => Some(entry.meta.clone()),
            Some(_) => {
                inner.entries.remove(name);
                None
            }
            None => None,
        }
    }

    /// Taken before fetching a record; pass it to [`Self::insert`].
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Caches `meta` (fetched after [`Self::generation`] returned `generation`), unless an
    /// invalidation happened since.
    pub fn insert(&self, meta: BucketMeta, generation: u64) {
        if !self.enabled() {
            return;
        }
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let name = meta.name.clone();
        inner.order.push_back((seq, name.clone()));
        inner.entries.insert(
            name,
            Entry {
                meta,
                expires: (self.clock)() + self.ttl,
                seq,
            },
        );
        while inner.entries.len() > self.capacity {
            let Some((seq, name)) = inner.order.pop_front() else {
                break;
            };
            if inner.entries.get(&name).is_some_and(|e| e.seq == seq) {
                inner.entries.remove(&name);
            }
        }
        // Re-inserted and removed names leave stale pairs behind: drop them now and then.
        if inner.order.len() > 2 * self.capacity {
            let Inner { entries, order, .. } = &mut *inner;
            order.retain(|(seq, name)| entries.get(name).is_some_and(|e| e.seq == *seq));
        }
    }

    /// Forgets `name` at once (this front-end changed or deleted the bucket).
    pub fn invalidate(&self, name: &str) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.entries.remove(name);
    }

    /// The number of cached records (fresh or not yet noticed as expired).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(name: &str, versioning: i32) -> BucketMeta {
        BucketMeta {
            name: name.into(),
            versioning,
            ..Default::default()
        }
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let start = Instant::now();
        let now = Arc::new(Mutex::new(start));
        let clock = now.clone();
        let cache = BucketCache::with_clock(1_000, 10, Arc::new(move || *clock.lock().unwrap()));
        let generation = cache.generation();
        cache.insert(bucket("photos", 1), generation);
        assert_eq!(cache.get("photos").map(|b| b.versioning), Some(1));
        *now.lock().unwrap() = start + Duration::from_millis(999);
        assert!(cache.get("photos").is_some());
        *now.lock().unwrap() = start + Duration::from_millis(1_000);
        assert!(cache.get("photos").is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn invalidation_forgets_at_once_and_fences_fetches_in_flight() {
        let cache = BucketCache::new(60_000, 10);
        let generation = cache.generation();
        cache.insert(bucket("photos", 1), generation);
        cache.invalidate("photos");
        assert!(cache.get("photos").is_none());
        // A fetch that began before the invalidation does not put the old record back.
        cache.insert(bucket("photos", 1), generation);
        assert!(cache.get("photos").is_none());
        let generation = cache.generation();
        cache.insert(bucket("photos", 2), generation);
        assert_eq!(cache.get("photos").map(|b| b.versioning), Some(2));
    }

    #[test]
    fn the_oldest_entries_are_evicted_beyond_the_bound() {
        let cache = BucketCache::new(60_000, 3);
        for name in ["a", "b", "c", "a", "d"] {
            let generation = cache.generation();
            cache.insert(bucket(name, 0), generation);
        }
        // "a" was re-inserted after "b" and "c": "b" is the oldest.
        assert_eq!(cache.len(), 3);
        assert!(cache.get("b").is_none());
        for name in ["a", "c", "d"] {
            assert!(cache.get(name).is_some(), "{name}");
        }
        for i in 0..100 {
            let generation = cache.generation();
            cache.insert(bucket(&format!("x{i}"), 0), generation);
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.lock().order.len() <= 6);
    }

    #[test]
    fn a_zero_ttl_disables_the_cache() {
        let cache = BucketCache::new(0, 10);
        let generation = cache.generation();
        cache.insert(bucket("photos", 1), generation);
        assert!(cache.get("photos").is_none());
        assert!(cache.is_empty());
    }
}
