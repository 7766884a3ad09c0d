//! Sweeps: one scenario over a range of seeds, on `jobs` threads at once. Each simulation
//! stays on the thread that runs it, alone, so it is as deterministic as a run by itself; the
//! threads only share the queue of seeds and the results, which come back in seed order.

use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::harness::SimOutcome;
use crate::scenario::Scenario;

/// What one seed of a sweep gave.
#[derive(Debug, Clone)]
pub struct SeedResult {
    /// The seed.
    pub seed: u64,
    /// The run's outcome, or why it could not finish (turmoil's own error, e.g. a hung run).
    pub outcome: Result<SimOutcome, String>,
}

impl SeedResult {
    /// Whether the run finished and its checkers found nothing.
    pub fn is_clean(&self) -> bool {
        self.outcome.as_ref().is_ok_and(|o| o.verdict.is_clean())
    }
}

/// Runs `scenario(seed)` for every seed in `seeds` on `jobs` threads; calls `done` after each
/// (from the thread that ran it); returns the results in seed order.
pub fn sweep(
    seeds: Range<u64>,
    jobs: usize,
    scenario: impl Fn(u64) -> Scenario + Sync,
    done: impl Fn(&SeedResult) + Sync,
) -> Vec<SeedResult> {
    sweep_while(seeds, jobs, scenario, done, || true)
}

/// [`sweep`], but each thread asks `keep_going` before it takes the next seed and stops when it
/// says no (the caller's time is up). Seeds are taken in order and every seed taken is run, so
/// the results always cover a prefix of `seeds`, whatever the threads' timing.
pub fn sweep_while(
    seeds: Range<u64>,
    jobs: usize,
    scenario: impl Fn(u64) -> Scenario + Sync,
    done: impl Fn(&SeedResult) + Sync,
    keep_going: impl Fn() -> bool + Sync,
) -> Vec<SeedResult> {
    let next = AtomicU64::new(seeds.start);
    let results = Mutex::new(Vec::new());
    let worker = || {
        loop {
            if !keep_going() {
                return;
            }
            let seed = next.fetch_add(1, Ordering::SeqCst);
            if seed >= seeds.end {
                return;
            }
            let result = SeedResult { seed, outcome: scenario(seed).run() };
            done(&result);
            results.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(result);
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..jobs.max(1) {
            scope.spawn(worker);
        }
        worker();
    });
    let mut results = results.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    results.sort_by_key(|r| r.seed);
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Model;

    #[test]
    fn a_sweep_on_two_threads_gives_what_each_seed_gives_alone() {
        let scenario = |seed| {
            let mut scenario = Scenario::preset(Model::Rocketmq, "durable", seed).unwrap();
            scenario.settings().messages = 40;
            scenario
        };
        let swept = sweep(0..4, 2, scenario, |_| {});
        assert_eq!(swept.iter().map(|r| r.seed).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        for result in &swept {
            let alone = scenario(result.seed).run().unwrap();
            let hash = result.outcome.as_ref().unwrap().trace.hash();
            assert_eq!(hash, alone.trace.hash(), "seed {}", result.seed);
        }
    }

    #[test]
    fn a_sweep_told_to_stop_covers_a_prefix_of_its_seeds() {
        let scenario = |seed| {
            let mut scenario = Scenario::preset(Model::Rocketmq, "async", seed).unwrap();
            scenario.settings().messages = 10;
            scenario.settings().faults = crate::nemesis::FaultFamily::None;
            scenario
        };
        // Three seeds taken, then no more: the answer a caller's clock gives when time is up.
        let asked = AtomicU64::new(0);
        let keep_going = || asked.fetch_add(1, Ordering::SeqCst) < 3;
        let swept = sweep_while(10..20, 2, scenario, |_| {}, keep_going);
        assert_eq!(swept.iter().map(|r| r.seed).collect::<Vec<_>>(), vec![10, 11, 12]);
        assert!(swept.iter().all(SeedResult::is_clean));
    }
}
