//! twinmq's own RocketMQ client: producers (plain, ordered, batched, delayed, transactional)
//! and consumers (pull, push in clustering or broadcasting mode, concurrent or orderly), written
//! against the [`twinmq_runtime::Env`] seam so the same code runs on real sockets, in the turmoil
//! simulator and in the load generator. It sends what rocketmq-client-rust sends on the wire
//! (research/rocketmq-wire.md); behaviour follows Apache RocketMQ's Java client.
//!
//! - [`instance`]: the shared plumbing (RocketMQ `MQClientInstance`): pooled connections per
//!   broker address, request timeouts, routes, heartbeats, broker callbacks.
//! - [`route`]: topic routes from GET_ROUTEINFO_BY_TOPIC, as queues.
//! - [`message`]: messages going out and coming back.
//! - [`producer`], [`transaction`]: sending.
//! - [`pull`], [`push`], [`rebalance`], [`offset`]: consuming.

pub mod instance;
pub mod message;
pub mod offset;
pub mod producer;
pub mod pull;
pub mod push;
pub mod rebalance;
pub mod route;
pub mod transaction;

use serde::{Deserialize, Serialize};

pub use instance::ClientInstance;
pub use message::{Message, ReceivedMessage};
pub use producer::{Producer, QueueSelector, SelectByKeyHash, SendResult, SendStatus};
pub use pull::{PullConsumer, PullResult, PullStatus};
pub use push::{
    ConsumeFrom, ConsumeResult, MessageHandler, MessageModel, PushConsumer, PushConsumerConfig,
};
pub use rebalance::allocate_averagely;
pub use route::TopicRoute;
pub use transaction::{LocalTransactionState, TransactionListener, TransactionProducer};

/// The producer group every client instance also declares (as the reference clients do).
pub const CLIENT_INNER_PRODUCER: &str = "CLIENT_INNER_PRODUCER";
/// The topic whose route a producer borrows for a topic the nameservers do not know yet.
pub const DEFAULT_TOPIC: &str = "TBW102";

/// Settings shared by every producer and consumer (RocketMQ `ClientConfig`).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `namesrvAddr`: nameservers, asked in order until one answers.
    pub namesrv: Vec<String>,
    /// `clientId`: unique per client instance (`ip@instance`); group members are told apart by it.
    pub client_id: String,
    /// `mqClientApiTimeout`: how long an ordinary request may take.
    pub request_timeout_ms: u64,
    /// `sendMsgTimeout`: how long one send attempt may take.
    pub send_timeout_ms: u64,
    /// `retryTimesWhenSendFailed`: extra attempts of a sync send, each on another broker if any.
    pub send_retries: u32,
    /// `defaultTopicQueueNums`: queues of a topic the broker creates on first send.
    pub default_topic_queue_nums: u32,
    /// `pollNameServerInterval`: how often cached routes are fetched again.
    pub route_refresh_interval_ms: u64,
    /// `heartbeatBrokerInterval`: how often every known broker hears from this client.
    pub heartbeat_interval_ms: u64,
    /// `maxMessageSize`: the largest body a producer sends (bigger is refused before sending).
    pub message_bytes_max: usize,
}

impl ClientConfig {
    /// RocketMQ's defaults: 3 s requests and sends, 2 send retries, 4 queues, routes every 30 s,
    /// heartbeats every 30 s, 4 MiB messages.
    pub fn new(namesrv: Vec<String>, client_id: impl Into<String>) -> Self {
        Self {
            namesrv,
            client_id: client_id.into(),
            request_timeout_ms: 3_000,
            send_timeout_ms: 3_000,
            send_retries: 2,
            default_topic_queue_nums: 4,
            route_refresh_interval_ms: 30_000,
            heartbeat_interval_ms: 30_000,
            message_bytes_max: 4 * 1024 * 1024,
        }
    }
}

/// A queue of a topic on one broker group (RocketMQ `MessageQueue`); ordered by topic, broker,
/// queue id, as the allocation strategies sort them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageQueue {
    /// The topic.
    pub topic: String,
    /// The broker group holding it.
    pub broker_name: String,
    /// The queue's id on that broker.
    pub queue_id: u32,
}

impl std::fmt::Display for MessageQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}#{}", self.topic, self.broker_name, self.queue_id)
    }
}

/// Why a client operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// No connection could be made to an address.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The address.
        addr: String,
        /// The I/O error.
        reason: String,
    },
    /// A request got no answer in time.
    #[error("request {code} to {addr} timed out after {timeout_ms} ms")]
    Timeout {
        /// The address.
        addr: String,
        /// The request code.
        code: i32,
        /// The timeout.
        timeout_ms: u64,
    },
    /// The connection closed before the answer came.
    #[error("connection to {addr} closed during request {code}")]
    Closed {
        /// The address.
        addr: String,
        /// The request code.
        code: i32,
    },
    /// The server answered with an error code.
    #[error("{addr} answered {code}: {remark}")]
    Refused {
        /// The address.
        addr: String,
        /// The response code.
        code: i32,
        /// The server's remark.
        remark: String,
    },
    /// No nameserver knows a route for the topic.
    #[error("no route for topic {0}")]
    NoRoute(String),
    /// The route has no queue to use.
    #[error("topic {0} has no usable queue")]
    NoQueue(String),
    /// A reply could not be understood.
    #[error("malformed reply to request {code}: {reason}")]
    Malformed {
        /// The request code.
        code: i32,
        /// What was wrong.
        reason: String,
    },
    /// The caller asked for something the client cannot do.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The client was shut down.
    #[error("client shut down")]
    ShutDown,
}

impl ClientError {
    /// Whether another broker (or a later attempt) might succeed where this failed.
    pub fn is_retriable(&self) -> bool {
        use crate::remoting::response_code::*;
        match self {
            Self::Connect { .. } | Self::Timeout { .. } | Self::Closed { .. } => true,
            Self::NoRoute(_) | Self::NoQueue(_) => true,
            Self::Refused { code, .. } => matches!(
                *code,
                SYSTEM_ERROR
                    | SYSTEM_BUSY
                    | SERVICE_NOT_AVAILABLE
                    | TOPIC_NOT_EXIST
                    | NO_PERMISSION
            ),
            Self::Malformed { .. } | Self::Invalid(_) | Self::ShutDown => false,
        }
    }
}
