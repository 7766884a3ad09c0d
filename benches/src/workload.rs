//! The storage workloads the benches and the comparison report run: the same records through the
//! Kafka layout, the RocketMQ layout and the machine's plain sequential write.

use std::path::Path;

use twinmq_runtime::{Clock, RealFs};
use twinmq_storage::{
    CommitLogConfig, FlushPolicy, Log, LogConfig, MessageStore, NewEntry, NewMessage, Result,
};

/// How often appends are made durable in a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// No fsync until the end (an async flush policy between two flushes).
    Async,
    /// One fsync per group of this many appends (a group commit of that size).
    GroupCommit(u64),
}

/// A Kafka-layout log tuned for benchmarks: 256 MiB segments.
pub fn bench_log(dir: &Path) -> Result<Log<RealFs>> {
    let config = LogConfig {
        segment_bytes_max: 256 << 20,
        entry_bytes_max: 1 << 20,
        flush: FlushPolicy::Sync,
        ..LogConfig::default()
    };
    Ok(Log::open(RealFs, Clock::system(), dir.to_owned(), config)?.0)
}

/// A RocketMQ-layout store tuned for benchmarks: 256 MiB CommitLog files, a small key index.
pub fn bench_store(dir: &Path) -> Result<MessageStore<RealFs>> {
    let config = CommitLogConfig {
        file_bytes: 256 << 20,
        index_slots: 1 << 16,
        index_entries_max: 1 << 18,
        flush: FlushPolicy::Sync,
        ..CommitLogConfig::default()
    };
    Ok(MessageStore::open(RealFs, Clock::system(), dir.to_owned(), config)?.0)
}

/// Appends `count` records of `record` bytes to `partitions` Kafka-layout logs round-robin;
/// returns the bytes of records appended.
pub fn append_logs(
    logs: &mut [Log<RealFs>],
    record: &[u8],
    count: u64,
    durability: Durability,
) -> Result<u64> {
    let partitions = logs.len() as u64;
    for i in 0..count {
        let log = &mut logs[(i % partitions) as usize];
        let entry =
            NewEntry { record_count: 1, timestamp_ms: i as i64, key: None, payload: record };
        log.append(entry)?;
        if let Durability::GroupCommit(group) = durability
            && (i + 1) % group == 0
        {
            log.flush()?;
        }
    }
    for log in logs.iter_mut() {
        log.flush()?;
    }
    Ok(count * record.len() as u64)
}

/// Appends `count` messages of `record` bytes to one RocketMQ-layout store, spread round-robin
/// over `queues` queues of one topic; returns the bytes of records appended.
pub fn append_store(
    store: &mut MessageStore<RealFs>,
    queues: u32,
    record: &[u8],
    count: u64,
    durability: Durability,
) -> Result<u64> {
    for i in 0..count {
        let message = NewMessage {
            topic: "BenchTopic",
            queue_id: (i % u64::from(queues)) as u32,
            tag_hash: 0,
            keys: None,
            body: record,
        };
        store.put_message(message)?;
        if let Durability::GroupCommit(group) = durability
            && (i + 1) % group == 0
        {
            store.flush()?;
        }
    }
    store.flush()?;
    Ok(count * record.len() as u64)
}
