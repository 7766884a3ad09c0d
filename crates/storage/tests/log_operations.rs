//! The Kafka-layout Log's operations beyond append and read: limits, truncation, rolls by age,
//! retention, compaction and group commit.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use twinmq_runtime::{Clock, RealFs};
use twinmq_storage::{
    FlushPolicy, FlushSignal, Log, LogConfig, NewEntry, StorageError, run_flusher,
};

fn entry(payload: &[u8]) -> NewEntry<'_> {
    NewEntry { record_count: 1, timestamp_ms: 0, key: None, payload }
}

#[test]
fn refuses_oversized_entries_and_out_of_range_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path(), &small_config());
    let error = log.append(entry(&[0; 5000])).unwrap_err();
    assert!(matches!(error, StorageError::EntryTooLarge { limit: 4096, .. }), "{error}");
    log.append(entry(b"one")).unwrap();
    assert!(log.read(1, 100).unwrap().is_empty(), "a read at the log end offset is empty");
    assert!(matches!(
        log.read(2, 100),
        Err(StorageError::OffsetOutOfRange { offset: 2, start: 0, end: 1 })
    ));
}

#[test]
fn truncate_to_cuts_at_entry_boundaries_and_removes_whole_entries_holding_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path(), &small_config());
    let mut model = Vec::new();
    for i in 0..40 {
        append(&mut log, &mut model, 3, i, None, &[i as u8; 300]);
    }
    assert!(log.segment_base_offsets().len() > 2);
    log.truncate_to(31).unwrap(); // inside the entry holding 30..33: it goes whole
    model.truncate(10);
    assert_same(&log, &model);
    log.truncate_to(15).unwrap(); // exactly at a boundary
    model.truncate(5);
    assert_same(&log, &model);
    append(&mut log, &mut model, 1, 99, None, b"after truncation");
    assert_eq!(model.last().unwrap().offset, 15);
    log.flush().unwrap();
    drop(log);
    let (log, recovery) = open(dir.path(), &small_config());
    assert!(recovery.truncations.is_empty());
    assert_same(&log, &model);
}

#[test]
fn rolls_a_segment_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::system();
    let config = LogConfig { segment_ms_max: 60_000, ..small_config() };
    let (mut log, _) = Log::open(RealFs, clock.clone(), dir.path().to_owned(), config).unwrap();
    log.append(entry(b"first")).unwrap();
    log.append(entry(b"second")).unwrap();
    assert_eq!(log.segment_base_offsets(), [0]);
    clock.set_skew_ms(61_000);
    log.append(entry(b"a minute later")).unwrap();
    assert_eq!(log.segment_base_offsets(), [0, 2]);
}

#[test]
fn retention_deletes_the_oldest_sealed_segments_by_size_and_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        LogConfig { retention_bytes: Some(5_000), retention_ms: Some(1_000), ..small_config() };
    let (mut log, _) = open(dir.path(), &config);
    let mut model = Vec::new();
    for i in 0..40 {
        append(&mut log, &mut model, 1, 10_000 + i, None, &[1; 500]);
    }
    let before = log.segment_base_offsets();
    let by_size = log.apply_retention(10_039).unwrap();
    assert!(!by_size.deleted_segments.is_empty());
    assert!(
        log.size_bytes() >= 5_000 - 1_200 && log.size_bytes() <= 5_000 + 4_096,
        "{}",
        log.size_bytes()
    );
    assert_eq!(log.log_start_offset(), log.segment_base_offsets()[0]);
    assert_eq!(by_size.deleted_segments, before[..by_size.deleted_segments.len()]);
    let by_age = log.apply_retention(1_000_000).unwrap();
    assert_eq!(log.segment_base_offsets().len(), 1, "only the active segment is left: {by_age:?}");
    assert!(matches!(log.read(0, 10), Err(StorageError::OffsetOutOfRange { .. })));
    let start = log.log_start_offset();
    assert!(
        model
            .iter()
            .filter(|e| e.offset >= start)
            .all(|e| log.read(e.offset, 1).unwrap()[0].offset == e.offset)
    );
}

#[test]
fn compaction_keeps_the_newest_entry_per_key_and_preserves_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path(), &small_config());
    let mut model = Vec::new();
    for i in 0..60u8 {
        let key = [b'k', i % 5];
        let key = (i % 7 != 0).then_some(&key[..]);
        append(&mut log, &mut model, 1, i64::from(i), key, &[i; 200]);
    }
    let active_base = *log.segment_base_offsets().last().unwrap();
    let report = log.compact().unwrap();
    assert!(report.entries_removed > 0 && report.bytes_reclaimed > 0, "{report:?}");
    let expected: Vec<ModelEntry> = model
        .iter()
        .filter(|e| {
            e.offset >= active_base
                || e.key.as_ref().is_none_or(|k| {
                    model.iter().rev().find(|n| n.key.as_ref() == Some(k)).unwrap().offset
                        == e.offset
                })
        })
        .cloned()
        .collect();
    let compacted = read_all(&log);
    assert_eq!(
        compacted.iter().map(|e| e.offset).collect::<Vec<_>>(),
        expected.iter().map(|e| e.offset).collect::<Vec<_>>()
    );
    assert!(compacted.iter().zip(&expected).all(|(e, m)| m.matches(e)));
    drop(log);
    let (log, recovery) = open(dir.path(), &small_config());
    assert!(recovery.truncations.is_empty(), "{recovery:?}");
    assert_eq!(read_all(&log).len(), expected.len());
}

#[test]
fn segments_compaction_empties_are_deleted_and_the_log_reopens_alike() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path(), &small_config());
    let mut model = Vec::new();
    for i in 0..60u8 {
        append(&mut log, &mut model, 1, i64::from(i), Some(&b"only"[..]), &[i; 200]);
    }
    let segments_before = log.segment_base_offsets().len();
    assert!(segments_before > 2);
    let report = log.compact().unwrap();
    assert_eq!(log.segment_base_offsets().len(), 1, "every sealed segment emptied: {report:?}");
    let start = log.log_start_offset();
    assert_eq!(start, *log.segment_base_offsets().first().unwrap());
    let newest = read_all(&log).last().unwrap().offset;
    assert_eq!(newest, 59);
    drop(log);
    let (log, recovery) = open(dir.path(), &small_config());
    assert!(recovery.removed.is_empty(), "no empty file left to take for damage: {recovery:?}");
    assert_eq!(log.log_start_offset(), start, "the log starts where it started before the reopen");
    assert_eq!(read_all(&log).last().unwrap().offset, 59);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_makes_every_concurrent_append_durable() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        LogConfig { segment_bytes_max: 1 << 20, entry_bytes_max: 1 << 16, ..small_config() };
    let (log, _) = Log::open(RealFs, Clock::system(), dir.path().to_owned(), config).unwrap();
    let watermark = log.durable_watermark();
    let log = Arc::new(Mutex::new(log));
    let signal = FlushSignal::new();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let flusher = tokio::spawn(run_flusher(
        RealFs,
        Arc::clone(&log),
        FlushPolicy::Sync,
        signal.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    let mut appenders = Vec::new();
    for i in 0..50u8 {
        let (log, signal, watermark) = (Arc::clone(&log), signal.clone(), watermark.clone());
        appenders.push(tokio::spawn(async move {
            let appended = log
                .lock()
                .unwrap()
                .append(NewEntry {
                    record_count: 1,
                    timestamp_ms: 0,
                    key: None,
                    payload: &[i; 100],
                })
                .unwrap();
            signal.request();
            watermark.wait_for(appended.log_end_offset).await.unwrap();
            appended.offset_base
        }));
    }
    let mut offsets = Vec::new();
    for appender in appenders {
        offsets.push(appender.await.unwrap());
    }
    offsets.sort_unstable();
    assert_eq!(offsets, (0..50).collect::<Vec<u64>>());
    assert_eq!(watermark.position(), 50);
    stop.send(()).unwrap();
    flusher.await.unwrap().unwrap();
}
