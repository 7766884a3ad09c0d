//! The storage phase: each planned measurement (the machine's ceiling, the Kafka-layout Log,
//! the RocketMQ-layout CommitLog) `runs` times, each in a fresh directory of its own removed
//! afterwards; the median run is kept (one slow or fast run of the page cache does not decide a
//! ratio).

use std::path::Path;

use twinmq_bench::measure::{Measurement, Rate};

use crate::progress::Progress;
use crate::results::{Failure, StorageResult, measurement_label};

/// Runs `plan`, each measurement `runs` times, in directories under `work_dir`; a measurement
/// that fails is reported, and the rest still run.
pub fn run_storage(
    plan: &[Measurement],
    runs: u32,
    work_dir: &Path,
    progress: &dyn Progress,
) -> (Vec<StorageResult>, Vec<Failure>) {
    progress.phase("storage vs the machine's ceiling", plan.len() as u64);
    let mut results = Vec::new();
    let mut failures = Vec::new();
    for measurement in plan {
        let label = measurement_label(measurement);
        progress.step(&label, None);
        let outcome = (0..runs.max(1))
            .map(|_| run_once(measurement, work_dir))
            .collect::<Result<Vec<Rate>, String>>();
        match outcome {
            Ok(mut rates) => {
                rates.sort_by(|a, b| a.bytes_per_sec().total_cmp(&b.bytes_per_sec()));
                let median = rates[rates.len() / 2];
                let result = StorageResult::new(measurement, &median, &rates);
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

fn run_once(measurement: &Measurement, work_dir: &Path) -> Result<Rate, String> {
    let dir = tempfile::Builder::new()
        .prefix("storage-")
        .tempdir_in(work_dir)
        .map_err(|error| format!("a directory in {}: {error}", work_dir.display()))?;
    measurement.run(&dir.path().join("data")).map_err(|error| error.to_string())
}
