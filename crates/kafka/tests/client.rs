//! twinmq's own Kafka client against an in-process broker on loopback: the idempotent producer
//! batches keyed records to their partitions, a group consumer reads them all back in order,
//! commits, and a new member resumes exactly at the commit; an assigned consumer seeks by time.

use std::collections::BTreeMap;

use bytes::Bytes;
use twinmq_kafka::client::assignor::Assignor;
use twinmq_kafka::client::{Consumer, ConsumerConfig, Producer, ProducerConfig};
use twinmq_kafka::{Broker, BrokerConfig};
use twinmq_runtime::{Env, RealEnv, Shutdown};

async fn produce(producer: &Producer<twinmq_runtime::RealNet>, from: u32, to: u32) {
    let mut answers = Vec::new();
    for i in from..to {
        let key = Bytes::from(format!("key-{}", i % 13));
        let value = Bytes::from(i.to_string());
        answers.push(producer.send("orders", Some(key), Some(value)).await.unwrap());
    }
    producer.flush().await;
    for answer in answers {
        answer.await.unwrap().unwrap();
    }
}

async fn drain(
    consumer: &mut Consumer<twinmq_runtime::RealNet>,
    count: usize,
) -> Vec<(i32, i64, String, u32)> {
    let mut seen = Vec::new();
    for _ in 0..200 {
        if seen.len() >= count {
            break;
        }
        for record in consumer.poll().await.unwrap() {
            let key = String::from_utf8(record.key.unwrap().to_vec()).unwrap();
            let value: u32 = std::str::from_utf8(&record.value.unwrap()).unwrap().parse().unwrap();
            seen.push((record.partition, record.offset, key, value));
        }
    }
    seen
}

/// A single-node broker on loopback in a temporary directory, serving until `shutdown`.
struct Running {
    _dir: tempfile::TempDir,
    env: RealEnv,
    bootstrap: String,
    shutdown: Shutdown,
    server: tokio::task::JoinHandle<Result<(), twinmq_kafka::KafkaError>>,
}

async fn start_broker(configure: impl FnOnce(&mut BrokerConfig)) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let env = RealEnv::new();
    let mut config =
        BrokerConfig::single_node(1, "127.0.0.1:0".parse().unwrap(), dir.path().to_owned());
    configure(&mut config);
    let broker = Broker::bind(env.clone(), config).await.unwrap();
    let bootstrap = broker.local_addr().to_string();
    let shutdown = Shutdown::new();
    let server = tokio::spawn(broker.run(shutdown.clone()));
    Running { _dir: dir, env, bootstrap, shutdown, server }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_consume_commit_resume_and_seek_by_time() {
    let Running { _dir, env, bootstrap, shutdown, server } =
        start_broker(|config| config.num_partitions = 4).await;

    let producer = Producer::new(
        *env.net(),
        env.clock().clone(),
        &bootstrap,
        "producer",
        ProducerConfig::default(),
    );
    produce(&producer, 0, 2_000).await;

    let group = ConsumerConfig {
        group_id: Some("billing".into()),
        assignor: Assignor::RoundRobin,
        ..ConsumerConfig::default()
    };
    let mut first =
        Consumer::new(*env.net(), env.clock().clone(), &bootstrap, "first", group.clone());
    first.subscribe(&["orders"]);
    let seen = drain(&mut first, 2_000).await;
    assert_eq!(seen.len(), 2_000, "every record once");
    assert_eq!(first.assignment().len(), 4, "a lone member gets every partition");
    let mut partition_of = BTreeMap::new();
    let mut last = BTreeMap::new();
    for (partition, offset, key, value) in &seen {
        assert_eq!(
            *partition_of.entry(key.clone()).or_insert(*partition),
            *partition,
            "{key} moved"
        );
        let previous = last.insert(key.clone(), (*offset, *value));
        assert!(previous.is_none_or(|(o, v)| o < *offset && v < *value), "{key} out of order");
    }
    first.commit().await.unwrap();
    first.close().await.unwrap();

    produce(&producer, 2_000, 2_100).await;
    let mut second = Consumer::new(*env.net(), env.clock().clone(), &bootstrap, "second", group);
    second.subscribe(&["orders"]);
    let resumed = drain(&mut second, 100).await;
    let values: Vec<u32> = resumed.iter().map(|r| r.3).collect();
    assert_eq!(values.len(), 100, "exactly the records after the commit: {values:?}");
    assert!(values.iter().all(|v| *v >= 2_000), "nothing before the commit is delivered again");
    second.close().await.unwrap();

    let mut replay = Consumer::new(
        *env.net(),
        env.clock().clone(),
        &bootstrap,
        "replay",
        ConsumerConfig::default(),
    );
    replay.assign(&[("orders", 0), ("orders", 1), ("orders", 2), ("orders", 3)]);
    replay.seek_to_timestamp(0).await.unwrap();
    assert_eq!(drain(&mut replay, 2_100).await.len(), 2_100, "a seek to time 0 replays everything");

    // acks=0: written and forgotten, yet there to read.
    let fire_and_forget =
        ProducerConfig { acks: 0, idempotent: false, ..ProducerConfig::default() };
    let quiet =
        Producer::new(*env.net(), env.clock().clone(), &bootstrap, "quiet", fire_and_forget);
    let mut answers = Vec::new();
    for i in 0..50u32 {
        answers.push(quiet.send("silent", None, Some(Bytes::from(i.to_string()))).await.unwrap());
    }
    quiet.flush().await;
    for answer in answers {
        assert_eq!(answer.await.unwrap().unwrap().offset, -1, "no offset without an answer");
    }
    let mut reader = Consumer::new(
        *env.net(),
        env.clock().clone(),
        &bootstrap,
        "reader",
        ConsumerConfig::default(),
    );
    reader.assign(&[("silent", 0), ("silent", 1), ("silent", 2), ("silent", 3)]);
    let mut silent = 0;
    for _ in 0..50 {
        if silent >= 50 {
            break;
        }
        silent += reader.poll().await.unwrap().len();
    }
    assert_eq!(silent, 50, "every acks=0 record arrived");

    shutdown.trigger();
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_queued_faster_than_batches_drain_never_make_a_batch_past_its_size() {
    // The broker refuses any batch over 8 KiB; the producer's batches are 4 KiB.
    let Running { _dir, env, bootstrap, shutdown, server } = start_broker(|config| {
        config.num_partitions = 1;
        config.message_bytes_max = 8 * 1024;
    })
    .await;

    let settings = ProducerConfig { batch_bytes: 4 * 1024, linger_ms: 50, ..Default::default() };
    let producer = Producer::new(*env.net(), env.clock().clone(), &bootstrap, "flood", settings);
    // 3,000 records of 100 B queued at once: 300 KB, far more than one batch may hold.
    let mut answers = Vec::new();
    for i in 0..3_000u32 {
        let value = Bytes::from(format!("{i:0>100}"));
        answers.push(producer.send("flood", None, Some(value)).await.unwrap());
    }
    producer.flush().await;
    let mut offsets = Vec::new();
    for answer in answers {
        offsets.push(answer.await.unwrap().expect("every record acknowledged").offset);
    }
    assert_eq!(offsets, (0..3_000).collect::<Vec<i64>>(), "appended once each, in send order");

    let mut reader =
        Consumer::new(*env.net(), env.clock().clone(), &bootstrap, "r", ConsumerConfig::default());
    reader.assign(&[("flood", 0)]);
    let mut values = Vec::new();
    for _ in 0..500 {
        if values.len() >= 3_000 {
            break;
        }
        for record in reader.poll().await.unwrap() {
            values.push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
        }
    }
    let expected: Vec<String> = (0..3_000u32).map(|i| format!("{i:0>100}")).collect();
    assert_eq!(values, expected);

    shutdown.trigger();
    server.await.unwrap().unwrap();
}
