//! Report — a finished run as data: `summary.json` (counts, rates, latency figures and the
//! workload that produced them) and `timeline.csv` (one row per measured second), plus the
//! human table printed on stdout. Charts and comparisons are drawn from these files only.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use twinmq_runtime::{File, Fs, OpenMode};

use crate::config::BenchConfig;
use crate::stats::{Counts, LatencySummary, Recorder, Second};

/// The file name of the summary.
pub const SUMMARY_FILE: &str = "summary.json";
/// The file name of the timeline.
pub const TIMELINE_FILE: &str = "timeline.csv";
/// The timeline's header line.
pub const TIMELINE_HEADER: &str = "second,sent,acked,failed,consumed,sent_bytes,consumed_bytes,\
ack_latency_us_mean,ack_latency_us_max,e2e_latency_us_mean,e2e_latency_us_max";

/// A finished run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The figures.
    pub summary: Summary,
    /// One row per measured second.
    pub timeline: Vec<TimelineRow>,
}

/// `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The twinmq version that measured.
    pub tool_version: String,
    /// When the run began, ms since the Unix epoch.
    pub started_at_ms: i64,
    /// `kafka` or `rocketmq`.
    pub model: String,
    /// The run's id, as stamped in every body (hex).
    pub run_id: String,
    /// The workload.
    pub config: BenchConfig,
    /// Partitions (Kafka) or queues over all brokers (RocketMQ) the topic actually has.
    pub partitions_actual: u32,
    /// Messages sent during the warm-up (in no other figure).
    pub warmup: Counts,
    /// Messages sent after it.
    pub measured: Counts,
    /// Whether the broker acknowledges sends in this mode (not acks=0, not oneway).
    pub acknowledged: bool,
    /// Producing: measured messages acknowledged (or sent, when nothing is acknowledged) over
    /// the time from the end of the warm-up to the last of them.
    pub produce: Throughput,
    /// Consuming: measured messages consumed over the time from the end of the warm-up to the
    /// last first delivery.
    pub consume: Throughput,
    /// Send→acknowledgement latency of measured messages.
    pub latency_send_ack_us: LatencySummary,
    /// Produce→consume latency of measured messages (first deliveries).
    pub latency_end_to_end_us: LatencySummary,
    /// Wall time of the whole run, set-up excluded, warm-up and drain included.
    pub elapsed_secs: f64,
}

/// A rate over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Messages in the window.
    pub messages: u64,
    /// The window.
    pub window_secs: f64,
    /// Messages per second.
    pub msgs_per_sec: f64,
    /// Body bytes per second.
    pub bytes_per_sec: f64,
}

/// One line of `timeline.csv`: what happened in one second of the measurement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TimelineRow {
    /// Seconds since the warm-up ended.
    pub second: u64,
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
    /// Mean send→ack latency of the acknowledgements in this second.
    pub ack_latency_us_mean: f64,
    /// Largest of them.
    pub ack_latency_us_max: u64,
    /// Mean produce→consume latency of the deliveries in this second.
    pub e2e_latency_us_mean: f64,
    /// Largest of them.
    pub e2e_latency_us_max: u64,
}

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
#[error("writing {path}: {source}")]
pub struct WriteError {
    /// The file or directory.
    pub path: String,
    /// The failure.
    #[source]
    pub source: std::io::Error,
}

impl Report {
    /// The report of a run whose recorders are merged into `all`.
    pub fn new(
        config: &BenchConfig,
        run_id: u64,
        partitions_actual: u32,
        all: &Recorder,
        elapsed_secs: f64,
    ) -> Self {
        let from_us = all.measure_from_us();
        let bytes = config.message_bytes as f64;
        let throughput = |messages: u64, last_us: Option<u64>| {
            let window_secs = last_us.map_or(0.0, |last| last.saturating_sub(from_us) as f64 / 1e6);
            let msgs_per_sec = if window_secs > 0.0 { messages as f64 / window_secs } else { 0.0 };
            Throughput { messages, window_secs, msgs_per_sec, bytes_per_sec: msgs_per_sec * bytes }
        };
        let acknowledged = config.acknowledged();
        let produce = if acknowledged {
            throughput(all.measured.acked, all.last_acked_us)
        } else {
            throughput(all.measured.sent, all.last_sent_us)
        };
        let summary = Summary {
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at_ms: 0,
            model: config.target.model().to_owned(),
            run_id: format!("{run_id:016x}"),
            config: config.clone(),
            partitions_actual,
            warmup: all.warmup,
            measured: all.measured,
            acknowledged,
            produce,
            consume: throughput(all.measured.consumed, all.last_consumed_us),
            latency_send_ack_us: all.ack_latency.summary(),
            latency_end_to_end_us: all.e2e_latency.summary(),
            elapsed_secs,
        };
        let timeline = all.seconds.iter().zip(0..).map(|(s, i)| row(i, s)).collect();
        Self { summary, timeline }
    }

    /// Writes `summary.json` and `timeline.csv` into `dir` (created if missing).
    pub fn write<F: Fs>(&self, fs: &F, dir: &Path) -> Result<(), WriteError> {
        let failed = |path: &Path| {
            let path = path.display().to_string();
            move |source| WriteError { path, source }
        };
        fs.create_dir_all(dir).map_err(failed(dir))?;
        let summary = serde_json::to_vec_pretty(&self.summary).map_err(|error| WriteError {
            path: dir.join(SUMMARY_FILE).display().to_string(),
            source: std::io::Error::other(error),
        })?;
        for (name, bytes) in [(SUMMARY_FILE, summary), (TIMELINE_FILE, self.csv().into_bytes())] {
            let path = dir.join(name);
            let file = fs.open(&path, OpenMode::Create).map_err(failed(&path))?;
            file.set_len(0).map_err(failed(&path))?;
            file.write_all_at(0, &bytes).map_err(failed(&path))?;
            file.sync_data().map_err(failed(&path))?;
        }
        fs.sync_dir(dir).map_err(failed(dir))
    }

    /// `timeline.csv`'s text.
    pub fn csv(&self) -> String {
        let mut out = String::with_capacity(64 * (self.timeline.len() + 1));
        out.push_str(TIMELINE_HEADER);
        out.push('\n');
        for r in &self.timeline {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{:.1},{},{:.1},{}",
                r.second,
                r.sent,
                r.acked,
                r.failed,
                r.consumed,
                r.sent_bytes,
                r.consumed_bytes,
                r.ack_latency_us_mean,
                r.ack_latency_us_max,
                r.e2e_latency_us_mean,
                r.e2e_latency_us_max
            );
        }
        out
    }

    /// The table printed on stdout.
    pub fn table(&self) -> String {
        let s = &self.summary;
        let mut out = String::new();
        let _ = writeln!(out, "twinmq bench  {}", s.config.describe());
        let _ = writeln!(
            out,
            "run {}  partitions/queues {}  elapsed {:.2} s",
            s.run_id, s.partitions_actual, s.elapsed_secs
        );
        let _ = writeln!(
            out,
            "\n{:<22} {:>12} {:>14} {:>10} {:>10}",
            "", "messages", "msgs/s", "MB/s", "window s"
        );
        let produced = if s.acknowledged { "produced (acked)" } else { "produced (sent)" };
        for (name, t) in [(produced, &s.produce), ("consumed", &s.consume)] {
            let _ = writeln!(
                out,
                "{:<22} {:>12} {:>14.0} {:>10.2} {:>10.2}",
                name,
                t.messages,
                t.msgs_per_sec,
                t.bytes_per_sec / 1e6,
                t.window_secs
            );
        }
        let m = &s.measured;
        let _ = writeln!(
            out,
            "\ncounts   sent {}  acked {}  failed {}  consumed {}  duplicates {}",
            m.sent, m.acked, m.failed, m.consumed, m.duplicates
        );
        let w = &s.warmup;
        if w != &Counts::default() {
            let _ = writeln!(
                out,
                "warm-up  sent {}  acked {}  failed {}  consumed {}  (not in the figures)",
                w.sent, w.acked, w.failed, w.consumed
            );
        }
        let _ = writeln!(
            out,
            "\n{:<22} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "latency (µs)", "count", "mean", "p50", "p99", "p99.9", "max"
        );
        for (name, l) in [
            ("send → ack", &s.latency_send_ack_us),
            ("produce → consume", &s.latency_end_to_end_us),
        ] {
            let _ = writeln!(
                out,
                "{:<22} {:>10} {:>10.0} {:>10} {:>10} {:>10} {:>10}",
                name, l.count, l.mean_us, l.p50_us, l.p99_us, l.p999_us, l.max_us
            );
        }
        out
    }
}

fn row(second: u64, s: &Second) -> TimelineRow {
    let mean = |sum: u64, count: u64| if count == 0 { 0.0 } else { sum as f64 / count as f64 };
    TimelineRow {
        second,
        sent: s.sent,
        acked: s.acked,
        failed: s.failed,
        consumed: s.consumed,
        sent_bytes: s.sent_bytes,
        consumed_bytes: s.consumed_bytes,
        ack_latency_us_mean: mean(s.ack_latency_us_sum, s.acked),
        ack_latency_us_max: s.ack_latency_us_max,
        e2e_latency_us_mean: mean(s.e2e_latency_us_sum, s.consumed),
        e2e_latency_us_max: s.e2e_latency_us_max,
    }
}
