//! Results — everything one `twinmq compare` run measured, as data (`results.json`). The
//! tables and charts are drawn from this alone, so a report can be drawn again, or compared with
//! another, without measuring again.

use serde::{Deserialize, Serialize};
use twinmq_bench::measure::{Measurement, Rate, Writer};
use twinmq_bench::workload::Durability;
use twinmq_loadgen::{Summary, TimelineRow};

use crate::durability::DurabilityTable;
use crate::matrix::{LoadPoint, Mode, Model, Plan, Scale, Series};

/// The results file's name.
pub const RESULTS_FILE: &str = "results.json";

/// One run's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// How, where and with what the run measured.
    pub setup: Setup,
    /// The storage layouts and the machine's ceiling.
    pub storage: Vec<StorageResult>,
    /// The load generator's runs.
    pub load: Vec<LoadResult>,
    /// Points that failed or were skipped, with why.
    pub failures: Vec<Failure>,
    /// The simulator's durability table, when the run had one.
    pub durability: Option<DurabilityTable>,
}

/// How, where and with what a run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Setup {
    /// The command that makes this report again.
    pub command: String,
    /// The scale.
    pub scale: Scale,
    /// The wall-time budget, in seconds.
    pub budget_secs: u64,
    /// twinmq's version.
    pub tool_version: String,
    /// The compiler that built it (`rustc --version`).
    pub rustc: String,
    /// `release` or `debug`.
    pub profile: String,
    /// The CPU architecture and OS it was built for.
    pub target: String,
    /// When the run began, ms since the Unix epoch.
    pub started_at_ms: i64,
    /// When it ended.
    pub finished_at_ms: i64,
    /// The machine.
    pub host: HostFacts,
    /// Where the servers and storage measurements kept their data (a temporary directory).
    pub work_dir: String,
    /// Load generator settings every point shares.
    pub workload: WorkloadSettings,
}

/// The machine, as [`twinmq_runtime::Host`] found it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacts {
    /// Host name.
    pub hostname: Option<String>,
    /// Processor model.
    pub cpu_model: Option<String>,
    /// Cores available.
    pub cores: Option<usize>,
    /// Memory, bytes.
    pub memory_bytes: Option<u64>,
    /// Kernel release.
    pub kernel: Option<String>,
    /// Operating system.
    pub os: Option<String>,
}

/// The load generator settings every point shares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadSettings {
    /// Producers per point.
    pub producers: u32,
    /// Consumers per point.
    pub consumers: u32,
    /// Kafka `linger.ms`.
    pub kafka_linger_ms: u64,
    /// Kafka `batch.size`, bytes.
    pub kafka_batch_bytes: usize,
    /// RocketMQ batch sends carry up to this many bytes of bodies.
    pub rocketmq_batch_bytes: usize,
    /// And at most this many messages.
    pub rocketmq_batch_messages_max: u32,
    /// RocketMQ consumers pull this many messages at once (`pullBatchSize`).
    #[serde(default)]
    pub rocketmq_pull_batch_messages: u32,
}

/// One storage measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageResult {
    /// `ceiling`, `log` or `commitlog`.
    pub writer: String,
    /// Bytes per record.
    pub record_bytes: usize,
    /// Partitions (Log) or queues (CommitLog).
    pub partitions: u32,
    /// Appends per fsync; 0 when only the end is synced (async).
    pub group_commit_appends: u64,
    /// Records written.
    pub records: u64,
    /// Record bytes written.
    pub bytes: u64,
    /// Wall time, final fsync included, seconds.
    pub elapsed_secs: f64,
    /// Record bytes per second.
    pub bytes_per_sec: f64,
    /// Records per second.
    pub records_per_sec: f64,
    /// Record bytes per second of every run, slowest first (the figures above are the
    /// median's).
    pub runs_bytes_per_sec: Vec<f64>,
}

/// One run of the load generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadResult {
    /// Its series.
    pub series: Series,
    /// The model.
    pub model: Model,
    /// The durability mode.
    pub mode: Mode,
    /// Partitions or queues asked for.
    pub partitions: u32,
    /// Bytes per message body.
    pub message_bytes: usize,
    /// The load generator's summary (counts, rates, latency percentiles, the exact workload).
    pub summary: Summary,
    /// One row per measured second.
    pub timeline: Vec<TimelineRow>,
}

/// A point that produced no figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The point.
    pub what: String,
    /// Why.
    pub error: String,
}

impl Setup {
    /// The setup of a run of `plan` that began at `started_at_ms` and ended at
    /// `finished_at_ms`, on this machine, with this build.
    pub fn new(
        command: String,
        plan: &Plan,
        started_at_ms: i64,
        finished_at_ms: i64,
        work_dir: String,
    ) -> Self {
        let host = twinmq_runtime::Host::current();
        Self {
            command,
            scale: plan.scale,
            budget_secs: plan.budget_secs,
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            rustc: env!("TWINMQ_RUSTC_VERSION").to_owned(),
            profile: if cfg!(debug_assertions) { "debug" } else { "release" }.to_owned(),
            target: format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
            started_at_ms,
            finished_at_ms,
            host: HostFacts {
                hostname: host.hostname,
                cpu_model: host.cpu_model,
                cores: host.cores,
                memory_bytes: host.memory_bytes,
                kernel: host.kernel,
                os: host.os,
            },
            work_dir,
            workload: crate::workload::settings(),
        }
    }
}

impl StorageResult {
    /// The result of `measurement` whose median run took `rate`, of all its `runs`.
    pub fn new(measurement: &Measurement, rate: &Rate, runs: &[Rate]) -> Self {
        Self {
            writer: writer_name(measurement.writer).to_owned(),
            record_bytes: measurement.record_bytes,
            partitions: measurement.partitions,
            group_commit_appends: match measurement.durability {
                Durability::Async => 0,
                Durability::GroupCommit(appends) => appends,
            },
            records: rate.records,
            bytes: rate.bytes,
            elapsed_secs: rate.elapsed.as_secs_f64(),
            bytes_per_sec: rate.bytes_per_sec(),
            records_per_sec: rate.records_per_sec(),
            runs_bytes_per_sec: runs.iter().map(Rate::bytes_per_sec).collect(),
        }
    }

    /// How the writes were synced, in words.
    pub fn durability_label(&self) -> String {
        match self.group_commit_appends {
            0 => "async (fsync at the end)".to_owned(),
            appends => format!("group commit (fsync per {appends} appends)"),
        }
    }
}

/// The name a writer has in the results.
pub fn writer_name(writer: Writer) -> &'static str {
    match writer {
        Writer::Ceiling => "ceiling",
        Writer::Log => "log",
        Writer::CommitLog => "commitlog",
    }
}

/// A measurement in one line.
pub fn measurement_label(measurement: &Measurement) -> String {
    let durability = match measurement.durability {
        Durability::Async => "async".to_owned(),
        Durability::GroupCommit(appends) => format!("fsync/{appends}"),
    };
    format!(
        "storage {}: {} B records, {} partition(s), {durability}",
        writer_name(measurement.writer),
        measurement.record_bytes,
        measurement.partitions
    )
}

impl LoadResult {
    /// The result of `point`.
    pub fn new(point: &LoadPoint, report: twinmq_loadgen::Report) -> Self {
        Self {
            series: point.series,
            model: point.model,
            mode: point.mode,
            partitions: point.partitions,
            message_bytes: point.message_bytes,
            summary: report.summary,
            timeline: report.timeline,
        }
    }
}

impl Results {
    /// The load results of one series and model, in run order.
    pub fn load_of(&self, series: Series, model: Model) -> impl Iterator<Item = &LoadResult> {
        self.load.iter().filter(move |r| r.series == series && r.model == model)
    }

    /// The storage result of `writer` with these settings.
    pub fn storage_of(
        &self,
        writer: &str,
        record_bytes: usize,
        partitions: u32,
        group_commit_appends: u64,
    ) -> Option<&StorageResult> {
        self.storage.iter().find(|r| {
            r.writer == writer
                && r.record_bytes == record_bytes
                && r.partitions == partitions
                && r.group_commit_appends == group_commit_appends
        })
    }
}
