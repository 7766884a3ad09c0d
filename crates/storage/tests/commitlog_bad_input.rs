//! A RocketMQ-layout store directory with damage no crash makes: garbage files, empty files,
//! consume queues pointing past the CommitLog, a torn checkpoint. Open repairs and reports, or
//! refuses naming the file; it never panics.

mod store_common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use store_common::*;
use twinmq_runtime::{Clock, RealFs};
use twinmq_storage::{
    FlushPolicy, FlushSignal, MessageStore, NewMessage, StorageError, run_flusher,
};

fn filled(dir: &Path, count: u32) -> Vec<ModelMessage> {
    let (mut store, _) = open(dir, &small_config());
    let mut model = Vec::new();
    for i in 0..count {
        put(&mut store, &mut model, &[("T".into(), i % 2, 0, None, vec![i as u8; 1500])]);
    }
    store.close().unwrap();
    model
}

fn commitlog_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> =
        std::fs::read_dir(dir.join("commitlog")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

#[test]
fn a_commitlog_file_of_garbage_is_cut_to_empty_with_a_report() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("commitlog")).unwrap();
    let garbage: Vec<u8> =
        (0..16 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    std::fs::write(dir.path().join("commitlog/00000000000000000000"), garbage).unwrap();
    std::fs::write(dir.path().join("commitlog/notes.txt"), b"not ours").unwrap();
    let (store, recovery) = open(dir.path(), &small_config());
    assert_eq!(recovery.truncations.len(), 1, "{recovery:?}");
    assert_eq!(recovery.unknown.len(), 1, "{recovery:?}");
    assert_eq!(store.commit_log().max_physical_offset(), 0);
}

#[test]
fn an_empty_last_file_is_a_fresh_file_and_an_empty_earlier_file_is_refused_by_name() {
    for which in ["first", "middle", "last"] {
        let dir = tempfile::tempdir().unwrap();
        let model = filled(dir.path(), 40);
        let files = commitlog_files(dir.path());
        assert!(files.len() >= 3);
        let victim = match which {
            "first" => files[0].clone(),
            "middle" => files[1].clone(),
            _ => files.last().unwrap().clone(),
        };
        std::fs::write(&victim, b"").unwrap();
        let opened =
            MessageStore::open(RealFs, Clock::system(), dir.path().to_owned(), small_config());
        if which == "last" {
            let (store, recovery) = opened.unwrap();
            let base: u64 = victim.file_name().unwrap().to_str().unwrap().parse().unwrap();
            let survivors: Vec<ModelMessage> =
                model.iter().filter(|m| m.physical_offset < base).cloned().collect();
            assert!(recovery.consume_queue_entries_cut > 0, "{recovery:?}");
            assert_same(&store, &survivors);
        } else {
            let error = opened.unwrap_err();
            assert!(matches!(error, StorageError::Corrupt { .. }), "{which}: {error}");
            assert!(
                error.to_string().contains(victim.file_name().unwrap().to_str().unwrap()),
                "{error}"
            );
        }
    }
}

#[test]
fn a_consume_queue_pointing_past_the_commitlog_is_cut_with_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let model = filled(dir.path(), 6);
    let queue_file = dir.path().join("consumequeue/T/0/00000000000000000000");
    let mut bytes = std::fs::read(&queue_file).unwrap();
    let bogus: Vec<u8> =
        [10_000_000u64.to_be_bytes().as_slice(), &100u32.to_be_bytes(), &0u64.to_be_bytes()]
            .concat();
    bytes[3 * 20..4 * 20].copy_from_slice(&bogus);
    std::fs::write(&queue_file, bytes).unwrap();
    let (store, recovery) = open(dir.path(), &small_config());
    assert_eq!(recovery.consume_queue_entries_cut, 1, "{recovery:?}");
    assert_same(&store, &model);
}

#[test]
fn a_torn_checkpoint_means_redispatch_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let model = filled(dir.path(), 10);
    std::fs::write(dir.path().join("checkpoint"), [7u8; 11]).unwrap();
    std::fs::remove_dir_all(dir.path().join("consumequeue")).unwrap();
    let (store, recovery) = open(dir.path(), &small_config());
    assert_eq!(recovery.redispatched, 10, "{recovery:?}");
    assert_same(&store, &model);
}

#[test]
fn misnamed_commitlog_files_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 40);
    let files = commitlog_files(dir.path());
    let wrong = dir.path().join("commitlog/00000000000000000100");
    std::fs::rename(&files[1], &wrong).unwrap();
    let error = MessageStore::open(RealFs, Clock::system(), dir.path().to_owned(), small_config())
        .unwrap_err();
    assert!(error.to_string().contains("00000000000000000100"), "{error}");
}

#[test]
fn bad_messages_are_refused_without_touching_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = open(dir.path(), &small_config());
    for topic in ["", "a/b", "../up", &"x".repeat(200)] {
        let error = store
            .put_message(NewMessage { topic, queue_id: 0, tag_hash: 0, keys: None, body: b"x" })
            .unwrap_err();
        assert!(matches!(error, StorageError::Refused(_)), "{topic:?}: {error}");
    }
    let error = store
        .put_message(NewMessage {
            topic: "T",
            queue_id: 0,
            tag_hash: 0,
            keys: None,
            body: &[0; 9000],
        })
        .unwrap_err();
    assert!(matches!(error, StorageError::EntryTooLarge { .. }), "{error}");
    assert_eq!(store.commit_log().max_physical_offset(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_makes_every_concurrent_put_durable() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), &small_config());
    let watermark = store.durable_watermark();
    let store = Arc::new(Mutex::new(store));
    let signal = FlushSignal::new();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let flusher = tokio::spawn(run_flusher(
        RealFs,
        Arc::clone(&store),
        FlushPolicy::Sync,
        signal.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    let mut putters = Vec::new();
    for i in 0..50u8 {
        let (store, signal, watermark) = (Arc::clone(&store), signal.clone(), watermark.clone());
        putters.push(tokio::spawn(async move {
            let placed = store
                .lock()
                .unwrap()
                .put_message(NewMessage {
                    topic: "T",
                    queue_id: 0,
                    tag_hash: 0,
                    keys: None,
                    body: &[i; 700],
                })
                .unwrap();
            signal.request();
            watermark.wait_for(placed.position_end).await.unwrap();
            placed.queue_offset
        }));
    }
    let mut offsets = Vec::new();
    for putter in putters {
        offsets.push(putter.await.unwrap());
    }
    offsets.sort_unstable();
    assert_eq!(offsets, (0..50).collect::<Vec<u64>>());
    assert_eq!(watermark.position(), store.lock().unwrap().commit_log().max_physical_offset());
    stop.send(()).unwrap();
    flusher.await.unwrap().unwrap();
}
