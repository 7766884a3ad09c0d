//! The client's producer against this crate's broker and nameserver on loopback: sync sends come
//! back byte for byte through the pull consumer (tags, keys, ids, offsets), oneway and batch
//! sends arrive, and a queue selector keeps each key's messages in one queue, in order.

mod common;

use std::collections::BTreeMap;

use common::{Cluster, patiently};
use twinmq_rocketmq::client::{
    Message, Producer, PullConsumer, PullStatus, ReceivedMessage, SelectByKeyHash, SendStatus,
};
use twinmq_runtime::RealEnv;

/// Every message of `topic` matching `expression`, queue by queue, pulled without waiting.
async fn pull_all(
    consumer: &PullConsumer<RealEnv>,
    topic: &str,
    expression: &str,
) -> Vec<ReceivedMessage> {
    let mut all = Vec::new();
    for queue in consumer.fetch_queues(topic).await.unwrap() {
        let mut offset = 0;
        loop {
            let pulled = consumer.pull(&queue, expression, offset, 32).await.unwrap();
            match pulled.status {
                PullStatus::Found | PullStatus::NoMatchedMessage => {
                    all.extend(pulled.messages);
                    offset = pulled.next_begin_offset;
                }
                PullStatus::NoNewMessage | PullStatus::OffsetIllegal => break,
            }
        }
    }
    all
}

/// Pulls until `expected` messages are there, long-polling each queue's end in between.
async fn pull_until(
    consumer: &PullConsumer<RealEnv>,
    topic: &str,
    expected: usize,
) -> Vec<ReceivedMessage> {
    patiently("messages to arrive", async {
        loop {
            let all = pull_all(consumer, topic, "*").await;
            if all.len() >= expected {
                return all;
            }
            for queue in consumer.fetch_queues(topic).await.unwrap() {
                let end = consumer.max_offset(&queue).await.unwrap();
                consumer.pull_blocking(&queue, "*", end, 1, 200).await.unwrap();
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_sends_come_back_exactly_through_the_pull_consumer() {
    let cluster = Cluster::start(|_| {}).await;
    let producer = Producer::start(cluster.env.clone(), cluster.client("p1"), "pg").await;
    let mut sent = BTreeMap::new();
    for i in 0..20 {
        let tag = if i % 2 == 0 { "TagA" } else { "TagB" };
        let message = Message::new("orders", format!("body-{i}"))
            .with_tags(tag)
            .with_key(format!("k{i}"))
            .with_key("shared");
        let result = producer.send(&message).await.unwrap();
        assert_eq!(result.status, SendStatus::SendOk);
        assert_eq!(result.queue.topic, "orders");
        sent.insert(format!("body-{i}"), (tag, result));
    }
    let queues_used: std::collections::BTreeSet<u32> =
        sent.values().map(|(_, r)| r.queue.queue_id).collect();
    assert_eq!(queues_used.len(), 4, "round-robin spreads over the 4 auto-created queues");

    let consumer = PullConsumer::new(cluster.env.clone(), cluster.client("c1"), "cg");
    let pulled = pull_all(&consumer, "orders", "*").await;
    assert_eq!(pulled.len(), 20);
    for message in &pulled {
        let body = String::from_utf8(message.body().to_vec()).unwrap();
        let (tag, result) = &sent[&body];
        let i = body.trim_start_matches("body-");
        assert_eq!(message.tags(), Some(*tag));
        assert_eq!(message.keys(), [format!("k{i}").as_str(), "shared"]);
        assert_eq!(message.msg_id(), result.msg_id);
        assert_eq!(message.offset_msg_id(), result.offset_msg_id);
        assert_eq!(
            (message.queue.clone(), message.queue_offset()),
            (result.queue.clone(), result.queue_offset)
        );
        assert_eq!(message.topic(), "orders");
    }
    let tagged = pull_all(&consumer, "orders", "TagB").await;
    assert_eq!(tagged.len(), 10);
    assert!(tagged.iter().all(|m| m.tags() == Some("TagB")));

    let queue = &sent["body-0"].1.queue;
    assert_eq!(consumer.committed_offset(queue).await.unwrap(), Some(0), "new group, queue from 0");
    consumer.commit_offset(queue, 3).await.unwrap();
    assert_eq!(consumer.committed_offset(queue).await.unwrap(), Some(3));
    assert_eq!(consumer.max_offset(queue).await.unwrap(), 5);
    assert_eq!(consumer.min_offset(queue).await.unwrap(), 0);
    assert_eq!(consumer.search_offset(queue, 0).await.unwrap(), 0);

    producer.shutdown().await;
    consumer.shutdown().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oneway_and_batch_sends_arrive() {
    let cluster = Cluster::start(|_| {}).await;
    let producer = Producer::start(cluster.env.clone(), cluster.client("p1"), "pg").await;
    let consumer = PullConsumer::new(cluster.env.clone(), cluster.client("c1"), "cg");

    // The first send creates the topic; oneway sends after it.
    producer.send(&Message::new("fire", "first")).await.unwrap();
    for i in 0..5 {
        producer
            .send_oneway(&Message::new("fire", format!("oneway-{i}")).with_tags("T"))
            .await
            .unwrap();
    }
    let mut bodies: Vec<String> = pull_until(&consumer, "fire", 6)
        .await
        .iter()
        .map(|m| String::from_utf8(m.body().to_vec()).unwrap())
        .collect();
    bodies.sort();
    assert_eq!(bodies, ["first", "oneway-0", "oneway-1", "oneway-2", "oneway-3", "oneway-4"]);

    let batch: Vec<Message> = (0..3)
        .map(|i| {
            Message::new("batched", format!("batch-{i}"))
                .with_tags("TagA")
                .with_key(format!("B{i}"))
        })
        .collect();
    let result = producer.send_batch(&batch).await.unwrap();
    assert_eq!(result.msg_id.split(',').count(), 3);
    assert_eq!(result.offset_msg_id.split(',').count(), 3);
    let pulled = consumer.pull(&result.queue, "*", result.queue_offset, 32).await.unwrap();
    let got: Vec<(i64, String, Vec<&str>)> = pulled
        .messages
        .iter()
        .map(|m| (m.queue_offset(), String::from_utf8(m.body().to_vec()).unwrap(), m.keys()))
        .collect();
    assert_eq!(
        got,
        [
            (0, "batch-0".to_owned(), vec!["B0"]),
            (1, "batch-1".to_owned(), vec!["B1"]),
            (2, "batch-2".to_owned(), vec!["B2"]),
        ]
    );
    let ids: Vec<String> = pulled.messages.iter().map(ReceivedMessage::msg_id).collect();
    assert_eq!(ids.join(","), result.msg_id, "each batched message keeps its own id");
    assert!(producer.send_batch(&[]).await.is_err());
    let mixed = [Message::new("a", "x"), Message::new("b", "y")];
    assert!(producer.send_batch(&mixed).await.is_err(), "one topic per batch");

    producer.shutdown().await;
    consumer.shutdown().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_selector_keeps_each_keys_messages_in_one_queue_in_order() {
    let cluster = Cluster::start(|_| {}).await;
    let producer = Producer::start(cluster.env.clone(), cluster.client("p1"), "pg").await;
    let orders = ["order-1", "order-2", "order-3", "order-4", "order-5"];
    for step in 0..12 {
        for order in orders {
            let message = Message::new("ordered", format!("{order}:{step}")).with_key(order);
            producer.send_selected(&message, &SelectByKeyHash, order).await.unwrap();
        }
    }
    let consumer = PullConsumer::new(cluster.env.clone(), cluster.client("c1"), "cg");
    let pulled = pull_all(&consumer, "ordered", "*").await;
    assert_eq!(pulled.len(), orders.len() * 12);
    let mut by_order: BTreeMap<String, Vec<(u32, usize)>> = BTreeMap::new();
    for message in &pulled {
        let body = String::from_utf8(message.body().to_vec()).unwrap();
        let (order, step) = body.split_once(':').unwrap();
        by_order
            .entry(order.to_owned())
            .or_default()
            .push((message.queue.queue_id, step.parse().unwrap()));
    }
    for (order, seen) in by_order {
        let queues: std::collections::BTreeSet<u32> = seen.iter().map(|(q, _)| *q).collect();
        assert_eq!(queues.len(), 1, "{order} stays in one queue");
        let steps: Vec<usize> = seen.iter().map(|(_, s)| *s).collect();
        assert_eq!(steps, (0..12).collect::<Vec<_>>(), "{order} in send order");
    }

    producer.shutdown().await;
    consumer.shutdown().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_retries_on_another_broker_when_one_is_down() {
    let mut cluster = Cluster::start_brokers(2, |_| {}).await;
    cluster.create_topic("spread", 2).await;
    let producer = Producer::start(cluster.env.clone(), cluster.client("p1"), "pg").await;
    let mut brokers_used = std::collections::BTreeSet::new();
    for i in 0..8 {
        let result = producer.send(&Message::new("spread", format!("before-{i}"))).await.unwrap();
        brokers_used.insert(result.queue.broker_name);
    }
    assert_eq!(brokers_used.len(), 2, "round-robin covers both brokers");

    // broker-b stops; the nameserver still routes to it until it expires.
    cluster.brokers.pop().unwrap().stop().await;
    for i in 0..8 {
        let result = producer.send(&Message::new("spread", format!("after-{i}"))).await.unwrap();
        assert_eq!(
            result.queue.broker_name, "broker-a",
            "a failed attempt moves to the live broker"
        );
    }
    producer.shutdown().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_message_arrives_after_its_level() {
    let mut levels = vec![2_000i64; 18];
    levels[0] = 100;
    let cluster = Cluster::start(|config| config.delay_levels_ms = levels.clone()).await;
    let producer = Producer::start(cluster.env.clone(), cluster.client("p1"), "pg").await;
    let consumer = PullConsumer::new(cluster.env.clone(), cluster.client("c1"), "cg");
    producer.send(&Message::new("later", "now")).await.unwrap();
    let queue = consumer.fetch_queues("later").await.unwrap()[0].clone();
    let sent = producer
        .send_to_queue(&Message::new("later", "delayed").with_delay_level(2), &queue)
        .await
        .unwrap();
    let now = consumer.pull(&queue, "*", 0, 32).await.unwrap();
    assert!(now.messages.iter().all(|m| &m.body()[..] != b"delayed"), "level 2 waits two seconds");
    let arrived = patiently("the delayed message", async {
        let mut offset = 0;
        loop {
            let pulled = consumer.pull_blocking(&queue, "*", offset, 32, 5_000).await.unwrap();
            offset = pulled.next_begin_offset;
            if let Some(found) = pulled.messages.into_iter().find(|m| &m.body()[..] == b"delayed") {
                return found;
            }
        }
    })
    .await;
    assert_eq!(arrived.msg_id(), sent.msg_id);
    assert!(arrived.record.store_timestamp >= arrived.record.born_timestamp + 2_000);
    producer.shutdown().await;
    consumer.shutdown().await;
    cluster.stop().await;
}
