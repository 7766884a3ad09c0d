//! BenchConfig — one run's workload: where, how much, how fast, and each model's own knobs.
//! Every limit is named with its unit; [`BenchConfig::validate`] refuses a workload that could
//! not run or could not stop by itself.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::payload::HEADER_BYTES;
use crate::target::Target;

/// The largest message body a run may generate (both models' default message limit is 4 MiB).
pub const MESSAGE_BYTES_MAX: usize = 4 << 20;
/// The most messages one RocketMQ batch send may carry.
pub const BATCH_MESSAGES_MAX: u32 = 4_096;
/// The most producers or consumers one run may start.
pub const CLIENTS_MAX: u32 = 1_024;
/// The most partitions or queues one run may create.
pub const PARTITIONS_MAX: u32 = 16_384;

/// A run's workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchConfig {
    /// The broker to drive.
    pub target: Target,
    /// The topic to produce to and consume from (created when missing).
    pub topic: String,
    /// Partitions (Kafka) or queues per broker (RocketMQ) the topic is created with.
    pub partitions: u32,
    /// Concurrent producers, each its own client.
    pub producers: u32,
    /// Concurrent consumers, each its own client (0: produce only).
    pub consumers: u32,
    /// Bytes per message body, the 24-byte stamp included.
    pub message_bytes: usize,
    /// Whether messages carry a key (Kafka: picks the partition; RocketMQ: KEYS, indexed).
    pub keys: bool,
    /// Messages per second over all producers; 0 sends as fast as acknowledgements allow.
    pub rate_msgs_per_sec: u64,
    /// When producing stops (after the warm-up).
    pub bound: Bound,
    /// Time at the start whose messages are left out of every figure.
    pub warmup_ms: u64,
    /// After producing stops, how long consumers may go without a new message before the run
    /// gives up waiting for the rest.
    pub drain_idle_ms: u64,
    /// Kafka's producer settings.
    pub kafka: KafkaOptions,
    /// RocketMQ's producer settings.
    pub rocketmq: RocketMqOptions,
}

/// When producing stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// After this many measured messages (over all producers; warm-up messages come on top).
    Count {
        /// Messages.
        messages: u64,
    },
    /// After this much measured time.
    Duration {
        /// Milliseconds.
        ms: u64,
    },
}

/// Kafka producer settings (Kafka's names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaOptions {
    /// `acks`.
    pub acks: Acks,
    /// `linger.ms`.
    pub linger_ms: u64,
    /// `batch.size`.
    pub batch_bytes: usize,
    /// `compression.type`: only `none` (twinmq's client sends uncompressed batches).
    pub compression: String,
    /// Messages one producer may have sent but not yet acknowledged (Kafka's
    /// `buffer.memory`, counted in messages).
    pub in_flight_messages_max: usize,
}

/// Kafka's `acks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Acks {
    /// 0: written and forgotten.
    None,
    /// 1: the leader has it.
    Leader,
    /// all (-1): every in-sync replica has it.
    All,
}

/// RocketMQ producer and consumer settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RocketMqOptions {
    /// How each producer sends.
    pub send_mode: SendMode,
    /// Messages a push consumer pulls from a queue at once (`pullBatchSize`).
    #[serde(default = "default_pull_batch_messages")]
    pub pull_batch_messages: u32,
}

/// RocketMQ's default `pullBatchSize`.
pub const PULL_BATCH_MESSAGES_DEFAULT: u32 = 32;
/// The largest `pullBatchSize` a RocketMQ consumer accepts.
pub const PULL_BATCH_MESSAGES_MAX: u32 = 1024;

fn default_pull_batch_messages() -> u32 {
    PULL_BATCH_MESSAGES_DEFAULT
}

/// How a RocketMQ producer sends: one request at a time each, as RocketMQ's own benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendMode {
    /// SEND_MESSAGE, waiting for each answer.
    Sync,
    /// SEND_MESSAGE oneway: nothing is acknowledged.
    Oneway,
    /// SEND_BATCH_MESSAGE of this many messages, waiting for each answer.
    Batch {
        /// Messages per batch.
        messages: u32,
    },
}

/// A workload that cannot run, with the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A value outside its range.
    #[error("{name} = {value}: {expected}")]
    OutOfRange {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: String,
        /// What it may be.
        expected: String,
    },
    /// A value that does not parse.
    #[error("`{value}` is not a valid {name}: {expected}")]
    Unparsable {
        /// The setting.
        name: &'static str,
        /// The text given.
        value: String,
        /// What it may be.
        expected: &'static str,
    },
}

impl BenchConfig {
    /// A small workload against `target`: one producer, one consumer, 100 B, 10,000 messages.
    pub fn new(target: Target) -> Self {
        Self {
            target,
            topic: "twinmq-bench".into(),
            partitions: 8,
            producers: 1,
            consumers: 1,
            message_bytes: 100,
            keys: false,
            rate_msgs_per_sec: 0,
            bound: Bound::Count { messages: 10_000 },
            warmup_ms: 0,
            drain_idle_ms: 10_000,
            kafka: KafkaOptions {
                acks: Acks::Leader,
                linger_ms: 5,
                batch_bytes: 64 * 1024,
                compression: "none".into(),
                in_flight_messages_max: 65_536,
            },
            rocketmq: RocketMqOptions {
                send_mode: SendMode::Sync,
                pull_batch_messages: PULL_BATCH_MESSAGES_DEFAULT,
            },
        }
    }

    /// Refuses a workload that could not run or could not stop by itself.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let range = |name: &'static str, value: u64, low: u64, high: u64| {
            if (low..=high).contains(&value) {
                Ok(())
            } else {
                Err(ConfigError::OutOfRange {
                    name,
                    value: value.to_string(),
                    expected: format!("must be {low}..={high}"),
                })
            }
        };
        if self.topic.is_empty()
            || self.topic.len() > 127
            || !self.topic.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(ConfigError::OutOfRange {
                name: "topic",
                value: self.topic.clone(),
                expected: "1-127 characters of [a-zA-Z0-9._-]".into(),
            });
        }
        range("partitions", self.partitions.into(), 1, PARTITIONS_MAX.into())?;
        range("producers", self.producers.into(), 1, CLIENTS_MAX.into())?;
        range("consumers", self.consumers.into(), 0, CLIENTS_MAX.into())?;
        range(
            "message_bytes",
            self.message_bytes as u64,
            HEADER_BYTES as u64,
            MESSAGE_BYTES_MAX as u64,
        )?;
        match self.bound {
            Bound::Count { messages } => range("count", messages, 1, u64::MAX)?,
            Bound::Duration { ms } => range("duration_ms", ms, 1, u64::MAX)?,
        }
        range("drain_idle_ms", self.drain_idle_ms, 1, u64::MAX)?;
        range("kafka.batch_bytes", self.kafka.batch_bytes as u64, 1, MESSAGE_BYTES_MAX as u64 * 4)?;
        range(
            "kafka.in_flight_messages_max",
            self.kafka.in_flight_messages_max as u64,
            1,
            1 << 24,
        )?;
        if self.kafka.compression != "none" {
            return Err(ConfigError::OutOfRange {
                name: "kafka.compression",
                value: self.kafka.compression.clone(),
                expected: "only `none`: twinmq's Kafka client sends uncompressed batches".into(),
            });
        }
        if let SendMode::Batch { messages } = self.rocketmq.send_mode {
            range("rocketmq batch messages", messages.into(), 1, BATCH_MESSAGES_MAX.into())?;
        }
        range(
            "rocketmq.pull_batch_messages",
            self.rocketmq.pull_batch_messages.into(),
            1,
            PULL_BATCH_MESSAGES_MAX.into(),
        )?;
        Ok(())
    }

    /// Measured messages producer `index` sends under a count bound: the count split evenly,
    /// the remainder to the first producers.
    pub fn producer_share(&self, index: u32) -> Option<u64> {
        let Bound::Count { messages } = self.bound else { return None };
        let producers = u64::from(self.producers.max(1));
        Some(messages / producers + u64::from(u64::from(index) < messages % producers))
    }

    /// Whether the brokers acknowledge what is sent (not Kafka acks=0, not RocketMQ oneway).
    pub fn acknowledged(&self) -> bool {
        match self.target {
            Target::Kafka { .. } => self.kafka.acks != Acks::None,
            Target::RocketMq { .. } => self.rocketmq.send_mode != SendMode::Oneway,
        }
    }

    /// The workload in one line, for the table's title.
    pub fn describe(&self) -> String {
        let bound = match self.bound {
            Bound::Count { messages } => format!("{messages} msgs"),
            Bound::Duration { ms } => format!("{:.1} s", ms as f64 / 1_000.0),
        };
        let rate = match self.rate_msgs_per_sec {
            0 => "unbounded".to_owned(),
            rate => format!("{rate} msgs/s"),
        };
        let mode = match self.target {
            Target::Kafka { .. } => format!(
                "acks={} linger={}ms batch={}B",
                self.kafka.acks, self.kafka.linger_ms, self.kafka.batch_bytes
            ),
            Target::RocketMq { .. } => format!("send={}", self.rocketmq.send_mode),
        };
        format!(
            "{} topic={} partitions={} producers={} consumers={} size={}B keys={} {mode} rate={rate} bound={bound} warmup={}ms",
            self.target,
            self.topic,
            self.partitions,
            self.producers,
            self.consumers,
            self.message_bytes,
            if self.keys { "on" } else { "off" },
            self.warmup_ms,
        )
    }
}

impl Acks {
    /// The wire value.
    pub fn wire(self) -> i16 {
        match self {
            Self::None => 0,
            Self::Leader => 1,
            Self::All => -1,
        }
    }
}

impl FromStr for Acks {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "0" => Ok(Self::None),
            "1" => Ok(Self::Leader),
            "all" | "-1" => Ok(Self::All),
            _ => Err(ConfigError::Unparsable {
                name: "acks",
                value: text.to_owned(),
                expected: "0, 1 or all",
            }),
        }
    }
}

impl fmt::Display for Acks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "0",
            Self::Leader => "1",
            Self::All => "all",
        })
    }
}

impl FromStr for SendMode {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let unparsable = || ConfigError::Unparsable {
            name: "send mode",
            value: text.to_owned(),
            expected: "sync, oneway or batch:N (N messages per batch)",
        };
        let lower = text.trim().to_ascii_lowercase();
        match lower.as_str() {
            "sync" => Ok(Self::Sync),
            "oneway" => Ok(Self::Oneway),
            _ => {
                let count = lower
                    .strip_prefix("batch")
                    .map(|rest| rest.trim_start_matches([':', '=', ' ']))
                    .ok_or_else(unparsable)?;
                let messages = count.parse::<u32>().map_err(|_| unparsable())?;
                Ok(Self::Batch { messages })
            }
        }
    }
}

impl fmt::Display for SendMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sync => f.write_str("sync"),
            Self::Oneway => f.write_str("oneway"),
            Self::Batch { messages } => write!(f, "batch:{messages}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka() -> BenchConfig {
        BenchConfig::new("kafka://127.0.0.1:9092".parse().unwrap())
    }

    #[test]
    fn a_count_splits_over_producers_to_the_message() {
        let mut config = kafka();
        config.producers = 3;
        config.bound = Bound::Count { messages: 10 };
        let shares: Vec<u64> = (0..3).filter_map(|i| config.producer_share(i)).collect();
        assert_eq!(shares, vec![4, 3, 3]);
        config.bound = Bound::Duration { ms: 1_000 };
        assert_eq!(config.producer_share(0), None);
    }

    #[test]
    fn modes_parse_and_print_back() {
        for text in ["sync", "oneway", "batch:256"] {
            assert_eq!(text.parse::<SendMode>().unwrap().to_string(), text);
        }
        assert_eq!("batch=8".parse::<SendMode>(), Ok(SendMode::Batch { messages: 8 }));
        assert!("batch".parse::<SendMode>().is_err());
        assert_eq!("all".parse::<Acks>(), Ok(Acks::All));
        assert_eq!("-1".parse::<Acks>().map(Acks::wire), Ok(-1));
        assert!("2".parse::<Acks>().unwrap_err().to_string().contains("0, 1 or all"));
    }

    #[test]
    fn impossible_workloads_are_refused_with_their_value() {
        let mut small = kafka();
        small.message_bytes = 10;
        assert!(small.validate().unwrap_err().to_string().contains("message_bytes = 10"));
        let mut compressed = kafka();
        compressed.kafka.compression = "lz4".into();
        assert!(compressed.validate().unwrap_err().to_string().contains("lz4"));
        let mut endless = kafka();
        endless.bound = Bound::Count { messages: 0 };
        assert!(endless.validate().is_err());
        let mut no_producer = kafka();
        no_producer.producers = 0;
        assert!(no_producer.validate().is_err());
        let mut greedy = kafka();
        greedy.rocketmq.pull_batch_messages = PULL_BATCH_MESSAGES_MAX + 1;
        let refused = greedy.validate().unwrap_err().to_string();
        assert!(refused.contains("pull_batch_messages = 1025"), "{refused}");
        assert_eq!(kafka().validate(), Ok(()));
    }
}
