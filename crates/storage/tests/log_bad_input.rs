//! A Kafka-layout log directory with damage no crash makes: garbage, missing or lying indexes,
//! empty segments, misnamed segments. Open repairs and reports, or refuses naming the file.

mod common;

use std::path::Path;

use common::*;
use twinmq_runtime::{Clock, RealFs};
use twinmq_storage::{Log, StorageError};

fn three_segments(dir: &Path) -> Vec<ModelEntry> {
    let (mut log, _) = open(dir, &small_config());
    let mut model = Vec::new();
    for i in 0..24 {
        append(&mut log, &mut model, 1, i, Some(b"k"), &[i as u8; 400]);
    }
    log.flush().unwrap();
    assert!(log.segment_base_offsets().len() >= 3);
    model
}

fn segment_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_segment_full_of_garbage_opens_as_an_empty_log_with_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let garbage: Vec<u8> =
        (0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(dir.path().join("00000000000000000000.log"), garbage).unwrap();
    let (log, recovery) = open(dir.path(), &small_config());
    assert_eq!(recovery.truncations.len(), 1, "{recovery:?}");
    assert_eq!(recovery.truncations[0].1, 0);
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn missing_indexes_are_rebuilt_and_reads_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let model = three_segments(dir.path());
    let first = &segment_names(dir.path())[0];
    std::fs::remove_file(dir.path().join(first.replace(".log", ".index"))).unwrap();
    std::fs::remove_file(dir.path().join(first.replace(".log", ".timeindex"))).unwrap();
    let (log, recovery) = open(dir.path(), &small_config());
    assert_eq!(recovery.rebuilt_indexes.len(), 1, "{recovery:?}");
    assert_same(&log, &model);
}

#[test]
fn an_index_pointing_past_the_segment_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let model = three_segments(dir.path());
    let first = &segment_names(dir.path())[0];
    let lying: Vec<u8> = [1u32, 100, 2, 1_000_000].iter().flat_map(|v| v.to_be_bytes()).collect();
    std::fs::write(dir.path().join(first.replace(".log", ".index")), lying).unwrap();
    let (log, recovery) = open(dir.path(), &small_config());
    assert_eq!(recovery.rebuilt_indexes.len(), 1, "{recovery:?}");
    assert_same(&log, &model);
}

#[test]
fn zero_length_segments_are_dropped_when_sealed_and_kept_when_active() {
    for which in ["first", "middle", "last"] {
        let dir = tempfile::tempdir().unwrap();
        let model = three_segments(dir.path());
        let names = segment_names(dir.path());
        let victim = match which {
            "first" => &names[0],
            "middle" => &names[1],
            _ => names.last().unwrap(),
        };
        std::fs::write(dir.path().join(victim), b"").unwrap();
        let (log, recovery) = open(dir.path(), &small_config());
        let victim_base: u64 = victim.trim_end_matches(".log").parse().unwrap();
        let survivors: Vec<ModelEntry> = model
            .iter()
            .filter(|e| {
                let segment = names
                    .iter()
                    .rev()
                    .find(|n| n.trim_end_matches(".log").parse::<u64>().unwrap() <= e.offset)
                    .unwrap();
                segment != victim
            })
            .cloned()
            .collect();
        let read: Vec<u64> = {
            let mut offsets = Vec::new();
            let mut offset = log.log_start_offset();
            while let Some(entry) = log.read(offset, 1).unwrap().first() {
                offsets.push(entry.offset);
                offset = entry.next_offset();
            }
            offsets
        };
        assert_eq!(read, survivors.iter().map(|e| e.offset).collect::<Vec<_>>(), "{which}");
        if which == "last" {
            assert!(recovery.removed.is_empty());
            assert_eq!(log.log_end_offset(), victim_base);
        } else {
            assert_eq!(recovery.removed.len(), 1, "{which}: {recovery:?}");
        }
    }
}

#[test]
fn a_segment_whose_entries_precede_its_name_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    three_segments(dir.path());
    let names = segment_names(dir.path());
    std::fs::rename(dir.path().join(&names[0]), dir.path().join("00000000000000000123.log"))
        .unwrap();
    for name in [&names[1], &names[2]] {
        let _ = std::fs::remove_file(dir.path().join(name));
    }
    std::fs::write(dir.path().join("00000000000000009999.log"), b"").unwrap();
    let error =
        Log::open(RealFs, Clock::system(), dir.path().to_owned(), small_config()).unwrap_err();
    assert!(matches!(error, StorageError::Corrupt { .. }), "{error}");
    assert!(error.to_string().contains("00000000000000000123.log"), "{error}");
}

#[test]
fn orphan_indexes_and_unfinished_compaction_are_removed_and_foreign_files_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let model = three_segments(dir.path());
    std::fs::write(dir.path().join("00000000000000077777.timeindex"), [0u8; 12]).unwrap();
    std::fs::write(dir.path().join("00000000000000000000.log.cleaned"), b"partial").unwrap();
    std::fs::write(dir.path().join("README.txt"), b"not ours").unwrap();
    let (log, recovery) = open(dir.path(), &small_config());
    assert_eq!(recovery.removed.len(), 2, "{recovery:?}");
    assert_eq!(recovery.unknown.len(), 1, "{recovery:?}");
    assert!(dir.path().join("README.txt").exists());
    assert_same(&log, &model);
}
