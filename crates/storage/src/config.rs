//! Configuration of the two layouts. Every limit is named with its unit.

/// When appended bytes are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Group commit: an append is durable after the next fsync, which covers every append made
    /// while the previous one ran (Kafka `flush.messages=1`; RocketMQ `SYNC_FLUSH`).
    Sync,
    /// Background flush every `interval_ms`, or sooner once `bytes` are unsynced; an append is
    /// acknowledged before it is durable (Kafka's default; RocketMQ `ASYNC_FLUSH`).
    Async {
        /// Longest time appended bytes stay unsynced, in milliseconds.
        interval_ms: u64,
        /// Unsynced bytes that trigger a flush before the interval ends.
        bytes: u64,
    },
}

impl FlushPolicy {
    /// RocketMQ's `ASYNC_FLUSH` interval (500 ms), with at most 256 MiB left unsynced between
    /// two flushes (Kafka's own default never fsyncs and leaves it to the OS).
    pub const ASYNC_DEFAULT: Self = Self::Async { interval_ms: 500, bytes: 256 << 20 };
}

/// Configuration of a Kafka-layout [`crate::Log`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A segment is rolled before it would exceed this many bytes (Kafka `segment.bytes`).
    pub segment_bytes_max: u64,
    /// A segment older than this is rolled at the next append (Kafka `segment.ms`).
    pub segment_ms_max: i64,
    /// Bytes of entries between two sparse index entries (Kafka `index.interval.bytes`).
    pub index_interval_bytes: u64,
    /// Size of each segment's preallocated offset index file (Kafka `segment.index.bytes`).
    pub index_bytes_max: u64,
    /// Delete the oldest segments while the log is larger than this (Kafka `retention.bytes`).
    pub retention_bytes: Option<u64>,
    /// Delete segments whose newest entry is older than this (Kafka `retention.ms`).
    pub retention_ms: Option<i64>,
    /// Largest single entry accepted, in bytes (Kafka `max.message.bytes`).
    pub entry_bytes_max: u64,
    /// When appends become durable.
    pub flush: FlushPolicy,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes_max: 1 << 30,
            segment_ms_max: 7 * 24 * 3_600_000,
            index_interval_bytes: 4096,
            index_bytes_max: 10 << 20,
            retention_bytes: None,
            retention_ms: Some(7 * 24 * 3_600_000),
            entry_bytes_max: 1 << 20,
            flush: FlushPolicy::ASYNC_DEFAULT,
        }
    }
}

/// Configuration of a RocketMQ-layout [`crate::CommitLog`] and its consume queues and index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitLogConfig {
    /// Size of each preallocated commitlog file (RocketMQ `mappedFileSizeCommitLog`, 1 GiB).
    pub file_bytes: u64,
    /// Entries per consume queue file (RocketMQ `mappedFileSizeConsumeQueue` / 20: 300,000).
    pub consume_queue_entries_per_file: u64,
    /// Hash slots per index file (RocketMQ `maxHashSlotNum`: 5,000,000).
    pub index_slots: u32,
    /// Entries per index file (RocketMQ `maxIndexNum`: 20,000,000).
    pub index_entries_max: u32,
    /// Largest single message accepted, in bytes (RocketMQ `maxMessageSize`, 4 MiB).
    pub entry_bytes_max: u64,
    /// When appends become durable.
    pub flush: FlushPolicy,
}

impl Default for CommitLogConfig {
    fn default() -> Self {
        Self {
            file_bytes: 1 << 30,
            consume_queue_entries_per_file: 300_000,
            index_slots: 5_000_000,
            index_entries_max: 20_000_000,
            entry_bytes_max: 4 << 20,
            flush: FlushPolicy::ASYNC_DEFAULT,
        }
    }
}
