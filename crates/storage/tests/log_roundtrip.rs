//! Round trips through the Kafka-layout Log: random appends across many segment rolls, random
//! reads by offset, by size and by timestamp, then the same after a reopen.

mod common;

use common::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Op {
    payload_len: usize,
    record_count: u32,
    timestamp_delta: i64,
    key: Option<u8>,
}

fn op() -> impl Strategy<Value = Op> {
    (0..=3000usize, 1..=5u32, -50..200i64, proptest::option::of(0..8u8)).prop_map(
        |(payload_len, record_count, timestamp_delta, key)| Op {
            payload_len,
            record_count,
            timestamp_delta,
            key,
        },
    )
}

fn check_reads(
    log: &twinmq_storage::Log<twinmq_runtime::RealFs>,
    model: &[ModelEntry],
    probes: &[(u64, u64, i64)],
) {
    assert_same(log, model);
    let end = log.log_end_offset();
    for &(offset_seed, bytes_max, timestamp) in probes {
        let offset = offset_seed % (end + 1);
        let entries = log.read(offset, bytes_max).unwrap();
        if offset == end {
            assert!(entries.is_empty());
            continue;
        }
        let first = model.iter().position(|e| e.next_offset() > offset).unwrap();
        assert!(!entries.is_empty(), "read at {offset} returned nothing");
        assert!(
            model[first].matches(&entries[0]),
            "read at {offset} started at {}",
            entries[0].offset
        );
        let total: u64 = entries.iter().map(|e| e.size).sum();
        assert!(
            entries.len() == 1 || total <= bytes_max,
            "read of {bytes_max} bytes returned {total}"
        );
        for (entry, expected) in entries.iter().zip(&model[first..]) {
            assert!(expected.matches(entry));
        }
        let expected_by_time = model.iter().find(|e| e.timestamp_ms >= timestamp).map(|e| e.offset);
        assert_eq!(
            log.offset_for_timestamp(timestamp).unwrap(),
            expected_by_time,
            "by timestamp {timestamp}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn appends_read_back_by_offset_size_and_time_across_rolls_and_reopens(
        ops in proptest::collection::vec(op(), 1..120),
        probes in proptest::collection::vec((any::<u64>(), 1..20_000u64, 900..30_000i64), 1..30),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config();
        let mut model = Vec::new();
        let (mut log, recovery) = open(dir.path(), &config);
        prop_assert!(recovery.is_clean());
        let mut timestamp = 1_000i64;
        for op in &ops {
            timestamp = (timestamp + op.timestamp_delta).max(0);
            let payload: Vec<u8> = (0..op.payload_len).map(|i| (i as u8).wrapping_mul(7).wrapping_add(op.record_count as u8)).collect();
            let key = op.key.map(|k| vec![b'k', k]);
            append(&mut log, &mut model, op.record_count, timestamp, key.as_deref(), &payload);
        }
        check_reads(&log, &model, &probes);
        log.flush().unwrap();
        drop(log);
        let (log, recovery) = open(dir.path(), &config);
        prop_assert!(recovery.truncations.is_empty(), "{:?}", recovery);
        check_reads(&log, &model, &probes);
    }
}

#[test]
fn entries_never_span_segments_and_rolls_happen() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let (mut log, _) = open(dir.path(), &config);
    let mut model = Vec::new();
    for i in 0..40 {
        append(&mut log, &mut model, 1, i, None, &[i as u8; 500]);
    }
    assert!(log.segment_base_offsets().len() >= 5, "segments: {:?}", log.segment_base_offsets());
    assert_same(&log, &model);
}
