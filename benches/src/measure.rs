//! One timed storage measurement outside criterion, for the comparison report: the machine's
//! sequential-write ceiling, the Kafka layout or the RocketMQ layout, writing a fixed number of
//! bytes. Everything a layout needs (files, partitions, queues) is created before the clock
//! starts; the final fsync is inside it.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::ceiling::{CeilingSync, sequential_write};
use crate::workload::{Durability, append_logs, append_store, bench_log, bench_store};

/// What writes the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// A plain `std::fs` sequential write: the machine's ceiling.
    Ceiling,
    /// One Kafka-layout `Log` per partition, appended round-robin.
    Log,
    /// One RocketMQ-layout `CommitLog`, its messages spread round-robin over the queues.
    CommitLog,
}

/// One measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measurement {
    /// What writes.
    pub writer: Writer,
    /// Bytes per record.
    pub record_bytes: usize,
    /// Records in all (at least one).
    pub record_count: u64,
    /// Partitions (Log) or queues (CommitLog); 1 for the ceiling.
    pub partitions: u32,
    /// When appends are made durable.
    pub durability: Durability,
}

/// What a measurement took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Records written.
    pub records: u64,
    /// Record bytes written (framing not counted).
    pub bytes: u64,
    /// Wall time, the final fsync included.
    pub elapsed: Duration,
}

/// Why a measurement failed.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// The plain file write failed.
    #[error("sequential write in {dir}: {source}")]
    Io {
        /// The directory written in.
        dir: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The storage core refused.
    #[error("storage in {dir}: {source}")]
    Storage {
        /// The directory written in.
        dir: String,
        /// The failure.
        #[source]
        source: twinmq_storage::StorageError,
    },
    /// The measurement asks for nothing or for zero partitions.
    #[error("{0}")]
    Invalid(String),
}

impl Rate {
    /// Records per second.
    pub fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// Record bytes per second.
    pub fn bytes_per_sec(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

impl Measurement {
    /// Runs the measurement in a fresh directory `dir` (created; left for the caller to
    /// remove).
    pub fn run(&self, dir: &Path) -> Result<Rate, MeasureError> {
        if self.record_count == 0 || self.record_bytes == 0 || self.partitions == 0 {
            return Err(MeasureError::Invalid(format!("nothing to measure: {self:?}")));
        }
        let storage = |source| MeasureError::Storage { dir: dir.display().to_string(), source };
        let record = vec![0x5a_u8; self.record_bytes];
        let count = self.record_count;
        let (bytes, elapsed) = match self.writer {
            Writer::Ceiling => {
                let sync = match self.durability {
                    Durability::Async => CeilingSync::EveryRecords(u64::MAX),
                    Durability::GroupCommit(group) => CeilingSync::EveryRecords(group),
                };
                let io = |source| MeasureError::Io { dir: dir.display().to_string(), source };
                std::fs::create_dir_all(dir).map_err(io)?;
                let start = Instant::now();
                let bytes = sequential_write(dir, self.record_bytes, count, sync).map_err(io)?;
                (bytes, start.elapsed())
            }
            Writer::Log => {
                let mut logs = (0..self.partitions)
                    .map(|p| bench_log(&dir.join(format!("p-{p}"))))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(storage)?;
                let start = Instant::now();
                let bytes =
                    append_logs(&mut logs, &record, count, self.durability).map_err(storage)?;
                (bytes, start.elapsed())
            }
            Writer::CommitLog => {
                let mut store = bench_store(dir).map_err(storage)?;
                // Queues exist before the clock starts, as the partitions' logs do.
                let queues = self.partitions;
                append_store(&mut store, queues, &record, u64::from(queues), Durability::Async)
                    .map_err(storage)?;
                let start = Instant::now();
                let bytes = append_store(&mut store, queues, &record, count, self.durability)
                    .map_err(storage)?;
                (bytes, start.elapsed())
            }
        };
        Ok(Rate { records: count, bytes, elapsed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_writer_writes_the_bytes_asked_for() {
        for writer in [Writer::Ceiling, Writer::Log, Writer::CommitLog] {
            let dir = tempfile::tempdir().unwrap();
            let measurement = Measurement {
                writer,
                record_bytes: 100,
                record_count: 500,
                partitions: if writer == Writer::Ceiling { 1 } else { 4 },
                durability: Durability::GroupCommit(64),
            };
            let rate = measurement.run(&dir.path().join("m")).unwrap();
            assert_eq!((rate.records, rate.bytes), (500, 50_000), "{writer:?}");
            assert!(rate.bytes_per_sec() > 0.0);
        }
    }

    #[test]
    fn an_empty_measurement_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let measurement = Measurement {
            writer: Writer::Log,
            record_bytes: 100,
            record_count: 10,
            partitions: 0,
            durability: Durability::Async,
        };
        assert!(matches!(measurement.run(dir.path()), Err(MeasureError::Invalid(_))));
    }
}
