//! The crate's one clock: where "now" comes from, the system in production and a hand-moved
//! clock in tests. The delivery engine, the scheduler, the error notifier (and its governor
//! rate limiter) all read time through [`Clock`], so a test moves them all the same way.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;

use crate::domain::instant;

/// Now as unix milliseconds UTC, the form every timestamp column stores.
pub fn now_ms() -> i64 {
    instant::to_ms(OffsetDateTime::now_utc())
}

/// The system clock, or one that moves only when told to.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The real time.
    #[default]
    System,
    /// Stands still until [`Clock::set`] or [`Clock::advance`]; clones share the hands.
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// A clock standing at `start_ms` (unix milliseconds) until moved.
    pub fn manual(start_ms: i64) -> Self {
        Clock::Manual(Arc::new(AtomicI64::new(start_ms)))
    }

    /// Unix milliseconds UTC.
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => now_ms(),
            Clock::Manual(now) => now.load(Ordering::SeqCst),
        }
    }

    /// Sets a manual clock; the system clock cannot be set.
    pub fn set(&self, ms: i64) {
        if let Clock::Manual(now) = self {
            now.store(ms, Ordering::SeqCst);
        }
    }

    /// Moves a manual clock forward; the system clock moves by itself.
    pub fn advance(&self, by: Duration) {
        if let Clock::Manual(now) = self {
            now.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
        }
    }
}

/// Lets governor rate limiters run on the same clock (the notifier's per-minute caps).
impl governor::clock::Clock for Clock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Duration::from_millis(self.now_ms().max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let clock = Clock::manual(1_000);
        let other = clock.clone();
        assert_eq!(clock.now_ms(), 1_000);
        clock.advance(Duration::from_millis(500));
        assert_eq!(other.now_ms(), 1_500);
        other.set(7);
        assert_eq!(clock.now_ms(), 7);
    }

    #[test]
    fn the_system_clock_is_the_time_now() {
        let before = now_ms();
        let read = Clock::System.now_ms();
        assert!(read >= before && read - before < 60_000);
    }
}
