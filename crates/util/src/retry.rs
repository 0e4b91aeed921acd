//! The one bounded retry-with-backoff: a time budget, and pauses between attempts that double
//! from a first to a largest pause. Callers keep their own loop (what counts as retryable,
//! which peer to try next differ); this only decides how long to wait and when to stop.

use std::time::Duration;
// tokio's clock, which is the system's outside tests; tests pause it to check pauses exactly.
use tokio::time::Instant;

/// First pause when the caller names none: short, a leader change or a map refresh is quick.
pub const PAUSE_MS_MIN: u64 = 20;
/// Largest pause when the caller names none: a retrying client still reacts within this.
pub const PAUSE_MS_MAX: u64 = 250;

/// A retry budget: exponential backoff until a deadline.
#[derive(Debug)]
pub struct Backoff {
    deadline: Instant,
    pause: Duration,
    pause_max: Duration,
    /// Calls of [`Backoff::wait`] so far.
    pub attempts: u32,
}

impl Backoff {
    /// Retries for at most `budget` from now, pausing [`PAUSE_MS_MIN`] doubling to
    /// [`PAUSE_MS_MAX`].
    pub fn new(budget: Duration) -> Self {
        Self {
            deadline: Instant::now() + budget,
            pause: Duration::from_millis(PAUSE_MS_MIN),
            pause_max: Duration::from_millis(PAUSE_MS_MAX),
            attempts: 0,
        }
    }

    /// The same budget with other pauses (`first == largest` pauses evenly).
    pub fn with_pauses(mut self, first: Duration, largest: Duration) -> Self {
        self.pause = first;
        self.pause_max = largest.max(first);
        self
    }

    /// Whether the budget is spent.
    pub fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Sleeps before the next attempt (never past the deadline); false when the budget is
    /// spent.
    pub async fn wait(&mut self) -> bool {
        self.attempts += 1;
        let now = Instant::now();
        if now >= self.deadline {
            return false;
        }
        let pause = self.pause.min(self.deadline - now);
        tokio::time::sleep(pause).await;
        self.pause = (self.pause * 2).min(self.pause_max);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pauses_double_to_the_largest_and_stop_at_the_deadline() {
        let budget = Duration::from_millis(300);
        let started = Instant::now();
        let mut backoff =
            Backoff::new(budget).with_pauses(Duration::from_millis(10), Duration::from_millis(40));
        let mut pauses = Vec::new();
        loop {
            let before = Instant::now();
            if !backoff.wait().await {
                break;
            }
            pauses.push(before.elapsed());
        }
        // Timers may fire late, never early: each pause is at least its planned length.
        for (pause, planned_ms) in pauses.iter().zip([10, 20, 40, 40]) {
            assert!(*pause >= Duration::from_millis(planned_ms), "{pauses:?}");
        }
        assert!(started.elapsed() >= budget);
        assert!(pauses.len() <= 300 / 10, "bounded: {pauses:?}");
        assert_eq!(backoff.attempts as usize, pauses.len() + 1);
        assert!(backoff.expired());
    }

    #[tokio::test]
    async fn a_spent_budget_does_not_wait() {
        let mut backoff = Backoff::new(Duration::ZERO);
        assert!(backoff.expired());
        assert!(!backoff.wait().await);
    }
}
