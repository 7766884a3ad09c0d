//! Schedule — a run's time line: its start, the end of the warm-up, when producing stops; and
//! [`Pacer`], which spaces one producer's sends to its share of the rate.
//!
//! Time is `tokio::time`: the system's monotonic clock on a real runtime, virtual inside the
//! simulator, so the same workload code can run in either.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::{BenchConfig, Bound};

/// A pacer that fell this far behind forgets the debt instead of bursting to repay it.
const PACER_CATCH_UP_MAX: Duration = Duration::from_secs(1);

/// When a run measures and when it stops producing.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    measure_from_us: u64,
    end_us: Option<u64>,
}

impl Schedule {
    /// A schedule starting now.
    pub fn start(config: &BenchConfig) -> Self {
        let measure_from_us = config.warmup_ms.saturating_mul(1_000);
        let end_us = match config.bound {
            Bound::Duration { ms } => {
                Some(measure_from_us.saturating_add(ms.saturating_mul(1_000)))
            }
            Bound::Count { .. } => None,
        };
        Self { start: Instant::now(), measure_from_us, end_us }
    }

    /// Microseconds since the start.
    pub fn now_us(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// When measurement starts (the warm-up ends), in microseconds since the start.
    pub fn measure_from_us(&self) -> u64 {
        self.measure_from_us
    }

    /// When a duration-bounded run stops producing, in microseconds since the start.
    pub fn end_us(&self) -> Option<u64> {
        self.end_us
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

/// Spaces one producer's sends so that it sends `rate_msgs_per_sec` on average.
#[derive(Debug)]
pub struct Pacer {
    interval: Option<Duration>,
    due: Instant,
}

impl Pacer {
    /// A pacer for `rate_msgs_per_sec` (0: no pacing).
    pub fn new(rate_msgs_per_sec: f64) -> Self {
        let interval =
            (rate_msgs_per_sec > 0.0).then(|| Duration::from_secs_f64(1.0 / rate_msgs_per_sec));
        Self { interval, due: Instant::now() }
    }

    /// The instant the next `messages` may go, or `None` when they may go now; books them.
    pub fn next(&mut self, messages: u32) -> Option<Instant> {
        let interval = self.interval?;
        let now = Instant::now();
        if now.saturating_duration_since(self.due) > PACER_CATCH_UP_MAX {
            self.due = now;
        }
        let at = self.due;
        self.due += interval * messages;
        (at > now).then_some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_pacer_spaces_sends_to_the_rate_and_forgets_old_debt() {
        let mut pacer = Pacer::new(1_000.0);
        assert_eq!(pacer.next(1), None, "the first send goes at once");
        let second = pacer.next(1).expect("the second waits");
        assert_eq!(second - Instant::now(), Duration::from_millis(1));
        let after_a_batch = pacer.next(10).expect("a batch books its messages");
        assert_eq!(after_a_batch - Instant::now(), Duration::from_millis(2));
        assert!(pacer.next(1).is_some_and(|at| at - Instant::now() == Duration::from_millis(12)));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(pacer.next(1), None, "after a long stall it starts afresh");
        assert!(pacer.next(1).is_some());
        assert_eq!(Pacer::new(0.0).next(1_000), None, "rate 0 never waits");
    }
}
