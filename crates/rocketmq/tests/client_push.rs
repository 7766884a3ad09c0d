//! The client's push consumer against this crate's broker and nameserver on loopback: a group
//! of two splits the queues and the survivor takes them all; a restarted group resumes from its
//! committed offsets; orderly consumption keeps queue order and holds the broker's locks;
//! broadcasting reaches every member; a message that keeps failing comes back through the retry
//! topic and finally lands in the dead-letter topic.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use common::{Cluster, patiently};
use tokio::sync::mpsc;
use twinmq_rocketmq::client::{
    ClientConfig, ConsumeFrom, ConsumeResult, Message, MessageModel, MessageQueue, Producer,
    PullConsumer, PullStatus, PushConsumer, PushConsumerConfig, ReceivedMessage, SelectByKeyHash,
};
use twinmq_rocketmq::remoting::{RemotingCommand, request_code};
use twinmq_runtime::RealEnv;

/// One delivery as a handler saw it.
#[derive(Debug, Clone)]
struct Delivery {
    consumer: &'static str,
    queue: MessageQueue,
    body: String,
    topic: String,
    reconsume_times: i32,
}

/// A push consumer of every message of `topic` whose handler reports each delivery on
/// `deliveries` and answers by `verdict`.
fn consumer(
    cluster: &Cluster,
    name: &'static str,
    config: PushConsumerConfig,
    topic: &str,
    deliveries: mpsc::UnboundedSender<Delivery>,
    verdict: impl Fn(&ReceivedMessage) -> ConsumeResult + Send + Sync + 'static,
) -> PushConsumer<RealEnv> {
    consumer_of(cluster, name, config, (topic, "*"), deliveries, verdict)
}

/// As [`consumer`], subscribed with a tag expression.
fn consumer_of(
    cluster: &Cluster,
    name: &'static str,
    config: PushConsumerConfig,
    subscription: (&str, &str),
    deliveries: mpsc::UnboundedSender<Delivery>,
    verdict: impl Fn(&ReceivedMessage) -> ConsumeResult + Send + Sync + 'static,
) -> PushConsumer<RealEnv> {
    let client = ClientConfig { heartbeat_interval_ms: 1_000, ..cluster.client(name) };
    PushConsumer::start(
        cluster.env.clone(),
        client,
        config,
        &[subscription],
        move |queue: &MessageQueue, messages: &[ReceivedMessage]| {
            let mut result = ConsumeResult::Success;
            for message in messages {
                let _ = deliveries.send(Delivery {
                    consumer: name,
                    queue: queue.clone(),
                    body: String::from_utf8(message.body().to_vec()).unwrap(),
                    topic: message.topic().to_owned(),
                    reconsume_times: message.reconsume_times(),
                });
                if verdict(message) == ConsumeResult::ReconsumeLater {
                    result = ConsumeResult::ReconsumeLater;
                }
            }
            result
        },
    )
}

/// The queues of `topic` a consumer owns, once `ready` holds for them.
async fn owned_once(
    consumer: &PushConsumer<RealEnv>,
    topic: &str,
    ready: impl Fn(&BTreeSet<MessageQueue>) -> bool,
) -> BTreeSet<MessageQueue> {
    let of_topic = |all: &BTreeSet<MessageQueue>| -> BTreeSet<MessageQueue> {
        all.iter().filter(|q| q.topic == topic).cloned().collect()
    };
    let owned =
        patiently("an assignment", consumer.assignment_when(|all| ready(&of_topic(all)))).await;
    of_topic(&owned)
}

/// The next `count` deliveries.
async fn receive(
    deliveries: &mut mpsc::UnboundedReceiver<Delivery>,
    count: usize,
) -> Vec<Delivery> {
    let mut got = Vec::with_capacity(count);
    while got.len() < count {
        got.push(patiently("a delivery", deliveries.recv()).await.unwrap());
    }
    got
}

fn fast(group: &str) -> PushConsumerConfig {
    PushConsumerConfig {
        long_poll_suspend_ms: 2_000,
        pull_backoff_ms: 100,
        rebalance_retry_ms: 100,
        offset_persist_interval_ms: 500,
        orderly_suspend_ms: 50,
        ..PushConsumerConfig::new(group)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_two_splits_the_queues_and_the_survivor_takes_them_all() {
    let cluster = Cluster::start(|_| {}).await;
    cluster.create_topic("split", 4).await;
    let producer = Producer::start(cluster.env.clone(), cluster.client("p"), "pg").await;
    let (tx, mut deliveries) = mpsc::unbounded_channel();
    let a = consumer(&cluster, "A", fast("g"), "split", tx.clone(), |_| ConsumeResult::Success);
    assert_eq!(owned_once(&a, "split", |q| q.len() == 4).await.len(), 4, "alone, A owns all");
    let b = consumer(&cluster, "B", fast("g"), "split", tx.clone(), |_| ConsumeResult::Success);
    let owned_a = owned_once(&a, "split", |q| q.len() == 2).await;
    let owned_b = owned_once(&b, "split", |q| q.len() == 2).await;
    assert!(owned_a.is_disjoint(&owned_b), "{owned_a:?} vs {owned_b:?}");
    assert_eq!(owned_a.union(&owned_b).count(), 4);

    for i in 0..40 {
        producer.send(&Message::new("split", format!("first-{i}"))).await.unwrap();
    }
    let got = receive(&mut deliveries, 40).await;
    let bodies: BTreeSet<&str> = got.iter().map(|d| d.body.as_str()).collect();
    assert_eq!(bodies.len(), 40, "each message once");
    for delivery in &got {
        let owner = if owned_a.contains(&delivery.queue) { "A" } else { "B" };
        assert_eq!(delivery.consumer, owner, "{} came from its queue's owner", delivery.body);
    }

    b.shutdown().await;
    assert_eq!(owned_once(&a, "split", |q| q.len() == 4).await.len(), 4, "the survivor takes all");
    for i in 0..40 {
        producer.send(&Message::new("split", format!("second-{i}"))).await.unwrap();
    }
    let got = receive(&mut deliveries, 40).await;
    let bodies: BTreeSet<&str> = got.iter().map(|d| d.body.as_str()).collect();
    assert!(got.iter().all(|d| d.consumer == "A" && d.body.starts_with("second-")), "{got:?}");
    assert_eq!(bodies.len(), 40, "nothing B consumed comes again, nothing is missed");

    a.shutdown().await;
    producer.shutdown().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_group_resumes_from_its_committed_offsets() {
    let cluster = Cluster::start(|_| {}).await;
    cluster.create_topic("resume", 4).await;
    let producer = Producer::start(cluster.env.clone(), cluster.client("p"), "pg").await;
    for i in 0..20 {
        producer.send(&Message::new("resume", format!("old-{i}"))).await.unwrap();
    }
    let (tx, mut deliveries) = mpsc::unbounded_channel();
    let first =
        consumer(&cluster, "C", fast("rg"), "resume", tx.clone(), |_| ConsumeResult::Success);
    let got = receive(&mut deliveries, 20).await;
    assert_eq!(got.iter().map(|d| d.body.as_str()).collect::<BTreeSet<_>>().len(), 20);
    first.shutdown().await;

    // Ten more, round-robin over every queue: a re-delivered old message would come before the
    // new ones of its queue.
    for i in 0..10 {
        producer.send(&Message::new("resume", format!("new-{i}"))).await.unwrap();
    }
    let second = consumer(&cluster, "D", fast("rg"), "resume", tx, |_| ConsumeResult::Success);
    let got = receive(&mut deliveries, 10).await;
    let bodies: BTreeSet<&str> = got.iter().map(|d| d.body.as_str()).collect();
    assert!(got.iter().all(|d| d.body.starts_with("new-")), "no re-delivery: {got:?}");
    assert_eq!(bodies.len(), 10, "no gap");

    second.shutdown().await;
    producer.shutdown().await;
    cluster.stop().await;
}

fn lock_request(code: i32, client_id: &str, queues: &BTreeSet<MessageQueue>) -> RemotingCommand {
    let body = serde_json::json!({"consumerGroup": "og", "clientId": client_id, "onlyThisBroker": false, "mqSet": queues});
    RemotingCommand::request(code, BTreeMap::new(), Bytes::from(serde_json::to_vec(&body).unwrap()))
}

fn granted(response: &RemotingCommand) -> usize {
    let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    body["lockOKMQSet"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orderly_consumer_keeps_queue_order_and_holds_the_locks() {
    let cluster = Cluster::start(|_| {}).await;
    cluster.create_topic("ordered", 4).await;
    let producer = Producer::start(cluster.env.clone(), cluster.client("p"), "pg").await;
    let (tx, mut deliveries) = mpsc::unbounded_channel();
    let failed_once = std::sync::Mutex::new(false);
    let config = PushConsumerConfig { orderly: true, ..fast("og") };
    let orderly = consumer(&cluster, "O", config, "ordered", tx, move |message| {
        let mut failed = failed_once.lock().unwrap();
        if &message.body()[..] == b"order-1:5" && !*failed {
            *failed = true;
            return ConsumeResult::ReconsumeLater;
        }
        ConsumeResult::Success
    });
    let owned = owned_once(&orderly, "ordered", |q| q.len() == 4).await;

    let intruder = cluster.raw_client().await;
    let refused =
        intruder.request(lock_request(request_code::LOCK_BATCH_MQ, "intruder", &owned)).await;
    assert_eq!(granted(&refused.unwrap()), 0, "the orderly consumer holds every lock");

    let orders = ["order-1", "order-2", "order-3"];
    for step in 0..15 {
        for order in orders {
            let message = Message::new("ordered", format!("{order}:{step}"));
            producer.send_selected(&message, &SelectByKeyHash, order).await.unwrap();
        }
    }
    let got = receive(&mut deliveries, orders.len() * 15 + 1).await;
    let mut steps: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for delivery in &got {
        let (order, step) = delivery.body.split_once(':').unwrap();
        steps.entry(order).or_default().push(step.parse().unwrap());
    }
    let mut expected_1: Vec<usize> = (0..15).collect();
    expected_1.insert(6, 5);
    assert_eq!(steps["order-1"], expected_1, "the failed message is retried in place, before 6");
    assert_eq!(steps["order-2"], (0..15).collect::<Vec<_>>());
    assert_eq!(steps["order-3"], (0..15).collect::<Vec<_>>());

    orderly.shutdown().await;
    let after =
        intruder.request(lock_request(request_code::LOCK_BATCH_MQ, "intruder", &owned)).await;
    assert_eq!(granted(&after.unwrap()), 4, "shutdown unlocks");
    producer.shutdown().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasting_delivers_every_message_to_every_member() {
    let cluster = Cluster::start(|_| {}).await;
    cluster.create_topic("news", 4).await;
    let producer = Producer::start(cluster.env.clone(), cluster.client("p"), "pg").await;
    let (tx, mut deliveries) = mpsc::unbounded_channel();
    let config = PushConsumerConfig {
        model: MessageModel::Broadcasting,
        consume_from: ConsumeFrom::FirstOffset,
        ..fast("bg")
    };
    let x = consumer(&cluster, "X", config.clone(), "news", tx.clone(), |_| ConsumeResult::Success);
    let y = consumer(&cluster, "Y", config, "news", tx, |_| ConsumeResult::Success);
    assert_eq!(owned_once(&x, "news", |q| q.len() == 4).await.len(), 4);
    assert_eq!(owned_once(&y, "news", |q| q.len() == 4).await.len(), 4);
    for i in 0..20 {
        producer.send(&Message::new("news", format!("n-{i}"))).await.unwrap();
    }
    let got = receive(&mut deliveries, 40).await;
    for member in ["X", "Y"] {
        let bodies: BTreeSet<&str> =
            got.iter().filter(|d| d.consumer == member).map(|d| d.body.as_str()).collect();
        assert_eq!(bodies.len(), 20, "{member} got every message");
    }
    x.shutdown().await;
    y.shutdown().await;
    producer.shutdown().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_message_is_retried_through_the_retry_topic_then_dead_lettered() {
    let cluster = Cluster::start(|config| config.delay_levels_ms = vec![100; 18]).await;
    cluster.create_topic("work", 4).await;
    let producer = Producer::start(cluster.env.clone(), cluster.client("p"), "pg").await;
    let (tx, mut deliveries) = mpsc::unbounded_channel();
    let config = PushConsumerConfig { max_reconsume_times: 2, ..fast("wg") };
    let worker = consumer(&cluster, "W", config, "work", tx, |message| {
        if &message.body()[..] == b"poison" {
            ConsumeResult::ReconsumeLater
        } else {
            ConsumeResult::Success
        }
    });
    owned_once(&worker, "work", |q| q.len() == 4).await;
    producer.send(&Message::new("work", "fine")).await.unwrap();
    let poison = producer.send(&Message::new("work", "poison").with_tags("P")).await.unwrap();

    let got = receive(&mut deliveries, 4).await;
    let poisoned: Vec<(String, i32, String)> = got
        .iter()
        .filter(|d| d.body == "poison")
        .map(|d| (d.topic.clone(), d.reconsume_times, d.queue.topic.clone()))
        .collect();
    assert_eq!(
        poisoned,
        [
            ("work".to_owned(), 0, "work".to_owned()),
            ("work".to_owned(), 1, "%RETRY%wg".to_owned()),
            ("work".to_owned(), 2, "%RETRY%wg".to_owned()),
        ],
        "delivered, then twice through the retry topic"
    );
    assert_eq!(got.iter().filter(|d| d.body == "fine").count(), 1);

    let inspector = PullConsumer::new(cluster.env.clone(), cluster.client("i"), "inspect");
    inspector.fetch_queues("work").await.unwrap();
    let dlq = MessageQueue { topic: "%DLQ%wg".into(), broker_name: "broker-a".into(), queue_id: 0 };
    let dead = patiently("the dead letter", async {
        loop {
            let pulled = inspector.pull_blocking(&dlq, "*", 0, 32, 1_000).await.unwrap();
            if pulled.status == PullStatus::Found {
                return pulled;
            }
        }
    })
    .await;
    assert_eq!(dead.messages.len(), 1);
    let dead = &dead.messages[0];
    assert_eq!((&dead.body()[..], dead.reconsume_times()), (&b"poison"[..], 3));
    assert_eq!(dead.msg_id(), poison.msg_id);
    assert_eq!(dead.tags(), Some("P"));

    worker.shutdown().await;
    inspector.shutdown().await;
    producer.shutdown().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_the_last_offset_history_is_skipped_and_tags_filter() {
    let cluster = Cluster::start(|_| {}).await;
    cluster.create_topic("feed", 4).await;
    let producer = Producer::start(cluster.env.clone(), cluster.client("p"), "pg").await;
    for i in 0..8 {
        producer.send(&Message::new("feed", format!("old-{i}")).with_tags("TagA")).await.unwrap();
    }
    let (tx, mut deliveries) = mpsc::unbounded_channel();
    let config = PushConsumerConfig {
        model: MessageModel::Broadcasting,
        consume_from: ConsumeFrom::LastOffset,
        ..fast("lg")
    };
    let late = consumer_of(&cluster, "L", config, ("feed", "TagA || TagB"), tx, |_| {
        ConsumeResult::Success
    });
    owned_once(&late, "feed", |q| q.len() == 4).await;
    // Round-robin puts new messages of every tag in every queue, after the old ones.
    for i in 0..12 {
        let tag = ["TagA", "TagB", "TagC"][i % 3];
        producer
            .send(&Message::new("feed", format!("new-{i}-{tag}")).with_tags(tag))
            .await
            .unwrap();
    }
    let got = receive(&mut deliveries, 8).await;
    let bodies: BTreeSet<&str> = got.iter().map(|d| d.body.as_str()).collect();
    let expected: BTreeSet<String> = (0..12)
        .filter(|i| i % 3 != 2)
        .map(|i| format!("new-{i}-{}", ["TagA", "TagB"][i % 3]))
        .collect();
    assert_eq!(bodies, expected.iter().map(String::as_str).collect(), "no history, no TagC");

    late.shutdown().await;
    producer.shutdown().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcasting_member_resumes_from_its_local_offsets_file() {
    let cluster = Cluster::start(|_| {}).await;
    cluster.create_topic("local", 4).await;
    let offsets_dir = tempfile::tempdir().unwrap();
    let config = PushConsumerConfig {
        model: MessageModel::Broadcasting,
        consume_from: ConsumeFrom::FirstOffset,
        local_offsets_file: Some(offsets_dir.path().join("bg2").join("offsets.json")),
        ..fast("bg2")
    };
    let producer = Producer::start(cluster.env.clone(), cluster.client("p"), "pg").await;
    for i in 0..8 {
        producer.send(&Message::new("local", format!("old-{i}"))).await.unwrap();
    }
    let (tx, mut deliveries) = mpsc::unbounded_channel();
    let first =
        consumer(&cluster, "M", config.clone(), "local", tx.clone(), |_| ConsumeResult::Success);
    assert_eq!(receive(&mut deliveries, 8).await.len(), 8);
    first.shutdown().await;

    for i in 0..8 {
        producer.send(&Message::new("local", format!("new-{i}"))).await.unwrap();
    }
    let again = consumer(&cluster, "M", config, "local", tx, |_| ConsumeResult::Success);
    let got = receive(&mut deliveries, 8).await;
    assert!(got.iter().all(|d| d.body.starts_with("new-")), "resumed, not restarted: {got:?}");
    assert_eq!(got.iter().map(|d| d.body.as_str()).collect::<BTreeSet<_>>().len(), 8);
    let raw = cluster.raw_client().await;
    let query = RemotingCommand::request(
        request_code::QUERY_CONSUMER_OFFSET,
        BTreeMap::from([
            ("topic".to_owned(), "local".to_owned()),
            ("consumerGroup".to_owned(), "bg2".to_owned()),
            ("queueId".to_owned(), "0".to_owned()),
        ]),
        Bytes::new(),
    );
    let answer = raw.request(query).await.unwrap();
    assert_eq!(answer.field("offset"), Some("0"), "broadcasting offsets never reach the broker");

    again.shutdown().await;
    producer.shutdown().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_a_timestamp_only_messages_stored_since_then_arrive() {
    let cluster = Cluster::start(|_| {}).await;
    cluster.create_topic("since", 4).await;
    let producer = Producer::start(cluster.env.clone(), cluster.client("p"), "pg").await;
    for i in 0..8 {
        producer.send(&Message::new("since", format!("old-{i}"))).await.unwrap();
    }
    let inspector = PullConsumer::new(cluster.env.clone(), cluster.client("i"), "inspect");
    let mut last_old_ms = 0;
    for queue in inspector.fetch_queues("since").await.unwrap() {
        let pulled = inspector.pull(&queue, "*", 0, 32).await.unwrap();
        for message in pulled.messages {
            last_old_ms = last_old_ms.max(message.record.store_timestamp);
        }
    }
    // The boundary must fall between two stored messages: let the clock pass the last old one.
    while twinmq_runtime::Env::clock(&cluster.env).now_ms() <= last_old_ms {
        tokio::task::yield_now().await;
    }
    for i in 0..8 {
        producer.send(&Message::new("since", format!("new-{i}"))).await.unwrap();
    }
    let (tx, mut deliveries) = mpsc::unbounded_channel();
    let config = PushConsumerConfig {
        model: MessageModel::Broadcasting,
        consume_from: ConsumeFrom::Timestamp(last_old_ms + 1),
        ..fast("tg")
    };
    let since = consumer(&cluster, "S", config, "since", tx, |_| ConsumeResult::Success);
    let got = receive(&mut deliveries, 8).await;
    assert!(got.iter().all(|d| d.body.starts_with("new-")), "{got:?}");
    assert_eq!(got.iter().map(|d| d.body.as_str()).collect::<BTreeSet<_>>().len(), 8);

    since.shutdown().await;
    inspector.shutdown().await;
    producer.shutdown().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_panics_gets_the_message_again() {
    let cluster = Cluster::start(|config| config.delay_levels_ms = vec![100; 18]).await;
    cluster.create_topic("fragile", 4).await;
    let producer = Producer::start(cluster.env.clone(), cluster.client("p"), "pg").await;
    let (tx, mut deliveries) = mpsc::unbounded_channel();
    let panicked = std::sync::atomic::AtomicBool::new(false);
    let fragile = consumer(&cluster, "F", fast("fg"), "fragile", tx, move |_| {
        if !panicked.swap(true, std::sync::atomic::Ordering::SeqCst) {
            panic!("a handler bug, once");
        }
        ConsumeResult::Success
    });
    owned_once(&fragile, "fragile", |q| q.len() == 4).await;
    producer.send(&Message::new("fragile", "again")).await.unwrap();
    let got = receive(&mut deliveries, 2).await;
    assert_eq!(
        got.iter().map(|d| (d.body.as_str(), d.reconsume_times)).collect::<Vec<_>>(),
        [("again", 0), ("again", 1)],
        "the panic counted as reconsume-later, the queue lived on"
    );
    fragile.shutdown().await;
    producer.shutdown().await;
    cluster.stop().await;
}
