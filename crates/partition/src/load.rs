//! What each range reports to the partition manager about its load: requests/s and bytes/s
//! over the last few seconds, a uniform sample of the keys of recent requests (where a split
//! balances the load, as TiKV and CockroachDB pick split keys), and its size.
//!
//! Bounded: a fixed number of one-second windows and sampled keys per range, whatever the
//! request rate.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Length of one counting window.
const WINDOW_MS: u64 = 1_000;
/// Complete windows the reported rates average over.
const WINDOWS_KEPT: usize = 4;
/// Keys sampled per window (reservoir sampling), and at most reported.
pub const SAMPLED_KEYS_MAX: usize = 64;
/// Longest sampled key kept (longer keys are cut: a split key only has to fall between keys).
const SAMPLED_KEY_BYTES_MAX: usize = 1_100;
/// How long a computed size (a walk over the index) is reused.
const SIZE_CACHE_MS: u64 = 5_000;

#[derive(Default)]
struct Window {
    requests: u64,
    bytes: u64,
    /// Requests offered to the reservoir in this window.
    seen: u64,
    sample: Vec<Vec<u8>>,
}

struct Inner {
    started: Instant,
    current: Window,
    /// Complete windows, newest last.
    done: VecDeque<Window>,
    size: Option<(Instant, SizeReport)>,
}

/// A range's load counters.
pub struct LoadMeter {
    inner: Mutex<Inner>,
}

/// A range's size, recomputed every few seconds (a walk over its index).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SizeReport {
    pub keys: u64,
    pub bytes: u64,
    /// The key in the middle of the index (by count); empty for an empty range.
    pub middle_key: Vec<u8>,
}

/// One report of a range's load.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadReport {
    pub requests_per_sec: f64,
    pub bytes_per_sec: f64,
    pub sampled_keys: Vec<Vec<u8>>,
}

impl Default for LoadMeter {
    fn default() -> Self {
        Self::new(Instant::now())
    }
}

impl LoadMeter {
    pub fn new(now: Instant) -> Self {
        Self {
            inner: Mutex::new(Inner {
                started: now,
                current: Window::default(),
                done: VecDeque::with_capacity(WINDOWS_KEPT + 1),
                size: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Counts one request on `key`.
    pub fn record_request(&self, key: &[u8], now: Instant) {
        let mut inner = self.lock();
        inner.roll(now);
        let window = &mut inner.current;
        window.requests += 1;
        window.seen += 1;
        let key = &key[..key.len().min(SAMPLED_KEY_BYTES_MAX)];
        if window.sample.len() < SAMPLED_KEYS_MAX {
            window.sample.push(key.to_vec());
        } else {
            let slot = rand::Rng::gen_range(&mut rand::thread_rng(), 0..window.seen) as usize;
            if slot < SAMPLED_KEYS_MAX {
                window.sample[slot] = key.to_vec();
            }
        }
    }

    /// Counts body bytes moved for a request.
    pub fn record_bytes(&self, bytes: u64, now: Instant) {
        let mut inner = self.lock();
        inner.roll(now);
        inner.current.bytes += bytes;
    }

    /// Rates over the complete windows of the last few seconds, and a sample of their keys.
    pub fn report(&self, now: Instant) -> LoadReport {
        let mut inner = self.lock();
        inner.roll(now);
        let windows = inner.done.len();
        if windows == 0 {
            return LoadReport::default();
        }
        let seconds = (windows as u64 * WINDOW_MS) as f64 / 1_000.0;
        let requests: u64 = inner.done.iter().map(|w| w.requests).sum();
        let bytes: u64 = inner.done.iter().map(|w| w.bytes).sum();
        // Newest windows first, so the sample follows where the load is now.
        let mut sampled_keys = Vec::with_capacity(SAMPLED_KEYS_MAX);
        for window in inner.done.iter().rev() {
            let room = SAMPLED_KEYS_MAX - sampled_keys.len();
            sampled_keys.extend(window.sample.iter().take(room).cloned());
            if sampled_keys.len() == SAMPLED_KEYS_MAX {
                break;
            }
        }
        LoadReport {
            requests_per_sec: requests as f64 / seconds,
            bytes_per_sec: bytes as f64 / seconds,
            sampled_keys,
        }
    }

    /// The range's size, recomputed by `compute` at most every few seconds.
    pub fn size(&self, now: Instant, compute: impl FnOnce() -> SizeReport) -> SizeReport {
        if let Some((at, size)) = &self.lock().size {
            if now.saturating_duration_since(*at) < Duration::from_millis(SIZE_CACHE_MS) {
                return size.clone();
            }
        }
        let size = compute();
        self.lock().size = Some((now, size.clone()));
        size
    }
}

impl Inner {
    /// Closes the windows that ended before `now`.
    fn roll(&mut self, now: Instant) {
        let window = Duration::from_millis(WINDOW_MS);
        let mut guard = 0;
        while now.saturating_duration_since(self.started) >= window {
            let finished = std::mem::take(&mut self.current);
            self.done.push_back(finished);
            if self.done.len() > WINDOWS_KEPT {
                self.done.pop_front();
            }
            self.started += window;
            guard += 1;
            if guard > WINDOWS_KEPT {
                // Idle for long: every kept window is empty now; skip ahead in one step.
                self.started = now;
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_average_the_complete_windows() {
        let start = Instant::now();
        let meter = LoadMeter::new(start);
        for i in 0..200u32 {
            let at = start + Duration::from_millis(u64::from(i) * 10); // 2 s of 100 req/s
            meter.record_request(format!("k{i:04}").as_bytes(), at);
            meter.record_bytes(1_000, at);
        }
        let report = meter.report(start + Duration::from_millis(2_000));
        assert!((report.requests_per_sec - 100.0).abs() < 0.01, "{report:?}");
        assert!((report.bytes_per_sec - 100_000.0).abs() < 1.0, "{report:?}");
        assert_eq!(report.sampled_keys.len(), SAMPLED_KEYS_MAX);
        // Long idle: rates fall to zero, bounded work.
        let idle = meter.report(start + Duration::from_secs(3_600));
        assert_eq!(idle.requests_per_sec, 0.0);
        assert!(idle.sampled_keys.is_empty());
    }

    #[test]
    fn size_is_cached() {
        let start = Instant::now();
        let meter = LoadMeter::new(start);
        let size = |keys| SizeReport {
            keys,
            ..Default::default()
        };
        assert_eq!(meter.size(start, || size(1)).keys, 1);
        assert_eq!(
            meter
                .size(start + Duration::from_millis(10), || size(9))
                .keys,
            1
        );
        assert_eq!(
            meter.size(start + Duration::from_secs(6), || size(9)).keys,
            9
        );
    }
}
