//! rocketmq-client-rust, the real Rust RocketMQ client, driven against twinmq's nameserver and
//! broker processes. This library holds what the tests in `tests/` share: the client runtime,
//! started producers and push consumers that record what they receive, and bounded waits. The
//! crate is not a default workspace member because the client's dependency tree is heavy.

use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rocketmq_client_rust::{
    ClientRuntime, ClientRuntimeConfig, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus,
    ConsumeOrderlyContext, ConsumeOrderlyStatus, DefaultMQProducer, DefaultMQPushConsumer,
    MQPushConsumer, TelemetryHandle,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_queue::MessageQueue;
use rocketmq_runtime::{RuntimeConfig, RuntimeOwner};

/// How long a test waits for a condition before it fails: long enough for the client's 20 s
/// rebalance period and a 15 s parked pull, short enough to fail a hung test.
pub const CONDITION_WAIT: Duration = Duration::from_secs(90);
/// Between two looks at a condition.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// The send timeout every producer uses (ms).
const SEND_TIMEOUT_MS: u32 = 10_000;

/// Listener calls that may wait for a blocking thread (the client's default on 2 cores: 16).
const LISTENER_QUEUE_DEPTH: usize = 100_000;

/// The runtime owner every client of this test process hangs off (the client's own tests do
/// the same).
///
/// Listeners run on the runtime's metadata-io blocking lane, whose default queue (8 per core)
/// overflows on a small machine as soon as a push consumer pulls 32 messages from each of four
/// queues; a rejected listener call counts as RECONSUME_LATER and the message takes the retry
/// topic's 10 s+ detour. A deep queue keeps the happy path a happy path.
static RUNTIME_OWNER: LazyLock<RuntimeOwner> = LazyLock::new(|| {
    let mut config =
        RuntimeConfig { thread_name: "twinmq-e2e-rocketmq-client".into(), ..Default::default() };
    config.blocking_lane_policies.metadata_io.max_queue_depth = LISTENER_QUEUE_DEPTH;
    RuntimeOwner::plan(config)
        .expect("runtime configuration is valid")
        .build()
        .expect("the client runtime owner starts")
});

/// A client runtime for one producer or consumer, without telemetry. The first call installs a
/// log subscriber for the client's own log lines (`RUST_LOG=rocketmq_client_rust=info`).
pub fn client_runtime(scope: &'static str) -> Arc<ClientRuntime> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    ClientRuntime::try_new(
        RUNTIME_OWNER.root_context().component(scope),
        ClientRuntimeConfig::default(),
        TelemetryHandle::noop(),
    )
    .expect("the client runtime starts")
}

/// A started producer of `group` that finds brokers through `namesrv`.
pub async fn start_producer(namesrv: &str, group: &str) -> DefaultMQProducer {
    let mut producer = DefaultMQProducer::builder(client_runtime("producer"))
        .producer_group(group.to_owned())
        .name_server_addr(namesrv.to_owned())
        .send_msg_timeout(SEND_TIMEOUT_MS)
        .build();
    producer.start().await.expect("the producer starts");
    producer
}

/// The topic's queues a producer can send to, once the nameserver routes the topic: a topic
/// auto-created by a first send reaches the nameserver a moment later (the broker registers it
/// asynchronously, as RocketMQ's does).
pub async fn publish_queues(producer: &mut DefaultMQProducer, topic: &str) -> Vec<MessageQueue> {
    let deadline = Instant::now() + CONDITION_WAIT;
    loop {
        match producer.fetch_publish_message_queues(topic).await {
            Ok(queues) if !queues.is_empty() => return queues,
            other => assert!(
                Instant::now() < deadline,
                "no route to {topic} after {CONDITION_WAIT:?}: {other:?}"
            ),
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A message as a listener saw it, with the time it saw it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The topic the listener was given (the real topic for retried messages).
    pub topic: String,
    /// The queue it was pulled from.
    pub queue_id: i32,
    /// Its body as text.
    pub body: String,
    /// Its tag, if any.
    pub tags: Option<String>,
    /// When the producer made it (ms since the epoch, the producer's clock).
    pub born_timestamp_ms: i64,
    /// When the broker stored it in the queue it was pulled from (ms, the broker's clock).
    pub store_timestamp_ms: i64,
    /// Deliveries before this one.
    pub reconsume_times: i32,
}

impl Received {
    fn of(message: &MessageExt) -> Self {
        Self {
            topic: message.topic().to_string(),
            queue_id: message.queue_id(),
            body: message
                .body()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default(),
            tags: message.get_tags().map(|t| t.to_string()),
            born_timestamp_ms: message.born_timestamp(),
            store_timestamp_ms: message.store_timestamp(),
            reconsume_times: message.reconsume_times(),
        }
    }
}

/// What a listener does with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Consumed.
    Success,
    /// Deliver it again later (CONSUMER_SEND_MSG_BACK → %RETRY%group, then %DLQ%group).
    ReconsumeLater,
}

/// Everything one consumer's listener received, in the order it ran.
#[derive(Debug, Clone, Default)]
pub struct Inbox(Arc<Mutex<Vec<Received>>>);

impl Inbox {
    /// The messages so far.
    pub fn messages(&self) -> MutexGuard<'_, Vec<Received>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many so far.
    pub fn len(&self) -> usize {
        self.messages().len()
    }

    /// Whether nothing arrived yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bodies so far.
    pub fn bodies(&self) -> Vec<String> {
        self.messages().iter().map(|m| m.body.clone()).collect()
    }

    fn record(&self, messages: &[&MessageExt]) {
        let mut inbox = self.messages();
        inbox.extend(messages.iter().map(|m| Received::of(m)));
    }
}

/// How a consumer is set up.
#[derive(Debug, Clone, Copy)]
pub struct ConsumerOptions {
    /// An orderly listener (queues locked on the broker, one message at a time per queue).
    pub orderly: bool,
    /// What a concurrent listener answers.
    pub verdict: Verdict,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self { orderly: false, verdict: Verdict::Success }
    }
}

/// A started clustering push consumer of `group` on `topic` with the tag `expression`, reading
/// new groups from the first offset; its listener records into the returned inbox.
pub async fn start_push_consumer(
    namesrv: &str,
    group: &str,
    topic: &str,
    expression: &str,
    options: ConsumerOptions,
) -> (DefaultMQPushConsumer, Inbox) {
    let inbox = Inbox::default();
    let mut consumer = DefaultMQPushConsumer::builder(client_runtime("push-consumer"))
        .consumer_group(group.to_owned())
        .name_server_addr(namesrv.to_owned())
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .build();
    consumer.subscribe(topic, expression).await.expect("subscribe");
    let recorder = inbox.clone();
    if options.orderly {
        consumer.register_message_listener_orderly(
            move |messages: &[&MessageExt], _context: &mut ConsumeOrderlyContext| {
                recorder.record(messages);
                Ok(ConsumeOrderlyStatus::Success)
            },
        );
    } else {
        let verdict = options.verdict;
        consumer.register_message_listener_concurrently(
            move |messages: &[&MessageExt], _context: &ConsumeConcurrentlyContext| {
                recorder.record(messages);
                Ok(match verdict {
                    Verdict::Success => ConsumeConcurrentlyStatus::ConsumeSuccess,
                    Verdict::ReconsumeLater => ConsumeConcurrentlyStatus::ReconsumeLater,
                })
            },
        );
    }
    consumer.start().await.expect("the push consumer starts");
    (consumer, inbox)
}

/// Waits until `condition` holds, looking every 50 ms; fails the test with `what` and
/// `context()` after [`CONDITION_WAIT`].
pub async fn wait_until(
    what: &str,
    mut condition: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let deadline = Instant::now() + CONDITION_WAIT;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {CONDITION_WAIT:?}: {what}\n{}",
            context()
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
