//! Workload — the load generator's settings for one [`LoadPoint`]: what both models share
//! (producers, consumers, message size, timing) and each model's own batching, sized alike:
//! a Kafka producer batches up to 64 KiB per partition, a RocketMQ producer sends batches of up
//! to 64 KiB (as RocketMQ's own batch benchmark does), one request at a time; and a RocketMQ
//! consumer pulls as many messages at once as a batch send carries (RocketMQ's default
//! `pullBatchSize` of 32 needs eight round trips per 256-message batch, so one consumer could
//! not keep up where a Kafka consumer, fetching up to 1 MiB per partition, does).

use twinmq_loadgen::{Acks, BenchConfig, Bound, SendMode, Target};

use crate::matrix::{Ack, LoadPoint, Series};
use crate::results::WorkloadSettings;

/// Producers per point, each its own client.
pub const PRODUCERS: u32 = 4;
/// Consumers per point: every message is also consumed, for the produce→consume latency.
pub const CONSUMERS: u32 = 1;
/// Kafka `linger.ms`: 0 (Kafka's default before 4.0). A batch goes as soon as its leader has no
/// request out, so batches grow with the load by themselves and a light load waits for none.
pub const KAFKA_LINGER_MS: u64 = 0;
/// Kafka `batch.size`.
pub const KAFKA_BATCH_BYTES: usize = 64 * 1024;
/// Bytes of bodies a RocketMQ batch send carries.
pub const ROCKETMQ_BATCH_BYTES: usize = 64 * 1024;
/// Messages a RocketMQ batch send carries at most.
pub const ROCKETMQ_BATCH_MESSAGES_MAX: u32 = 256;
/// RocketMQ `pullBatchSize`: a batch send's worth.
pub const ROCKETMQ_PULL_BATCH_MESSAGES: u32 = ROCKETMQ_BATCH_MESSAGES_MAX;

/// The settings every point shares, for the report.
pub fn settings() -> WorkloadSettings {
    WorkloadSettings {
        producers: PRODUCERS,
        consumers: CONSUMERS,
        kafka_linger_ms: KAFKA_LINGER_MS,
        kafka_batch_bytes: KAFKA_BATCH_BYTES,
        rocketmq_batch_bytes: ROCKETMQ_BATCH_BYTES,
        rocketmq_batch_messages_max: ROCKETMQ_BATCH_MESSAGES_MAX,
        rocketmq_pull_batch_messages: ROCKETMQ_PULL_BATCH_MESSAGES,
    }
}

/// The workload of `point` (the `index`-th of the run) against `target`, at `rate_msgs_per_sec`
/// (0: as fast as the brokers take it).
pub fn bench_config(
    point: &LoadPoint,
    target: Target,
    index: usize,
    rate_msgs_per_sec: u64,
) -> BenchConfig {
    let mut config = BenchConfig::new(target);
    let series = match point.series {
        Series::PartitionSweep => "sweep",
        Series::ModeSweep => "mode",
        Series::HalfPeak => "half",
    };
    config.topic =
        format!("compare-{index}-{series}-{}p-{}b", point.partitions, point.message_bytes);
    config.partitions = point.partitions;
    config.producers = PRODUCERS;
    config.consumers = CONSUMERS;
    config.message_bytes = point.message_bytes;
    config.rate_msgs_per_sec = rate_msgs_per_sec;
    config.bound = Bound::Duration { ms: point.timing.measure_ms };
    config.warmup_ms = point.timing.warmup_ms;
    config.drain_idle_ms = point.timing.drain_idle_ms;
    config.kafka.acks = match point.mode.ack {
        Ack::Leader => Acks::Leader,
        Ack::Replicas => Acks::All,
    };
    config.kafka.linger_ms = KAFKA_LINGER_MS;
    config.kafka.batch_bytes = KAFKA_BATCH_BYTES;
    let batch = (ROCKETMQ_BATCH_BYTES / point.message_bytes.max(1)).max(1);
    config.rocketmq.send_mode = SendMode::Batch {
        messages: u32::try_from(batch).unwrap_or(u32::MAX).min(ROCKETMQ_BATCH_MESSAGES_MAX),
    };
    config.rocketmq.pull_batch_messages = ROCKETMQ_PULL_BATCH_MESSAGES;
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::{Plan, Scale};

    #[test]
    fn every_planned_point_is_a_valid_workload() {
        let target: Target = "kafka://127.0.0.1:9092".parse().unwrap();
        for (index, point) in Plan::standard(Scale::Full).load.iter().enumerate() {
            let config = bench_config(point, target.clone(), index, 0);
            assert_eq!(config.validate(), Ok(()), "{point:?}");
        }
    }

    #[test]
    fn rocketmq_batches_hold_64_kib_and_at_most_256_messages() {
        let target: Target = "rocketmq://127.0.0.1:9876".parse().unwrap();
        let plan = Plan::standard(Scale::Full);
        let small = plan.load.iter().find(|p| p.message_bytes == 100).unwrap();
        let large = plan.load.iter().find(|p| p.message_bytes == 1024).unwrap();
        let mode = |p| bench_config(p, target.clone(), 0, 0).rocketmq.send_mode;
        assert_eq!(mode(small), SendMode::Batch { messages: 256 });
        assert_eq!(mode(large), SendMode::Batch { messages: 64 });
    }
}
