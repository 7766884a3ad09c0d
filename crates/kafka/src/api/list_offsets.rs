//! ListOffsets (2): earliest (-2), latest (-1: the high watermark) or the first offset at or
//! after a timestamp, per partition.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use twinmq_runtime::Env;

use crate::error::KafkaError;
use crate::server::BrokerContext;

/// `timestamp` asking for the latest offset.
pub const LATEST_TIMESTAMP: i64 = -1;
/// `timestamp` asking for the earliest offset.
pub const EARLIEST_TIMESTAMP: i64 = -2;

/// Answers a ListOffsets request.
pub async fn handle<E: Env>(
    context: &BrokerContext<E>,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|wanted| {
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(wanted.partition_index);
                    match lookup(context, &topic.name.0, wanted.partition_index, wanted.timestamp) {
                        Ok(offset) => {
                            let response = response.with_offset(offset).with_timestamp(-1);
                            if version >= 4 { response.with_leader_epoch(0) } else { response }
                        }
                        Err(error) => response
                            .with_error_code(error.code())
                            .with_offset(-1)
                            .with_timestamp(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default().with_name(topic.name).with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

fn lookup<E: Env>(
    context: &BrokerContext<E>,
    topic: &str,
    index: i32,
    timestamp: i64,
) -> Result<i64, KafkaError> {
    let partition = context
        .replicas
        .get(topic, index)
        .ok_or_else(|| KafkaError::UnknownTopicOrPartition(format!("{topic}-{index}")))?;
    let (start, high_watermark, _) = partition.offsets()?;
    let offset = match timestamp {
        LATEST_TIMESTAMP => high_watermark,
        EARLIEST_TIMESTAMP => start,
        t if t >= 0 => partition.offset_for_timestamp(t)?.min(high_watermark),
        other => {
            return Err(KafkaError::InvalidRequest(format!("timestamp {other} is not supported")));
        }
    };
    Ok(i64::try_from(offset).unwrap_or(i64::MAX))
}
