//! Producer — twinmq's own Kafka producer: records collect per partition until a batch is full
//! or `linger_ms` passes, batches go to their leaders as RecordBatch v2, retriable errors are
//! retried with the same bytes (same producer id, epoch and sequence, so an idempotent broker
//! appends a retried batch once), one batch per partition in flight, so order holds.
//!
//! With acks=0 a batch is written and forgotten: its records resolve with offset -1 once sent
//! (the broker never answers). Records are sent uncompressed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::sync::{Notify, oneshot};
use twinmq_runtime::{Clock, Net};

use super::cluster_client::ClusterClient;
use super::connection::ClientError;
use super::partitioner::partition_for_key;

/// Produce version the client speaks.
const PRODUCE_VERSION: i16 = 9;

/// Producer settings (Kafka's names).
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// `acks`: 0, 1 or -1.
    pub acks: i16,
    /// `linger.ms`.
    pub linger_ms: u64,
    /// `batch.size` in bytes.
    pub batch_bytes: usize,
    /// `retries`.
    pub retries: u32,
    /// `retry.backoff.ms`.
    pub retry_backoff_ms: u64,
    /// `enable.idempotence`.
    pub idempotent: bool,
    /// `request.timeout.ms`.
    pub request_timeout_ms: i32,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            acks: -1,
            linger_ms: 5,
            batch_bytes: 64 * 1024,
            retries: 20,
            retry_backoff_ms: 100,
            idempotent: true,
            request_timeout_ms: 30_000,
        }
    }
}

/// Where an acknowledged record was appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The partition.
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
}

/// The answer to one send.
pub type SendResult = Result<RecordMetadata, ClientError>;

struct Pending {
    records: Vec<(Option<Bytes>, Option<Bytes>, i64)>,
    bytes: usize,
    waiters: Vec<oneshot::Sender<SendResult>>,
}

struct Inner<N: Net> {
    client: ClusterClient<N>,
    config: ProducerConfig,
    clock: Clock,
    pending: std::sync::Mutex<BTreeMap<(String, i32), Pending>>,
    sequences: std::sync::Mutex<BTreeMap<(String, i32), i32>>,
    producer_id: tokio::sync::Mutex<Option<(i64, i16)>>,
    wake: Notify,
    idle: Notify,
    unresolved: AtomicUsize,
    round_robin: AtomicU64,
}

/// A producer; dropping it stops its sender after the batches in hand.
pub struct Producer<N: Net> {
    inner: Arc<Inner<N>>,
    sender: tokio::task::JoinHandle<()>,
}

impl<N: Net> std::fmt::Debug for Producer<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

impl<N: Net> Drop for Producer<N> {
    fn drop(&mut self) {
        self.sender.abort();
    }
}

impl<N: Net> Producer<N> {
    /// A producer for the cluster at `bootstrap`.
    pub fn new(
        net: N,
        clock: Clock,
        bootstrap: &str,
        client_id: &str,
        config: ProducerConfig,
    ) -> Self {
        let inner = Arc::new(Inner {
            client: ClusterClient::new(net, bootstrap, client_id)
                .with_request_timeout(u64::try_from(config.request_timeout_ms).unwrap_or(0)),
            config,
            clock,
            pending: std::sync::Mutex::new(BTreeMap::new()),
            sequences: std::sync::Mutex::new(BTreeMap::new()),
            producer_id: tokio::sync::Mutex::new(None),
            wake: Notify::new(),
            idle: Notify::new(),
            unresolved: AtomicUsize::new(0),
            round_robin: AtomicU64::new(0),
        });
        let sender = tokio::spawn(run_sender(Arc::clone(&inner)));
        Self { inner, sender }
    }

    /// Queues a record; the receiver resolves when it is acknowledged or fails for good.
    pub async fn send(
        &self,
        topic: &str,
        key: Option<Bytes>,
        value: Option<Bytes>,
    ) -> Result<oneshot::Receiver<SendResult>, ClientError> {
        let partitions = match self.inner.client.partitions(topic) {
            Some(partitions) if !partitions.is_empty() => partitions.len(),
            _ => {
                self.inner.client.refresh(&[topic.to_owned()]).await?;
                self.inner.client.partitions(topic).map_or(0, |p| p.len())
            }
        };
        let count = i32::try_from(partitions).unwrap_or(0);
        if count == 0 {
            return Err(ClientError::Broker(ResponseError::UnknownTopicOrPartition.code()));
        }
        let partition = match &key {
            Some(key) => partition_for_key(key, count),
            None => i32::try_from(
                self.inner.round_robin.fetch_add(1, Ordering::Relaxed) % partitions as u64,
            )
            .unwrap_or(0),
        };
        let (waiter, answer) = oneshot::channel();
        let size = key.as_ref().map_or(0, Bytes::len) + value.as_ref().map_or(0, Bytes::len) + 16;
        let full =
            {
                let mut pending = lock(&self.inner.pending);
                let batch = pending.entry((topic.to_owned(), partition)).or_insert_with(|| {
                    Pending { records: Vec::new(), bytes: 0, waiters: Vec::new() }
                });
                batch.records.push((key, value, self.inner.clock.now_ms()));
                batch.bytes += size;
                batch.waiters.push(waiter);
                batch.bytes >= self.inner.config.batch_bytes
            };
        self.inner.unresolved.fetch_add(1, Ordering::SeqCst);
        if full {
            self.inner.wake.notify_one();
        }
        Ok(answer)
    }

    /// Sends everything queued and waits until every record sent so far is resolved.
    pub async fn flush(&self) {
        loop {
            let idle = self.inner.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.inner.unresolved.load(Ordering::SeqCst) == 0 {
                return;
            }
            self.inner.wake.notify_one();
            idle.await;
        }
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn run_sender<N: Net>(inner: Arc<Inner<N>>) {
    loop {
        tokio::select! {
            () = inner.wake.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(inner.config.linger_ms.max(1))) => {}
        }
        let drained = std::mem::take(&mut *lock(&inner.pending));
        if drained.is_empty() {
            continue;
        }
        let ids = producer_id(&inner).await;
        let mut tasks = tokio::task::JoinSet::new();
        for ((topic, partition), batch) in drained {
            let count = i32::try_from(batch.records.len()).unwrap_or(i32::MAX);
            let base_sequence = match ids {
                Some(_) => {
                    let mut sequences = lock(&inner.sequences);
                    let next = sequences.entry((topic.clone(), partition)).or_insert(0);
                    let base = *next;
                    *next = next.wrapping_add(count);
                    base
                }
                None => -1,
            };
            let encoded = encode(&batch.records, ids, base_sequence);
            let inner = Arc::clone(&inner);
            tasks.spawn(async move {
                let result = send_batch(&inner, &topic, partition, encoded).await;
                if let (Err(_), Some(used)) = (&result, ids) {
                    forget_producer_id(&inner, used).await;
                }
                let n = batch.waiters.len();
                for (i, waiter) in batch.waiters.into_iter().enumerate() {
                    let answer = match &result {
                        Ok(base) if *base < 0 => Ok(RecordMetadata { partition, offset: -1 }),
                        Ok(base) => Ok(RecordMetadata {
                            partition,
                            offset: base + i64::try_from(i).unwrap_or(0),
                        }),
                        Err(ClientError::Broker(code)) => Err(ClientError::Broker(*code)),
                        Err(error) => Err(ClientError::Codec(error.to_string())),
                    };
                    let _ = waiter.send(answer);
                }
                inner.unresolved.fetch_sub(n, Ordering::SeqCst);
            });
        }
        while tasks.join_next().await.is_some() {}
        if inner.unresolved.load(Ordering::SeqCst) == 0 {
            inner.idle.notify_waiters();
        } else {
            inner.wake.notify_one();
        }
    }
}

async fn producer_id<N: Net>(inner: &Inner<N>) -> Option<(i64, i16)> {
    if !inner.config.idempotent {
        return None;
    }
    let mut id = inner.producer_id.lock().await;
    if id.is_none() {
        for _ in 0..=inner.config.retries {
            if inner.client.any_node().is_none() {
                let _ = inner.client.refresh(&[]).await;
            }
            let Some(node) = inner.client.any_node() else { continue };
            let request = InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000);
            match inner.client.send_to(node, 4, &request).await {
                Ok(response) if response.error_code == 0 => {
                    *id = Some((response.producer_id.0, response.producer_epoch));
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(inner.config.retry_backoff_ms)).await,
            }
        }
    }
    *id
}

/// A batch of an idempotent producer failed for good: whether the broker appended it is
/// unknown, and so is the sequence its partition expects next — every later batch would be
/// refused as out of order. As Kafka's producer does then, the next batch starts afresh under
/// a new producer id, its sequences from 0 (once per failed id: batches that fail together
/// reset it once).
async fn forget_producer_id<N: Net>(inner: &Inner<N>, used: (i64, i16)) {
    let mut id = inner.producer_id.lock().await;
    if *id == Some(used) {
        *id = None;
        lock(&inner.sequences).clear();
    }
}

fn encode(
    records: &[(Option<Bytes>, Option<Bytes>, i64)],
    ids: Option<(i64, i16)>,
    base_sequence: i32,
) -> Bytes {
    let (producer_id, producer_epoch) = ids.unwrap_or((-1, -1));
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value, timestamp))| {
            let i = i32::try_from(i).unwrap_or(i32::MAX);
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id,
                producer_epoch,
                timestamp_type: TimestampType::Creation,
                offset: i64::from(i),
                // Not idempotent: base sequence -1 and one offset-sequence distance throughout.
                sequence: if base_sequence < 0 { i - 1 } else { base_sequence.wrapping_add(i) },
                timestamp: *timestamp,
                key: key.clone(),
                value: value.clone(),
                headers: Default::default(),
            }
        })
        .collect();
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    if RecordBatchEncoder::encode(&mut out, &records, &options).is_err() {
        return Bytes::new();
    }
    out.freeze()
}

/// Sends one encoded batch until it is acknowledged, fails for good, or retries run out;
/// returns the base offset.
async fn send_batch<N: Net>(
    inner: &Inner<N>,
    topic: &str,
    partition: i32,
    batch: Bytes,
) -> Result<i64, ClientError> {
    let mut last = ClientError::Closed;
    for attempt in 0..=inner.config.retries {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(inner.config.retry_backoff_ms)).await;
            let _ = inner.client.refresh(&[topic.to_owned()]).await;
        }
        let leader = inner
            .client
            .partitions(topic)
            .and_then(|p| p.get(usize::try_from(partition).ok()?).map(|i| i.leader));
        let Some(leader) = leader.filter(|l| *l >= 0) else {
            last = ClientError::Broker(ResponseError::LeaderNotAvailable.code());
            continue;
        };
        let request = ProduceRequest::default()
            .with_acks(inner.config.acks)
            .with_timeout_ms(inner.config.request_timeout_ms)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(batch.clone())),
                    ]),
            ]);
        if inner.config.acks == 0 {
            match inner.client.send_to_without_response(leader, PRODUCE_VERSION, &request).await {
                Ok(()) => return Ok(-1),
                Err(error) => {
                    last = error;
                    continue;
                }
            }
        }
        match inner.client.send_to(leader, PRODUCE_VERSION, &request).await {
            Ok(response) => {
                let answer = response.responses.first().and_then(|t| t.partition_responses.first());
                let Some(answer) = answer else {
                    last = ClientError::Codec("empty produce response".into());
                    continue;
                };
                match ResponseError::try_from_code(answer.error_code) {
                    None => return Ok(answer.base_offset),
                    Some(error) if error.is_retriable() => {
                        last = ClientError::Broker(answer.error_code)
                    }
                    Some(_) => return Err(ClientError::Broker(answer.error_code)),
                }
            }
            Err(error) => last = error,
        }
    }
    Err(last)
}
