//! Producer — twinmq's own Kafka producer: records collect per partition in the
//! [`Accumulator`] until a batch is full or `linger_ms` has passed since its first record,
//! batches go to their leaders as RecordBatch v2 (one request per leader carries every ready
//! partition's batch), retriable errors are retried with the same bytes (same producer id,
//! epoch and sequence, so an idempotent broker appends a retried batch once). One batch per
//! partition is in flight, so order holds, while other partitions' batches go meanwhile: a slow
//! partition or leader holds up only itself.
//!
//! With acks=0 a batch is written and forgotten: its records resolve with offset -1 once sent
//! (the broker never answers). Records are sent uncompressed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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

use super::accumulator::{Accumulator, Appended, Batch, Taken, TopicPartition};
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

struct Inner<N: Net> {
    client: ClusterClient<N>,
    config: ProducerConfig,
    clock: Clock,
    /// Per partition, the batches waiting to be sent and whether one is in flight.
    accumulator: std::sync::Mutex<Accumulator>,
    sequences: std::sync::Mutex<BTreeMap<TopicPartition, i32>>,
    producer_id: tokio::sync::Mutex<Option<(i64, i16)>>,
    /// Wakes the sender: a batch started or filled, a partition's batch came back, a flush.
    wake: Notify,
    /// Leaders with a request out: one at a time each, so what comes meanwhile rides together
    /// in the next (Kafka's `max.in.flight.requests.per.connection=1`).
    busy_leaders: std::sync::Mutex<BTreeSet<i32>>,
    /// A flush waits: every batch goes without lingering.
    flushing: AtomicBool,
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
            accumulator: std::sync::Mutex::new(Accumulator::default()),
            sequences: std::sync::Mutex::new(BTreeMap::new()),
            producer_id: tokio::sync::Mutex::new(None),
            wake: Notify::new(),
            busy_leaders: std::sync::Mutex::new(BTreeSet::new()),
            flushing: AtomicBool::new(false),
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
        let partitions = match self.inner.client.partition_count(topic) {
            Some(partitions) if partitions > 0 => partitions,
            _ => {
                self.inner.client.refresh(&[topic.to_owned()]).await?;
                self.inner.client.partition_count(topic).unwrap_or(0)
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
        let record = (key, value, self.inner.clock.now_ms());
        self.inner.unresolved.fetch_add(1, Ordering::SeqCst);
        let appended = lock(&self.inner.accumulator).append(
            (topic.to_owned(), partition),
            record,
            size,
            waiter,
            self.inner.config.batch_bytes,
        );
        if appended == Appended::Ready {
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
                self.inner.flushing.store(false, Ordering::SeqCst);
                return;
            }
            self.inner.flushing.store(true, Ordering::SeqCst);
            self.inner.wake.notify_one();
            idle.await;
        }
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn run_sender<N: Net>(inner: Arc<Inner<N>>) {
    let linger = Duration::from_millis(inner.config.linger_ms);
    let mut requests = tokio::task::JoinSet::new();
    loop {
        let flushing = inner.flushing.load(Ordering::SeqCst);
        // Both locks are let go before anything awaits.
        let (drained, next_deadline) = {
            let busy = lock(&inner.busy_leaders);
            lock(&inner.accumulator).take_ready(
                tokio::time::Instant::now(),
                linger,
                inner.config.batch_bytes,
                flushing,
                |(topic, partition)| {
                    let leader = inner.client.leader(topic, *partition).unwrap_or(-1);
                    (leader < 0 || !busy.contains(&leader)).then_some(leader)
                },
            )
        };
        if drained.is_empty() {
            let linger_ends = async {
                match next_deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = inner.wake.notified() => {}
                Some(_) = requests.join_next(), if !requests.is_empty() => {}
                () = linger_ends => {}
            }
            continue;
        }
        let ids = producer_id(&inner).await;
        // One request per leader carries every partition's batch it leads, as Kafka's sender
        // drains per node; a partition without a known leader goes alone (its retries look).
        let mut by_leader: BTreeMap<i32, Vec<Ready>> = BTreeMap::new();
        for Taken { partition: (topic, partition), leader, batch } in drained {
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
            by_leader.entry(leader).or_default().push(Ready { topic, partition, encoded, batch });
        }
        for (leader, group) in by_leader {
            if leader >= 0 {
                lock(&inner.busy_leaders).insert(leader);
            }
            requests.spawn(send_group(Arc::clone(&inner), leader, group, ids));
        }
        // Finished requests are reaped here too, so the set does not grow while batches flow.
        while requests.try_join_next().is_some() {}
    }
}

/// One partition's batch, encoded and ready to go.
struct Ready {
    topic: String,
    partition: i32,
    encoded: Bytes,
    batch: Batch,
}

/// What one attempt at a partition's batch came to.
enum Attempt {
    /// Acknowledged at this base offset (-1 with acks=0), or failed for good.
    Done(Result<i64, ClientError>),
    /// Failed in a way a retry may mend, for this reason.
    Retry(ClientError),
}

fn leader_not_available() -> ClientError {
    ClientError::Broker(ResponseError::LeaderNotAvailable.code())
}

/// Sends `group` — batches whose partitions `leader` leads — in one request, retries each batch
/// that failed retriably on its own (all at once), and resolves every record's waiter.
async fn send_group<N: Net>(
    inner: Arc<Inner<N>>,
    leader: i32,
    group: Vec<Ready>,
    ids: Option<(i64, i16)>,
) {
    let attempts = if leader < 0 {
        group.iter().map(|_| Attempt::Retry(leader_not_available())).collect()
    } else {
        produce_once(&inner, leader, &group).await
    };
    let mut retries = tokio::task::JoinSet::new();
    for (ready, attempt) in group.into_iter().zip(attempts) {
        match attempt {
            Attempt::Done(result) => finish(&inner, ready, ids, result).await,
            Attempt::Retry(reason) => {
                let inner = Arc::clone(&inner);
                retries.spawn(async move {
                    let result = retry_batch(&inner, &ready, reason).await;
                    finish(&inner, ready, ids, result).await;
                });
            }
        }
    }
    while retries.join_next().await.is_some() {}
    lock(&inner.busy_leaders).remove(&leader);
    inner.wake.notify_one();
}

/// A batch's last word: a failure gives up the producer id it used, every waiter learns, and
/// its partition's next batch may go.
async fn finish<N: Net>(
    inner: &Inner<N>,
    ready: Ready,
    ids: Option<(i64, i16)>,
    result: Result<i64, ClientError>,
) {
    if let (Err(_), Some(used)) = (&result, ids) {
        forget_producer_id(inner, used).await;
    }
    let Ready { topic, partition, batch, .. } = ready;
    resolve(inner, partition, batch, &result);
    lock(&inner.accumulator).release(&(topic, partition));
    inner.wake.notify_one();
}

/// Answers each waiter of `batch` with its record's offset, or the batch's error.
fn resolve<N: Net>(
    inner: &Inner<N>,
    partition: i32,
    batch: Batch,
    result: &Result<i64, ClientError>,
) {
    let n = batch.waiters.len();
    for (i, waiter) in batch.waiters.into_iter().enumerate() {
        let answer = match result {
            Ok(base) if *base < 0 => Ok(RecordMetadata { partition, offset: -1 }),
            Ok(base) => {
                Ok(RecordMetadata { partition, offset: base + i64::try_from(i).unwrap_or(0) })
            }
            Err(ClientError::Broker(code)) => Err(ClientError::Broker(*code)),
            Err(error) => Err(ClientError::Codec(error.to_string())),
        };
        let _ = waiter.send(answer);
    }
    if inner.unresolved.fetch_sub(n, Ordering::SeqCst) == n {
        inner.idle.notify_waiters();
    }
}

/// A ProduceRequest carrying `batches` (at most one per partition).
fn produce_request(config: &ProducerConfig, batches: &[Ready]) -> ProduceRequest {
    let mut topics: BTreeMap<&str, Vec<PartitionProduceData>> = BTreeMap::new();
    for ready in batches {
        topics.entry(ready.topic.as_str()).or_default().push(
            PartitionProduceData::default()
                .with_index(ready.partition)
                .with_records(Some(ready.encoded.clone())),
        );
    }
    ProduceRequest::default()
        .with_acks(config.acks)
        .with_timeout_ms(config.request_timeout_ms)
        .with_topic_data(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    TopicProduceData::default()
                        .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                        .with_partition_data(partitions)
                })
                .collect(),
        )
}

/// One attempt at every batch of `group` in one request to `leader`: per batch, its outcome.
async fn produce_once<N: Net>(inner: &Inner<N>, leader: i32, group: &[Ready]) -> Vec<Attempt> {
    let request = produce_request(&inner.config, group);
    if inner.config.acks == 0 {
        let sent = inner.client.send_to_without_response(leader, PRODUCE_VERSION, &request).await;
        return group
            .iter()
            .map(|_| match &sent {
                Ok(()) => Attempt::Done(Ok(-1)),
                Err(error) => Attempt::Retry(ClientError::Codec(error.to_string())),
            })
            .collect();
    }
    let response = match inner.client.send_to(leader, PRODUCE_VERSION, &request).await {
        Ok(response) => response,
        Err(error) => {
            let reason = error.to_string();
            return group
                .iter()
                .map(|_| Attempt::Retry(ClientError::Codec(reason.clone())))
                .collect();
        }
    };
    let mut answers = BTreeMap::new();
    for topic in &response.responses {
        for answer in &topic.partition_responses {
            answers.insert((topic.name.0.as_str(), answer.index), answer);
        }
    }
    group
        .iter()
        .map(|ready| match answers.get(&(ready.topic.as_str(), ready.partition)) {
            None => Attempt::Retry(ClientError::Codec("no answer for the partition".into())),
            Some(answer) => match ResponseError::try_from_code(answer.error_code) {
                None => Attempt::Done(Ok(answer.base_offset)),
                Some(error) if error.is_retriable() => {
                    Attempt::Retry(ClientError::Broker(answer.error_code))
                }
                Some(_) => Attempt::Done(Err(ClientError::Broker(answer.error_code))),
            },
        })
        .collect()
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

/// Retries one batch whose first attempt failed (`last`: why) until it is acknowledged, fails
/// for good, or retries run out; returns the base offset.
async fn retry_batch<N: Net>(
    inner: &Inner<N>,
    ready: &Ready,
    mut last: ClientError,
) -> Result<i64, ClientError> {
    for _ in 0..inner.config.retries {
        tokio::time::sleep(Duration::from_millis(inner.config.retry_backoff_ms)).await;
        let _ = inner.client.refresh(std::slice::from_ref(&ready.topic)).await;
        let Some(leader) = inner.client.leader(&ready.topic, ready.partition) else {
            last = leader_not_available();
            continue;
        };
        match produce_once(inner, leader, std::slice::from_ref(ready)).await.pop() {
            Some(Attempt::Done(result)) => return result,
            Some(Attempt::Retry(reason)) => last = reason,
            None => {}
        }
    }
    Err(last)
}
