//! The durability comparison: the six configurations the comparison report names (Kafka
//! acks=1; acks=all with min.insync.replicas 2; acks=all with unclean election; RocketMQ
//! ASYNC_MASTER + ASYNC_FLUSH; SYNC_MASTER + ASYNC_FLUSH; SYNC_MASTER + SYNC_FLUSH), each one of
//! the named scenario presets, swept over seeds under the nemesis, and per configuration what
//! the checkers found over its seeds.
//!
//! The work is one queue of (seed, configuration) pairs taken seed by seed, so a sweep stopped
//! early (the caller's time is up) still covers every configuration with the same seeds, give
//! or take the last one. Which pairs ran, and so every tally, is a function of how many were
//! taken; the clock that stops a sweep is the caller's, never read here.

use std::ops::Range;

use crate::harness::SimOutcome;
use crate::scenario::{Model, Scenario};
use crate::sweep::{SeedResult, sweep_while};

/// The faults every configuration meets: the nemesis's one mix of power-offs (with restarts)
/// of any server and network partitions between any two hosts.
pub const FAULT_FAMILY: &str = "power-offs + partitions";

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
    /// Its scenario for `seed`, sending `messages` messages, with faults.
    pub fn scenario(&self, seed: u64, messages: u64) -> Result<Scenario, String> {
        let mut scenario = Scenario::preset(self.model, self.preset, seed)?;
        let settings = scenario.settings();
        settings.messages = messages;
        settings.faults = true;
        Ok(scenario)
    }

    /// The command that replays `seed` of it.
    pub fn replay(&self, seed: u64, messages: u64) -> String {
        format!(
            "twinmq sim --model {} --preset {} --seed {seed} --messages {messages}",
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
    /// Seeds whose verdict was not clean, in order.
    pub failing_seeds: Vec<u64>,
    /// Seeds that stopped without a verdict (turmoil's error, e.g. a hung run), with why.
    pub stopped: Vec<(u64, String)>,
}

impl Tally {
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
        if !verdict.is_clean() {
            self.failing_seeds.push(seed);
        }
    }
}

/// What a sweep planned for one configuration, and what it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigurationResult {
    /// The configuration.
    pub configuration: Configuration,
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

/// One (seed, configuration) pair done: the configuration, and the seed's result.
#[derive(Debug)]
pub struct PairDone<'a> {
    /// The configuration.
    pub configuration: &'a Configuration,
    /// The seed and its outcome.
    pub result: &'a SeedResult,
}

/// Runs every configuration in `configurations` over `seeds`, `messages` messages a seed, on
/// `jobs` threads; asks `keep_going` before each pair and stops taking pairs when it says no;
/// calls `done` after each pair. Returns one result per configuration, in order.
pub fn sweep_configurations(
    configurations: &[Configuration],
    seeds: Range<u64>,
    messages: u64,
    jobs: usize,
    keep_going: impl Fn() -> bool + Sync,
    done: impl Fn(PairDone<'_>) + Sync,
) -> Result<Vec<ConfigurationResult>, String> {
    let width = configurations.len() as u64;
    // Every configuration's scenario, built before anything runs; each pair sets its seed.
    let templates = configurations
        .iter()
        .map(|configuration| configuration.scenario(seeds.start, messages))
        .collect::<Result<Vec<Scenario>, String>>()?;
    let planned_seeds = seeds.end.saturating_sub(seeds.start);
    // Pair `index` is configuration `index % width` at seed `seeds.start + index / width`.
    let pair = |index: u64| {
        let configuration = &configurations[(index % width) as usize];
        (configuration, seeds.start + index / width)
    };
    let results = sweep_while(
        0..planned_seeds * width,
        jobs,
        |index| {
            let mut scenario = templates[(index % width) as usize].clone();
            scenario.settings().seed = pair(index).1;
            scenario
        },
        |result| {
            let (configuration, seed) = pair(result.seed);
            let result = SeedResult { seed, outcome: result.outcome.clone() };
            done(PairDone { configuration, result: &result });
        },
        keep_going,
    );
    let mut out: Vec<ConfigurationResult> = configurations
        .iter()
        .map(|configuration| ConfigurationResult {
            configuration: *configuration,
            planned_seeds,
            tally: Tally::default(),
        })
        .collect();
    for result in &results {
        let (_, seed) = pair(result.seed);
        out[(result.seed % width) as usize].tally.add(seed, &result.outcome);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_configuration_is_a_preset_and_its_label_fits_a_csv_field() {
        for configuration in CONFIGURATIONS {
            let mut scenario = configuration.scenario(7, 30).unwrap();
            assert!(!configuration.label.contains(','), "{}", configuration.label);
            assert!(configuration.label.starts_with(configuration.model.name()));
            let model = match &scenario {
                Scenario::Kafka(_) => Model::Kafka,
                Scenario::Rocketmq(_) => Model::Rocketmq,
            };
            assert_eq!(model, configuration.model);
            assert_eq!(scenario.settings().messages, 30);
            assert!(scenario.settings().faults);
        }
        let labels: std::collections::BTreeSet<_> =
            CONFIGURATIONS.iter().map(|c| c.label).collect();
        assert_eq!(labels.len(), CONFIGURATIONS.len(), "labels are distinct");
    }

    #[test]
    fn a_sweep_tallies_each_configuration_over_the_same_seeds_as_each_seed_alone() {
        let configurations = [CONFIGURATIONS[0], CONFIGURATIONS[3]];
        let messages = 30;
        let seen = std::sync::Mutex::new(Vec::new());
        let results = sweep_configurations(
            &configurations,
            4..6,
            messages,
            2,
            || true,
            |done| seen.lock().unwrap().push((done.configuration.preset, done.result.seed)),
        )
        .unwrap();
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        assert_eq!(seen, vec![("acks1", 4), ("acks1", 5), ("async", 4), ("async", 5)]);
        assert_eq!(results.len(), 2);
        for result in &results {
            assert_eq!((result.planned_seeds, result.seeds_run()), (2, 2));
            let mut alone = Tally::default();
            for seed in 4..6 {
                alone.add(seed, &result.configuration.scenario(seed, messages).unwrap().run());
            }
            assert_eq!(result.tally, alone, "{}", result.configuration.label);
            assert!(result.tally.acknowledged > 0, "{:?}", result.tally);
        }
    }

    #[test]
    fn a_stopped_sweep_covers_the_configurations_seed_by_seed() {
        let asked = std::sync::atomic::AtomicU64::new(0);
        let keep_going = || asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 3;
        let results =
            sweep_configurations(&CONFIGURATIONS[3..], 0..5, 10, 1, keep_going, |_| {}).unwrap();
        let run: Vec<u64> = results.iter().map(ConfigurationResult::seeds_run).collect();
        assert_eq!(run, vec![1, 1, 1], "seed 0 of each, then time was up");
        assert!(results.iter().all(|r| r.planned_seeds == 5));
    }
}
