//! Master → slave replication of the CommitLog: random puts on a master with files that roll and
//! pad often, streamed to a slave in chunks of random size, leave the slave with the same bytes
//! in the same files and the same consume queues, before and after the slave reopens; a chunk
//! that is damaged, misplaced or cut mid-entry is refused and writes nothing.

mod store_common;

use bytes::Bytes;
use proptest::prelude::*;
use store_common::*;
use twinmq_storage::MessageStore;

fn puts() -> impl Strategy<Value = Vec<Vec<Put>>> {
    let message = (0..3usize, 0..3u32, 0..4u64, proptest::option::of(0..20u32), 0..=3000usize)
        .prop_map(|(topic, queue_id, tag, key, len)| {
            let keys = key.map(|k| format!("order-{k}").into_bytes());
            let body = (0..len).map(|i| (i as u8) ^ (tag as u8)).collect();
            (format!("Topic{topic}"), queue_id, tag, keys, body)
        });
    proptest::collection::vec(proptest::collection::vec(message, 1..4), 1..30)
}

/// Streams everything the slave lacks, in chunks of about `chunk_bytes`.
fn catch_up(
    master: &MessageStore<twinmq_runtime::RealFs>,
    slave: &mut MessageStore<twinmq_runtime::RealFs>,
    chunk_bytes: u64,
) -> usize {
    let mut chunks = 0;
    let mut from = slave.commit_log().max_physical_offset();
    while let Some((bytes, next)) = master.read_replica(from, chunk_bytes).unwrap() {
        let end = slave.append_replica(from, &bytes).unwrap();
        assert_eq!(end, next, "the slave ends where the master said the chunk ends");
        from = next;
        chunks += 1;
    }
    chunks
}

fn commitlog_bytes(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("commitlog"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().into_string().unwrap(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn a_slave_streamed_in_random_chunks_holds_the_masters_bytes_and_queues(
        batches in puts(),
        chunk_bytes in 1u64..20_000,
        every in 1usize..8,
    ) {
        let config = small_config();
        let (master_dir, slave_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (mut master, _) = open(master_dir.path(), &config);
        let (mut slave, _) = open(slave_dir.path(), &config);
        let mut model = Vec::new();
        for (i, batch) in batches.iter().enumerate() {
            put(&mut master, &mut model, batch);
            if i % every == 0 {
                catch_up(&master, &mut slave, chunk_bytes);
            }
        }
        catch_up(&master, &mut slave, chunk_bytes);
        prop_assert_eq!(
            slave.commit_log().max_physical_offset(),
            master.commit_log().max_physical_offset()
        );
        assert_same(&slave, &model);
        master.close().unwrap();
        slave.close().unwrap();
        prop_assert!(commitlog_bytes(master_dir.path()) == commitlog_bytes(slave_dir.path()));

        // The slave reopens like any store, and keeps taking chunks where it left off.
        let (mut master, _) = open(master_dir.path(), &config);
        let (mut slave, _) = open(slave_dir.path(), &config);
        assert_same(&slave, &model);
        put(&mut master, &mut model, &batches[0]);
        catch_up(&master, &mut slave, chunk_bytes);
        assert_same(&slave, &model);
    }
}

#[test]
fn damaged_misplaced_or_cut_chunks_are_refused_and_write_nothing() {
    let config = small_config();
    let (master_dir, slave_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut master, _) = open(master_dir.path(), &config);
    let (mut slave, _) = open(slave_dir.path(), &config);
    let mut model = Vec::new();
    let batch: Vec<Put> =
        (0..3).map(|i| ("T".to_owned(), 0, 0, None, vec![i as u8; 100 + i])).collect();
    put(&mut master, &mut model, &batch);
    let (bytes, next) = master.read_replica(0, u64::MAX).unwrap().unwrap();
    assert_eq!(next, master.commit_log().max_physical_offset());

    let mut flipped = bytes.to_vec();
    flipped[60] ^= 0x10;
    let cut = bytes.slice(..bytes.len() - 5);
    let refused = [
        slave.append_replica(0, &Bytes::from(flipped)).unwrap_err(),
        slave.append_replica(0, &cut).unwrap_err(),
        slave.append_replica(7, &bytes).unwrap_err(),
        slave.append_replica(0, &bytes.slice(1..)).unwrap_err(),
    ];
    for error in &refused {
        assert!(error.to_string().contains("replica chunk"), "{error}");
    }
    assert_eq!(slave.commit_log().max_physical_offset(), 0, "nothing written");
    assert_eq!(slave.max_offset_in_queue("T", 0), 0);

    assert_eq!(slave.append_replica(0, &bytes).unwrap(), next);
    assert_same(&slave, &model);
    assert!(master.read_replica(next, 100).unwrap().is_none(), "nothing past the end");
    assert!(master.read_replica(next + 1, 100).is_err(), "a slave ahead of its master");
    assert!(master.read_replica(5, 100).is_err(), "not an entry boundary");
}
