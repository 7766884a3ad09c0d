//! Producer (RocketMQ `DefaultMQProducer`): sync, oneway and batch sends over SEND_MESSAGE (10)
//! and SEND_BATCH_MESSAGE (320); queues chosen round-robin (retrying a failed sync send on
//! another broker), by a [`QueueSelector`] for ordered messages, or given outright. It
//! heartbeats its group to every broker it knows and answers CHECK_TRANSACTION_STATE when it
//! carries a [`TransactionListener`] (see [`super::transaction`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use rand::RngCore;
use tokio::sync::mpsc;
use twinmq_runtime::{Env, Shutdown};

use super::instance::{Callback, ClientInstance, refused, request_with};
use super::message::{Message, MessageIdGenerator, encode_batch_entry};
use super::route::TopicRoute;
use super::transaction::{TransactionListener, answer_check};
use super::{CLIENT_INNER_PRODUCER, ClientConfig, ClientError, DEFAULT_TOPIC, MessageQueue};
use crate::message::SYSFLAG_TRANSACTION_PREPARED;
use crate::remoting::properties::{self, PGROUP, TRAN_MSG, UNIQ_KEY, WAIT};
use crate::remoting::response_code::*;
use crate::remoting::{RemotingCommand, request_code};

/// How a send went, when the broker stored the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Stored (and flushed/replicated as the broker is configured).
    SendOk,
    /// Stored, not flushed in time.
    FlushDiskTimeout,
    /// Stored, the slave did not confirm in time.
    FlushSlaveTimeout,
    /// Stored, no slave to replicate to.
    SlaveNotAvailable,
}

/// What a sync send returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendResult {
    /// How it went.
    pub status: SendStatus,
    /// The producer's id (UNIQ_KEY; comma-joined for a batch).
    pub msg_id: String,
    /// The broker's id (store host + CommitLog offset; comma-joined for a batch).
    pub offset_msg_id: String,
    /// The queue it went to.
    pub queue: MessageQueue,
    /// Its index in that queue (of the first message, for a batch; the half topic's for a half
    /// message).
    pub queue_offset: i64,
    /// The transaction id the broker echoes.
    pub transaction_id: Option<String>,
}

/// Chooses the queue of an ordered message: messages with the same `arg` go to the same queue.
pub trait QueueSelector: Send + Sync {
    /// An index into `queues` (taken modulo its length).
    fn select(&self, queues: &[MessageQueue], message: &Message, arg: &str) -> usize;
}

/// Selects by a hash of the argument (RocketMQ `SelectMessageQueueByHash`, with Java's
/// `String.hashCode`), so one order id always lands in one queue.
#[derive(Debug, Clone, Copy, Default)]
pub struct SelectByKeyHash;

impl QueueSelector for SelectByKeyHash {
    fn select(&self, queues: &[MessageQueue], _message: &Message, arg: &str) -> usize {
        let hash = properties::tag_hash(arg).unsigned_abs();
        usize::try_from(hash % u64::try_from(queues.len().max(1)).unwrap_or(1)).unwrap_or(0)
    }
}

/// Which queue a send goes to.
enum Target<'a> {
    /// Round-robin, retrying elsewhere.
    Any,
    /// This queue.
    Queue(&'a MessageQueue),
    /// The selector's choice for this argument.
    Selected(&'a dyn QueueSelector, &'a str),
}

/// A producer of one group.
pub struct Producer<E: Env> {
    shared: Arc<Shared<E>>,
    shutdown: Shutdown,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

struct Shared<E: Env> {
    instance: Arc<ClientInstance<E>>,
    group: String,
    next_queue: AtomicUsize,
    ids: Mutex<MessageIdGenerator>,
    listener: Option<Arc<dyn TransactionListener>>,
}

impl<E: Env> std::fmt::Debug for Producer<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").field("group", &self.shared.group).finish_non_exhaustive()
    }
}

impl<E: Env> Producer<E> {
    /// Starts a producer of `group`: heartbeats and route refreshes run until shutdown.
    pub async fn start(env: E, config: ClientConfig, group: impl Into<String>) -> Self {
        Self::start_with(env, config, group.into(), None).await
    }

    /// Starts a producer that answers transaction checks with `listener`.
    pub(super) async fn start_with(
        env: E,
        config: ClientConfig,
        group: String,
        listener: Option<Arc<dyn TransactionListener>>,
    ) -> Self {
        let mut rng = env.rng(&format!("producer/{}/{group}", config.client_id));
        let start_index = usize::try_from(rng.next_u32()).unwrap_or(0);
        let ids = MessageIdGenerator::new(rng, env.clock().now_ms());
        let (instance, callbacks) = ClientInstance::new(env, config);
        let shared = Arc::new(Shared {
            instance,
            group,
            next_queue: AtomicUsize::new(start_index),
            ids: Mutex::new(ids),
            listener,
        });
        let shutdown = Shutdown::new();
        let tasks = vec![
            tokio::spawn(run_periodic(Arc::clone(&shared), shutdown.clone())),
            tokio::spawn(run_callbacks(Arc::clone(&shared), callbacks, shutdown.clone())),
        ];
        Self { shared, shutdown, tasks }
    }

    /// The producer group.
    pub fn group(&self) -> &str {
        &self.shared.group
    }

    /// The client's plumbing (routes, connections).
    pub fn instance(&self) -> &Arc<ClientInstance<E>> {
        &self.shared.instance
    }

    /// Sends and waits for the broker; a failed attempt is retried on another broker.
    pub async fn send(&self, message: &Message) -> Result<SendResult, ClientError> {
        self.shared.send(message, Target::Any, 0, BTreeMap::new()).await
    }

    /// Sends to one queue.
    pub async fn send_to_queue(
        &self,
        message: &Message,
        queue: &MessageQueue,
    ) -> Result<SendResult, ClientError> {
        self.shared.send(message, Target::Queue(queue), 0, BTreeMap::new()).await
    }

    /// Sends to the queue `selector` picks for `arg` (ordered messages: one arg, one queue).
    pub async fn send_selected(
        &self,
        message: &Message,
        selector: &dyn QueueSelector,
        arg: &str,
    ) -> Result<SendResult, ClientError> {
        self.shared.send(message, Target::Selected(selector, arg), 0, BTreeMap::new()).await
    }

    /// Sends without waiting for an answer (one attempt; only the write can fail).
    pub async fn send_oneway(&self, message: &Message) -> Result<(), ClientError> {
        message.validate(self.shared.instance.config().message_bytes_max)?;
        let route = self.shared.instance.publish_route(&message.topic).await?;
        let queue = self.shared.choose(&route, None)?;
        let addr = master(&route, &queue)?;
        let (request, _) = self.shared.send_request(message, &queue, 0, BTreeMap::new());
        self.shared.instance.oneway(&addr, request).await
    }

    /// Sends messages of one topic as one SEND_BATCH_MESSAGE: one queue, consecutive offsets.
    pub async fn send_batch(&self, messages: &[Message]) -> Result<SendResult, ClientError> {
        let Some(first) = messages.first() else {
            return Err(ClientError::Invalid("an empty batch".into()));
        };
        let body_bytes_max = self.shared.instance.config().message_bytes_max;
        for message in messages {
            message.validate(body_bytes_max)?;
        }
        if messages.iter().any(|m| m.topic != first.topic || m.delay_level > 0) {
            return Err(ClientError::Invalid(
                "a batch is one topic and has no delayed messages".into(),
            ));
        }
        let now_ms = self.shared.instance.env().clock().now_ms();
        let mut body = BytesMut::new();
        let mut ids = Vec::with_capacity(messages.len());
        for message in messages {
            let id = self.shared.next_id(now_ms);
            let properties = properties::encode(&message.wire_properties(&id));
            if !encode_batch_entry(&mut body, message.flag, &message.body, &properties) {
                return Err(ClientError::Invalid("a batch message is too large".into()));
            }
            ids.push(id);
        }
        let batch_id = self.shared.next_id(now_ms);
        let header_properties = properties::encode(&BTreeMap::from([
            (UNIQ_KEY.to_owned(), batch_id),
            (WAIT.to_owned(), "true".to_owned()),
        ]));
        let body = body.freeze();
        let route = self.shared.instance.publish_route(&first.topic).await?;
        let attempts = 1 + self.shared.instance.config().send_retries;
        let mut last_failed: Option<String> = None;
        let mut last_error = ClientError::NoQueue(first.topic.clone());
        for _ in 0..attempts {
            let queue = self.shared.choose(&route, last_failed.as_deref())?;
            let addr = master(&route, &queue)?;
            let request = request_with(
                request_code::SEND_BATCH_MESSAGE,
                &[
                    ("a", self.shared.group.clone()),
                    ("b", first.topic.clone()),
                    ("c", DEFAULT_TOPIC.to_owned()),
                    ("d", self.shared.instance.config().default_topic_queue_nums.to_string()),
                    ("e", queue.queue_id.to_string()),
                    ("f", "0".to_owned()),
                    ("g", now_ms.to_string()),
                    ("h", "0".to_owned()),
                    ("i", header_properties.clone()),
                    ("j", "0".to_owned()),
                    ("k", "false".to_owned()),
                    ("m", "true".to_owned()),
                    ("n", queue.broker_name.clone()),
                    ("bname", queue.broker_name.clone()),
                ],
            )
            .with_body(body.clone());
            match self.shared.await_send(&addr, request, &queue, ids.join(",")).await {
                Ok(result) => return Ok(result),
                Err(error) if error.is_retriable() => {
                    tracing::debug!(%addr, %error, "batch send failed; trying another broker");
                    last_failed = Some(queue.broker_name.clone());
                    last_error = error;
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error)
    }

    /// Sends a half message (sysFlag TRANSACTION_PREPARED, TRAN_MSG, PGROUP).
    pub(super) async fn send_half(&self, message: &Message) -> Result<SendResult, ClientError> {
        if message.delay_level > 0 {
            return Err(ClientError::Invalid("a transactional message cannot be delayed".into()));
        }
        let extra = BTreeMap::from([
            (TRAN_MSG.to_owned(), "true".to_owned()),
            (PGROUP.to_owned(), self.shared.group.clone()),
        ]);
        self.shared.send(message, Target::Any, SYSFLAG_TRANSACTION_PREPARED, extra).await
    }

    /// Leaves the group on every broker and stops the background tasks.
    pub async fn shutdown(self) {
        self.shutdown.trigger();
        for task in self.tasks {
            let _ = task.await;
        }
        let instance = &self.shared.instance;
        instance.unregister("producerGroup", &self.shared.group).await;
        instance.unregister("producerGroup", CLIENT_INNER_PRODUCER).await;
        instance.close().await;
    }
}

impl<E: Env> Shared<E> {
    fn next_id(&self, now_ms: i64) -> String {
        self.ids.lock().unwrap_or_else(std::sync::PoisonError::into_inner).next(now_ms)
    }

    /// The next queue round-robin, avoiding the broker that just failed if another has queues.
    fn choose(
        &self,
        route: &TopicRoute,
        avoid_broker: Option<&str>,
    ) -> Result<MessageQueue, ClientError> {
        let queues = &route.write_queues;
        if queues.is_empty() {
            return Err(ClientError::NoQueue(route.topic.clone()));
        }
        let start = self.next_queue.fetch_add(1, Ordering::Relaxed);
        let pick = (0..queues.len())
            .map(|i| &queues[(start + i) % queues.len()])
            .find(|q| avoid_broker.is_none_or(|avoid| q.broker_name != avoid))
            .unwrap_or(&queues[start % queues.len()]);
        Ok(pick.clone())
    }

    /// One sync send to `target`, retried on another broker when it may help.
    async fn send(
        &self,
        message: &Message,
        target: Target<'_>,
        sys_flag: i32,
        extra: BTreeMap<String, String>,
    ) -> Result<SendResult, ClientError> {
        message.validate(self.instance.config().message_bytes_max)?;
        let mut route = self.instance.publish_route(&message.topic).await?;
        let attempts = match target {
            Target::Any => 1 + self.instance.config().send_retries,
            Target::Queue(_) | Target::Selected(..) => 1,
        };
        let mut last_failed: Option<String> = None;
        let mut last_error = ClientError::NoQueue(message.topic.clone());
        for _ in 0..attempts {
            let queue = match target {
                Target::Any => self.choose(&route, last_failed.as_deref())?,
                Target::Queue(queue) => queue.clone(),
                Target::Selected(selector, arg) => {
                    let queues = &route.write_queues;
                    if queues.is_empty() {
                        return Err(ClientError::NoQueue(message.topic.clone()));
                    }
                    queues[selector.select(queues, message, arg) % queues.len()].clone()
                }
            };
            let addr = master(&route, &queue)?;
            let (request, id) = self.send_request(message, &queue, sys_flag, extra.clone());
            match self.await_send(&addr, request, &queue, id).await {
                Ok(result) => {
                    if route.borrowed {
                        // The broker has created the topic by now; learn its real route soon.
                        let _ = self.instance.refresh_route(&message.topic).await;
                    }
                    return Ok(result);
                }
                Err(error) if error.is_retriable() => {
                    tracing::debug!(%addr, %error, "send failed; trying another broker");
                    last_failed = Some(queue.broker_name.clone());
                    last_error = error;
                    if let Ok(fresh) = self.instance.publish_route(&message.topic).await {
                        route = fresh;
                    }
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error)
    }

    /// SEND_MESSAGE (10) with the long header names, as rocketmq-client-rust sends it, and the
    /// message's fresh id.
    fn send_request(
        &self,
        message: &Message,
        queue: &MessageQueue,
        sys_flag: i32,
        extra: BTreeMap<String, String>,
    ) -> (RemotingCommand, String) {
        let now_ms = self.instance.env().clock().now_ms();
        let id = self.next_id(now_ms);
        let mut wire = message.wire_properties(&id);
        wire.extend(extra);
        let request = request_with(
            request_code::SEND_MESSAGE,
            &[
                ("producerGroup", self.group.clone()),
                ("topic", message.topic.clone()),
                ("defaultTopic", DEFAULT_TOPIC.to_owned()),
                (
                    "defaultTopicQueueNums",
                    self.instance.config().default_topic_queue_nums.to_string(),
                ),
                ("queueId", queue.queue_id.to_string()),
                ("sysFlag", sys_flag.to_string()),
                ("bornTimestamp", now_ms.to_string()),
                ("flag", message.flag.to_string()),
                ("properties", properties::encode(&wire)),
                ("reconsumeTimes", "0".to_owned()),
                ("unitMode", "false".to_owned()),
                ("batch", "false".to_owned()),
                ("bname", queue.broker_name.clone()),
            ],
        )
        .with_body(message.body.clone());
        (request, id)
    }

    /// Sends one SEND request and reads the broker's answer into a [`SendResult`].
    async fn await_send(
        &self,
        addr: &str,
        request: RemotingCommand,
        queue: &MessageQueue,
        msg_id: String,
    ) -> Result<SendResult, ClientError> {
        let timeout_ms = self.instance.config().send_timeout_ms;
        let response = self.instance.request(addr, request, timeout_ms).await?;
        let status = match response.code {
            SUCCESS => SendStatus::SendOk,
            FLUSH_DISK_TIMEOUT => SendStatus::FlushDiskTimeout,
            FLUSH_SLAVE_TIMEOUT => SendStatus::FlushSlaveTimeout,
            SLAVE_NOT_AVAILABLE => SendStatus::SlaveNotAvailable,
            _ => return Err(refused(addr, &response)),
        };
        let malformed = |reason: &str| ClientError::Malformed {
            code: request_code::SEND_MESSAGE,
            reason: reason.to_owned(),
        };
        let queue_id: u32 = response
            .field("queueId")
            .and_then(|q| q.parse().ok())
            .ok_or_else(|| malformed("queueId missing"))?;
        let queue_offset: i64 = response
            .field("queueOffset")
            .and_then(|q| q.parse().ok())
            .ok_or_else(|| malformed("queueOffset missing"))?;
        let offset_msg_id =
            response.field("msgId").ok_or_else(|| malformed("msgId missing"))?.to_owned();
        Ok(SendResult {
            status,
            msg_id,
            offset_msg_id,
            queue: MessageQueue { queue_id, ..queue.clone() },
            queue_offset,
            transaction_id: response.field("transactionId").map(str::to_owned),
        })
    }

    /// HEART_BEAT's body: this client's producer groups.
    fn heartbeat_body(&self) -> serde_json::Value {
        serde_json::json!({
            "clientID": self.instance.config().client_id,
            "producerDataSet": [{"groupName": CLIENT_INNER_PRODUCER}, {"groupName": self.group}],
            "consumerDataSet": [],
            "heartbeatFingerprint": 0,
            "withoutSub": false,
        })
    }
}

/// The master address of the queue's broker.
fn master(route: &TopicRoute, queue: &MessageQueue) -> Result<String, ClientError> {
    route.master_addr(&queue.broker_name).map(str::to_owned).ok_or_else(|| {
        ClientError::NoRoute(format!("{} (no master of {})", route.topic, queue.broker_name))
    })
}

/// Heartbeats (so brokers know the group, for transaction checks) and route refreshes.
async fn run_periodic<E: Env>(shared: Arc<Shared<E>>, shutdown: Shutdown) {
    let config = shared.instance.config().clone();
    let every = |ms: u64| {
        let mut interval = tokio::time::interval(Duration::from_millis(ms.max(1)));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    };
    let mut heartbeat = every(config.heartbeat_interval_ms);
    let mut routes = every(config.route_refresh_interval_ms);
    let mut new_brokers = every(NEW_BROKER_CHECK_MS);
    // Each interval's first tick is immediate: heartbeat now, refresh routes later.
    routes.tick().await;
    let mut known = std::collections::BTreeSet::new();
    loop {
        tokio::select! {
            biased;
            () = shutdown.wait() => return,
            _ = heartbeat.tick() => {
                known = shared.instance.broker_addrs();
                shared.instance.heartbeat(&shared.heartbeat_body()).await;
            }
            _ = routes.tick() => shared.instance.refresh_routes().await,
            // Brokers learn of the producer soon after its first send to them.
            _ = new_brokers.tick() => {
                let brokers = shared.instance.broker_addrs();
                if brokers != known {
                    known = brokers;
                    shared.instance.heartbeat(&shared.heartbeat_body()).await;
                    heartbeat.reset();
                }
            }
        }
    }
}

/// How soon a producer notices a broker it has not heartbeated yet.
const NEW_BROKER_CHECK_MS: u64 = 100;

/// Answers the broker's requests: CHECK_TRANSACTION_STATE with the listener's verdict.
async fn run_callbacks<E: Env>(
    shared: Arc<Shared<E>>,
    mut callbacks: mpsc::UnboundedReceiver<Callback>,
    shutdown: Shutdown,
) {
    loop {
        let (addr, request) = tokio::select! {
            biased;
            () = shutdown.wait() => return,
            received = callbacks.recv() => match received {
                Some(received) => received,
                None => return,
            },
        };
        match (request.code, &shared.listener) {
            (request_code::CHECK_TRANSACTION_STATE, Some(listener)) => {
                match answer_check(&request, listener.as_ref(), &shared.group) {
                    Ok(answer) => {
                        if let Err(error) = shared.instance.oneway(&addr, answer).await {
                            tracing::debug!(%addr, %error, "transaction check answer lost");
                        }
                    }
                    Err(error) => tracing::warn!(%addr, %error, "bad transaction check"),
                }
            }
            (code, _) => tracing::debug!(%addr, code, "producer ignores broker request"),
        }
    }
}
