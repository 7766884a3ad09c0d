//! Request codes (apache/rocketmq `RequestCode`) twinmq's nameserver and broker serve or send.

/// Send one message, long header names.
pub const SEND_MESSAGE: i32 = 10;
/// Pull messages of one queue (long polling).
pub const PULL_MESSAGE: i32 = 11;
/// A group's committed offset of one queue.
pub const QUERY_CONSUMER_OFFSET: i32 = 14;
/// Commit a group's offset of one queue (always oneway from the client).
pub const UPDATE_CONSUMER_OFFSET: i32 = 15;
/// Create or update a topic on a broker.
pub const UPDATE_AND_CREATE_TOPIC: i32 = 17;
/// The queue offset of the first message stored at or after a time.
pub const SEARCH_OFFSET_BY_TIMESTAMP: i32 = 29;
/// A queue's max offset.
pub const GET_MAX_OFFSET: i32 = 30;
/// A queue's min offset.
pub const GET_MIN_OFFSET: i32 = 31;
/// A client's producers and consumers (with subscriptions).
pub const HEART_BEAT: i32 = 34;
/// A client leaves a group.
pub const UNREGISTER_CLIENT: i32 = 35;
/// A consumer hands back a message it failed to consume (retry / DLQ).
pub const CONSUMER_SEND_MSG_BACK: i32 = 36;
/// Commit or roll back a half message.
pub const END_TRANSACTION: i32 = 37;
/// The client ids of a consumer group.
pub const GET_CONSUMER_LIST_BY_GROUP: i32 = 38;
/// Broker → producer: resolve an unresolved half message.
pub const CHECK_TRANSACTION_STATE: i32 = 39;
/// Broker → consumers: the group's membership changed; rebalance.
pub const NOTIFY_CONSUMER_IDS_CHANGED: i32 = 40;
/// Lock queues for an orderly consumer.
pub const LOCK_BATCH_MQ: i32 = 41;
/// Unlock queues.
pub const UNLOCK_BATCH_MQ: i32 = 42;
/// A broker registers (with its topics) with a nameserver.
pub const REGISTER_BROKER: i32 = 103;
/// A broker leaves a nameserver.
pub const UNREGISTER_BROKER: i32 = 104;
/// The route (queues per broker, broker addresses) of a topic.
pub const GET_ROUTEINFO_BY_TOPIC: i32 = 105;
/// Every cluster and broker a nameserver knows.
pub const GET_BROKER_CLUSTER_INFO: i32 = 106;
/// A broker announces one new topic to a nameserver.
pub const REGISTER_TOPIC_IN_NAMESRV: i32 = 217;
/// Send one message, one-letter header names.
pub const SEND_MESSAGE_V2: i32 = 310;
/// Send a batch of messages to one queue.
pub const SEND_BATCH_MESSAGE: i32 = 320;
/// Every topic's configuration (a slave copies its master's).
pub const GET_ALL_TOPIC_CONFIG: i32 = 21;
/// Every committed consumer offset (a slave copies its master's).
pub const GET_ALL_CONSUMER_OFFSET: i32 = 43;
/// Pull for the lite pull consumer.
pub const LITE_PULL_MESSAGE: i32 = 361;
