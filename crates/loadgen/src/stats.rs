//! What a run records: exact message counts, latency histograms (hdrhistogram, microseconds)
//! and a per-second timeline.
//!
//! Each producer and the consumers' shared side keep their own [`Recorder`], touched by one
//! task at a time; the run merges them at the end. [`LiveCounts`] are the few shared atomics a
//! progress bar and the drain need while the run goes on.
//!
//! A message belongs to the warm-up or to the measurement by its send time, whatever the time
//! of its acknowledgement or consumption: warm-up messages are counted apart and appear in no
//! histogram, rate or timeline.

use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The largest latency a histogram holds; longer ones are recorded as this.
pub const LATENCY_US_MAX: u64 = 3_600_000_000;
/// Significant decimal digits a histogram keeps: values are exact below 2,048 µs and within
/// 0.1 % above.
pub const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;

/// A latency histogram in microseconds.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    histogram: Histogram<u64>,
}

/// A histogram's figures, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Values recorded.
    pub count: u64,
    /// Their mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// The largest.
    pub max_us: u64,
}

impl LatencyHistogram {
    /// An empty histogram of 1 µs ..= [`LATENCY_US_MAX`].
    pub fn new() -> Self {
        let histogram = Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGNIFICANT_DIGITS)
            .unwrap_or_else(|error| unreachable!("constant histogram bounds: {error}"));
        Self { histogram }
    }

    /// Records one latency (0 µs counts as 1 µs: the histogram's floor).
    pub fn record_us(&mut self, latency_us: u64) {
        self.histogram.saturating_record(latency_us.clamp(1, LATENCY_US_MAX));
    }

    /// Records one latency `count` times.
    pub fn record_us_n(&mut self, latency_us: u64, count: u64) {
        let value = latency_us.clamp(1, LATENCY_US_MAX);
        if self.histogram.record_n(value, count).is_err() {
            self.histogram.saturating_record(value);
        }
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Self) {
        // Same bounds on both sides, so adding cannot fail.
        let added = self.histogram.add(&other.histogram);
        assert!(added.is_ok(), "merging histograms of the same bounds: {added:?}");
    }

    /// Its figures. Percentiles are nearest-rank: the smallest recorded value with at least
    /// that share of values at or below it (within the histogram's precision).
    pub fn summary(&self) -> LatencySummary {
        let histogram = &self.histogram;
        if histogram.is_empty() {
            return LatencySummary::default();
        }
        let at = |quantile: f64| histogram.value_at_quantile(quantile);
        LatencySummary {
            count: histogram.len(),
            mean_us: histogram.mean(),
            p50_us: at(0.50),
            p90_us: at(0.90),
            p99_us: at(0.99),
            p999_us: at(0.999),
            max_us: histogram.max(),
        }
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

/// Exact message counts of one phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Handed to a client to send.
    pub sent: u64,
    /// Acknowledged by a broker (never, with acks=0 or oneway).
    pub acked: u64,
    /// Failed for good (the client gave up or the broker refused).
    pub failed: u64,
    /// Consumed, each message once.
    pub consumed: u64,
    /// Deliveries of a message already consumed.
    pub duplicates: u64,
}

impl Counts {
    fn add(&mut self, other: &Self) {
        self.sent += other.sent;
        self.acked += other.acked;
        self.failed += other.failed;
        self.consumed += other.consumed;
        self.duplicates += other.duplicates;
    }
}

/// One second of the measurement, counted by when each event happened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Second {
    /// Messages sent.
    pub sent: u64,
    /// Messages acknowledged.
    pub acked: u64,
    /// Messages failed.
    pub failed: u64,
    /// Messages consumed (first deliveries).
    pub consumed: u64,
    /// Body bytes sent.
    pub sent_bytes: u64,
    /// Body bytes consumed.
    pub consumed_bytes: u64,
    /// Sum of send→ack latencies.
    pub ack_latency_us_sum: u64,
    /// Largest send→ack latency.
    pub ack_latency_us_max: u64,
    /// Sum of produce→consume latencies.
    pub e2e_latency_us_sum: u64,
    /// Largest produce→consume latency.
    pub e2e_latency_us_max: u64,
}

impl Second {
    fn add(&mut self, other: &Self) {
        self.sent += other.sent;
        self.acked += other.acked;
        self.failed += other.failed;
        self.consumed += other.consumed;
        self.sent_bytes += other.sent_bytes;
        self.consumed_bytes += other.consumed_bytes;
        self.ack_latency_us_sum += other.ack_latency_us_sum;
        self.ack_latency_us_max = self.ack_latency_us_max.max(other.ack_latency_us_max);
        self.e2e_latency_us_sum += other.e2e_latency_us_sum;
        self.e2e_latency_us_max = self.e2e_latency_us_max.max(other.e2e_latency_us_max);
    }
}

/// What one producer, or the consumers together, saw.
#[derive(Debug, Clone)]
pub struct Recorder {
    measure_from_us: u64,
    message_bytes: u64,
    /// Counts of messages sent during the warm-up.
    pub warmup: Counts,
    /// Counts of messages sent after it.
    pub measured: Counts,
    /// Send→ack latencies of measured messages.
    pub ack_latency: LatencyHistogram,
    /// Produce→consume latencies of measured messages.
    pub e2e_latency: LatencyHistogram,
    /// Measured events per second since the warm-up ended.
    pub seconds: Vec<Second>,
    /// The last measured send, µs since the start.
    pub last_sent_us: Option<u64>,
    /// The last acknowledgement of a measured message.
    pub last_acked_us: Option<u64>,
    /// The last first delivery of a measured message.
    pub last_consumed_us: Option<u64>,
}

impl Recorder {
    /// A recorder measuring from `measure_from_us` (µs since the start), counting
    /// `message_bytes` per message.
    pub fn new(measure_from_us: u64, message_bytes: usize) -> Self {
        Self {
            measure_from_us,
            message_bytes: message_bytes as u64,
            warmup: Counts::default(),
            measured: Counts::default(),
            ack_latency: LatencyHistogram::new(),
            e2e_latency: LatencyHistogram::new(),
            seconds: Vec::new(),
            last_sent_us: None,
            last_acked_us: None,
            last_consumed_us: None,
        }
    }

    /// `count` messages sent at `sent_us`.
    pub fn sent(&mut self, sent_us: u64, count: u64) {
        if self.in_warmup(sent_us) {
            self.warmup.sent += count;
            return;
        }
        self.measured.sent += count;
        let bytes = self.message_bytes * count;
        let second = self.second(sent_us);
        second.sent += count;
        second.sent_bytes += bytes;
        self.last_sent_us = self.last_sent_us.max(Some(sent_us));
    }

    /// `count` messages sent at `sent_us` acknowledged at `now_us`.
    pub fn acked(&mut self, sent_us: u64, now_us: u64, count: u64) {
        if self.in_warmup(sent_us) {
            self.warmup.acked += count;
            return;
        }
        let latency_us = now_us.saturating_sub(sent_us);
        self.measured.acked += count;
        self.ack_latency.record_us_n(latency_us, count);
        let second = self.second(now_us);
        second.acked += count;
        second.ack_latency_us_sum += latency_us * count;
        second.ack_latency_us_max = second.ack_latency_us_max.max(latency_us);
        self.last_acked_us = self.last_acked_us.max(Some(now_us));
    }

    /// `count` messages sent at `sent_us` failed for good at `now_us`.
    pub fn failed(&mut self, sent_us: u64, now_us: u64, count: u64) {
        if self.in_warmup(sent_us) {
            self.warmup.failed += count;
            return;
        }
        self.measured.failed += count;
        self.second(now_us).failed += count;
    }

    /// A message sent at `sent_us`, of `bytes`, delivered at `now_us`; `first` unless it was
    /// consumed before.
    pub fn consumed(&mut self, sent_us: u64, now_us: u64, bytes: usize, first: bool) {
        let counts = if self.in_warmup(sent_us) { &mut self.warmup } else { &mut self.measured };
        if !first {
            counts.duplicates += 1;
            return;
        }
        counts.consumed += 1;
        if self.in_warmup(sent_us) {
            return;
        }
        let latency_us = now_us.saturating_sub(sent_us);
        self.e2e_latency.record_us(latency_us);
        let second = self.second(now_us);
        second.consumed += 1;
        second.consumed_bytes += bytes as u64;
        second.e2e_latency_us_sum += latency_us;
        second.e2e_latency_us_max = second.e2e_latency_us_max.max(latency_us);
        self.last_consumed_us = self.last_consumed_us.max(Some(now_us));
    }

    /// Adds everything `other` recorded.
    pub fn merge(&mut self, other: &Self) {
        self.warmup.add(&other.warmup);
        self.measured.add(&other.measured);
        self.ack_latency.merge(&other.ack_latency);
        self.e2e_latency.merge(&other.e2e_latency);
        if self.seconds.len() < other.seconds.len() {
            self.seconds.resize(other.seconds.len(), Second::default());
        }
        for (mine, theirs) in self.seconds.iter_mut().zip(&other.seconds) {
            mine.add(theirs);
        }
        self.last_sent_us = self.last_sent_us.max(other.last_sent_us);
        self.last_acked_us = self.last_acked_us.max(other.last_acked_us);
        self.last_consumed_us = self.last_consumed_us.max(other.last_consumed_us);
    }

    /// When measurement starts, µs since the start.
    pub fn measure_from_us(&self) -> u64 {
        self.measure_from_us
    }

    fn in_warmup(&self, sent_us: u64) -> bool {
        sent_us < self.measure_from_us
    }

    fn second(&mut self, event_us: u64) -> &mut Second {
        let index = usize::try_from(event_us.saturating_sub(self.measure_from_us) / 1_000_000)
            .unwrap_or(usize::MAX);
        if self.seconds.len() <= index {
            self.seconds.resize(index + 1, Second::default());
        }
        &mut self.seconds[index]
    }
}

/// Running totals over both phases, shared by every task of a run.
#[derive(Debug, Default)]
pub struct LiveCounts {
    sent: AtomicU64,
    acked: AtomicU64,
    failed: AtomicU64,
    consumed: AtomicU64,
}

/// A snapshot of [`LiveCounts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveSnapshot {
    /// Messages sent.
    pub sent: u64,
    /// Messages acknowledged.
    pub acked: u64,
    /// Messages failed.
    pub failed: u64,
    /// Messages consumed (first deliveries).
    pub consumed: u64,
}

impl LiveCounts {
    /// Adds sent messages.
    pub fn add_sent(&self, count: u64) {
        self.sent.fetch_add(count, Ordering::Relaxed);
    }

    /// Adds acknowledged messages.
    pub fn add_acked(&self, count: u64) {
        self.acked.fetch_add(count, Ordering::Relaxed);
    }

    /// Adds failed messages.
    pub fn add_failed(&self, count: u64) {
        self.failed.fetch_add(count, Ordering::Relaxed);
    }

    /// Adds consumed messages.
    pub fn add_consumed(&self, count: u64) {
        self.consumed.fetch_add(count, Ordering::Relaxed);
    }

    /// The totals now.
    pub fn snapshot(&self) -> LiveSnapshot {
        LiveSnapshot {
            sent: self.sent.load(Ordering::Relaxed),
            acked: self.acked.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            consumed: self.consumed.load(Ordering::Relaxed),
        }
    }
}

/// Which messages have been consumed: one bit per (producer, sequence).
#[derive(Debug, Default)]
pub struct Seen {
    producers: Vec<Vec<u64>>,
}

impl Seen {
    /// Marks a message; true the first time.
    pub fn first(&mut self, producer: u32, sequence: u32) -> bool {
        let producer = producer as usize;
        if self.producers.len() <= producer {
            self.producers.resize_with(producer + 1, Vec::new);
        }
        let bits = &mut self.producers[producer];
        let (word, bit) = (sequence as usize / 64, sequence % 64);
        if bits.len() <= word {
            bits.resize(word + 1, 0);
        }
        let was = bits[word] & (1 << bit) != 0;
        bits[word] |= 1 << bit;
        !was
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_match_a_hand_computed_set() {
        // 1..=1000 µs: nearest rank p50 = 500th value, p90 = 900th, p99 = 990th, p99.9 = 999th.
        let mut uniform = LatencyHistogram::new();
        for value in 1..=1_000 {
            uniform.record_us(value);
        }
        let figures = uniform.summary();
        assert_eq!(figures.count, 1_000);
        assert_eq!(
            (figures.p50_us, figures.p90_us, figures.p99_us, figures.p999_us, figures.max_us),
            (500, 900, 990, 999, 1_000)
        );
        assert!((figures.mean_us - 500.5).abs() < 1e-9, "mean {}", figures.mean_us);

        // 990 × 100 µs, 9 × 1,500 µs, 1 × 250,000 µs: p99 is the 990th value (100), p99.9 the
        // 999th (1,500); the max lies above the exact range, so it holds to 0.1 %.
        let mut skewed = LatencyHistogram::new();
        skewed.record_us_n(100, 990);
        skewed.record_us_n(1_500, 9);
        skewed.record_us(250_000);
        let figures = skewed.summary();
        assert_eq!((figures.p50_us, figures.p99_us, figures.p999_us), (100, 100, 1_500));
        assert!(figures.max_us.abs_diff(250_000) <= 250, "max {}", figures.max_us);

        let mut merged = LatencyHistogram::new();
        merged.merge(&uniform);
        merged.merge(&skewed);
        assert_eq!(merged.summary().count, 2_000);
        assert_eq!(LatencyHistogram::new().summary(), LatencySummary::default());
    }

    #[test]
    fn warmup_messages_are_counted_apart_and_left_out_of_figures() {
        let mut recorder = Recorder::new(1_000_000, 100);
        recorder.sent(500_000, 1);
        recorder.acked(500_000, 1_200_000, 1);
        recorder.consumed(500_000, 1_300_000, 100, true);
        recorder.sent(1_000_000, 2);
        recorder.acked(1_000_000, 2_500_000, 2);
        recorder.consumed(1_000_000, 2_600_000, 100, true);
        recorder.consumed(1_000_000, 2_700_000, 100, false);
        assert_eq!(
            recorder.warmup,
            Counts { sent: 1, acked: 1, failed: 0, consumed: 1, duplicates: 0 }
        );
        assert_eq!(
            recorder.measured,
            Counts { sent: 2, acked: 2, failed: 0, consumed: 1, duplicates: 1 }
        );
        assert_eq!(recorder.ack_latency.summary().count, 2);
        let e2e_us = recorder.e2e_latency.summary().p50_us;
        assert!(e2e_us.abs_diff(1_600_000) <= 1_600, "e2e {e2e_us}");
        assert_eq!(recorder.seconds.len(), 2, "events in seconds 0 and 1 of the measurement");
        assert_eq!(recorder.seconds[0].sent_bytes, 200);
        assert_eq!(recorder.seconds[1].acked, 2);
        assert_eq!(recorder.seconds[1].ack_latency_us_max, 1_500_000);
    }

    #[test]
    fn a_message_is_seen_first_once() {
        let mut seen = Seen::default();
        assert!(seen.first(2, 130));
        assert!(!seen.first(2, 130));
        assert!(seen.first(0, 130));
        assert!(seen.first(2, 129));
    }
}
