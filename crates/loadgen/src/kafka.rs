//! The Kafka side of a run, through twinmq's own Kafka client: CreateTopics, then per producer
//! a [`Producer`] (batches per partition, `linger.ms`, `batch.size`, acks) and per consumer a
//! [`Consumer`] on its share of the partitions (assigned, not a group: the run knows who reads
//! what, and a rebalance never pauses the measurement).
//!
//! A producer hands records to its client without waiting and keeps at most
//! `in_flight_messages_max` unacknowledged (Kafka's `buffer.memory`); acknowledgements are
//! recorded the moment they resolve.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;
use twinmq_kafka::client::consumer::OffsetReset;
use twinmq_kafka::client::producer::SendResult;
use twinmq_kafka::client::{ClusterClient, Consumer, ConsumerConfig, Producer, ProducerConfig};
use twinmq_runtime::{Env, Net, Shutdown};

use crate::LoadgenError;
use crate::config::Acks;
use crate::payload::PayloadWriter;
use crate::report::Report;
use crate::run::{RETRY_BACKOFF, RunContext, SETUP_TIMEOUT, drain, setup_error};
use crate::schedule::{Pacer, Schedule};
use crate::stats::Recorder;
use crate::target::Target;

/// CreateTopics version sent (twinmq and Kafka 2.4+ serve it).
const CREATE_TOPICS_VERSION: i16 = 5;
/// How long a consumer's fetch may wait for data (`fetch.max.wait.ms`): short, so an idle
/// consumer notices new messages and the end of the run quickly.
const FETCH_WAIT_MS: i32 = 100;
/// Records a producer hands over between two yields to the runtime, so its client's sender
/// runs even on a single-threaded runtime.
const SENDS_PER_YIELD: u32 = 256;

type Pending = Pin<Box<dyn Future<Output = (u64, Option<SendResult>)> + Send>>;

/// Runs `context`'s workload against a Kafka-protocol cluster.
pub async fn run<E: Env>(env: E, context: Arc<RunContext>) -> Result<Report, LoadgenError> {
    let Target::Kafka { bootstrap } = &context.config.target else {
        unreachable!("kafka::run is called for kafka targets");
    };
    let bootstrap = bootstrap.join(",");
    let net = env.net().clone();
    let partitions = create_topic(&net, &bootstrap, &context).await?;

    let stop_consumers = Shutdown::new();
    let mut consumers = Vec::new();
    for index in 0..context.config.consumers {
        let mine: Vec<i32> = (0..partitions)
            .filter(|p| {
                p.rem_euclid(i32::try_from(context.config.consumers).unwrap_or(1))
                    == i32::try_from(index).unwrap_or(0)
            })
            .collect();
        if mine.is_empty() {
            continue;
        }
        let consumer = ready_consumer(&env, &bootstrap, &context, index, &mine).await?;
        consumers.push(tokio::spawn(consume(
            consumer,
            Arc::clone(&context),
            stop_consumers.clone(),
        )));
    }

    let schedule = context.start_clock();
    let mut producers = Vec::new();
    for index in 0..context.config.producers {
        let producer = Producer::new(
            net.clone(),
            env.clock().clone(),
            &bootstrap,
            &format!("twinmq-bench-{:x}-p{index}", context.run_id),
            producer_config(&context),
        );
        producers.push(tokio::spawn(produce(producer, Arc::clone(&context), schedule, index)));
    }
    let mut recorders = Vec::new();
    for producer in producers {
        recorders.push(producer.await.map_err(|e| setup_error(&context, "a producer", e))?);
    }
    if !consumers.is_empty() {
        drain(&context, Duration::from_millis(context.config.drain_idle_ms)).await;
    }
    stop_consumers.trigger();
    for consumer in consumers {
        let _ = consumer.await;
    }
    let partitions = u32::try_from(partitions).unwrap_or(0);
    Ok(context.report(recorders, partitions, schedule.elapsed()))
}

fn producer_config(context: &RunContext) -> ProducerConfig {
    let kafka = &context.config.kafka;
    ProducerConfig {
        acks: kafka.acks.wire(),
        linger_ms: kafka.linger_ms,
        batch_bytes: kafka.batch_bytes,
        // Kafka allows idempotence with acks=all only (and makes it the default there).
        idempotent: kafka.acks == Acks::All,
        ..ProducerConfig::default()
    }
}

/// Creates the topic (an existing one is used as it is) once the cluster lists a broker and
/// waits until every partition has a leader; returns the partition count.
async fn create_topic<N: Net>(
    net: &N,
    bootstrap: &str,
    context: &RunContext,
) -> Result<i32, LoadgenError> {
    let topic = context.config.topic.clone();
    let client = ClusterClient::new(net.clone(), bootstrap, "twinmq-bench-admin");
    let created = async {
        // A cluster that has just started lists no broker until its brokers have heard of
        // one another from the controller: ask again until one is listed.
        let node = loop {
            client.refresh(&[]).await.map_err(|e| setup_error(context, "reading metadata", e))?;
            if let Some(node) = client.any_node() {
                break node;
            }
            tracing::debug!("the cluster lists no broker yet; asking again");
            tokio::time::sleep(RETRY_BACKOFF).await;
        };
        let request = CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.clone())))
                .with_num_partitions(i32::try_from(context.config.partitions).unwrap_or(i32::MAX))
                .with_replication_factor(-1),
        ]);
        let response = client
            .send_to(node, CREATE_TOPICS_VERSION, &request)
            .await
            .map_err(|e| setup_error(context, "creating the topic", e))?;
        for result in response.topics {
            let code = result.error_code;
            if code != 0 && code != ResponseError::TopicAlreadyExists.code() {
                let message = result.error_message.map(|m| m.to_string()).unwrap_or_default();
                return Err(setup_error(
                    context,
                    &format!("creating topic `{topic}`"),
                    format!("error {code} {message}"),
                ));
            }
        }
        loop {
            if let Err(error) = client.refresh(std::slice::from_ref(&topic)).await {
                tracing::debug!(%error, "metadata refresh failed; retrying");
            }
            let partitions = client.partitions(&topic).unwrap_or_default();
            if !partitions.is_empty() && partitions.iter().all(|p| p.leader >= 0) {
                return Ok(i32::try_from(partitions.len()).unwrap_or(i32::MAX));
            }
            tokio::time::sleep(RETRY_BACKOFF).await;
        }
    };
    tokio::time::timeout(SETUP_TIMEOUT, created)
        .await
        .map_err(|_| setup_error(context, &format!("creating topic `{topic}`"), "timed out"))?
}

/// A consumer of `partitions`, positioned at their ends before any producer starts.
async fn ready_consumer<E: Env>(
    env: &E,
    bootstrap: &str,
    context: &RunContext,
    index: u32,
    partitions: &[i32],
) -> Result<Consumer<E::Net>, LoadgenError> {
    let topic = context.config.topic.as_str();
    let config = ConsumerConfig {
        offset_reset: OffsetReset::Latest,
        fetch_max_wait_ms: FETCH_WAIT_MS,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(
        env.net().clone(),
        env.clock().clone(),
        bootstrap,
        &format!("twinmq-bench-{:x}-c{index}", context.run_id),
        config,
    );
    let assigned: Vec<(&str, i32)> = partitions.iter().map(|p| (topic, *p)).collect();
    consumer.assign(&assigned);
    let positioned = async {
        loop {
            match consumer.poll().await {
                Ok(records) => {
                    context.consumed.record(records.iter().filter_map(|r| r.value.as_deref()))
                }
                Err(error) => tracing::debug!(%error, "consumer not positioned yet"),
            }
            if partitions.iter().all(|p| consumer.position(topic, *p).is_some()) {
                return;
            }
            tokio::time::sleep(RETRY_BACKOFF).await;
        }
    };
    tokio::time::timeout(SETUP_TIMEOUT, positioned)
        .await
        .map_err(|_| setup_error(context, &format!("positioning consumer {index}"), "timed out"))?;
    Ok(consumer)
}

async fn consume<N: Net>(mut consumer: Consumer<N>, context: Arc<RunContext>, stop: Shutdown) {
    loop {
        tokio::select! {
            biased;
            () = stop.wait() => return,
            polled = consumer.poll() => match polled {
                Ok(records) => {
                    context.consumed.record(records.iter().filter_map(|r| r.value.as_deref()));
                }
                Err(error) => {
                    tracing::debug!(%error, "poll failed; retrying");
                    tokio::time::sleep(RETRY_BACKOFF).await;
                }
            },
        }
    }
}

async fn produce<N: Net>(
    producer: Producer<N>,
    context: Arc<RunContext>,
    schedule: Schedule,
    index: u32,
) -> Recorder {
    let config = &context.config;
    let topic = config.topic.as_str();
    let writer = PayloadWriter::new(context.run_id, index, config.message_bytes);
    let share = config.producer_share(index);
    let in_flight_max = config.kafka.in_flight_messages_max;
    let mut recorder = context.recorder();
    let mut pacer = Pacer::new(context.producer_rate());
    let mut in_flight: FuturesUnordered<Pending> = FuturesUnordered::new();
    let mut measured_sent = 0;
    let mut sequence: u32 = 0;
    loop {
        if let Some(at) = pacer.next(1) {
            settle_until(at, &mut in_flight, &mut recorder, &context, &schedule).await;
        }
        while in_flight.len() >= in_flight_max {
            settle_one(&mut in_flight, &mut recorder, &context, &schedule).await;
        }
        let sent_us = schedule.now_us();
        if sequence == u32::MAX
            || context.next_send(&schedule, sent_us, share, measured_sent, 1) == 0
        {
            break;
        }
        let key = config.keys.then(|| Bytes::from(writer.key(sequence)));
        let body = writer.body(sequence, sent_us);
        sequence += 1;
        measured_sent += u64::from(sent_us >= schedule.measure_from_us());
        recorder.sent(sent_us, 1);
        context.live.add_sent(1);
        match producer.send(topic, key, Some(body)).await {
            Ok(answer) => in_flight.push(pending(sent_us, answer)),
            Err(error) => {
                tracing::debug!(%error, "send refused; backing off");
                recorder.failed(sent_us, schedule.now_us(), 1);
                context.live.add_failed(1);
                tokio::time::sleep(RETRY_BACKOFF).await;
            }
        }
        while let Some(Some(done)) = in_flight.next().now_or_never() {
            settle(done, &mut recorder, &context, &schedule);
        }
        if sequence.is_multiple_of(SENDS_PER_YIELD) {
            tokio::task::yield_now().await;
        }
    }
    while !in_flight.is_empty() {
        settle_one(&mut in_flight, &mut recorder, &context, &schedule).await;
    }
    recorder
}

/// An answer to wait for. Unconstrained: tokio's cooperative budget would otherwise let a
/// task poll only ~128 answers per turn, and with thousands in flight acknowledgements would
/// be recorded long after they arrived.
fn pending(sent_us: u64, answer: oneshot::Receiver<SendResult>) -> Pending {
    Box::pin(tokio::task::unconstrained(answer.map(move |result| (sent_us, result.ok()))))
}

/// Records the acknowledgements that come in until `at`.
async fn settle_until(
    at: tokio::time::Instant,
    in_flight: &mut FuturesUnordered<Pending>,
    recorder: &mut Recorder,
    context: &RunContext,
    schedule: &Schedule,
) {
    loop {
        tokio::select! {
            biased;
            Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                settle(done, recorder, context, schedule);
            }
            () = tokio::time::sleep_until(at) => return,
        }
    }
}

async fn settle_one(
    in_flight: &mut FuturesUnordered<Pending>,
    recorder: &mut Recorder,
    context: &RunContext,
    schedule: &Schedule,
) {
    if let Some(done) = in_flight.next().await {
        settle(done, recorder, context, schedule);
    }
}

/// Records one resolved send: acknowledged, or (acks=0) written, or failed for good.
fn settle(
    (sent_us, result): (u64, Option<SendResult>),
    recorder: &mut Recorder,
    context: &RunContext,
    schedule: &Schedule,
) {
    let now_us = schedule.now_us();
    match result {
        Some(Ok(_)) if context.config.kafka.acks == Acks::None => {}
        Some(Ok(_)) => {
            recorder.acked(sent_us, now_us, 1);
            context.live.add_acked(1);
        }
        Some(Err(error)) => {
            tracing::debug!(%error, "send failed");
            recorder.failed(sent_us, now_us, 1);
            context.live.add_failed(1);
        }
        None => {
            recorder.failed(sent_us, now_us, 1);
            context.live.add_failed(1);
        }
    }
}
