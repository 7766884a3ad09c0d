//! Round trips through the RocketMQ-layout store: random single and batch puts over several
//! topics and queues with files that roll and pad often, read back through the consume queues,
//! by tag, by key and by time, then the same after a clean and an unclean reopen.

mod store_common;

use std::collections::BTreeSet;

use proptest::prelude::*;
use store_common::*;

type Batch = Vec<Put>;

fn batch() -> impl Strategy<Value = Batch> {
    proptest::collection::vec(
        (0..3usize, 0..3u32, 0..4u64, proptest::option::of(0..20u32), 0..=3000usize).prop_map(
            |(topic, queue_id, tag, key, len)| {
                let keys = key.map(|k| format!("order-{k} shared").into_bytes());
                let body = (0..len).map(|i| (i as u8) ^ (tag as u8)).collect();
                (format!("Topic{topic}"), queue_id, tag, keys, body)
            },
        ),
        1..6,
    )
}

fn check(store: &twinmq_storage::MessageStore<twinmq_runtime::RealFs>, model: &[ModelMessage]) {
    assert_same(store, model);
    for ((topic, queue_id), messages) in by_queue(model) {
        let tags = BTreeSet::from([1u64]);
        let result =
            store.get_message(&topic, queue_id, 0, u32::MAX, u64::MAX, Some(&tags)).unwrap();
        let expected: Vec<&ModelMessage> =
            messages.iter().take(800).filter(|m| m.tag_hash == 1).collect();
        assert_eq!(result.messages.len(), expected.len(), "tag filter on {topic}/{queue_id}");
        for message in &messages {
            let by_time =
                store.offset_by_time(&topic, queue_id, message.store_timestamp_ms).unwrap();
            let first_at_or_after = messages
                .iter()
                .position(|m| m.store_timestamp_ms >= message.store_timestamp_ms)
                .unwrap() as u64;
            assert_eq!(by_time, first_at_or_after);
        }
        let after_all = store.offset_by_time(&topic, queue_id, i64::MAX).unwrap();
        assert_eq!(after_all, messages.len() as u64);
    }
    for key in 0..20u32 {
        let key_bytes = format!("order-{key}").into_bytes();
        for topic in ["Topic0", "Topic1", "Topic2"] {
            let mut found: Vec<u64> = store
                .query_by_key(topic, &key_bytes, usize::MAX, 0, i64::MAX)
                .unwrap()
                .iter()
                .map(|m| m.physical_offset)
                .collect();
            found.sort_unstable();
            let expected: Vec<u64> = model
                .iter()
                .filter(|m| {
                    m.topic == topic
                        && m.keys.as_deref() == Some(format!("order-{key} shared").as_bytes())
                })
                .map(|m| m.physical_offset)
                .collect();
            assert_eq!(found, expected, "key order-{key} on {topic}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn puts_read_back_by_queue_tag_key_and_time_across_rolls_and_reopens(batches in proptest::collection::vec(batch(), 1..40), clean in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config();
        let (mut store, _) = open(dir.path(), &config);
        let mut model = Vec::new();
        for batch in &batches {
            put(&mut store, &mut model, batch);
        }
        check(&store, &model);
        if clean {
            store.close().unwrap();
        } else {
            store.flush().unwrap();
            drop(store);
        }
        let (store, recovery) = open(dir.path(), &config);
        prop_assert_eq!(recovery.clean_shutdown, clean);
        prop_assert!(recovery.truncations.is_empty(), "{:?}", recovery);
        check(&store, &model);
    }
}

#[test]
fn files_end_with_padding_and_the_next_starts_at_the_next_base() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = open(dir.path(), &small_config());
    let mut model = Vec::new();
    for i in 0..20u32 {
        put(&mut store, &mut model, &[("T".into(), 0, 0, None, vec![i as u8; 3000])]);
    }
    let file_bytes = small_config().file_bytes;
    assert!(
        model.iter().any(|m| m.physical_offset == file_bytes),
        "a message starts the second file"
    );
    assert!(
        model
            .iter()
            .all(|m| m.physical_offset / file_bytes == (m.physical_offset + 3000) / file_bytes),
        "no message spans files"
    );
    assert_same(&store, &model);
}

#[test]
fn a_message_filling_a_file_exactly_is_followed_in_the_next_file_even_after_a_reopen() {
    // Found by the round-trip property test: an exactly full file was padded with a negative
    // amount of space instead of being rolled.
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = open(dir.path(), &small_config());
    let file_bytes = small_config().file_bytes;
    // 34-byte entry header + 22-byte dispatch header + 1-byte topic + body = a quarter file.
    let body = vec![7u8; usize::try_from(file_bytes / 4).unwrap() - 34 - 22 - 1];
    let mut model = Vec::new();
    for _ in 0..4 {
        put(&mut store, &mut model, &[("T".into(), 0, 0, None, body.clone())]);
    }
    assert_eq!(
        model.last().unwrap().physical_offset + file_bytes / 4,
        file_bytes,
        "the file is exactly full"
    );
    drop(store);
    let (mut store, _) = open(dir.path(), &small_config());
    put(&mut store, &mut model, &[("T".into(), 0, 0, None, body.clone())]);
    assert_eq!(
        model.last().unwrap().physical_offset,
        file_bytes,
        "the next message opens the next file"
    );
    put(&mut store, &mut model, &[("T".into(), 0, 0, None, body)]);
    assert_same(&store, &model);
}
