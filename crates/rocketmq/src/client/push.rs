//! PushConsumer (RocketMQ `DefaultMQPushConsumer`): subscribes topics with tag expressions,
//! heartbeats its subscriptions to every broker, and rebalances — at start, when a broker says
//! the group changed (NOTIFY_CONSUMER_IDS_CHANGED) and every `rebalance_interval_ms` — so that it
//! runs one long-polling pull loop per queue it owns, handing messages to the user's
//! [`MessageHandler`].
//!
//! - Clustering: the group's members split the queues ([`allocate_averagely`]); offsets live on
//!   the broker, committed every `offset_persist_interval_ms` (oneway) and — waiting for the
//!   broker — when a queue is released or the consumer shuts down, so the next owner resumes
//!   exactly there. `ReconsumeLater` hands the message back (CONSUMER_SEND_MSG_BACK): it returns
//!   through `%RETRY%<group>` (subscribed automatically) and past `max_reconsume_times` lands in
//!   `%DLQ%<group>`.
//! - Broadcasting: every member owns every queue; offsets stay in the member.
//! - Orderly: a queue is consumed only while this client holds its broker lock (LOCK_BATCH_MQ,
//!   renewed at every rebalance, UNLOCK_BATCH_MQ on release), one message at a time, in order; a
//!   failed message is retried in place after `orderly_suspend_ms`, and dead-lettered past
//!   `max_reconsume_times`.
//!
//! The handler is called on the queue's task: a handler that blocks holds up that queue only
//! until it returns, but it does occupy a runtime worker meanwhile.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Notify, mpsc, watch};
use twinmq_runtime::{Env, Shutdown};

use super::instance::{Callback, ClientInstance, request_with};
use super::message::ReceivedMessage;
use super::offset::{OffsetKeeping, OffsetStore};
use super::pull::{
    PullRequest, PullStatus, expression_tags, pull_message, query_offset, queue_bound,
    search_offset,
};
use super::rebalance::allocate_averagely;
use super::route::TopicRoute;
use super::{CLIENT_INNER_PRODUCER, ClientConfig, ClientError, MessageQueue};
use crate::remoting::properties::{ORIGIN_MESSAGE_ID, tag_hash};
use crate::remoting::{RemotingCommand, request_code};

/// The prefix of a group's retry topic.
const RETRY_PREFIX: &str = "%RETRY%";

/// How a group shares its topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageModel {
    /// Members split the queues; each message reaches one member.
    Clustering,
    /// Every member reads every queue.
    Broadcasting,
}

/// Where a group with no committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeFrom {
    /// At the queue's end (the broker still starts a new group at 0 on a queue that never
    /// lost a message, as RocketMQ does).
    LastOffset,
    /// At the queue's first message.
    FirstOffset,
    /// At the first message stored at or after this time (ms).
    Timestamp(i64),
}

/// What the handler says about the messages it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeResult {
    /// Consumed: the offset moves past them.
    Success,
    /// Not now: deliver again later (retry topic, or in place when orderly).
    ReconsumeLater,
}

/// The application's consumer.
pub trait MessageHandler: Send + Sync + 'static {
    /// Consumes messages of one queue, in queue order.
    fn consume(&self, queue: &MessageQueue, messages: &[ReceivedMessage]) -> ConsumeResult;
}

impl<F> MessageHandler for F
where
    F: Fn(&MessageQueue, &[ReceivedMessage]) -> ConsumeResult + Send + Sync + 'static,
{
    fn consume(&self, queue: &MessageQueue, messages: &[ReceivedMessage]) -> ConsumeResult {
        self(queue, messages)
    }
}

/// A push consumer's settings (RocketMQ's names where it has them).
#[derive(Debug, Clone)]
pub struct PushConsumerConfig {
    /// `consumerGroup`.
    pub group: String,
    /// `messageModel`.
    pub model: MessageModel,
    /// `consumeFromWhere`.
    pub consume_from: ConsumeFrom,
    /// Orderly (`MessageListenerOrderly`) rather than concurrent consumption.
    pub orderly: bool,
    /// `maxReconsumeTimes`: deliveries of a failing message before it is dead-lettered.
    pub max_reconsume_times: i32,
    /// `pullBatchSize`: most messages one pull asks for.
    pub pull_batch_size: u32,
    /// `consumeMessageBatchMaxSize`: most messages one handler call gets (concurrent mode).
    pub consume_batch_max: usize,
    /// `brokerSuspendMaxTimeMillis`: how long the broker parks an empty pull.
    pub long_poll_suspend_ms: u64,
    /// `pullTimeDelayMillsWhenException`: the pause after a failed pull.
    pub pull_backoff_ms: u64,
    /// Time between rebalances (RocketMQ: 20 s).
    pub rebalance_interval_ms: u64,
    /// Time before a rebalance that could not finish (no route yet, lock refused) is retried;
    /// doubled on each further failure, up to `rebalance_interval_ms`.
    pub rebalance_retry_ms: u64,
    /// `persistConsumerOffsetInterval`.
    pub offset_persist_interval_ms: u64,
    /// `suspendCurrentQueueTimeMillis`: the pause before an orderly retry in place.
    pub orderly_suspend_ms: u64,
    /// Broadcasting only: the file this member keeps its offsets in (RocketMQ
    /// `~/.rocketmq_offsets/<client>/<group>/offsets.json`); `None` keeps them in memory.
    pub local_offsets_file: Option<std::path::PathBuf>,
}

impl PushConsumerConfig {
    /// RocketMQ's defaults for `group`: clustering, concurrent, from the last offset.
    pub fn new(group: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            model: MessageModel::Clustering,
            consume_from: ConsumeFrom::LastOffset,
            orderly: false,
            max_reconsume_times: 16,
            pull_batch_size: 32,
            consume_batch_max: 1,
            long_poll_suspend_ms: 15_000,
            pull_backoff_ms: 3_000,
            rebalance_interval_ms: 20_000,
            rebalance_retry_ms: 1_000,
            offset_persist_interval_ms: 5_000,
            orderly_suspend_ms: 1_000,
            local_offsets_file: None,
        }
    }
}

/// A running push consumer.
pub struct PushConsumer<E: Env> {
    inner: Arc<Inner<E>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl<E: Env> std::fmt::Debug for PushConsumer<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushConsumer").field("group", &self.inner.config.group).finish()
    }
}

/// What a broker says about the group.
enum Membership {
    /// Its members, this client among them.
    Members(Vec<String>),
    /// Members without this client: its heartbeat has not arrived (or was forgotten).
    NotListed,
    /// No answer.
    Unknown,
}

struct Worker {
    stop: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

struct Inner<E: Env> {
    instance: Arc<ClientInstance<E>>,
    config: PushConsumerConfig,
    /// Topic → tag expression (with the retry topic in clustering mode).
    subscriptions: BTreeMap<String, String>,
    handler: Arc<dyn MessageHandler>,
    offsets: OffsetStore,
    workers: tokio::sync::Mutex<BTreeMap<MessageQueue, Worker>>,
    assignment: watch::Sender<BTreeSet<MessageQueue>>,
    rebalance_now: Notify,
    heartbeated: Mutex<BTreeSet<String>>,
    shutdown: Shutdown,
}

impl<E: Env> PushConsumer<E> {
    /// Starts consuming `subscriptions` (topic, tag expression such as `*` or `TagA || TagB`).
    pub fn start(
        env: E,
        client: ClientConfig,
        config: PushConsumerConfig,
        subscriptions: &[(&str, &str)],
        handler: impl MessageHandler,
    ) -> Self {
        let (instance, callbacks) = ClientInstance::new(env, client);
        let mut subscribed: BTreeMap<String, String> =
            subscriptions.iter().map(|(t, e)| ((*t).to_owned(), (*e).to_owned())).collect();
        if config.model == MessageModel::Clustering {
            subscribed.insert(format!("{RETRY_PREFIX}{}", config.group), "*".into());
        }
        let keeping = match config.model {
            MessageModel::Clustering => OffsetKeeping::Broker,
            MessageModel::Broadcasting => OffsetKeeping::Local(config.local_offsets_file.clone()),
        };
        let offsets = OffsetStore::new(keeping);
        offsets.load(instance.env().fs());
        let inner = Arc::new(Inner {
            instance,
            config,
            subscriptions: subscribed,
            handler: Arc::new(handler),
            offsets,
            workers: tokio::sync::Mutex::default(),
            assignment: watch::Sender::new(BTreeSet::new()),
            rebalance_now: Notify::new(),
            heartbeated: Mutex::default(),
            shutdown: Shutdown::new(),
        });
        let tasks = vec![
            tokio::spawn(Arc::clone(&inner).run_rebalance()),
            tokio::spawn(Arc::clone(&inner).run_offset_persist()),
            tokio::spawn(Arc::clone(&inner).run_callbacks(callbacks)),
        ];
        Self { inner, tasks }
    }

    /// The queues this consumer owns, updated after every rebalance.
    pub fn assignment(&self) -> watch::Receiver<BTreeSet<MessageQueue>> {
        self.inner.assignment.subscribe()
    }

    /// The next offset this consumer will consume in `queue`, if it owns or owned it.
    pub fn consumed_offset(&self, queue: &MessageQueue) -> Option<i64> {
        self.inner.offsets.read(queue)
    }

    /// The client's plumbing.
    pub fn instance(&self) -> &Arc<ClientInstance<E>> {
        &self.inner.instance
    }

    /// Stops every queue, commits offsets (waiting for the broker), releases orderly locks and
    /// leaves the group.
    pub async fn shutdown(self) {
        let inner = self.inner;
        inner.shutdown.trigger();
        for task in self.tasks {
            let _ = task.await;
        }
        let workers = std::mem::take(&mut *inner.workers.lock().await);
        let queues: Vec<MessageQueue> = workers.keys().cloned().collect();
        for worker in workers.into_values() {
            worker.stop.trigger();
            let _ = worker.task.await;
        }
        for queue in &queues {
            inner.release(queue).await;
        }
        inner.offsets.persist_all(&inner.instance, &inner.config.group).await;
        inner.assignment.send_replace(BTreeSet::new());
        inner.instance.unregister("consumerGroup", &inner.config.group).await;
        inner.instance.unregister("producerGroup", CLIENT_INNER_PRODUCER).await;
        inner.instance.close().await;
    }
}

impl<E: Env> Inner<E> {
    async fn run_rebalance(self: Arc<Self>) {
        let heartbeat_every = Duration::from_millis(self.instance.config().heartbeat_interval_ms);
        let mut heartbeat_due = tokio::time::Instant::now();
        let mut retry_ms = self.config.rebalance_retry_ms;
        loop {
            let routes = self.refresh_routes().await;
            let now = tokio::time::Instant::now();
            let unheard = {
                let heartbeated = lock(&self.heartbeated);
                self.instance.broker_addrs().iter().any(|addr| !heartbeated.contains(addr))
            };
            if now >= heartbeat_due || unheard {
                let reached = self.instance.heartbeat(&self.heartbeat_body()).await;
                lock(&self.heartbeated).extend(reached);
                heartbeat_due = now + heartbeat_every;
            }
            let complete =
                self.rebalance(&routes).await && routes.len() == self.subscriptions.len();
            // An unfinished round is retried soon, then less and less often (a topic that does
            // not exist yet must not make every consumer poll the nameservers flat out).
            let wait_ms = if complete {
                retry_ms = self.config.rebalance_retry_ms;
                self.config.rebalance_interval_ms
            } else {
                let wait_ms = retry_ms;
                retry_ms = (retry_ms * 2).min(self.config.rebalance_interval_ms);
                wait_ms
            };
            let wake =
                heartbeat_due.min(tokio::time::Instant::now() + Duration::from_millis(wait_ms));
            tokio::select! {
                biased;
                () = self.shutdown.wait() => return,
                () = self.rebalance_now.notified() => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    async fn refresh_routes(&self) -> BTreeMap<String, Arc<TopicRoute>> {
        let mut routes = BTreeMap::new();
        for topic in self.subscriptions.keys() {
            match self.instance.refresh_route(topic).await {
                Ok(route) => {
                    routes.insert(topic.clone(), route);
                }
                Err(error) => tracing::debug!(%topic, %error, "no route yet"),
            }
        }
        routes
    }

    /// One rebalance round; false when some part must be tried again soon.
    async fn rebalance(self: &Arc<Self>, routes: &BTreeMap<String, Arc<TopicRoute>>) -> bool {
        let mut complete = true;
        let mut decided_topics = BTreeSet::new();
        let mut desired = BTreeSet::new();
        for (topic, route) in routes {
            let all = route.read_queues.clone();
            let mine = match self.config.model {
                MessageModel::Broadcasting => all,
                MessageModel::Clustering => match self.members(route).await {
                    Membership::Members(members) => {
                        allocate_averagely(&self.instance.config().client_id, &all, &members)
                    }
                    Membership::NotListed => {
                        // The broker forgot this client (restarted, or a dropped connection):
                        // heartbeat again before the next round.
                        lock(&self.heartbeated).clear();
                        complete = false;
                        continue;
                    }
                    Membership::Unknown => {
                        complete = false;
                        continue;
                    }
                },
            };
            decided_topics.insert(topic.clone());
            desired.extend(mine);
        }
        if self.shutdown.is_triggered() {
            return true;
        }
        let mut workers = self.workers.lock().await;
        let released: Vec<MessageQueue> = workers
            .keys()
            .filter(|q| decided_topics.contains(&q.topic) && !desired.contains(*q))
            .cloned()
            .collect();
        for queue in released {
            if let Some(worker) = workers.remove(&queue) {
                worker.stop.trigger();
                let _ = worker.task.await;
            }
            self.release(&queue).await;
        }
        let mut startable: BTreeSet<MessageQueue> = desired.clone();
        if self.config.orderly {
            let mut wanted: BTreeSet<MessageQueue> = workers.keys().cloned().collect();
            wanted.extend(desired.iter().cloned());
            let granted = self.lock_queues(&wanted).await;
            let lost: Vec<MessageQueue> =
                workers.keys().filter(|q| !granted.contains(*q)).cloned().collect();
            for queue in lost {
                tracing::info!(%queue, "orderly lock lost; queue paused");
                if let Some(worker) = workers.remove(&queue) {
                    worker.stop.trigger();
                    let _ = worker.task.await;
                }
                let _ = self
                    .offsets
                    .persist_and_remove(&self.instance, &self.config.group, &queue)
                    .await;
                complete = false;
            }
            if desired.iter().any(|q| !granted.contains(q)) {
                complete = false;
            }
            startable.retain(|q| granted.contains(q));
        }
        for queue in startable {
            if workers.contains_key(&queue) {
                continue;
            }
            match self.start_offset(&queue).await {
                Ok(offset) => {
                    tracing::debug!(%queue, offset, client = %self.instance.config().client_id, "queue taken");
                    let stop = Shutdown::new();
                    let task = tokio::spawn(Arc::clone(self).consume_queue(
                        queue.clone(),
                        offset,
                        stop.clone(),
                    ));
                    workers.insert(queue, Worker { stop, task });
                }
                Err(error) => {
                    tracing::debug!(%queue, %error, "no start offset yet");
                    complete = false;
                }
            }
        }
        self.assignment.send_replace(workers.keys().cloned().collect());
        complete
    }

    /// The group's members as a broker of `route` knows them.
    async fn members(&self, route: &TopicRoute) -> Membership {
        let Some(addr) = route.master_addrs.values().next() else { return Membership::Unknown };
        let request = request_with(
            request_code::GET_CONSUMER_LIST_BY_GROUP,
            &[("consumerGroup", self.config.group.clone())],
        );
        let Ok(response) = self.instance.request_ok(addr, request).await else {
            return Membership::Unknown;
        };
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
        let Some(ids) = body["consumerIdList"].as_array() else { return Membership::Unknown };
        let members: Vec<String> =
            ids.iter().filter_map(|id| id.as_str().map(str::to_owned)).collect();
        if members.contains(&self.instance.config().client_id) {
            Membership::Members(members)
        } else {
            Membership::NotListed
        }
    }

    /// Commits a released queue's offset (waiting for the broker) and unlocks it if orderly.
    async fn release(&self, queue: &MessageQueue) {
        let committed =
            self.offsets.persist_and_remove(&self.instance, &self.config.group, queue).await;
        if let Err(error) = committed {
            tracing::warn!(%queue, %error, "offset of a released queue not committed");
        }
        if self.config.orderly {
            self.lock_request(request_code::UNLOCK_BATCH_MQ, std::slice::from_ref(queue)).await;
        }
        tracing::debug!(%queue, client = %self.instance.config().client_id, "queue released");
    }

    /// LOCK_BATCH_MQ per broker; the queues granted.
    async fn lock_queues(&self, queues: &BTreeSet<MessageQueue>) -> BTreeSet<MessageQueue> {
        let mut by_broker: BTreeMap<&str, Vec<MessageQueue>> = BTreeMap::new();
        for queue in queues {
            by_broker.entry(&queue.broker_name).or_default().push(queue.clone());
        }
        let mut granted = BTreeSet::new();
        for batch in by_broker.values() {
            let Some(response) = self.lock_request(request_code::LOCK_BATCH_MQ, batch).await else {
                continue;
            };
            let body: serde_json::Value =
                serde_json::from_slice(&response.body).unwrap_or_default();
            let ok = body["lockOKMQSet"].as_array().cloned().unwrap_or_default();
            granted.extend(
                ok.into_iter().filter_map(|q| serde_json::from_value::<MessageQueue>(q).ok()),
            );
        }
        granted
    }

    async fn lock_request(&self, code: i32, queues: &[MessageQueue]) -> Option<RemotingCommand> {
        let first = queues.first()?;
        let addr = self.instance.master_addr(&first.broker_name)?;
        let body = serde_json::json!({
            "consumerGroup": self.config.group,
            "clientId": self.instance.config().client_id,
            "onlyThisBroker": false,
            "mqSet": queues,
        });
        let request = RemotingCommand::request(
            code,
            BTreeMap::new(),
            Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
        );
        match self.instance.request_ok(&addr, request).await {
            Ok(response) => Some(response),
            Err(error) => {
                tracing::debug!(%addr, code, %error, "queue lock request failed");
                None
            }
        }
    }

    /// Where consumption of a newly owned queue starts.
    async fn start_offset(&self, queue: &MessageQueue) -> Result<i64, ClientError> {
        if let Some(offset) = self.offsets.read(queue) {
            return Ok(offset);
        }
        if *self.offsets.keeping() == OffsetKeeping::Broker
            && let Some(offset) = query_offset(&self.instance, &self.config.group, queue).await?
        {
            self.offsets.start_at(queue, offset);
            return Ok(offset);
        }
        let offset = if queue.topic.starts_with(RETRY_PREFIX) {
            0
        } else {
            match self.config.consume_from {
                ConsumeFrom::FirstOffset => {
                    queue_bound(&self.instance, queue, request_code::GET_MIN_OFFSET).await?
                }
                ConsumeFrom::LastOffset => {
                    queue_bound(&self.instance, queue, request_code::GET_MAX_OFFSET).await?
                }
                ConsumeFrom::Timestamp(at_ms) => {
                    search_offset(&self.instance, queue, at_ms).await?
                }
            }
        };
        self.offsets.start_at(queue, offset);
        Ok(offset)
    }

    /// One owned queue: pull (long polling), consume, advance the offset, until stopped.
    async fn consume_queue(self: Arc<Self>, queue: MessageQueue, start: i64, stop: Shutdown) {
        let tags = self.subscriptions.get(&queue.topic).and_then(|e| expression_tags(e));
        let mut offset = start;
        loop {
            let pull = PullRequest {
                group: &self.config.group,
                queue: &queue,
                expression: None,
                tags: tags.as_ref(),
                offset,
                max_messages: self.config.pull_batch_size,
                commit_offset: None,
                suspend_ms: Some(self.config.long_poll_suspend_ms),
            };
            let pulled = tokio::select! {
                biased;
                () = stop.wait() => return,
                pulled = pull_message(&self.instance, pull) => pulled,
            };
            let result = match pulled {
                Ok(result) => result,
                Err(error) => {
                    tracing::debug!(%queue, %error, "pull failed");
                    if !pause(&stop, self.config.pull_backoff_ms).await {
                        return;
                    }
                    continue;
                }
            };
            if result.status == PullStatus::Found && !result.messages.is_empty() {
                let consumed = if self.config.orderly {
                    self.consume_orderly(&queue, &result.messages, &stop).await
                } else {
                    self.consume_concurrently(&queue, &result.messages, &stop).await
                };
                if !consumed {
                    return;
                }
            }
            if result.status == PullStatus::OffsetIllegal {
                tracing::info!(%queue, offset, next = result.next_begin_offset, "offset moved");
            }
            offset = result.next_begin_offset;
            self.offsets.update(&queue, offset);
        }
    }

    /// Hands the messages to the handler in batches; failed ones go back to the broker.
    /// False when stopped before they were all dealt with.
    async fn consume_concurrently(
        &self,
        queue: &MessageQueue,
        messages: &[ReceivedMessage],
        stop: &Shutdown,
    ) -> bool {
        for batch in messages.chunks(self.config.consume_batch_max.max(1)) {
            if self.handler.consume(queue, batch) == ConsumeResult::Success {
                continue;
            }
            if self.config.model == MessageModel::Broadcasting {
                tracing::info!(%queue, "broadcast message not consumed; dropped as RocketMQ does");
                continue;
            }
            for message in batch {
                while let Err(error) = self.send_back(message, 0).await {
                    tracing::info!(%queue, %error, "send back failed; retrying");
                    if !pause(stop, self.config.pull_backoff_ms).await {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// One message at a time; a failure retries in place, past the limit dead-letters it.
    async fn consume_orderly(
        &self,
        queue: &MessageQueue,
        messages: &[ReceivedMessage],
        stop: &Shutdown,
    ) -> bool {
        for message in messages {
            let mut message = message.clone();
            loop {
                if stop.is_triggered() {
                    return false;
                }
                if self.handler.consume(queue, std::slice::from_ref(&message))
                    == ConsumeResult::Success
                {
                    break;
                }
                if message.record.reconsume_times >= self.config.max_reconsume_times {
                    // A negative delay level sends it straight to the dead-letter topic.
                    match self.send_back(&message, -1).await {
                        Ok(()) => break,
                        Err(error) => tracing::info!(%queue, %error, "dead-lettering failed"),
                    }
                } else {
                    message.record.reconsume_times += 1;
                }
                if !pause(stop, self.config.orderly_suspend_ms).await {
                    return false;
                }
            }
            self.offsets.update(queue, message.queue_offset() + 1);
        }
        true
    }

    /// CONSUMER_SEND_MSG_BACK: the broker stores it again in the retry (or dead-letter) topic.
    async fn send_back(
        &self,
        message: &ReceivedMessage,
        delay_level: i32,
    ) -> Result<(), ClientError> {
        let addr = super::pull::broker_addr(&self.instance, &message.queue).await?;
        let origin = message
            .property(ORIGIN_MESSAGE_ID)
            .map_or_else(|| message.offset_msg_id(), str::to_owned);
        let request = request_with(
            request_code::CONSUMER_SEND_MSG_BACK,
            &[
                ("offset", message.record.physical_offset.to_string()),
                ("group", self.config.group.clone()),
                ("delayLevel", delay_level.to_string()),
                ("originMsgId", origin),
                ("originTopic", message.topic().to_owned()),
                ("unitMode", "false".to_owned()),
                ("maxReconsumeTimes", self.config.max_reconsume_times.to_string()),
                ("bname", message.queue.broker_name.clone()),
            ],
        );
        self.instance.request_ok(&addr, request).await.map(|_| ())
    }

    async fn run_offset_persist(self: Arc<Self>) {
        loop {
            tokio::select! {
                biased;
                () = self.shutdown.wait() => return,
                () = tokio::time::sleep(Duration::from_millis(self.config.offset_persist_interval_ms)) => {}
            }
            self.offsets.persist_all(&self.instance, &self.config.group).await;
        }
    }

    async fn run_callbacks(self: Arc<Self>, mut callbacks: mpsc::UnboundedReceiver<Callback>) {
        loop {
            let (addr, request) = tokio::select! {
                biased;
                () = self.shutdown.wait() => return,
                received = callbacks.recv() => match received {
                    Some(received) => received,
                    None => return,
                },
            };
            if request.code == request_code::NOTIFY_CONSUMER_IDS_CHANGED {
                tracing::debug!(%addr, group = %self.config.group, "group changed; rebalancing");
                self.rebalance_now.notify_one();
            } else {
                tracing::debug!(%addr, code = request.code, "consumer ignores broker request");
            }
        }
    }

    fn heartbeat_body(&self) -> serde_json::Value {
        let subscriptions: Vec<serde_json::Value> = self
            .subscriptions
            .iter()
            .map(|(topic, expression)| {
                let tags: Vec<String> = expression_tags(expression)
                    .map(|t| t.into_iter().collect())
                    .unwrap_or_default();
                let codes: Vec<i64> = tags.iter().map(|t| tag_hash(t)).collect();
                serde_json::json!({
                    "classFilterMode": false,
                    "topic": topic,
                    "subString": expression,
                    "tagsSet": tags,
                    "codeSet": codes,
                    "subVersion": 0,
                    "expressionType": "TAG",
                })
            })
            .collect();
        let model = match self.config.model {
            MessageModel::Clustering => "CLUSTERING",
            MessageModel::Broadcasting => "BROADCASTING",
        };
        let from = match self.config.consume_from {
            ConsumeFrom::LastOffset => "CONSUME_FROM_LAST_OFFSET",
            ConsumeFrom::FirstOffset => "CONSUME_FROM_FIRST_OFFSET",
            ConsumeFrom::Timestamp(_) => "CONSUME_FROM_TIMESTAMP",
        };
        serde_json::json!({
            "clientID": self.instance.config().client_id,
            "producerDataSet": [{"groupName": CLIENT_INNER_PRODUCER}],
            "consumerDataSet": [{
                "groupName": self.config.group,
                "consumeType": "CONSUME_PASSIVELY",
                "messageModel": model,
                "consumeFromWhere": from,
                "subscriptionDataSet": subscriptions,
                "unitMode": false,
            }],
            "heartbeatFingerprint": 0,
            "withoutSub": false,
        })
    }
}

/// Waits `ms` unless stopped first; false when stopped.
async fn pause(stop: &Shutdown, ms: u64) -> bool {
    tokio::select! {
        biased;
        () = stop.wait() => false,
        () = tokio::time::sleep(Duration::from_millis(ms)) => true,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
