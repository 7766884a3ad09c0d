//! twinmq's load generator (`twinmq bench`): drives any Kafka-protocol or RocketMQ cluster —
//! twinmq's or another — through twinmq's own clients, over the real wire protocols, and
//! records exact message counts, throughput per second and latency histograms.
//!
//! - [`target`]: the `kafka://…` / `rocketmq://…` URL.
//! - [`config`]: the workload and its limits.
//! - [`payload`]: the stamp in each body (run, producer, sequence, send time).
//! - [`schedule`]: warm-up, bound and rate over time.
//! - [`stats`]: counts, histograms and the per-second timeline each task records.
//! - [`report`]: `summary.json`, `timeline.csv` and the table on stdout.
//! - [`run`]: one run from set-up to report; [`kafka`] and [`rocketmq`] supply the clients.
//!
//! The generator is generic over [`twinmq_runtime::Env`] like the clients it drives, and keeps
//! time with `tokio::time`: a run works on real sockets and inside the simulator alike.

pub mod config;
pub mod kafka;
pub mod payload;
pub mod report;
pub mod rocketmq;
pub mod run;
pub mod schedule;
pub mod stats;
pub mod target;

pub use config::{
    Acks, BenchConfig, Bound, ConfigError, KafkaOptions, PULL_BATCH_MESSAGES_DEFAULT,
    RocketMqOptions, SendMode,
};
pub use report::{Report, Summary, Throughput, TimelineRow};
pub use run::run;
pub use stats::{Counts, LatencySummary, LiveCounts, LiveSnapshot};
pub use target::{Target, TargetError};

/// Why a run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    /// The workload is not runnable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The target URL is not usable.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// Preparing the run failed: the cluster is unreachable, refused the topic, …
    #[error("{target}: {what}: {reason}")]
    Setup {
        /// The target.
        target: String,
        /// The step.
        what: String,
        /// What went wrong.
        reason: String,
    },
}
