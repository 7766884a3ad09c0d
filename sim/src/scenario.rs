//! Named scenarios: a model, one of its presets (the configurations the durability comparison
//! names), and a seed — what `twinmq sim --model M --preset P --seed N` runs.

use std::fmt;

use twinmq_rocketmq::broker::ha::BrokerRole;
use twinmq_storage::FlushPolicy;

use crate::harness::{RunSettings, SimOutcome};
use crate::kafka::KafkaSim;
use crate::rocketmq::RocketmqSim;

/// The two models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Model {
    /// The Kafka model: controller + three brokers, replication factor 3.
    Kafka,
    /// The RocketMQ model: two nameservers, two master/slave broker groups.
    Rocketmq,
}

impl Model {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Kafka => "kafka",
            Self::Rocketmq => "rocketmq",
        }
    }

    /// The model named `name`.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "kafka" => Ok(Self::Kafka),
            "rocketmq" => Ok(Self::Rocketmq),
            other => Err(format!("no model `{other}`: kafka or rocketmq")),
        }
    }

    /// Its presets: (name, what it is). The first is the durable one, the default.
    pub fn presets(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Kafka => &[
                ("durable", "acks=all, RF 3, min.insync.replicas 2, no unclean election, fsync"),
                (
                    "acks-all",
                    "acks=all, RF 3, min.insync.replicas 2, async flush (Kafka's default)",
                ),
                ("unclean", "acks=all, RF 3, min.insync.replicas 2, unclean election, async flush"),
                ("acks1", "acks=1, RF 3, async flush"),
            ],
            Self::Rocketmq => &[
                ("durable", "SYNC_MASTER + SYNC_FLUSH"),
                ("sync-master", "SYNC_MASTER + ASYNC_FLUSH"),
                ("async", "ASYNC_MASTER + ASYNC_FLUSH"),
            ],
        }
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One runnable simulation.
#[derive(Debug, Clone)]
pub enum Scenario {
    /// A Kafka-model run.
    Kafka(KafkaSim),
    /// A RocketMQ-model run.
    Rocketmq(RocketmqSim),
}

impl Scenario {
    /// The scenario `preset` of `model` for `seed`.
    pub fn preset(model: Model, preset: &str, seed: u64) -> Result<Self, String> {
        let durable_kafka = KafkaSim::new(seed);
        let durable_rocketmq = RocketmqSim::new(seed);
        let async_flush = FlushPolicy::ASYNC_DEFAULT;
        Ok(match (model, preset) {
            (Model::Kafka, "durable") => Self::Kafka(durable_kafka),
            (Model::Kafka, "acks-all") => {
                Self::Kafka(KafkaSim { flush: async_flush, ..durable_kafka })
            }
            (Model::Kafka, "unclean") => Self::Kafka(KafkaSim {
                flush: async_flush,
                unclean_leader_election: true,
                ..durable_kafka
            }),
            (Model::Kafka, "acks1") => {
                Self::Kafka(KafkaSim { acks: 1, flush: async_flush, ..durable_kafka })
            }
            (Model::Rocketmq, "durable") => Self::Rocketmq(durable_rocketmq),
            (Model::Rocketmq, "sync-master") => {
                Self::Rocketmq(RocketmqSim { flush: async_flush, ..durable_rocketmq })
            }
            (Model::Rocketmq, "async") => Self::Rocketmq(RocketmqSim {
                role: BrokerRole::AsyncMaster,
                flush: async_flush,
                ..durable_rocketmq
            }),
            (model, other) => {
                let known: Vec<&str> = model.presets().iter().map(|(name, _)| *name).collect();
                return Err(format!("no {model} preset `{other}`: {}", known.join(", ")));
            }
        })
    }

    /// The settings every run has, to change: seed, messages, faults, trace.
    pub fn settings(&mut self) -> &mut RunSettings {
        match self {
            Self::Kafka(sim) => &mut sim.run,
            Self::Rocketmq(sim) => &mut sim.run,
        }
    }

    /// Runs it.
    pub fn run(&self) -> Result<SimOutcome, String> {
        match self {
            Self::Kafka(sim) => crate::kafka::run(sim),
            Self::Rocketmq(sim) => crate::rocketmq::run(sim),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_preset_builds_and_an_unknown_one_is_refused() {
        for model in [Model::Kafka, Model::Rocketmq] {
            for (name, _) in model.presets() {
                assert!(Scenario::preset(model, name, 1).is_ok(), "{model} {name}");
            }
            let refused = Scenario::preset(model, "fastest", 1).unwrap_err();
            assert!(refused.contains("durable"), "{refused}");
        }
        assert!(Model::parse("pulsar").is_err());
    }
}
