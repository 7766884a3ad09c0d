//! Fetch (1): committed batches for consumers, everything up to the log end for followers
//! (`replica_id` ≥ 0, which also reports their progress and checks their history against the
//! leader's epochs), and the metadata log for brokers fetching from the controller. A fetch is
//! parked until `min_bytes` are there or `max_wait_ms` passes (long polling); the first batch is
//! returned even when it is larger than the limits (KIP-74).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{
    EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use twinmq_runtime::Env;

use crate::controller::metadata_log::METADATA_TOPIC;
use crate::error::KafkaError;
use crate::replica::{Fetched, IsrProposal};
use crate::server::BrokerContext;

/// An ISR change a follower's fetch made due: (topic, partition, leader epoch, proposal).
type Proposal = (String, i32, i32, IsrProposal);

/// Serves a Fetch request, waiting as the request allows.
pub async fn handle<E: Env>(
    context: &BrokerContext<E>,
    request: FetchRequest,
    version: i16,
) -> FetchResponse {
    let wait = Duration::from_millis(u64::try_from(request.max_wait_ms.max(0)).unwrap_or(0));
    let deadline = tokio::time::sleep(wait);
    tokio::pin!(deadline);
    loop {
        let visible = context.records_visible.notified();
        tokio::pin!(visible);
        visible.as_mut().enable();
        let collected = collect(context, &request, version);
        let min_bytes = u64::try_from(request.min_bytes.max(0)).unwrap_or(0);
        let done = collected.bytes >= min_bytes || collected.errors || wait.is_zero();
        apply(context, collected.proposals, collected.high_watermark_advanced).await;
        if done {
            return collected.response;
        }
        tokio::select! {
            biased;
            () = context.shutdown.wait() => return collected.response,
            () = &mut deadline => {
                let last = collect(context, &request, version);
                apply(context, last.proposals, last.high_watermark_advanced).await;
                return last.response;
            }
            () = visible => {}
        }
    }
}

/// Sends ISR expansions to the controller and wakes consumers when the high watermark moved.
async fn apply<E: Env>(context: &BrokerContext<E>, proposals: Vec<Proposal>, advanced: bool) {
    for (topic, partition, epoch, proposal) in proposals {
        tracing::info!(%topic, partition, isr = ?proposal.isr, reason = %proposal.reason, "ISR expansion");
        if let Err(error) = context.cluster.alter_isr(&topic, partition, epoch, &proposal.isr).await
        {
            tracing::info!(%topic, partition, %error, "ISR expansion not committed");
            // A refusal withdraws the follower; a lost reply may hide a commit, so it keeps
            // holding the high watermark until it is proposed again and answered.
            let withdrawn = match (context.replicas.get(&topic, partition), proposal.joining) {
                (Some(replica), Some(joining)) => match error {
                    KafkaError::ControllerUnavailable(_) => replica.join_unanswered(joining),
                    _ => replica.join_refused(joining),
                },
                _ => Ok(()),
            };
            if let Err(error) = withdrawn {
                tracing::warn!(%topic, partition, %error, "ISR expansion not withdrawn");
            }
        } else if context.cluster.controller.is_some() {
            context.metadata_changed();
        }
    }
    if advanced {
        context.records_visible.notify_waiters();
    }
}

struct Collected {
    response: FetchResponse,
    bytes: u64,
    errors: bool,
    proposals: Vec<Proposal>,
    high_watermark_advanced: bool,
}

/// Reads every requested partition once.
fn collect<E: Env>(context: &BrokerContext<E>, request: &FetchRequest, version: i16) -> Collected {
    let mut remaining = if version >= 3 {
        u64::try_from(request.max_bytes.max(0)).unwrap_or(0).min(context.config.fetch_bytes_max)
    } else {
        context.config.fetch_bytes_max
    };
    let replica = request.replica_id.0;
    let now_ms = context.env.clock().now_ms();
    let mut collected = Collected {
        response: FetchResponse::default(),
        bytes: 0,
        errors: false,
        proposals: Vec::new(),
        high_watermark_advanced: false,
    };
    let mut responses = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for wanted in &topic.partitions {
            let limit =
                u64::try_from(wanted.partition_max_bytes.max(0)).unwrap_or(0).min(remaining);
            let first = collected.bytes == 0;
            let name = &topic.topic.0;
            let mut data = PartitionData::default().with_partition_index(wanted.partition);
            let read = if name.as_str() == METADATA_TOPIC {
                read_metadata(context, wanted.fetch_offset, limit.max(1))
            } else if replica >= 0 {
                let last_epoch =
                    (wanted.last_fetched_epoch >= 0).then_some(wanted.last_fetched_epoch);
                read_for_follower(
                    context,
                    name,
                    wanted.partition,
                    wanted.fetch_offset,
                    last_epoch,
                    replica,
                    limit.max(1),
                    now_ms,
                )
                .map(|(fetched, diverging, proposal, advanced)| {
                    if let Some((epoch, end_offset)) = diverging {
                        data = std::mem::take(&mut data).with_diverging_epoch(
                            EpochEndOffset::default()
                                .with_epoch(epoch)
                                .with_end_offset(to_i64(end_offset)),
                        );
                    }
                    if let Some((leader_epoch, proposal)) = proposal {
                        collected.proposals.push((
                            name.to_string(),
                            wanted.partition,
                            leader_epoch,
                            proposal,
                        ));
                    }
                    collected.high_watermark_advanced |= advanced;
                    fetched
                })
            } else {
                read_partition(context, name, wanted.partition, wanted.fetch_offset, limit, first)
            };
            match read {
                Ok(fetched) => {
                    collected.bytes += fetched.bytes;
                    remaining = remaining.saturating_sub(fetched.bytes);
                    data = with_offsets(data, &fetched, version)
                        .with_records(Some(concat(fetched.batches)));
                }
                Err(error) => {
                    collected.errors = true;
                    data = data.with_error_code(error.code()).with_high_watermark(-1);
                    if version >= 4 {
                        data = data.with_last_stable_offset(-1);
                    }
                }
            }
            partitions.push(data);
        }
        responses.push(
            FetchableTopicResponse::default()
                .with_topic(topic.topic.clone())
                .with_partitions(partitions),
        );
    }
    collected.response = FetchResponse::default().with_responses(responses);
    collected
}

fn read_metadata<E: Env>(
    context: &BrokerContext<E>,
    fetch_offset: i64,
    limit: u64,
) -> Result<Fetched, KafkaError> {
    let controller = context
        .cluster
        .controller
        .as_ref()
        .ok_or_else(|| KafkaError::NotLeader(format!("{METADATA_TOPIC}-0")))?;
    let offset = u64::try_from(fetch_offset).unwrap_or(0);
    let (batches, end) = controller.read_batches(offset, limit)?;
    let bytes = batches.iter().map(|b| b.len() as u64).sum();
    Ok(Fetched { batches, bytes, high_watermark: end, log_start_offset: 0, log_end_offset: end })
}

type FollowerRead = (Fetched, Option<(i32, u64)>, Option<(i32, IsrProposal)>, bool);

#[expect(clippy::too_many_arguments, reason = "one follower fetch's fields, read once")]
fn read_for_follower<E: Env>(
    context: &BrokerContext<E>,
    topic: &str,
    index: i32,
    fetch_offset: i64,
    last_fetched_epoch: Option<i32>,
    replica: i32,
    limit: u64,
    now_ms: i64,
) -> Result<FollowerRead, KafkaError> {
    let partition = context
        .replicas
        .get(topic, index)
        .ok_or_else(|| KafkaError::UnknownTopicOrPartition(format!("{topic}-{index}")))?;
    let offset = u64::try_from(fetch_offset).unwrap_or(0);
    let answer =
        partition.fetch_for_follower(replica, offset, last_fetched_epoch, limit, now_ms)?;
    let proposal = match answer.isr_proposal {
        Some(proposal) => Some((partition.role()?.1, proposal)),
        None => None,
    };
    Ok((answer.fetched, answer.diverging, proposal, answer.high_watermark_advanced))
}

fn read_partition<E: Env>(
    context: &BrokerContext<E>,
    topic: &str,
    index: i32,
    fetch_offset: i64,
    limit: u64,
    first: bool,
) -> Result<Fetched, KafkaError> {
    let partition = context
        .replicas
        .get(topic, index)
        .ok_or_else(|| KafkaError::UnknownTopicOrPartition(format!("{topic}-{index}")))?;
    let offset = u64::try_from(fetch_offset).map_err(|_| {
        let (start, _, end) = partition.offsets().unwrap_or_default();
        KafkaError::OffsetOutOfRange { offset: fetch_offset, start, end }
    })?;
    if limit == 0 && !first {
        let (log_start_offset, high_watermark, log_end_offset) = partition.offsets()?;
        return Ok(Fetched {
            high_watermark,
            log_start_offset,
            log_end_offset,
            ..Fetched::default()
        });
    }
    partition.read_committed(offset, limit.max(1))
}

fn with_offsets(data: PartitionData, fetched: &Fetched, version: i16) -> PartitionData {
    let high_watermark = to_i64(fetched.high_watermark);
    let mut data = data.with_high_watermark(high_watermark);
    if version >= 4 {
        data = data
            .with_last_stable_offset(high_watermark)
            .with_aborted_transactions(Some(Vec::new()));
    }
    if version >= 5 {
        data = data.with_log_start_offset(to_i64(fetched.log_start_offset));
    }
    data
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn concat(batches: Vec<Bytes>) -> Bytes {
    match batches.len() {
        0 => Bytes::new(),
        1 => batches.into_iter().next().unwrap_or_default(),
        _ => {
            let mut out = BytesMut::with_capacity(batches.iter().map(Bytes::len).sum());
            for batch in &batches {
                out.extend_from_slice(batch);
            }
            out.freeze()
        }
    }
}
