//! ReconnectBackoff — Kafka's `reconnect.backoff.ms` and `reconnect.backoff.max.ms`: after a
//! failed connect the next attempt waits, twice as long after each further failure, up to the
//! maximum; a connect that succeeds starts over. A peer that is down or cut off costs one
//! attempt per backoff, not one per request or loop turn.

use std::time::Duration;

use tokio::time::Instant;

/// `reconnect.backoff.ms` (Kafka's default).
pub const RECONNECT_BACKOFF_MS: u64 = 50;
/// `reconnect.backoff.max.ms` (Kafka's default).
pub const RECONNECT_BACKOFF_MAX_MS: u64 = 1_000;

/// The backoff of reconnects to one peer.
#[derive(Debug, Clone)]
pub struct ReconnectBackoff {
    base: Duration,
    max: Duration,
    failures: u32,
    not_before: Option<Instant>,
}

impl Default for ReconnectBackoff {
    fn default() -> Self {
        Self::new(
            Duration::from_millis(RECONNECT_BACKOFF_MS),
            Duration::from_millis(RECONNECT_BACKOFF_MAX_MS),
        )
    }
}

impl ReconnectBackoff {
    /// Waits from `base`, doubling up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self { base, max: max.max(base), failures: 0, not_before: None }
    }

    /// Records a failed connect; returns how long the next attempt waits.
    pub fn failed(&mut self) -> Duration {
        let wait = self.base.saturating_mul(1 << self.failures.min(16)).min(self.max);
        self.failures = self.failures.saturating_add(1);
        self.not_before = Some(Instant::now() + wait);
        wait
    }

    /// Records a connect that succeeded: the next failure waits `base` again.
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.not_before = None;
    }

    /// Returns once the next attempt may go.
    pub async fn ready(&self) {
        if let Some(at) = self.not_before {
            tokio::time::sleep_until(at).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waits_double_up_to_the_maximum_and_a_success_starts_over() {
        let mut backoff = ReconnectBackoff::new(Duration::from_millis(50), Duration::from_secs(1));
        let waits: Vec<u128> = (0..7).map(|_| backoff.failed().as_millis()).collect();
        assert_eq!(waits, [50, 100, 200, 400, 800, 1_000, 1_000]);
        let started = Instant::now();
        backoff.ready().await;
        assert_eq!(started.elapsed(), Duration::from_secs(1), "ready after the last wait");
        backoff.succeeded();
        let started = Instant::now();
        backoff.ready().await;
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(backoff.failed(), Duration::from_millis(50));
    }
}
