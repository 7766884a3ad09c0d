//! The durability section of `twinmq compare` when no table is given: the simulator's six
//! configurations (`twinmq_sim::durability`) under each of its fault families, swept over a few
//! seeds each, more at the full scale, until the seeds are done or the time allowed is up, and
//! tallied into the report's [`DurabilityTable`], one row per configuration and family
//! (`twinmq sim compare` makes the same table over the seeds it is given).

use std::ops::Range;
use std::sync::Mutex;

use twinmq_report::durability::{DurabilityRow, DurabilityTable};
use twinmq_report::results::Failure;
use twinmq_report::{Progress, Scale};
use twinmq_runtime::Env;
use twinmq_sim::durability::{
    CONFIGURATIONS, ConfigurationResult, RunDone, Tally, sweep_configurations,
};
use twinmq_sim::nemesis::FaultFamily;

/// Messages a seed's workload sends: the presets' own number, long enough (tens of simulated
/// seconds) for the nemesis to act many times. A seed takes well under a second of wall time.
const MESSAGES: u64 = 400;
/// A smoke run's messages a seed: enough for the wiring to show, in a few seconds for all runs.
const SMOKE_MESSAGES: u64 = 100;

/// How much of the simulator a run sweeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sweep {
    /// Seeds of each configuration and fault family.
    pub seeds: Range<u64>,
    /// The fault families, each a column group of the table.
    pub families: Vec<FaultFamily>,
    /// Messages each seed's workload sends.
    pub messages: u64,
    /// The most wall time the sweep may take, in seconds, if it is bounded; no seed starts
    /// after it.
    pub budget_secs: Option<u64>,
}

impl Sweep {
    /// The sweep of a run at `scale`.
    pub fn at(scale: Scale) -> Self {
        match scale {
            Scale::Full => Self::new(0..16, MESSAGES, Some(150)),
            Scale::Quick => Self::new(0..2, MESSAGES, Some(30)),
            Scale::Smoke => Self::new(0..1, SMOKE_MESSAGES, Some(30)),
        }
    }

    /// `seeds` of every fault family, `messages` a seed, within `budget_secs` if given.
    pub fn new(seeds: Range<u64>, messages: u64, budget_secs: Option<u64>) -> Self {
        Self { seeds, families: FaultFamily::ALL.to_vec(), messages, budget_secs }
    }

    /// Simulations the sweep plans: every seed of every configuration under every family.
    fn runs(&self) -> u64 {
        (self.seeds.end - self.seeds.start) * (CONFIGURATIONS.len() * self.families.len()) as u64
    }
}

/// Runs `sweep` on `jobs` threads, stopping at `deadline_ms` (on `env`'s clock) if it comes
/// first; returns the table and what did not finish.
pub fn run(
    env: &impl Env,
    sweep: Sweep,
    jobs: usize,
    deadline_ms: i64,
    progress: &dyn Progress,
) -> anyhow::Result<(DurabilityTable, Vec<Failure>)> {
    progress.phase("durability (simulator)", sweep.runs());
    // Two threads finish at once: one step's label and outcome are shown together.
    let shown = Mutex::new(());
    let results = sweep_configurations(
        &CONFIGURATIONS,
        &sweep.families,
        sweep.seeds.clone(),
        sweep.messages,
        jobs,
        || env.clock().now_ms() < deadline_ms,
        |done: RunDone<'_>| {
            let _shown = shown.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let (label, family, seed) = (done.configuration.label, done.family, done.result.seed);
            progress.step(&format!("{label}, {family} faults, seed {seed}"), None);
            progress.step_done(&match &done.result.outcome {
                Ok(outcome) => {
                    let v = &outcome.verdict;
                    format!(
                        "acknowledged {} lost {} duplicates {} order violations {}",
                        v.acknowledged, v.lost, v.duplicates, v.order_violations
                    )
                }
                Err(error) => format!("stopped: {error}"),
            });
        },
    )
    .map_err(anyhow::Error::msg)?;
    Ok((table(&results, &sweep), failures(&results, &sweep)))
}

/// The table: one row per configuration and family that has a verdict.
pub fn table(results: &[ConfigurationResult], sweep: &Sweep) -> DurabilityTable {
    let rows = results
        .iter()
        .filter(|result| result.tally.seeds > 0)
        .map(|result| DurabilityRow {
            configuration: result.configuration.label.to_owned(),
            fault_family: result.family.name().to_owned(),
            seeds: result.tally.seeds,
            seeds_with_loss: result.tally.seeds_with_loss,
            acked_lost: result.tally.acked_lost,
            duplicates: result.tally.duplicates,
            order_violations: result.tally.order_violations,
            unavailability_ms: result.tally.mean_unavailable_ms(),
            time_to_recover_ms: result.tally.mean_recovery_ms(),
        })
        .collect();
    DurabilityTable { rows, method: Some(method(results, sweep)) }
}

/// How the table was made, in words, with what the columns leave out.
fn method(results: &[ConfigurationResult], sweep: &Sweep) -> String {
    let presets: Vec<String> = CONFIGURATIONS
        .iter()
        .map(|configuration| {
            format!("{} = `{} {}`", configuration.label, configuration.model, configuration.preset)
        })
        .collect();
    let budget = sweep.budget_secs.map_or_else(String::new, |secs| {
        format!("; a sweep that runs out of its {secs} s stops early and lists what it missed under failures")
    });
    let families: Vec<&str> = sweep.families.iter().map(|f| f.name()).collect();
    let mut text = format!(
        "Swept: seeds {}..{} of each configuration under each fault family ({}; seeds end \
         excluded, as `twinmq sim --seeds` takes them{budget}), {} messages a seed. The \
         nemesis acts at random until every message is answered, then heals and the consumers \
         drain: link faults between hosts — partitions of two hosts, of random halves, around \
         one server, one way; held, slow and flaky links (network); power-offs and restarts \
         of servers, writes torn at 512-byte blocks (crash); full and failing disks with \
         power-offs and torn writes (disk); link faults and power-offs together (mixed). \
         Configurations are the simulator's presets ({}); a seed replays with `twinmq sim \
         --model M --preset P --faults F --seed N --messages {}`. Unavailability: simulated \
         time, while the faults acted, in stretches of a second or more in which no send was \
         acknowledged; time to recover: from the heal until the last acknowledged message to \
         arrive had arrived; both are means per seed.",
        sweep.seeds.start,
        sweep.seeds.end,
        families.join(", "),
        sweep.messages,
        presets.join("; "),
        sweep.messages
    );
    type Count = fn(&Tally) -> u64;
    let uncolumned: [(&str, Count); 2] = [
        ("Consumer-group commits that moved backwards", |t| t.commits_backwards),
        ("Broker-state invariants broken (see the simulator's checkers)", |t| t.invariants_broken),
    ];
    for (what, count) in uncolumned {
        let cells: Vec<String> = results
            .iter()
            .filter(|r| count(&r.tally) > 0)
            .map(|r| format!("{}, {}: {}", r.configuration.label, r.family, count(&r.tally)))
            .collect();
        if !cells.is_empty() {
            text.push_str(&format!(
                " {what}, which the table has no column for: {}.",
                cells.join("; ")
            ));
        }
    }
    let failing: Vec<String> = results
        .iter()
        .filter(|r| !r.tally.failing_seeds.is_empty())
        .map(|r| {
            let seeds: Vec<String> = r.tally.failing_seeds.iter().map(u64::to_string).collect();
            format!("{}, {}: {}", r.configuration.label, r.family, seeds.join(" "))
        })
        .collect();
    if failing.is_empty() {
        text.push_str(" Every seed's verdict was clean.");
    } else {
        text.push_str(&format!(" Seeds whose verdict was not clean: {}.", failing.join("; ")));
    }
    text
}

/// Seeds that stopped without a verdict, and configurations the time allowed only in part.
pub fn failures(results: &[ConfigurationResult], sweep: &Sweep) -> Vec<Failure> {
    let mut failures = Vec::new();
    for result in results {
        let label = format!("{}, {} faults", result.configuration.label, result.family);
        for (seed, error) in &result.tally.stopped {
            failures.push(Failure {
                what: format!("durability: {label} seed {seed}"),
                error: format!(
                    "{error} (replay: {})",
                    result.configuration.replay(*seed, sweep.messages, result.family)
                ),
            });
        }
        if result.seeds_run() < result.planned_seeds {
            failures.push(Failure {
                what: format!("durability: {label}"),
                error: format!(
                    "out of time after {} of {} seeds",
                    result.seeds_run(),
                    result.planned_seeds
                ),
            });
        }
    }
    failures
}
