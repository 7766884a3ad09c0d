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
//!
//! The rebalance round is in [`assign`], the per-queue pull-and-consume loop in [`consume`].

mod assign;
mod consume;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use twinmq_runtime::{Env, Shutdown};

use super::instance::{Callback, ClientInstance};
use super::message::ReceivedMessage;
use super::offset::{OffsetKeeping, OffsetStore};
use super::pull::expression_tags;
use super::route::TopicRoute;
use super::{CLIENT_INNER_PRODUCER, ClientConfig, MessageQueue};
use crate::remoting::properties::tag_hash;
use crate::remoting::request_code;

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
    /// The queues owned after the last rebalance, and a signal each time they change.
    assignment: Mutex<BTreeSet<MessageQueue>>,
    assignment_changed: Notify,
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
            assignment: Mutex::default(),
            assignment_changed: Notify::new(),
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

    /// The queues this consumer owns (as of the last rebalance).
    pub fn assignment(&self) -> BTreeSet<MessageQueue> {
        lock(&self.inner.assignment).clone()
    }

    /// Waits until the queues this consumer owns satisfy `ready`, and returns them.
    pub async fn assignment_when(
        &self,
        ready: impl Fn(&BTreeSet<MessageQueue>) -> bool,
    ) -> BTreeSet<MessageQueue> {
        loop {
            let changed = self.inner.assignment_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let owned = self.assignment();
            if ready(&owned) {
                return owned;
            }
            changed.await;
        }
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
        inner.set_assignment(BTreeSet::new());
        inner.instance.unregister("consumerGroup", &inner.config.group).await;
        inner.instance.unregister("producerGroup", CLIENT_INNER_PRODUCER).await;
        inner.instance.close().await;
    }
}

impl<E: Env> Inner<E> {
    /// Routes, heartbeats and rebalance rounds: at start, on a broker's notice, on a timer.
    async fn run_rebalance(self: Arc<Self>) {
        let heartbeat_every = self.instance.config().heartbeat_interval_ms.max(1);
        let mut heartbeat = tokio::time::interval(Duration::from_millis(heartbeat_every));
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.tick().await;
        let mut heartbeat_due = true;
        let mut retry_ms = self.config.rebalance_retry_ms;
        loop {
            let routes = self.refresh_routes().await;
            let unheard = {
                let heartbeated = lock(&self.heartbeated);
                self.instance.broker_addrs().iter().any(|addr| !heartbeated.contains(addr))
            };
            if heartbeat_due || unheard {
                let reached = self.instance.heartbeat(&self.heartbeat_body()).await;
                lock(&self.heartbeated).extend(reached);
                heartbeat_due = false;
                heartbeat.reset();
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
            tokio::select! {
                biased;
                () = self.shutdown.wait() => return,
                () = self.rebalance_now.notified() => {}
                _ = heartbeat.tick() => heartbeat_due = true,
                () = tokio::time::sleep(Duration::from_millis(wait_ms)) => {}
            }
        }
    }

    /// The routes of every subscribed topic the nameservers know.
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

    /// Publishes the owned queues, waking whoever waits on a change.
    fn set_assignment(&self, owned: BTreeSet<MessageQueue>) {
        let mut assignment = lock(&self.assignment);
        if *assignment != owned {
            *assignment = owned;
            self.assignment_changed.notify_waiters();
        }
    }

    /// Commits changed offsets every `offset_persist_interval_ms`.
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

    /// Turns NOTIFY_CONSUMER_IDS_CHANGED into an immediate rebalance.
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

    /// HEART_BEAT's body: the group, its model, where it starts, its subscriptions.
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
