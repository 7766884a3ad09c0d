//! Crash recovery of the Kafka-layout Log: cut the last segment at every byte of its last
//! entries, and flip every bit of its last entry; reopen must keep exactly the whole, valid
//! entries before the damage, report the cut, and carry on appending.

mod common;

use std::path::Path;

use common::*;
use twinmq_runtime::{File, Fs, OpenMode, RealFs};

fn build(dir: &Path) -> (Vec<ModelEntry>, u64) {
    let config = small_config();
    let (mut log, _) = open(dir, &config);
    let mut model = Vec::new();
    for i in 0..30u32 {
        let payload: Vec<u8> =
            (0..(100 + i * 37) as usize).map(|b| (b as u8) ^ (i as u8)).collect();
        let key = format!("key-{}", i % 4);
        append(
            &mut log,
            &mut model,
            1 + i % 3,
            1_000 + i64::from(i),
            Some(key.as_bytes()),
            &payload,
        );
    }
    log.flush().unwrap();
    let active = *log.segment_base_offsets().last().unwrap();
    (model, active)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Byte ranges of the entries of the active segment, from the model.
fn active_entries(model: &[ModelEntry], active: u64) -> Vec<(usize, u64, u64)> {
    let mut position = 0;
    let mut ranges = Vec::new();
    for (index, entry) in model.iter().enumerate().filter(|(_, e)| e.offset >= active) {
        let size = 34 + entry.key.as_ref().map_or(0, Vec::len) as u64 + entry.payload.len() as u64;
        ranges.push((index, position, size));
        position += size;
    }
    ranges
}

fn reopen_and_check(dir: &Path, model: &[ModelEntry], expect_whole: usize, expect_cut: bool) {
    let config = small_config();
    let (mut log, recovery) = open(dir, &config);
    assert_eq!(!recovery.truncations.is_empty(), expect_cut, "recovery: {recovery:?}");
    assert_same(&log, &model[..expect_whole]);
    // Appends continue at the right offset, and a further reopen is clean.
    let mut continued = model[..expect_whole].to_vec();
    append(&mut log, &mut continued, 2, 5_000, None, b"after recovery");
    log.flush().unwrap();
    drop(log);
    let (log, recovery) = open(dir, &config);
    assert!(recovery.is_clean(), "second open repaired again: {recovery:?}");
    assert_same(&log, &continued);
}

#[test]
fn cutting_the_last_segment_at_every_byte_keeps_exactly_the_whole_entries() {
    let original = tempfile::tempdir().unwrap();
    let (model, active) = build(original.path());
    let ranges = active_entries(&model, active);
    let last_three = &ranges[ranges.len().saturating_sub(3)..];
    let segment_name = format!("{active:020}.log");
    let original_bytes = std::fs::read(original.path().join(&segment_name)).unwrap();
    for &(index, start, size) in last_three {
        for cut in start..start + size {
            let scratch = tempfile::tempdir().unwrap();
            copy_dir(original.path(), scratch.path());
            let file =
                RealFs.open(&scratch.path().join(&segment_name), OpenMode::ReadWrite).unwrap();
            file.set_len(cut).unwrap();
            drop(file);
            reopen_and_check(
                scratch.path(),
                &model,
                index,
                torn_bytes_visible(&original_bytes, start, cut),
            );
        }
    }
}

/// Whether a tail cut at `cut` leaves any non-zero byte of the entry at `start`: a torn write
/// that left only zeros is indistinguishable from no write at all, and needs no report.
fn torn_bytes_visible(bytes: &[u8], start: u64, cut: u64) -> bool {
    bytes[start as usize..cut as usize].iter().any(|b| *b != 0)
}

#[test]
fn zeroing_the_tail_like_a_lost_unsynced_write_keeps_exactly_the_whole_entries() {
    let original = tempfile::tempdir().unwrap();
    let (model, active) = build(original.path());
    let ranges = active_entries(&model, active);
    let &(index, start, size) = ranges.last().unwrap();
    let segment_name = format!("{active:020}.log");
    let original_bytes = std::fs::read(original.path().join(&segment_name)).unwrap();
    for cut in (start..start + size).step_by(7) {
        let scratch = tempfile::tempdir().unwrap();
        copy_dir(original.path(), scratch.path());
        let file = RealFs.open(&scratch.path().join(&segment_name), OpenMode::ReadWrite).unwrap();
        file.write_all_at(cut, &vec![0; (start + size - cut) as usize]).unwrap();
        drop(file);
        reopen_and_check(
            scratch.path(),
            &model,
            index,
            torn_bytes_visible(&original_bytes, start, cut),
        );
    }
}

#[test]
fn a_flipped_bit_anywhere_in_the_last_entry_cuts_it_and_keeps_the_rest() {
    let original = tempfile::tempdir().unwrap();
    let (model, active) = build(original.path());
    let ranges = active_entries(&model, active);
    let &(index, start, size) = ranges.last().unwrap();
    let segment_name = format!("{active:020}.log");
    // Every bit of the header and key, then every 13th bit of the payload.
    for bit in (0..size * 8).filter(|bit| *bit < 48 * 8 || bit % 13 == 0) {
        let scratch = tempfile::tempdir().unwrap();
        copy_dir(original.path(), scratch.path());
        let path = scratch.path().join(&segment_name);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[(start + bit / 8) as usize] ^= 1 << (bit % 8);
        std::fs::write(&path, bytes).unwrap();
        reopen_and_check(scratch.path(), &model, index, true);
    }
}
