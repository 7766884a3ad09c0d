//! Shared helpers for the Log tests: a model of what was appended and a small config.

#![allow(dead_code, reason = "each test file uses a different part of the helpers")]

use std::path::Path;

use twinmq_runtime::{Clock, RealFs};
use twinmq_storage::{Entry, FlushPolicy, Log, LogConfig, LogRecovery, NewEntry};

/// One appended entry as the model remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEntry {
    /// First offset.
    pub offset: u64,
    /// Records in the entry.
    pub record_count: u32,
    /// Largest timestamp.
    pub timestamp_ms: i64,
    /// Compaction key.
    pub key: Option<Vec<u8>>,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

impl ModelEntry {
    /// The offset after the entry.
    pub fn next_offset(&self) -> u64 {
        self.offset + u64::from(self.record_count)
    }

    /// Whether a read-back entry is this one, byte for byte.
    pub fn matches(&self, entry: &Entry) -> bool {
        entry.offset == self.offset
            && entry.record_count == self.record_count
            && entry.timestamp_ms == self.timestamp_ms
            && entry.key.as_deref() == self.key.as_deref()
            && entry.payload[..] == self.payload[..]
    }
}

/// Small segments and a dense index, so tests roll often.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 4096,
        index_interval_bytes: 128,
        entry_bytes_max: 4096,
        retention_ms: None,
        flush: FlushPolicy::Sync,
        ..LogConfig::default()
    }
}

/// Opens the log in `dir`.
pub fn open(dir: &Path, config: &LogConfig) -> (Log<RealFs>, LogRecovery) {
    Log::open(RealFs, Clock::system(), dir.to_owned(), config.clone()).expect("log opens")
}

/// Appends to the log and the model.
pub fn append(
    log: &mut Log<RealFs>,
    model: &mut Vec<ModelEntry>,
    record_count: u32,
    timestamp_ms: i64,
    key: Option<&[u8]>,
    payload: &[u8],
) {
    let appended =
        log.append(NewEntry { record_count, timestamp_ms, key, payload }).expect("append");
    model.push(ModelEntry {
        offset: appended.offset_base,
        record_count,
        timestamp_ms,
        key: key.map(<[u8]>::to_vec),
        payload: payload.to_vec(),
    });
}

/// Every entry of the log, read from its start in small reads.
pub fn read_all(log: &Log<RealFs>) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let batch = log.read(offset, 1).expect("read");
        assert_eq!(batch.len(), 1, "a read of 1 byte returns exactly one entry");
        offset = batch[0].next_offset();
        entries.extend(batch);
    }
    entries
}

/// Asserts the log holds exactly the model's entries.
pub fn assert_same(log: &Log<RealFs>, model: &[ModelEntry]) {
    let entries = read_all(log);
    assert_eq!(entries.len(), model.len(), "entry count");
    for (entry, expected) in entries.iter().zip(model) {
        assert!(
            expected.matches(entry),
            "entry at {} differs: {entry:?} vs {expected:?}",
            expected.offset
        );
    }
    assert_eq!(
        log.log_end_offset(),
        model.last().map_or(log.log_start_offset(), ModelEntry::next_offset)
    );
}
