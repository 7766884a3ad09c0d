//! Response codes (apache/rocketmq `ResponseCode`) twinmq answers with.

/// Done.
pub const SUCCESS: i32 = 0;
/// An error inside the server.
pub const SYSTEM_ERROR: i32 = 1;
/// The server is overloaded.
pub const SYSTEM_BUSY: i32 = 2;
/// The request code is not served here.
pub const REQUEST_CODE_NOT_SUPPORTED: i32 = 3;
/// Stored, but not flushed to disk in time (SYNC_FLUSH).
pub const FLUSH_DISK_TIMEOUT: i32 = 10;
/// Stored, but no slave to replicate to (SYNC_MASTER).
pub const SLAVE_NOT_AVAILABLE: i32 = 11;
/// Stored, but the slave did not confirm in time (SYNC_MASTER).
pub const FLUSH_SLAVE_TIMEOUT: i32 = 12;
/// The message is malformed or too large.
pub const MESSAGE_ILLEGAL: i32 = 13;
/// The broker cannot serve (a slave asked to write, shutting down).
pub const SERVICE_NOT_AVAILABLE: i32 = 14;
/// The operation is not permitted (topic permissions).
pub const NO_PERMISSION: i32 = 16;
/// The topic does not exist.
pub const TOPIC_NOT_EXIST: i32 = 17;
/// A pull found nothing new before its suspend timeout.
pub const PULL_NOT_FOUND: i32 = 19;
/// A pull found only filtered-out messages: pull again from `nextBeginOffset`.
pub const PULL_RETRY_IMMEDIATELY: i32 = 20;
/// A pull's offset is outside the queue.
pub const PULL_OFFSET_MOVED: i32 = 21;
/// No committed offset (or nothing found).
pub const QUERY_NOT_FOUND: i32 = 22;
/// The subscription expression does not parse.
pub const SUBSCRIPTION_PARSE_FAILED: i32 = 23;
