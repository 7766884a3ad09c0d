//! The storage phase: each planned measurement (the machine's ceiling, the Kafka-layout Log,
//! the RocketMQ-layout CommitLog) in a fresh directory of its own, removed afterwards.

use std::path::Path;

use twinmq_bench::measure::Measurement;

use crate::progress::Progress;
use crate::results::{Failure, StorageResult, measurement_label};

/// Runs `plan` in directories under `work_dir`; a measurement that fails is reported, and the
/// rest still run.
pub fn run_storage(
    plan: &[Measurement],
    work_dir: &Path,
    progress: &dyn Progress,
) -> (Vec<StorageResult>, Vec<Failure>) {
    progress.phase("storage vs the machine's ceiling", plan.len() as u64);
    let mut results = Vec::new();
    let mut failures = Vec::new();
    for measurement in plan {
        let label = measurement_label(measurement);
        progress.step(&label, None);
        let outcome = tempfile::Builder::new()
            .prefix("storage-")
            .tempdir_in(work_dir)
            .map_err(|error| format!("a directory in {}: {error}", work_dir.display()))
            .and_then(|dir| {
                measurement.run(&dir.path().join("data")).map_err(|error| error.to_string())
            });
        match outcome {
            Ok(rate) => {
                let result = StorageResult::new(measurement, &rate);
                progress.step_done(&format!("{:.0} MB/s", result.bytes_per_sec / 1e6));
                results.push(result);
            }
            Err(error) => {
                progress.step_done(&format!("failed: {error}"));
                failures.push(Failure { what: label, error });
            }
        }
    }
    (results, failures)
}
