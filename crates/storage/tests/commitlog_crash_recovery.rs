//! Crash recovery of the RocketMQ-layout store: cut or zero the last CommitLog file at every
//! byte of its last messages, flip every bit of the last message, lose the derived files; open
//! must keep exactly the whole messages before the damage, reachable through their consume
//! queues, and carry on with the right queue offsets.

mod store_common;

use std::path::Path;

use store_common::*;
use twinmq_runtime::{File, Fs, OpenMode, RealFs};

fn build(dir: &Path) -> Vec<ModelMessage> {
    let (mut store, _) = open(dir, &small_config());
    let mut model = Vec::new();
    for i in 0..40u32 {
        let body: Vec<u8> =
            (0..(200 + i * 41) as usize % 1500).map(|b| (b as u8) ^ (i as u8)).collect();
        put(
            &mut store,
            &mut model,
            &[(
                format!("T{}", i % 2),
                i % 3,
                u64::from(i % 4),
                Some(format!("k{i}").into_bytes()),
                body,
            )],
        );
    }
    store.checkpoint().unwrap();
    store.flush().unwrap();
    model
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn last_file(dir: &Path) -> (std::path::PathBuf, u64) {
    let mut files: Vec<_> =
        std::fs::read_dir(dir.join("commitlog")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let last = files.pop().unwrap();
    let base = last.file_name().unwrap().to_str().unwrap().parse().unwrap();
    (last, base)
}

fn size_of(message: &ModelMessage) -> u64 {
    34 + message.keys.as_ref().map_or(0, Vec::len) as u64
        + 22
        + message.topic.len() as u64
        + message.body.len() as u64
}

fn reopen_and_check(dir: &Path, model: &[ModelMessage], whole: usize, expect_cut: bool) {
    let (mut store, recovery) = open(dir, &small_config());
    assert_eq!(!recovery.truncations.is_empty(), expect_cut, "{recovery:?}");
    assert_same(&store, &model[..whole]);
    let mut continued = model[..whole].to_vec();
    put(&mut store, &mut continued, &[("T0".into(), 0, 9, None, b"after recovery".to_vec())]);
    let expected_offset =
        model[..whole].iter().filter(|m| m.topic == "T0" && m.queue_id == 0).count() as u64;
    assert_eq!(continued.last().unwrap().queue_offset, expected_offset);
    store.close().unwrap();
    let (store, recovery) = open(dir, &small_config());
    assert!(recovery.truncations.is_empty() && recovery.clean_shutdown, "{recovery:?}");
    assert_same(&store, &continued);
}

#[test]
fn cutting_or_zeroing_the_last_file_at_every_byte_keeps_exactly_the_whole_messages() {
    let original = tempfile::tempdir().unwrap();
    let model = build(original.path());
    let (last, base) = last_file(original.path());
    let relative = last.strip_prefix(original.path()).unwrap().to_owned();
    let original_bytes = std::fs::read(&last).unwrap();
    let tail: Vec<usize> = (0..model.len()).filter(|i| model[*i].physical_offset >= base).collect();
    for &index in &tail[tail.len().saturating_sub(3)..] {
        let start = model[index].physical_offset - base;
        for cut in start..start + size_of(&model[index]) {
            let visible = original_bytes[start as usize..cut as usize].iter().any(|b| *b != 0);
            for zero in [false, true] {
                let scratch = tempfile::tempdir().unwrap();
                copy_tree(original.path(), scratch.path());
                let file =
                    RealFs.open(&scratch.path().join(&relative), OpenMode::ReadWrite).unwrap();
                if zero {
                    let len = file.len().unwrap();
                    file.write_all_at(cut, &vec![0; (len - cut) as usize]).unwrap();
                } else {
                    file.set_len(cut).unwrap();
                }
                drop(file);
                reopen_and_check(scratch.path(), &model, index, visible);
            }
        }
    }
}

#[test]
fn a_flipped_bit_in_the_last_message_cuts_it_and_keeps_the_rest() {
    let original = tempfile::tempdir().unwrap();
    let model = build(original.path());
    let (last, base) = last_file(original.path());
    let relative = last.strip_prefix(original.path()).unwrap().to_owned();
    let index = model.len() - 1;
    let start = model[index].physical_offset - base;
    for bit in (0..size_of(&model[index]) * 8).filter(|bit| *bit < 64 * 8 || bit % 11 == 0) {
        let scratch = tempfile::tempdir().unwrap();
        copy_tree(original.path(), scratch.path());
        let path = scratch.path().join(&relative);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[(start + bit / 8) as usize] ^= 1 << (bit % 8);
        std::fs::write(&path, bytes).unwrap();
        reopen_and_check(scratch.path(), &model, index, true);
    }
}

#[test]
fn lost_consume_queues_index_and_checkpoint_are_rebuilt_by_redispatch() {
    for lost in ["consumequeue", "index", "checkpoint", "all"] {
        let dir = tempfile::tempdir().unwrap();
        let model = build(dir.path());
        for name in ["consumequeue", "index", "checkpoint"] {
            if lost == name || lost == "all" {
                let path = dir.path().join(name);
                if path.is_dir() {
                    std::fs::remove_dir_all(&path).unwrap();
                } else {
                    std::fs::remove_file(&path).unwrap();
                }
            }
        }
        let (store, recovery) = open(dir.path(), &small_config());
        if lost != "index" {
            assert_eq!(recovery.redispatched, model.len() as u64, "{lost}: {recovery:?}");
        }
        assert_same(&store, &model);
        for message in &model {
            let key = message.keys.as_ref().unwrap();
            let found = store.query_by_key(&message.topic, key, 10, 0, i64::MAX).unwrap();
            assert_eq!(found.len(), 1, "{lost}: key {}", String::from_utf8_lossy(key));
        }
    }
}
