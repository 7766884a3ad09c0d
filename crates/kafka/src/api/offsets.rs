//! OffsetCommit (8) and OffsetFetch (9): committed offsets, written to the group's
//! `__consumer_offsets` partition before they are acknowledged.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use std::time::Duration;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use twinmq_runtime::Env;

use crate::error::KafkaError;
use crate::group::{CommittedOffset, OFFSETS_TOPIC, OffsetStore};
use crate::server::BrokerContext;

/// Commits offsets for a group.
pub async fn offset_commit<E: Env>(
    context: &BrokerContext<E>,
    request: OffsetCommitRequest,
    _version: i16,
) -> OffsetCommitResponse {
    let group_id = request.group_id.to_string();
    let now_ms = context.groups.now_ms();
    let commits: Vec<(String, i32, CommittedOffset)> = request
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(move |p| {
                (
                    topic.name.to_string(),
                    p.partition_index,
                    CommittedOffset {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                        commit_timestamp_ms: now_ms,
                    },
                )
            })
        })
        .collect();
    let result = commit(context, &group_id, &request, &commits, now_ms).await;
    if let Err(error) = &result {
        tracing::debug!(group = %group_id, %error, "offset commit refused");
    }
    let code = result.as_ref().err().map_or(0, KafkaError::code);
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default().with_name(topic.name).with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

async fn commit<E: Env>(
    context: &BrokerContext<E>,
    group_id: &str,
    request: &OffsetCommitRequest,
    commits: &[(String, i32, CommittedOffset)],
    now_ms: i64,
) -> Result<(), KafkaError> {
    let generation = request.generation_id_or_member_epoch;
    context.with_group(group_id, |g| g.validate_commit(&request.member_id, generation))??;
    if commits.is_empty() {
        return Ok(());
    }
    let index = OffsetStore::partition_for(group_id, context.groups.config.offsets_partitions);
    let partition = context
        .replicas
        .get(OFFSETS_TOPIC, index)
        .ok_or_else(|| KafkaError::NotCoordinator(group_id.to_owned()))?;
    let batch = OffsetStore::encode(group_id, commits, now_ms)?;
    let produced = partition.append_as_leader(&batch, u64::MAX)?;
    // As Kafka's offsets.commit.required.acks=-1: a commit is answered once the whole ISR has
    // it, so the coordinator that takes over after a failure has it too.
    let timeout = Duration::from_millis(context.groups.config.offset_commit_timeout_ms);
    let promised = partition.wait_promised(&produced, true);
    tokio::time::timeout(timeout, promised).await.map_err(|_| {
        KafkaError::RequestTimedOut(i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX))
    })??;
    context.groups.offsets.apply(group_id, commits.to_vec());
    Ok(())
}

/// Fetches committed offsets (-1 where none is committed).
pub async fn offset_fetch<E: Env>(
    context: &BrokerContext<E>,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    let offsets = &context.groups.offsets;
    if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|group| {
                let wanted: Option<Vec<(String, Vec<i32>)>> = group.topics.map(|ts| {
                    ts.into_iter().map(|t| (t.name.to_string(), t.partition_indexes)).collect()
                });
                if let Err(error) = context.check_coordinator(&group.group_id) {
                    return OffsetFetchResponseGroup::default()
                        .with_group_id(group.group_id)
                        .with_error_code(error.code());
                }
                let topics = lookup(offsets, &group.group_id, wanted)
                    .into_iter()
                    .map(|(topic, partitions)| {
                        let partitions = partitions
                            .into_iter()
                            .map(|(index, committed)| {
                                let (offset, epoch, metadata) = fields(committed);
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(index)
                                    .with_committed_offset(offset)
                                    .with_committed_leader_epoch(epoch)
                                    .with_metadata(Some(metadata))
                            })
                            .collect();
                        OffsetFetchResponseTopics::default()
                            .with_name(TopicName(StrBytes::from_string(topic)))
                            .with_partitions(partitions)
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(group.group_id)
                    .with_topics(topics)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    if let Err(error) = context.check_coordinator(&request.group_id) {
        // From v2 a group-level error code; before it, every partition carries it.
        let topics = request
            .topics
            .unwrap_or_default()
            .into_iter()
            .map(|topic| {
                let partitions = topic
                    .partition_indexes
                    .into_iter()
                    .map(|index| {
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(index)
                            .with_committed_offset(-1)
                            .with_error_code(error.code())
                    })
                    .collect();
                OffsetFetchResponseTopic::default()
                    .with_name(topic.name)
                    .with_partitions(partitions)
            })
            .collect();
        let response = OffsetFetchResponse::default().with_topics(topics);
        return if version >= 2 { response.with_error_code(error.code()) } else { response };
    }
    let wanted: Option<Vec<(String, Vec<i32>)>> = request
        .topics
        .map(|ts| ts.into_iter().map(|t| (t.name.to_string(), t.partition_indexes)).collect());
    let topics = lookup(offsets, &request.group_id, wanted)
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, committed)| {
                    let (offset, epoch, metadata) = fields(committed);
                    let partition = OffsetFetchResponsePartition::default()
                        .with_partition_index(index)
                        .with_committed_offset(offset)
                        .with_metadata(Some(metadata));
                    if version >= 5 {
                        partition.with_committed_leader_epoch(epoch)
                    } else {
                        partition
                    }
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic)))
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

type Looked = Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>;

fn lookup(
    offsets: &OffsetStore,
    group_id: &str,
    wanted: Option<Vec<(String, Vec<i32>)>>,
) -> Looked {
    match wanted {
        Some(topics) => topics
            .into_iter()
            .map(|(topic, partitions)| {
                let found =
                    partitions.into_iter().map(|p| (p, offsets.get(group_id, &topic, p))).collect();
                (topic, found)
            })
            .collect(),
        None => {
            let mut by_topic: Looked = Vec::new();
            for (topic, partition, committed) in offsets.of_group(group_id) {
                match by_topic.last_mut() {
                    Some((last, partitions)) if *last == topic => {
                        partitions.push((partition, Some(committed)))
                    }
                    _ => by_topic.push((topic, vec![(partition, Some(committed))])),
                }
            }
            by_topic
        }
    }
}

fn fields(committed: Option<CommittedOffset>) -> (i64, i32, StrBytes) {
    match committed {
        Some(c) => {
            (c.offset, c.leader_epoch, StrBytes::from_string(c.metadata.unwrap_or_default()))
        }
        None => (-1, -1, StrBytes::default()),
    }
}
