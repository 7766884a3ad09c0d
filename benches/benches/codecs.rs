//! The two wire formats' codecs (criterion), per message so the figures compare directly.
//!
//! - `kafka_batch`: a RecordBatch v2 of 100 records (100 B and 1 KiB values) encoded by the
//!   `kafka-protocol` crate as twinmq's producer does, validated as the broker does (headers
//!   and CRC-32C, never decompressed) and decoded as twinmq's consumer does.
//! - `rocketmq_frame`: a SEND_MESSAGE remoting command (JSON header, as clients send it) with a
//!   100 B / 1 KiB body, encoded into a frame and read back (frame split + header decode).
//! - `rocketmq_message`: the stored record layout (`MessageRecord`) encoded and decoded, and a
//!   SEND_BATCH_MESSAGE body of 100 entries encoded.
//!
//! Run: `cargo bench -p twinmq-bench --bench codecs`.

#![allow(missing_docs, reason = "criterion's macros generate undocumented items")]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::SocketAddrV4;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use twinmq_rocketmq::client::message::encode_batch_entry;
use twinmq_rocketmq::message::MessageRecord;
use twinmq_rocketmq::remoting::{RemotingCommand, request_code, try_frame};

const RECORDS_PER_BATCH: usize = 100;
const SIZES: [usize; 2] = [100, 1024];
const FRAME_BYTES_MAX: usize = 16 << 20;

fn kafka_records(value_bytes: usize) -> Vec<Record> {
    (0..RECORDS_PER_BATCH)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // Not idempotent: the same offset-to-sequence distance throughout keeps one batch.
            sequence: i as i32 - 1,
            timestamp: 1_700_000_000_000 + i as i64,
            key: None,
            value: Some(Bytes::from(vec![0x5a_u8; value_bytes])),
            headers: Default::default(),
        })
        .collect()
}

fn kafka_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("kafka_batch");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(RECORDS_PER_BATCH as u64));
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    for size in SIZES {
        let records = kafka_records(size);
        group.bench_function(BenchmarkId::new("encode", format!("{size}B")), |b| {
            let mut out = BytesMut::with_capacity(RECORDS_PER_BATCH * (size + 32));
            b.iter(|| {
                out.clear();
                RecordBatchEncoder::encode(&mut out, black_box(&records), &options).unwrap();
                black_box(out.len())
            });
        });
        let mut encoded = BytesMut::new();
        RecordBatchEncoder::encode(&mut encoded, &records, &options).unwrap();
        let encoded = encoded.freeze();
        group.bench_function(BenchmarkId::new("validate", format!("{size}B")), |b| {
            b.iter(|| twinmq_kafka::record_batch::validate(black_box(&encoded)).unwrap().len());
        });
        group.bench_function(BenchmarkId::new("decode", format!("{size}B")), |b| {
            b.iter(|| {
                let set = RecordBatchDecoder::decode(&mut encoded.clone()).unwrap();
                assert_eq!(set.records.len(), RECORDS_PER_BATCH);
                black_box(set)
            });
        });
    }
    group.finish();
}

fn send_command(body_bytes: usize) -> RemotingCommand {
    let fields: BTreeMap<String, String> = [
        ("producerGroup", "bench-producer"),
        ("topic", "BenchTopic"),
        ("defaultTopic", "TBW102"),
        ("defaultTopicQueueNums", "4"),
        ("queueId", "3"),
        ("sysFlag", "0"),
        ("bornTimestamp", "1700000000000"),
        ("flag", "0"),
        ("properties", "UNIQ_KEY\u{1}7F0000010001ABCDEF0100000000000000\u{2}WAIT\u{1}true\u{2}"),
        ("reconsumeTimes", "0"),
        ("unitMode", "false"),
        ("batch", "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    RemotingCommand::request(
        request_code::SEND_MESSAGE,
        fields,
        Bytes::from(vec![0x5a_u8; body_bytes]),
    )
}

fn rocketmq_frame(c: &mut Criterion) {
    let mut group = c.benchmark_group("rocketmq_frame");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(1));
    for size in SIZES {
        let command = send_command(size);
        group.bench_function(BenchmarkId::new("encode", format!("{size}B")), |b| {
            let mut out = BytesMut::with_capacity(size + 1024);
            b.iter(|| {
                out.clear();
                black_box(&command).encode_into(&mut out);
                black_box(out.len())
            });
        });
        let mut encoded = BytesMut::new();
        command.encode_into(&mut encoded);
        group.bench_function(BenchmarkId::new("decode", format!("{size}B")), |b| {
            b.iter(|| {
                let mut buffer = encoded.clone();
                let frame = try_frame(&mut buffer, FRAME_BYTES_MAX).unwrap().unwrap();
                let decoded = RemotingCommand::decode(frame).unwrap();
                assert_eq!(decoded.body.len(), size);
                black_box(decoded)
            });
        });
    }
    group.finish();
}

fn stored_record(body_bytes: usize) -> MessageRecord {
    let host = SocketAddrV4::new([127, 0, 0, 1].into(), 10911);
    MessageRecord {
        queue_id: 3,
        queue_offset: 12_345,
        physical_offset: 1 << 30,
        born_timestamp: 1_700_000_000_000,
        store_timestamp: 1_700_000_000_001,
        body: Bytes::from(vec![0x5a_u8; body_bytes]),
        topic: "BenchTopic".into(),
        properties: "UNIQ_KEY\u{1}7F0000010001ABCDEF0100000000000000\u{2}".into(),
        ..MessageRecord::empty(host)
    }
}

fn rocketmq_message(c: &mut Criterion) {
    let mut group = c.benchmark_group("rocketmq_message");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    for size in SIZES {
        let record = stored_record(size);
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("encode", format!("{size}B")), |b| {
            b.iter(|| black_box(&record).encode().unwrap());
        });
        let encoded = record.encode().unwrap();
        group.bench_function(BenchmarkId::new("decode", format!("{size}B")), |b| {
            b.iter(|| {
                let decoded = MessageRecord::decode(black_box(&encoded)).unwrap();
                assert_eq!(decoded.body.len(), size);
                black_box(decoded)
            });
        });
        let body = vec![0x5a_u8; size];
        group.throughput(Throughput::Elements(RECORDS_PER_BATCH as u64));
        group.bench_function(BenchmarkId::new("batch_encode", format!("{size}B")), |b| {
            let mut out = BytesMut::with_capacity(RECORDS_PER_BATCH * (size + 64));
            b.iter(|| {
                out.clear();
                for _ in 0..RECORDS_PER_BATCH {
                    assert!(encode_batch_entry(&mut out, 0, black_box(&body), "KEYS\u{1}k\u{2}"));
                }
                black_box(out.len())
            });
        });
    }
    group.finish();
}

criterion_group!(benches, kafka_batch, rocketmq_frame, rocketmq_message);
criterion_main!(benches);
