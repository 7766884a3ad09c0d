//! Matrix — the standard set of measurements `twinmq compare` makes, at one of three scales:
//! the storage layouts against the machine's sequential-write ceiling, then each model through
//! the load generator over partitions/queues and message sizes, over durability modes, and at
//! half of each mode's peak for latency.
//!
//! The plan is data: the runner carries it out and the report says what it was.

use serde::{Deserialize, Serialize};
use twinmq_bench::measure::{Measurement, Writer};
use twinmq_bench::workload::Durability;

/// Partitions/queues the sweep visits at the full and quick scales.
pub const PARTITIONS_SWEEP: [u32; 4] = [1, 8, 64, 1024];
/// Message sizes the sweep visits, in bytes.
pub const MESSAGE_BYTES_SWEEP: [usize; 2] = [100, 1024];
/// Partitions/queues of the mode and latency series.
pub const MODE_PARTITIONS: u32 = 8;
/// Message size of the mode and latency series (the size of the throughput goals), in bytes.
pub const MODE_MESSAGE_BYTES: usize = 100;
/// Appends per fsync in the storage group-commit measurements.
pub const GROUP_COMMIT_APPENDS: u64 = 64;

/// How much to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// The reference report: at most 10 minutes.
    Full,
    /// `--quick`: the same matrix in at most 2 minutes.
    Quick,
    /// A few points of each kind in seconds, for the end-to-end test of the command.
    Smoke,
}

/// The broker model under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    /// Kafka: one log per partition.
    Kafka,
    /// RocketMQ: one CommitLog per broker.
    Rocketmq,
}

/// Which series a load point belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Series {
    /// Peak throughput over partitions/queues and message sizes, base mode.
    PartitionSweep,
    /// Peak throughput per durability mode.
    ModeSweep,
    /// Latency at half of the mode's peak.
    HalfPeak,
}

/// What a write must reach before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ack {
    /// The leader (Kafka acks=1) or the master (RocketMQ ASYNC_MASTER).
    Leader,
    /// Every in-sync replica (Kafka acks=all) or a slave (RocketMQ SYNC_MASTER).
    Replicas,
}

/// When a broker fsyncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flush {
    /// In the background every 500 ms or 256 MiB (RocketMQ ASYNC_FLUSH).
    Async,
    /// Before acknowledging, one fsync for many appends (RocketMQ SYNC_FLUSH).
    Sync,
}

/// A durability mode: replication, acknowledgement and flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Mode {
    /// Three Kafka brokers (replication factor 3, min.insync.replicas 2) or a RocketMQ master
    /// with a slave; one broker when false.
    pub replication: bool,
    /// What a send waits for.
    pub ack: Ack,
    /// When the brokers fsync.
    pub flush: Flush,
}

/// One run of the load generator.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoadPoint {
    /// The series.
    pub series: Series,
    /// The model.
    pub model: Model,
    /// The durability mode.
    pub mode: Mode,
    /// Partitions (Kafka) or queues (RocketMQ).
    pub partitions: u32,
    /// Bytes per message body.
    pub message_bytes: usize,
    /// Its timing.
    pub timing: Timing,
}

/// How long one load point runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// Time at the start left out of the figures.
    pub warmup_ms: u64,
    /// Measured time.
    pub measure_ms: u64,
    /// How long consumers may go without a message before the drain gives up.
    pub drain_idle_ms: u64,
}

/// Everything one run measures.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The scale.
    pub scale: Scale,
    /// Storage measurements, in order.
    pub storage: Vec<Measurement>,
    /// Times each storage measurement runs; the report keeps the median.
    pub storage_runs: u32,
    /// Load points, grouped by the cluster they need (see [`LoadPoint::topology`]).
    pub load: Vec<LoadPoint>,
    /// The wall-time budget of the whole run, in seconds; points that would pass it are
    /// skipped and reported as such.
    pub budget_secs: u64,
}

/// The servers a load point needs; points of one topology share one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Topology {
    /// The model.
    pub model: Model,
    /// Replicated or one broker.
    pub replication: bool,
    /// RocketMQ's master role depends on it (Kafka's acks is the producer's choice, so a
    /// Kafka topology always says `Leader`).
    pub ack: Ack,
    /// The brokers' flush policy.
    pub flush: Flush,
}

impl Scale {
    /// The scale's name, as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Quick => "quick",
            Self::Smoke => "smoke",
        }
    }
}

impl Model {
    /// Both models, in report order.
    pub const BOTH: [Self; 2] = [Self::Kafka, Self::Rocketmq];

    /// The model's name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Self::Kafka => "Kafka",
            Self::Rocketmq => "RocketMQ",
        }
    }

    /// What the model calls a partition.
    pub fn partition_noun(self) -> &'static str {
        match self {
            Self::Kafka => "partitions",
            Self::Rocketmq => "queues",
        }
    }
}

impl Mode {
    /// One broker, leader acknowledgement, async flush: the throughput sweep's mode.
    pub const BASE: Self = Self { replication: false, ack: Ack::Leader, flush: Flush::Async };

    /// The modes of the mode series, in report order (a replica acknowledgement needs replicas).
    pub fn all() -> Vec<Self> {
        let mut modes = Vec::new();
        for (replication, ack) in [(false, Ack::Leader), (true, Ack::Leader), (true, Ack::Replicas)]
        {
            for flush in [Flush::Async, Flush::Sync] {
                modes.push(Self { replication, ack, flush });
            }
        }
        modes
    }

    /// The mode in the model's own words.
    pub fn label(self, model: Model) -> String {
        let flush = match self.flush {
            Flush::Async => "async flush",
            Flush::Sync => "sync flush",
        };
        match (model, self.replication, self.ack) {
            (Model::Kafka, false, _) => format!("1 broker, acks=1, {flush}"),
            (Model::Kafka, true, Ack::Leader) => format!("3 brokers RF=3, acks=1, {flush}"),
            (Model::Kafka, true, Ack::Replicas) => format!("3 brokers RF=3, acks=all, {flush}"),
            (Model::Rocketmq, false, _) => format!("1 master, {}", rocketmq_flush(self.flush)),
            (Model::Rocketmq, true, Ack::Leader) => {
                format!("master+slave ASYNC_MASTER, {}", rocketmq_flush(self.flush))
            }
            (Model::Rocketmq, true, Ack::Replicas) => {
                format!("master+slave SYNC_MASTER, {}", rocketmq_flush(self.flush))
            }
        }
    }
}

fn rocketmq_flush(flush: Flush) -> &'static str {
    match flush {
        Flush::Async => "ASYNC_FLUSH",
        Flush::Sync => "SYNC_FLUSH",
    }
}

impl LoadPoint {
    /// The cluster this point runs on.
    pub fn topology(&self) -> Topology {
        let ack = match self.model {
            Model::Kafka => Ack::Leader,
            Model::Rocketmq => self.mode.ack,
        };
        Topology {
            model: self.model,
            replication: self.mode.replication,
            ack,
            flush: self.mode.flush,
        }
    }

    /// The point in one line.
    pub fn label(&self) -> String {
        let series = match self.series {
            Series::PartitionSweep => "peak",
            Series::ModeSweep => "mode peak",
            Series::HalfPeak => "half peak",
        };
        format!(
            "{} {series}: {} {}, {} B, {}",
            self.model.name(),
            self.partitions,
            self.model.partition_noun(),
            self.message_bytes,
            self.mode.label(self.model)
        )
    }

    /// The longest this point may take: warm-up, measurement, drain and set-up allowances.
    pub fn limit_ms(&self) -> u64 {
        const SETUP_ALLOWANCE_MS: u64 = 60_000;
        self.timing.warmup_ms
            + self.timing.measure_ms
            + 2 * self.timing.drain_idle_ms
            + SETUP_ALLOWANCE_MS
    }
}

impl Plan {
    /// The standard matrix at `scale`.
    pub fn standard(scale: Scale) -> Self {
        let (partitions, sizes, timing, budget_secs): (&[u32], &[usize], Timing, u64) = match scale
        {
            Scale::Full => (
                &PARTITIONS_SWEEP,
                &MESSAGE_BYTES_SWEEP,
                Timing { warmup_ms: 1_000, measure_ms: 5_000, drain_idle_ms: 5_000 },
                600,
            ),
            Scale::Quick => (
                &PARTITIONS_SWEEP,
                &MESSAGE_BYTES_SWEEP,
                Timing { warmup_ms: 300, measure_ms: 1_000, drain_idle_ms: 5_000 },
                120,
            ),
            Scale::Smoke => (
                &PARTITIONS_SWEEP[..2],
                &MESSAGE_BYTES_SWEEP[..1],
                Timing { warmup_ms: 0, measure_ms: 300, drain_idle_ms: 10_000 },
                120,
            ),
        };
        let mut load = Vec::new();
        for model in Model::BOTH {
            for mode in Mode::all() {
                let point = |series, partitions, message_bytes| LoadPoint {
                    series,
                    model,
                    mode,
                    partitions,
                    message_bytes,
                    timing,
                };
                if mode == Mode::BASE {
                    for &bytes in sizes {
                        for &count in partitions {
                            load.push(point(Series::PartitionSweep, count, bytes));
                        }
                    }
                }
                load.push(point(Series::ModeSweep, MODE_PARTITIONS, MODE_MESSAGE_BYTES));
                load.push(point(Series::HalfPeak, MODE_PARTITIONS, MODE_MESSAGE_BYTES));
            }
        }
        // Points of one cluster together, each mode's peak before its half-peak run.
        load.sort_by_key(|point| (point.topology(), point.mode.ack, point.series));
        let storage_runs = match scale {
            Scale::Full => 3,
            Scale::Quick | Scale::Smoke => 1,
        };
        Self { scale, storage: storage_plan(scale), storage_runs, load, budget_secs }
    }

    /// Load points sharing a cluster, in order.
    pub fn load_by_topology(&self) -> Vec<(Topology, Vec<LoadPoint>)> {
        let mut groups: Vec<(Topology, Vec<LoadPoint>)> = Vec::new();
        for point in &self.load {
            match groups.last_mut() {
                Some((topology, points)) if *topology == point.topology() => points.push(*point),
                _ => groups.push((point.topology(), vec![*point])),
            }
        }
        groups
    }
}

/// The storage measurements: each layout against the ceiling at 100 B and 1 KiB, async and
/// group commit, and both layouts over partitions/queues at 1 KiB.
fn storage_plan(scale: Scale) -> Vec<Measurement> {
    let total_bytes: u64 = match scale {
        Scale::Full => 256 << 20,
        Scale::Quick => 64 << 20,
        Scale::Smoke => 2 << 20,
    };
    let partitions: &[u32] = match scale {
        Scale::Smoke => &PARTITIONS_SWEEP[..2],
        Scale::Full | Scale::Quick => &PARTITIONS_SWEEP,
    };
    let measurement = |writer, record_bytes: usize, partitions, durability| {
        // Group commit fsyncs often: an eighth of the bytes keeps it within its time.
        let bytes = match durability {
            Durability::Async => total_bytes,
            Durability::GroupCommit(_) => total_bytes / 8,
        };
        Measurement {
            writer,
            record_bytes,
            record_count: (bytes / record_bytes as u64).max(1),
            partitions,
            durability,
        }
    };
    let mut plan = Vec::new();
    for writer in [Writer::Ceiling, Writer::Log, Writer::CommitLog] {
        for record_bytes in MESSAGE_BYTES_SWEEP {
            plan.push(measurement(writer, record_bytes, 1, Durability::Async));
        }
        let group = Durability::GroupCommit(GROUP_COMMIT_APPENDS);
        plan.push(measurement(writer, 1024, 1, group));
    }
    for writer in [Writer::Log, Writer::CommitLog] {
        for &count in partitions.iter().filter(|&&count| count > 1) {
            plan.push(measurement(writer, 1024, count, Durability::Async));
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scale_covers_both_models_every_mode_and_the_sweep() {
        for scale in [Scale::Full, Scale::Quick, Scale::Smoke] {
            let plan = Plan::standard(scale);
            for model in Model::BOTH {
                for mode in Mode::all() {
                    for series in [Series::ModeSweep, Series::HalfPeak] {
                        let found = plan
                            .load
                            .iter()
                            .filter(|p| p.model == model && p.mode == mode && p.series == series)
                            .count();
                        assert_eq!(found, 1, "{scale:?} {model:?} {mode:?} {series:?}");
                    }
                }
                let sweep = plan
                    .load
                    .iter()
                    .filter(|p| p.model == model && p.series == Series::PartitionSweep)
                    .count();
                assert!(sweep >= 2, "{scale:?} {model:?}: a sweep needs two points");
            }
        }
    }

    #[test]
    fn a_modes_peak_runs_before_its_half_peak_on_the_same_cluster() {
        let plan = Plan::standard(Scale::Quick);
        let groups = plan.load_by_topology();
        let topologies: Vec<Topology> = groups.iter().map(|(t, _)| *t).collect();
        let mut unique = topologies.clone();
        unique.dedup();
        assert_eq!(topologies, unique, "each cluster is started once");
        for (_, points) in &groups {
            for (index, point) in points.iter().enumerate() {
                if point.series == Series::HalfPeak {
                    assert!(
                        points[..index]
                            .iter()
                            .any(|p| p.series == Series::ModeSweep && p.mode == point.mode),
                        "{point:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_storage_plan_pairs_each_layout_with_the_ceiling() {
        let plan = Plan::standard(Scale::Smoke);
        for writer in [Writer::Ceiling, Writer::Log, Writer::CommitLog] {
            assert!(plan.storage.iter().any(|m| m.writer == writer && m.record_bytes == 1024));
        }
        assert!(plan.storage.iter().all(|m| m.record_count >= 1));
    }
}
