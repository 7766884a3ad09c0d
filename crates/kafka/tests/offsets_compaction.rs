//! `__consumer_offsets` is compacted: after many commits of the same partitions, a compaction
//! pass keeps only the newest commit of each, and replaying the partition (a new coordinator
//! loading its groups) yields exactly the newest offsets.

use twinmq_kafka::group::{CommittedOffset, OffsetStore};
use twinmq_kafka::replica::Partition;
use twinmq_runtime::{Clock, RealFs};
use twinmq_storage::LogConfig;

fn commit(offset: i64) -> CommittedOffset {
    CommittedOffset { offset, leader_epoch: -1, metadata: None, commit_timestamp_ms: 1 }
}

fn open(dir: &std::path::Path) -> Partition<RealFs> {
    let config =
        LogConfig { segment_bytes_max: 2_048, entry_bytes_max: 1_024, ..LogConfig::default() };
    let partition = Partition::open(
        RealFs,
        Clock::system(),
        dir.to_owned(),
        config,
        ("__consumer_offsets", 0, 1),
    )
    .unwrap()
    .compacted();
    partition.become_leader(0, &[1], &[1], 0).unwrap();
    partition
}

fn replay(partition: &Partition<RealFs>) -> (OffsetStore, usize) {
    let store = OffsetStore::new();
    let start = partition.offsets().unwrap().0;
    let fetched = partition.read_committed(start, u64::MAX).unwrap();
    let mut batches = fetched.batches;
    let mut next = batches.len();
    // Read on past the first reply: it is capped at one segment's worth.
    loop {
        let last = batches.last().unwrap();
        let base = i64::from_be_bytes(last[..8].try_into().unwrap()) as u64;
        let more = partition.read_committed(base + 1, u64::MAX).unwrap().batches;
        if more.is_empty() {
            break;
        }
        batches.extend(more);
        if batches.len() == next {
            break;
        }
        next = batches.len();
    }
    store.replay(&batches).unwrap();
    (store, batches.len())
}

#[test]
fn compaction_keeps_the_newest_commit_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let partition = open(dir.path());
    for i in 0..300 {
        let commits = vec![
            ("orders".to_string(), 0, commit(i)),
            ("orders".to_string(), 1, commit(1_000 + i)),
        ];
        partition
            .append_as_leader(&OffsetStore::encode("g", &commits, 1).unwrap(), u64::MAX)
            .unwrap();
    }
    let (_, before) = replay(&partition);
    assert_eq!(before, 600);
    let removed = partition.compact().unwrap();
    assert!(removed > 500, "only the newest commits survive in sealed segments: {removed} removed");
    let (store, after) = replay(&partition);
    assert!(after < 100, "{after} commits left");
    assert_eq!(store.get("g", "orders", 0).unwrap().offset, 299);
    assert_eq!(store.get("g", "orders", 1).unwrap().offset, 1_299);
    drop(partition);
    let reopened = open(dir.path());
    let (store, _) = replay(&reopened);
    assert_eq!(store.get("g", "orders", 0).unwrap().offset, 299, "the compacted log reopens whole");
}
