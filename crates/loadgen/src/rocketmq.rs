//! The RocketMQ side of a run, through twinmq's own RocketMQ client: UPDATE_AND_CREATE_TOPIC
//! on every master, then per producer a [`Producer`] sending one request at a time (sync,
//! oneway or batches — as RocketMQ's own benchmark does) and per consumer a [`PushConsumer`]
//! of one fresh group, clustering, splitting the queues by rebalance.
//!
//! The group's offsets are committed at the queues' ends before its consumers start, so a
//! reused topic's history is not read again (RocketMQ starts a new group at offset 0 on a
//! queue that never lost a message).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::select_all;
use twinmq_rocketmq::client::instance::request_with;
use twinmq_rocketmq::client::pull::{queue_bound, update_offset};
use twinmq_rocketmq::client::{
    ClientConfig, ClientInstance, ConsumeFrom, ConsumeResult, DEFAULT_TOPIC, Message, MessageQueue,
    Producer, PushConsumer, PushConsumerConfig, ReceivedMessage,
};
use twinmq_rocketmq::remoting::request_code;
use twinmq_runtime::Env;

use crate::LoadgenError;
use crate::config::SendMode;
use crate::payload::PayloadWriter;
use crate::report::Report;
use crate::run::{RETRY_BACKOFF, RunContext, SETUP_TIMEOUT, drain, setup_error};
use crate::schedule::{Pacer, Schedule};
use crate::stats::Recorder;
use crate::target::Target;

/// Runs `context`'s workload against a RocketMQ cluster.
pub async fn run<E: Env>(env: E, context: Arc<RunContext>) -> Result<Report, LoadgenError> {
    let Target::RocketMq { namesrv } = &context.config.target else {
        unreachable!("rocketmq::run is called for rocketmq targets");
    };
    let client = |role: &str| {
        ClientConfig::new(namesrv.clone(), format!("twinmq-bench-{:x}-{role}", context.run_id))
    };
    let group = format!("twinmq-bench-{:x}", context.run_id);
    let (admin, _callbacks) = ClientInstance::new(env.clone(), client("admin"));
    let queues = tokio::time::timeout(SETUP_TIMEOUT, prepare(&admin, &context, &group))
        .await
        .map_err(|_| setup_error(&context, "creating the topic", "timed out"))??;
    admin.close().await;

    let mut consumers = Vec::new();
    for index in 0..context.config.consumers {
        let side = Arc::clone(&context.consumed);
        let config = PushConsumerConfig {
            consume_from: ConsumeFrom::LastOffset,
            pull_batch_size: context.config.rocketmq.pull_batch_messages,
            consume_batch_max: context.config.rocketmq.pull_batch_messages as usize,
            ..PushConsumerConfig::new(group.clone())
        };
        consumers.push(PushConsumer::start(
            env.clone(),
            client(&format!("c{index}")),
            config,
            &[(context.config.topic.as_str(), "*")],
            move |_: &MessageQueue, messages: &[ReceivedMessage]| {
                side.record(messages.iter().map(|m| m.body().as_ref()));
                ConsumeResult::Success
            },
        ));
    }
    wait_for_owners(&consumers, &queues, &context).await;

    let mut producers = Vec::new();
    for index in 0..context.config.producers {
        producers
            .push(Producer::start(env.clone(), client(&format!("p{index}")), group.clone()).await);
    }
    let schedule = context.start_clock();
    let mut tasks = Vec::new();
    for (index, producer) in (0..).zip(producers) {
        tasks.push(tokio::spawn(produce(producer, Arc::clone(&context), schedule, index)));
    }
    let mut recorders = Vec::new();
    let mut stopping = Vec::new();
    for task in tasks {
        let (recorder, producer) =
            task.await.map_err(|e| setup_error(&context, "a producer", e))?;
        recorders.push(recorder);
        stopping.push(producer);
    }
    if !consumers.is_empty() {
        drain(&context, Duration::from_millis(context.config.drain_idle_ms)).await;
    }
    let elapsed = schedule.elapsed();
    for consumer in consumers {
        consumer.shutdown().await;
    }
    for producer in stopping {
        producer.shutdown().await;
    }
    let queues = u32::try_from(queues.len()).unwrap_or(u32::MAX);
    Ok(context.report(recorders, queues, elapsed))
}

/// Creates the topic on every master, waits until the nameservers route it, and starts the
/// run's group at the end of every queue; returns the queues.
async fn prepare<E: Env>(
    admin: &ClientInstance<E>,
    context: &RunContext,
    group: &str,
) -> Result<Vec<MessageQueue>, LoadgenError> {
    let topic = context.config.topic.as_str();
    let masters = masters(admin, context).await?;
    let queues = context.config.partitions.to_string();
    for addr in &masters {
        let request = request_with(
            request_code::UPDATE_AND_CREATE_TOPIC,
            &[
                ("topic", topic.to_owned()),
                ("defaultTopic", DEFAULT_TOPIC.to_owned()),
                ("readQueueNums", queues.clone()),
                ("writeQueueNums", queues.clone()),
                ("perm", "6".to_owned()),
                ("topicFilterType", "SINGLE_TAG".to_owned()),
                ("topicSysFlag", "0".to_owned()),
                ("order", "false".to_owned()),
            ],
        );
        admin
            .request_ok(addr, request)
            .await
            .map_err(|e| setup_error(context, &format!("creating topic `{topic}` on {addr}"), e))?;
    }
    let route = loop {
        match admin.refresh_route(topic).await {
            Ok(route)
                if masters.iter().all(|addr| route.master_addrs.values().any(|a| a == addr))
                    && !route.read_queues.is_empty() =>
            {
                break route;
            }
            Ok(_) => tracing::debug!(%topic, "route not on every master yet"),
            Err(error) => tracing::debug!(%topic, %error, "no route yet"),
        }
        tokio::time::sleep(RETRY_BACKOFF).await;
    };
    for queue in &route.read_queues {
        let end = queue_bound(admin, queue, request_code::GET_MAX_OFFSET)
            .await
            .map_err(|e| setup_error(context, &format!("reading the end of {queue}"), e))?;
        update_offset(admin, group, queue, end, false)
            .await
            .map_err(|e| setup_error(context, &format!("starting the group at {queue}"), e))?;
    }
    Ok(route.read_queues.clone())
}

/// The master of every broker group: from the default topic's route, which every broker that
/// may create topics serves, or else from the cluster table.
async fn masters<E: Env>(
    admin: &ClientInstance<E>,
    context: &RunContext,
) -> Result<BTreeSet<String>, LoadgenError> {
    if let Ok(route) = admin.refresh_route(DEFAULT_TOPIC).await
        && !route.master_addrs.is_empty()
    {
        return Ok(route.master_addrs.values().cloned().collect());
    }
    let mut last_error = String::from("no nameserver answered");
    for namesrv in context.config.target.endpoints() {
        let request = request_with(request_code::GET_BROKER_CLUSTER_INFO, &[]);
        match admin.request_ok(namesrv, request).await {
            Ok(response) => {
                let table: serde_json::Value =
                    serde_json::from_slice(&response.body).unwrap_or_default();
                let masters: BTreeSet<String> = table["brokerAddrTable"]
                    .as_object()
                    .into_iter()
                    .flat_map(|brokers| brokers.values())
                    .filter_map(|broker| broker["brokerAddrs"]["0"].as_str().map(str::to_owned))
                    .collect();
                if !masters.is_empty() {
                    return Ok(masters);
                }
                last_error = format!("{namesrv} lists no master");
            }
            Err(error) => last_error = error.to_string(),
        }
    }
    Err(setup_error(context, "finding the brokers", last_error))
}

/// Waits until the consumers own every queue between them (bounded: a group that does not
/// settle in time is measured as it is).
async fn wait_for_owners<E: Env>(
    consumers: &[PushConsumer<E>],
    queues: &[MessageQueue],
    context: &RunContext,
) {
    if consumers.is_empty() {
        return;
    }
    let wanted: BTreeSet<&MessageQueue> = queues.iter().collect();
    let settled = async {
        loop {
            let snapshots: Vec<BTreeSet<MessageQueue>> =
                consumers.iter().map(PushConsumer::assignment).collect();
            let owned: BTreeSet<&MessageQueue> = snapshots.iter().flatten().collect();
            if wanted.iter().all(|q| owned.contains(*q)) {
                return;
            }
            // Until any consumer's queues change.
            let changes = consumers.iter().zip(&snapshots).map(|(consumer, before)| {
                Box::pin(consumer.assignment_when(move |now| now != before))
            });
            let _ = select_all(changes).await;
        }
    };
    if tokio::time::timeout(SETUP_TIMEOUT, settled).await.is_err() {
        tracing::warn!(topic = %context.config.topic, "consumers did not take every queue in time");
    }
}

async fn produce<E: Env>(
    producer: Producer<E>,
    context: Arc<RunContext>,
    schedule: Schedule,
    index: u32,
) -> (Recorder, Producer<E>) {
    let config = &context.config;
    let writer = PayloadWriter::new(context.run_id, index, config.message_bytes);
    let share = config.producer_share(index);
    let batch = match config.rocketmq.send_mode {
        SendMode::Batch { messages } => messages,
        SendMode::Sync | SendMode::Oneway => 1,
    };
    let mut recorder = context.recorder();
    let mut pacer = Pacer::new(context.producer_rate());
    let mut measured_sent = 0;
    let mut sequence: u32 = 0;
    let mut messages = Vec::with_capacity(batch as usize);
    loop {
        if let Some(at) = pacer.next(batch) {
            tokio::time::sleep_until(at).await;
        }
        let sent_us = schedule.now_us();
        let count = context.next_send(&schedule, sent_us, share, measured_sent, batch);
        if count == 0 || sequence.checked_add(count).is_none() {
            break;
        }
        messages.clear();
        for _ in 0..count {
            let message = Message::new(config.topic.clone(), writer.body(sequence, sent_us));
            messages.push(if config.keys {
                message.with_key(writer.key(sequence))
            } else {
                message
            });
            sequence += 1;
        }
        let count = u64::from(count);
        if sent_us >= schedule.measure_from_us() {
            measured_sent += count;
        }
        recorder.sent(sent_us, count);
        context.live.add_sent(count);
        let outcome = match (config.rocketmq.send_mode, messages.as_slice()) {
            (SendMode::Sync, [message]) => producer.send(message).await.map(|_| true),
            (SendMode::Oneway, [message]) => producer.send_oneway(message).await.map(|()| false),
            (_, all) => producer.send_batch(all).await.map(|_| true),
        };
        let now_us = schedule.now_us();
        match outcome {
            Ok(true) => {
                recorder.acked(sent_us, now_us, count);
                context.live.add_acked(count);
            }
            Ok(false) => {}
            Err(error) => {
                tracing::debug!(%error, "send failed");
                recorder.failed(sent_us, now_us, count);
                context.live.add_failed(count);
                tokio::time::sleep(RETRY_BACKOFF).await;
            }
        }
    }
    (recorder, producer)
}
