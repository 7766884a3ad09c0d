//! Fetch (1): committed batches from each partition, parked until `min_bytes` are there or
//! `max_wait_ms` passes (long polling); the first batch is returned even when it is larger than
//! the limits (KIP-74), so a consumer never gets stuck behind one large batch.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use twinmq_runtime::Env;

use crate::error::KafkaError;
use crate::replica::Fetched;
use crate::server::BrokerContext;

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
        let (response, bytes, errors) = collect(context, &request, version);
        if bytes >= u64::try_from(request.min_bytes.max(0)).unwrap_or(0) || errors || wait.is_zero()
        {
            return response;
        }
        tokio::select! {
            biased;
            () = context.shutdown.wait() => return response,
            () = &mut deadline => return collect(context, &request, version).0,
            () = visible => {}
        }
    }
}

/// Reads every requested partition once: the response, its record bytes, and whether any
/// partition answered with an error (which returns at once).
fn collect<E: Env>(
    context: &BrokerContext<E>,
    request: &FetchRequest,
    version: i16,
) -> (FetchResponse, u64, bool) {
    let mut remaining = if version >= 3 {
        u64::try_from(request.max_bytes.max(0)).unwrap_or(0).min(context.config.fetch_bytes_max)
    } else {
        context.config.fetch_bytes_max
    };
    let mut total = 0u64;
    let mut errors = false;
    let mut responses = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for wanted in &topic.partitions {
            let limit =
                u64::try_from(wanted.partition_max_bytes.max(0)).unwrap_or(0).min(remaining);
            let read = read_partition(
                context,
                &topic.topic.0,
                wanted.partition,
                wanted.fetch_offset,
                limit,
                total == 0,
            );
            let mut data = PartitionData::default().with_partition_index(wanted.partition);
            match read {
                Ok(fetched) => {
                    total += fetched.bytes;
                    remaining = remaining.saturating_sub(fetched.bytes);
                    data = with_offsets(data, &fetched, version)
                        .with_records(Some(concat(fetched.batches)));
                }
                Err(error) => {
                    errors = true;
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
    (FetchResponse::default().with_responses(responses), total, errors)
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
    let high_watermark = i64::try_from(fetched.high_watermark).unwrap_or(i64::MAX);
    let mut data = data.with_high_watermark(high_watermark);
    if version >= 4 {
        data = data
            .with_last_stable_offset(high_watermark)
            .with_aborted_transactions(Some(Vec::new()));
    }
    if version >= 5 {
        data = data.with_log_start_offset(i64::try_from(fetched.log_start_offset).unwrap_or(0));
    }
    data
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
