//! The storage core against the machine's own ceiling, in one run (criterion).
//!
//! - `append`: 100 B, 1 KiB and 4 KiB records into the Kafka layout (one Log), the RocketMQ
//!   layout (one CommitLog, one queue) and a plain `std::fs` sequential write, with no fsync
//!   until the end (async) or one fsync per 64 appends (group commit).
//! - `many_queues`: 1 KiB records spread round-robin over 1, 16, 128 and 1,024 partitions (one
//!   Log each) or queues (one CommitLog): the curve Kafka and RocketMQ are known for. The
//!   partitions and queues are created before the clock starts.
//! - `read`: a sequential consumer reading everything back by offset, both layouts.
//!
//! Run: `cargo bench -p twinmq-bench --bench storage`. Figures are quoted as ratios to
//! `append/ceiling` of the same run.

#![allow(missing_docs, reason = "criterion's macros generate undocumented items")]

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use twinmq_bench::ceiling::{CeilingSync, sequential_write};
use twinmq_bench::workload::{Durability, append_logs, append_store, bench_log, bench_store};

const APPEND_BYTES: u64 = 32 << 20;
const GROUP: u64 = 64;

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for record_bytes in [100usize, 1024, 4096] {
        let count = APPEND_BYTES / record_bytes as u64;
        let record = vec![0x5a_u8; record_bytes];
        group.throughput(Throughput::Elements(count));
        for (mode, durability, ceiling) in [
            ("async", Durability::Async, CeilingSync::EveryRecords(u64::MAX)),
            ("group64", Durability::GroupCommit(GROUP), CeilingSync::EveryRecords(GROUP)),
        ] {
            let id = format!("{record_bytes}B/{mode}");
            group.bench_function(BenchmarkId::new("ceiling", &id), |b| {
                b.iter_custom(|iterations| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iterations {
                        let dir = tempfile::tempdir().unwrap();
                        let start = Instant::now();
                        let sync = if mode == "async" {
                            CeilingSync::EveryRecords(u64::MAX)
                        } else {
                            ceiling
                        };
                        sequential_write(dir.path(), record_bytes, count, sync).unwrap();
                        total += start.elapsed();
                    }
                    total
                });
            });
            group.bench_function(BenchmarkId::new("log", &id), |b| {
                b.iter_custom(|iterations| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iterations {
                        let dir = tempfile::tempdir().unwrap();
                        let mut logs = vec![bench_log(dir.path()).unwrap()];
                        let start = Instant::now();
                        append_logs(&mut logs, &record, count, durability).unwrap();
                        total += start.elapsed();
                    }
                    total
                });
            });
            group.bench_function(BenchmarkId::new("commitlog", &id), |b| {
                b.iter_custom(|iterations| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iterations {
                        let dir = tempfile::tempdir().unwrap();
                        let mut store = bench_store(dir.path()).unwrap();
                        let start = Instant::now();
                        append_store(&mut store, 1, &record, count, durability).unwrap();
                        total += start.elapsed();
                    }
                    total
                });
            });
        }
    }
    group.finish();
}

fn many_queues(c: &mut Criterion) {
    let mut group = c.benchmark_group("many_queues");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let record = vec![0x5a_u8; 1024];
    let count = APPEND_BYTES / 1024;
    group.throughput(Throughput::Elements(count));
    for queues in [1u32, 16, 128, 1024] {
        group.bench_function(BenchmarkId::new("log", queues), |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let dir = tempfile::tempdir().unwrap();
                    let mut logs: Vec<_> = (0..queues)
                        .map(|p| bench_log(&dir.path().join(format!("p-{p}"))).unwrap())
                        .collect();
                    let start = Instant::now();
                    append_logs(&mut logs, &record, count, Durability::Async).unwrap();
                    total += start.elapsed();
                }
                total
            });
        });
        group.bench_function(BenchmarkId::new("commitlog", queues), |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let dir = tempfile::tempdir().unwrap();
                    let mut store = bench_store(dir.path()).unwrap();
                    // Queues exist before the clock starts, as the partitions' logs do.
                    append_store(&mut store, queues, &record, u64::from(queues), Durability::Async)
                        .unwrap();
                    let start = Instant::now();
                    append_store(&mut store, queues, &record, count, Durability::Async).unwrap();
                    total += start.elapsed();
                }
                total
            });
        });
    }
    group.finish();
}

fn read(c: &mut Criterion) {
    let mut group = c.benchmark_group("read");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let record = vec![0x5a_u8; 1024];
    let count = APPEND_BYTES / 1024;
    group.throughput(Throughput::Elements(count));
    let log_dir = tempfile::tempdir().unwrap();
    let mut logs = vec![bench_log(log_dir.path()).unwrap()];
    append_logs(&mut logs, &record, count, Durability::Async).unwrap();
    let log = logs.pop().unwrap();
    group.bench_function("log/1KiB", |b| {
        b.iter(|| {
            let mut offset = 0;
            let mut records = 0u64;
            while offset < log.log_end_offset() {
                let entries = log.read(offset, 1 << 20).unwrap();
                offset = entries.last().unwrap().next_offset();
                records += entries.len() as u64;
            }
            assert_eq!(records, count);
        });
    });
    let store_dir = tempfile::tempdir().unwrap();
    let mut store = bench_store(store_dir.path()).unwrap();
    append_store(&mut store, 1, &record, count, Durability::Async).unwrap();
    group.bench_function("commitlog/1KiB", |b| {
        b.iter(|| {
            let mut offset = 0;
            let mut records = 0u64;
            loop {
                let result =
                    store.get_message("BenchTopic", 0, offset, 1024, 1 << 20, None).unwrap();
                if result.messages.is_empty() {
                    break;
                }
                records += result.messages.len() as u64;
                offset = result.next_begin_offset;
            }
            assert_eq!(records, count);
        });
    });
    group.finish();
}

criterion_group!(benches, append, many_queues, read);
criterion_main!(benches);
