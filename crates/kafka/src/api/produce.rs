//! Produce (0): validate each partition's record set, append it as the leader, wait for what
//! `acks` and the flush policy promise, answer (or, for acks=0, don't).

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use twinmq_runtime::Env;

use crate::error::KafkaError;
use crate::replica::{Partition, Produced};
use crate::server::BrokerContext;

type Outcome<F> = Result<(Arc<Partition<F>>, Produced), KafkaError>;
type TopicOutcomes<F> = (kafka_protocol::messages::TopicName, Vec<(i32, Outcome<F>)>);

/// Serves a Produce request; `None` means acks=0: no response at all.
pub async fn handle<E: Env>(
    context: &BrokerContext<E>,
    request: ProduceRequest,
    _version: i16,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    let mut outcomes: Vec<TopicOutcomes<E::Fs>> = Vec::new();
    for topic in request.topic_data {
        let mut partitions = Vec::new();
        for data in topic.partition_data {
            let outcome = append(context, &topic.name.0, data.index, data.records.as_deref(), acks);
            if let Err(error) = &outcome {
                tracing::debug!(topic = %topic.name.0, partition = data.index, %error, "produce refused");
                context.halt_on_io_error("appending", error);
            }
            partitions.push((data.index, outcome));
        }
        outcomes.push((topic.name, partitions));
    }
    context.records_visible.notify_waiters();
    let timeout = Duration::from_millis(u64::try_from(request.timeout_ms.max(0)).unwrap_or(0));
    let mut responses = Vec::new();
    for (name, partitions) in outcomes {
        let mut partition_responses = Vec::new();
        for (index, outcome) in partitions {
            let outcome = match outcome {
                Ok((partition, produced)) if acks != 0 && !acks_early(context) => {
                    let promised = partition.wait_promised(&produced, acks == -1);
                    match tokio::time::timeout(timeout, promised).await {
                        Ok(Ok(())) => Ok(produced),
                        Ok(Err(error)) => Err(error),
                        Err(_) => Err(KafkaError::RequestTimedOut(request.timeout_ms)),
                    }
                }
                Ok((_, produced)) => Ok(produced),
                Err(error) => Err(error),
            };
            partition_responses.push(match outcome {
                Ok(produced) => PartitionProduceResponse::default()
                    .with_index(index)
                    .with_base_offset(to_i64(produced.base_offset))
                    .with_log_start_offset(to_i64(produced.log_start_offset)),
                Err(error) => PartitionProduceResponse::default()
                    .with_index(index)
                    .with_error_code(error.code())
                    .with_base_offset(-1),
            });
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(partition_responses),
        );
    }
    // Under flush=sync the high watermark moves when the flush lands, after the append: wake
    // the fetches parked on it once more.
    context.records_visible.notify_waiters();
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}

/// Whether the broker is deliberately broken to acknowledge before it appends.
fn acks_early<E: Env>(context: &BrokerContext<E>) -> bool {
    #[cfg(feature = "fault-injection")]
    return context.config.ack_before_append;
    #[cfg(not(feature = "fault-injection"))]
    {
        let _ = context;
        false
    }
}

/// The deliberately broken append: answers with the offset the records will get and appends
/// them only after a pause (test-only; see `BrokerConfig::ack_before_append`).
#[cfg(feature = "fault-injection")]
fn append_late<F: twinmq_runtime::Fs>(
    partition: Arc<Partition<F>>,
    records: &[u8],
    bytes_max: u64,
) -> Outcome<F> {
    let (_, leader_epoch, log_end_offset) = partition.role()?;
    let (late, records) = (Arc::clone(&partition), records.to_vec());
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = late.append_as_leader(&records, bytes_max);
    });
    let produced =
        Produced { base_offset: log_end_offset, log_end_offset, log_start_offset: 0, leader_epoch };
    Ok((partition, produced))
}

fn append<E: Env>(
    context: &BrokerContext<E>,
    topic: &str,
    index: i32,
    records: Option<&[u8]>,
    acks: i16,
) -> Outcome<E::Fs> {
    if !matches!(acks, -1..=1) {
        return Err(KafkaError::InvalidRequiredAcks(acks));
    }
    let partition = context
        .replicas
        .get(topic, index)
        .ok_or_else(|| KafkaError::UnknownTopicOrPartition(format!("{topic}-{index}")))?;
    let records = records.ok_or_else(|| KafkaError::CorruptBatch("no records".into()))?;
    if acks == -1 {
        let isr = context.cluster.isr_len(topic, index);
        if isr < context.config.min_insync_replicas {
            return Err(KafkaError::NotEnoughReplicas {
                isr,
                required: context.config.min_insync_replicas,
            });
        }
    }
    #[cfg(feature = "fault-injection")]
    if acks_early(context) {
        return append_late(partition, records, context.config.message_bytes_max);
    }
    let produced = partition.append_as_leader(records, context.config.message_bytes_max)?;
    Ok((partition, produced))
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
