//! `twinmq dump` on real data directories of both layouts, whole and damaged.

use std::process::Command;

use twinmq_e2e::twinmq_binary;
use twinmq_runtime::{Clock, RealFs};
use twinmq_storage::{CommitLogConfig, Log, LogConfig, MessageStore, NewEntry, NewMessage};

fn dump(dir: &std::path::Path) -> (Option<i32>, String) {
    let output = Command::new(twinmq_binary()).arg("dump").arg(dir).output().unwrap();
    (output.status.code(), String::from_utf8(output.stdout).unwrap())
}

#[test]
fn dumps_every_entry_of_a_partition_log_and_reports_damage() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        LogConfig { segment_bytes_max: 4096, entry_bytes_max: 1024, ..LogConfig::default() };
    let (mut log, _) = Log::open(RealFs, Clock::system(), dir.path().to_owned(), config).unwrap();
    for i in 0..20u8 {
        let entry = NewEntry {
            record_count: 2,
            timestamp_ms: 1_000 + i64::from(i),
            key: Some(b"key"),
            payload: &[i; 500],
        };
        log.append(entry).unwrap();
    }
    log.flush().unwrap();
    drop(log);

    let (code, out) = dump(dir.path());
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.matches("crc: valid").count(), 20, "{out}");
    assert!(out.contains("offset: 38 records: 2"), "{out}");
    assert!(out.contains("timestamp_ms: 1019 key: key"), "{out}");
    assert!(out.contains("relative_offset:"), "the offset index is listed too:\n{out}");
    assert!(out.contains("summary:") && out.contains("20 entries, 0 damaged"), "{out}");

    let first = dir.path().join("00000000000000000000.log");
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&first, bytes).unwrap();
    let (code, out) = dump(dir.path());
    assert_eq!(code, Some(1), "damage must fail the dump:\n{out}");
    assert!(out.contains("CORRUPT: checksum mismatch"), "{out}");
}

#[test]
fn dumps_a_commitlog_and_its_consume_queues() {
    let dir = tempfile::tempdir().unwrap();
    let config = CommitLogConfig {
        file_bytes: 64 * 1024,
        index_slots: 64,
        index_entries_max: 256,
        ..CommitLogConfig::default()
    };
    let (mut store, _) =
        MessageStore::open(RealFs, Clock::system(), dir.path().to_owned(), config).unwrap();
    for i in 0..10u32 {
        let message = NewMessage {
            topic: "Orders",
            queue_id: i % 2,
            tag_hash: 7,
            keys: Some(b"k"),
            body: b"hello",
        };
        store.put_message(message).unwrap();
        assert_eq!(i / 2, store.max_offset_in_queue("Orders", i % 2) as u32 - 1);
    }
    store.close().unwrap();
    let (code, out) = dump(dir.path());
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.matches("crc: valid").count(), 10, "{out}");
    assert_eq!(out.matches("commitlog_offset:").count(), 10, "{out}");
    assert!(out.contains("queue_offset: 4 commitlog_offset:"), "{out}");
}
