//! The durability comparison: the six configurations the comparison report names (Kafka
//! acks=1; acks=all with min.insync.replicas 2; acks=all with unclean election; RocketMQ
//! ASYNC_MASTER + ASYNC_FLUSH; SYNC_MASTER + ASYNC_FLUSH; SYNC_MASTER + SYNC_FLUSH), each one of
//! the named scenario presets, swept over seeds under each of the nemesis's fault families,
//! and per configuration and family what the checkers found over its seeds.
//!
//! The work is one queue of (seed, configuration, family) runs taken seed by seed, so a sweep
//! stopped early (the caller's time is up) still covers every configuration and family with the
//! same seeds, give or take the last one. Which runs ran, and so every tally, is a function of
//! how many were taken; the clock that stops a sweep is the caller's, never read here.

use std::ops::Range;

use crate::harness::SimOutcome;
use crate::nemesis::FaultFamily;
use crate::scenario::{Model, Scenario};
use crate::sweep::{SeedResult, sweep_while};

/// One configuration of the comparison: a preset of a model, under the name the report gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Configuration {
    /// The model.
    pub model: Model,
    /// Its preset (`twinmq sim --preset`).
    pub preset: &'static str,
    /// The name in the report (no commas: it is a CSV field).
    pub label: &'static str,
}

/// The six configurations, Kafka's then RocketMQ's, each from least to most durable.
pub const CONFIGURATIONS: [Configuration; 6] = [
    Configuration { model: Model::Kafka, preset: "acks1", label: "kafka acks=1 RF=3" },
    Configuration {
        model: Model::Kafka,
        preset: "unclean",
        label: "kafka acks=all RF=3 min.insync.replicas=2 unclean election",
    },
    Configuration {
        model: Model::Kafka,
        preset: "acks-all",
        label: "kafka acks=all RF=3 min.insync.replicas=2",
    },
    Configuration {
        model: Model::Rocketmq,
        preset: "async",
        label: "rocketmq ASYNC_MASTER ASYNC_FLUSH",
    },
    Configuration {
        model: Model::Rocketmq,
        preset: "sync-master",
        label: "rocketmq SYNC_MASTER ASYNC_FLUSH",
    },
    Configuration {
        model: Model::Rocketmq,
        preset: "durable",
        label: "rocketmq SYNC_MASTER SYNC_FLUSH",
    },
];

impl Configuration {
    /// Its scenario for `seed`, sending `messages` messages, under `faults`.
    pub fn scenario(
        &self,
        seed: u64,
        messages: u64,
        faults: FaultFamily,
    ) -> Result<Scenario, String> {
        let mut scenario = Scenario::preset(self.model, self.preset, seed)?;
        let settings = scenario.settings();
        settings.messages = messages;
        settings.faults = faults;
        Ok(scenario)
    }

    /// The command that replays `seed` of it under `faults`.
    pub fn replay(&self, seed: u64, messages: u64, faults: FaultFamily) -> String {
        format!(
            "twinmq sim --model {} --preset {} --faults {faults} --seed {seed} --messages \
             {messages}",
            self.model, self.preset
        )
    }
}

/// What one configuration's seeds found, summed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Seeds that ran to a verdict.
    pub seeds: u64,
    /// Of them, seeds in which an acknowledged message was lost.
    pub seeds_with_loss: u64,
    /// Messages acknowledged.
    pub acknowledged: u64,
    /// Acknowledged messages lost.
    pub acked_lost: u64,
    /// Deliveries past the first.
    pub duplicates: u64,
    /// Per-key order violations.
    pub order_violations: u64,
    /// Committed offsets that moved backwards.
    pub commits_backwards: u64,
    /// Broker-state invariants seen broken.
    pub invariants_broken: u64,
    /// Simulated milliseconds without writes, summed over seeds
    /// ([`crate::availability::Availability::unavailable_ms`]).
    pub unavailable_ms: u64,
    /// Simulated milliseconds from heal to caught up, summed over the seeds that recovered.
    pub recovery_ms: u64,
    /// Seeds with a recovery time.
    pub recovered_seeds: u64,
    /// Seeds whose verdict was not clean, in order.
    pub failing_seeds: Vec<u64>,
    /// Seeds that stopped without a verdict (turmoil's error, e.g. a hung run), with why.
    pub stopped: Vec<(u64, String)>,
}

impl Tally {
    /// Mean simulated milliseconds without writes per seed.
    pub fn mean_unavailable_ms(&self) -> Option<u64> {
        (self.seeds > 0).then(|| self.unavailable_ms / self.seeds)
    }

    /// Mean simulated milliseconds from heal to caught up, over the seeds that recovered.
    pub fn mean_recovery_ms(&self) -> Option<u64> {
        (self.recovered_seeds > 0).then(|| self.recovery_ms / self.recovered_seeds)
    }

    fn add(&mut self, seed: u64, outcome: &Result<SimOutcome, String>) {
        let verdict = match outcome {
            Ok(outcome) => &outcome.verdict,
            Err(error) => {
                self.stopped.push((seed, error.clone()));
                return;
            }
        };
        self.seeds += 1;
        self.seeds_with_loss += u64::from(verdict.lost > 0);
        self.acknowledged += verdict.acknowledged;
        self.acked_lost += verdict.lost;
        self.duplicates += verdict.duplicates;
        self.order_violations += verdict.order_violations;
        self.commits_backwards += verdict.commits_backwards;
        self.invariants_broken += verdict.invariants_broken;
        if let Ok(outcome) = outcome {
            self.unavailable_ms += outcome.availability.unavailable_ms;
            if let Some(recovery_ms) = outcome.availability.recovery_ms {
                self.recovery_ms += recovery_ms;
                self.recovered_seeds += 1;
            }
        }
        if !verdict.is_clean() {
            self.failing_seeds.push(seed);
        }
    }
}

/// What a sweep planned for one configuration under one fault family, and what it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigurationResult {
    /// The configuration.
    pub configuration: Configuration,
    /// The faults.
    pub family: FaultFamily,
    /// Seeds planned for it.
    pub planned_seeds: u64,
    /// What its seeds found.
    pub tally: Tally,
}

impl ConfigurationResult {
    /// Seeds run, whether to a verdict or stopped.
    pub fn seeds_run(&self) -> u64 {
        self.tally.seeds + self.tally.stopped.len() as u64
    }
}

/// One run of a sweep done: its configuration and family, and the seed's result.
#[derive(Debug)]
pub struct RunDone<'a> {
    /// The configuration.
    pub configuration: &'a Configuration,
    /// The faults.
    pub family: FaultFamily,
    /// The seed and its outcome.
    pub result: &'a SeedResult,
}

/// Runs every configuration in `configurations` under every family in `families` over `seeds`,
/// `messages` messages a seed, on `jobs` threads; asks `keep_going` before each run and stops
/// taking runs when it says no; calls `done` after each run. Returns one result per
/// configuration and family, configuration by configuration, each in the order of `families`.
pub fn sweep_configurations(
    configurations: &[Configuration],
    families: &[FaultFamily],
    seeds: Range<u64>,
    messages: u64,
    jobs: usize,
    keep_going: impl Fn() -> bool + Sync,
    done: impl Fn(RunDone<'_>) + Sync,
) -> Result<Vec<ConfigurationResult>, String> {
    // Every (configuration, family) cell and its scenario, built before anything runs; each run
    // sets its seed.
    let cells: Vec<(&Configuration, FaultFamily)> = configurations
        .iter()
        .flat_map(|configuration| families.iter().map(move |family| (configuration, *family)))
        .collect();
    let templates = cells
        .iter()
        .map(|(configuration, family)| configuration.scenario(seeds.start, messages, *family))
        .collect::<Result<Vec<Scenario>, String>>()?;
    let width = cells.len() as u64;
    let planned_seeds = seeds.end.saturating_sub(seeds.start);
    // Run `index` is cell `index % width` at seed `seeds.start + index / width`.
    let cell_of = |index: u64| (index % width) as usize;
    let seed_of = |index: u64| seeds.start + index / width;
    let results = sweep_while(
        0..planned_seeds * width,
        jobs,
        |index| {
            let mut scenario = templates[cell_of(index)].clone();
            scenario.settings().seed = seed_of(index);
            scenario
        },
        |result| {
            let (configuration, family) = cells[cell_of(result.seed)];
            let result = SeedResult { seed: seed_of(result.seed), outcome: result.outcome.clone() };
            done(RunDone { configuration, family, result: &result });
        },
        keep_going,
    );
    let mut out: Vec<ConfigurationResult> = cells
        .iter()
        .map(|(configuration, family)| ConfigurationResult {
            configuration: **configuration,
            family: *family,
            planned_seeds,
            tally: Tally::default(),
        })
        .collect();
    for result in &results {
        out[cell_of(result.seed)].tally.add(seed_of(result.seed), &result.outcome);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_configuration_is_a_preset_and_its_label_fits_a_csv_field() {
        for configuration in CONFIGURATIONS {
            let mut scenario = configuration.scenario(7, 30, FaultFamily::Disk).unwrap();
            assert!(!configuration.label.contains(','), "{}", configuration.label);
            assert!(configuration.label.starts_with(configuration.model.name()));
            let model = match &scenario {
                Scenario::Kafka(_) => Model::Kafka,
                Scenario::Rocketmq(_) => Model::Rocketmq,
            };
            assert_eq!(model, configuration.model);
            assert_eq!(scenario.settings().messages, 30);
            assert_eq!(scenario.settings().faults, FaultFamily::Disk);
        }
        let labels: std::collections::BTreeSet<_> =
            CONFIGURATIONS.iter().map(|c| c.label).collect();
        assert_eq!(labels.len(), CONFIGURATIONS.len(), "labels are distinct");
    }

    #[test]
    fn a_sweep_tallies_each_cell_over_the_same_seeds_as_each_seed_alone() {
        let configurations = [CONFIGURATIONS[0], CONFIGURATIONS[3]];
        let families = [FaultFamily::Crash, FaultFamily::Network];
        let messages = 30;
        let seen = std::sync::Mutex::new(Vec::new());
        let results = sweep_configurations(
            &configurations,
            &families,
            4..6,
            messages,
            2,
            || true,
            |done| {
                let run = (done.configuration.preset, done.family.name(), done.result.seed);
                seen.lock().unwrap().push(run);
            },
        )
        .unwrap();
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        let mut expected = Vec::new();
        for preset in ["acks1", "async"] {
            for family in ["crash", "network"] {
                expected.extend([(preset, family, 4), (preset, family, 5)]);
            }
        }
        assert_eq!(seen, expected);
        let cells: Vec<(&str, FaultFamily)> =
            results.iter().map(|r| (r.configuration.preset, r.family)).collect();
        assert_eq!(
            cells,
            vec![
                ("acks1", FaultFamily::Crash),
                ("acks1", FaultFamily::Network),
                ("async", FaultFamily::Crash),
                ("async", FaultFamily::Network)
            ]
        );
        for result in &results {
            assert_eq!((result.planned_seeds, result.seeds_run()), (2, 2));
            let mut alone = Tally::default();
            for seed in 4..6 {
                let scenario = result.configuration.scenario(seed, messages, result.family);
                alone.add(seed, &scenario.unwrap().run());
            }
            assert_eq!(result.tally, alone, "{}", result.configuration.label);
            assert!(result.tally.acknowledged > 0, "{:?}", result.tally);
        }
    }

    #[test]
    fn a_stopped_sweep_covers_the_cells_seed_by_seed() {
        let asked = std::sync::atomic::AtomicU64::new(0);
        let keep_going = || asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 3;
        let families = [FaultFamily::Network];
        let results =
            sweep_configurations(&CONFIGURATIONS[3..], &families, 0..5, 10, 1, keep_going, |_| {})
                .unwrap();
        let run: Vec<u64> = results.iter().map(ConfigurationResult::seeds_run).collect();
        assert_eq!(run, vec![1, 1, 1], "seed 0 of each, then time was up");
        assert!(results.iter().all(|r| r.planned_seeds == 5));
    }
}
