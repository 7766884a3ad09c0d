//! The load phase: for each topology of the plan, start its embedded cluster, run its points
//! through the load generator one after the other, stop the cluster. A half-peak point runs at
//! half of what its mode's peak point sustained end to end. A point that fails is reported and the run goes
//! on; a point that would pass the time budget is skipped and reported as such.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use twinmq_loadgen::LiveCounts;
use twinmq_runtime::{Env, RealEnv};

use crate::clusters::Embedded;
use crate::matrix::{LoadPoint, Plan, Series, Topology};
use crate::progress::Progress;
use crate::results::{Failure, LoadResult};
use crate::workload::bench_config;

/// What the load phase measured.
#[derive(Debug, Default)]
pub struct LoadRun {
    /// One result per point that ran.
    pub results: Vec<LoadResult>,
    /// Points that failed or were skipped.
    pub failures: Vec<Failure>,
}

/// Runs the plan's load points with clusters under `work_dir`, skipping what would end after
/// `deadline_ms` (ms since the Unix epoch, on `env`'s clock).
pub async fn run_load(
    env: &RealEnv,
    plan: &Plan,
    work_dir: &Path,
    deadline_ms: i64,
    progress: &dyn Progress,
) -> LoadRun {
    progress.phase("load: both models through the load generator", plan.load.len() as u64);
    let mut run = LoadRun::default();
    let mut index = 0;
    for (topology, points) in plan.load_by_topology() {
        let cluster = match Embedded::start(env, topology, work_dir).await {
            Ok(cluster) => Some(cluster),
            Err(error) => {
                tracing::warn!(%error, ?topology, "cluster did not start");
                run.failures.push(Failure { what: describe(topology), error: error.to_string() });
                None
            }
        };
        for point in &points {
            index += 1;
            progress.step(&point.label(), None);
            let Some(cluster) = &cluster else {
                progress.step_done("skipped: its cluster did not start");
                run.failures.push(failure(point, "its cluster did not start"));
                continue;
            };
            let planned_ms = point.timing.warmup_ms + point.timing.measure_ms;
            let planned_ms = i64::try_from(planned_ms).unwrap_or(i64::MAX);
            if env.clock().now_ms().saturating_add(planned_ms) > deadline_ms {
                progress.step_done("skipped: the time budget is spent");
                run.failures.push(failure(point, "skipped: the time budget is spent"));
                continue;
            }
            match run_point(env, cluster, point, index, &run.results, progress).await {
                Ok(result) => {
                    progress.step_done(&format!(
                        "{:.0} msgs/s, e2e p99 {} µs",
                        result.summary.produce.msgs_per_sec,
                        result.summary.latency_end_to_end_us.p99_us
                    ));
                    run.results.push(result);
                }
                Err(error) => {
                    progress.step_done(&format!("failed: {error}"));
                    run.failures.push(failure(point, &error));
                }
            }
        }
        if let Some(cluster) = cluster
            && let Err(error) = cluster.stop().await
        {
            run.failures.push(Failure { what: describe(topology), error: error.to_string() });
        }
    }
    run
}

/// Runs one point on `cluster`.
async fn run_point(
    env: &RealEnv,
    cluster: &Embedded,
    point: &LoadPoint,
    index: usize,
    earlier: &[LoadResult],
    progress: &dyn Progress,
) -> Result<LoadResult, String> {
    let rate = match point.series {
        Series::PartitionSweep | Series::ModeSweep => 0,
        Series::HalfPeak => half_peak(point, earlier)?,
    };
    let config = bench_config(point, cluster.target.clone(), index, rate);
    let live = Arc::new(LiveCounts::default());
    progress.step(&point.label(), Some(Arc::clone(&live)));
    let limit = Duration::from_millis(point.limit_ms());
    let report = tokio::time::timeout(limit, twinmq_loadgen::run(env.clone(), config, live))
        .await
        .map_err(|_| format!("did not finish within {limit:?}"))?
        .map_err(|error| error.to_string())?;
    if report.summary.measured.acked == 0 && report.summary.measured.sent > 0 {
        let failed = report.summary.measured.failed;
        return Err(format!("no send was acknowledged ({failed} failed)"));
    }
    Ok(LoadResult::new(point, report))
}

/// Half of the rate the point's mode sustained end to end at its peak (the lower of its produce
/// and consume rates: a backlog the consumers never catch up with is not a load the system
/// carries), in messages per second.
fn half_peak(point: &LoadPoint, earlier: &[LoadResult]) -> Result<u64, String> {
    let peak = earlier
        .iter()
        .find(|r| r.series == Series::ModeSweep && r.model == point.model && r.mode == point.mode)
        .map(|r| r.summary.produce.msgs_per_sec.min(r.summary.consume.msgs_per_sec))
        .ok_or("its mode's peak was not measured")?;
    let half = (peak / 2.0).round();
    if half < 1.0 {
        return Err(format!("its mode's peak ({peak:.1} msgs/s) is too low to halve"));
    }
    Ok(half as u64)
}

fn failure(point: &LoadPoint, error: &str) -> Failure {
    Failure { what: point.label(), error: error.to_owned() }
}

fn describe(topology: Topology) -> String {
    format!(
        "{} cluster ({})",
        topology.model.name(),
        crate::matrix::Mode {
            replication: topology.replication,
            ack: topology.ack,
            flush: topology.flush
        }
        .label(topology.model)
    )
}
