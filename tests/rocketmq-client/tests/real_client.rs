//! rocketmq-client-rust 1.0 against `twinmq serve rocketmq-namesrv` + `rocketmq-broker`
//! processes on loopback: every send mode, ordered and filtered consumption, delayed messages,
//! consumer-group rebalancing and offsets, retries into the dead-letter queue, transactions.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use rocketmq_client_rust::{LocalTransactionState, TransactionListener, TransactionMQProducer};
use rocketmq_model::common::message::MessageTrait;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_queue::MessageQueue;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::result::SendStatus;
use tokio::task::JoinSet;
use twinmq_e2e::{RemotingConnection, RocketmqCluster};
use twinmq_e2e_rocketmq_client::{
    CONDITION_WAIT, ConsumerOptions, Inbox, Verdict, client_runtime, publish_queues,
    start_producer, start_push_consumer, wait_until,
};

/// Messages per send mode.
const PER_MODE: usize = 10_000;
/// Short delay levels so that retries and delayed messages take seconds, not hours.
const SHORT_DELAY_LEVELS: &str = "1s 2s 3s 4s 5s 6s 7s 8s 9s 10s 11s 12s 13s 14s 15s 16s 17s 18s";
/// GET_MAX_OFFSET.
const GET_MAX_OFFSET: i32 = 30;

fn message(topic: &str, tag: &str, body: &str) -> Message {
    Message::builder().topic(topic).tags(tag).body_slice(body.as_bytes()).build_unchecked()
}

/// Messages in all of a topic's queues, asked of the broker over the wire (GET_MAX_OFFSET).
fn stored_in_topic(cluster: &RocketmqCluster, topic: &str, queues: u32) -> i64 {
    let mut connection = RemotingConnection::connect(&cluster.broker.addr);
    (0..queues)
        .map(|queue| {
            let queue = queue.to_string();
            let reply =
                connection.request(GET_MAX_OFFSET, &[("topic", topic), ("queueId", &queue)], &[]);
            reply.ext.get("offset").and_then(|o| o.parse::<i64>().ok()).unwrap_or(0)
        })
        .sum()
}

/// Every message body in a topic's queues with its (queue, queue offset), pulled over the wire.
fn stored_bodies(
    cluster: &RocketmqCluster,
    topic: &str,
    queues: u32,
) -> BTreeMap<String, (u32, i64)> {
    let mut connection = RemotingConnection::connect(&cluster.broker.addr);
    let mut bodies = BTreeMap::new();
    for queue in 0..queues {
        let mut offset = 0i64;
        loop {
            let (queue_text, offset_text) = (queue.to_string(), offset.to_string());
            let reply = connection.request(
                11,
                &[
                    ("consumerGroup", "inspector"),
                    ("topic", topic),
                    ("queueId", &queue_text),
                    ("queueOffset", &offset_text),
                    ("maxMsgNums", "1000"),
                    ("sysFlag", "0"),
                    ("subscription", "*"),
                ],
                &[],
            );
            if reply.code != 0 {
                break;
            }
            let mut at = 0;
            while at + 88 <= reply.body.len() {
                let record = &reply.body[at..];
                let size = u32::from_be_bytes(record[..4].try_into().unwrap()) as usize;
                let queue_offset = i64::from_be_bytes(record[20..28].try_into().unwrap());
                let length = u32::from_be_bytes(record[84..88].try_into().unwrap()) as usize;
                let body = String::from_utf8_lossy(&record[88..88 + length]).into_owned();
                bodies.insert(body, (queue, queue_offset));
                at += size;
            }
            offset = reply.ext["nextBeginOffset"].parse().unwrap();
        }
    }
    bodies
}

fn assert_no_panic(cluster: &RocketmqCluster) {
    let logs = cluster.logs();
    assert!(!logs.contains("panicked"), "a server panicked:\n{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_oneway_and_batch_sends_are_each_consumed_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = RocketmqCluster::start(dir.path(), &[]);
    let namesrv = cluster.namesrv_addr();
    let topic = "SendModes";
    let producer = Arc::new(start_producer(&namesrv, "send-modes-producer").await);

    // Sync: every send waits for the broker's answer; eight senders at a time.
    let mut senders = JoinSet::new();
    for first in 0..8 {
        let producer = Arc::clone(&producer);
        senders.spawn(async move {
            for i in (first..PER_MODE).step_by(8) {
                let result = producer.send(message(topic, "TagA", &format!("sync-{i}"))).await;
                let result = result.expect("sync send").expect("a send result");
                assert_eq!(result.send_status, SendStatus::SendOk);
            }
        });
    }
    while let Some(done) = senders.join_next().await {
        done.expect("sync sender");
    }
    cluster.wait_until_routed(topic);
    let (mut consumer, inbox) = start_push_consumer(
        &namesrv,
        "send-modes-consumer",
        topic,
        "*",
        ConsumerOptions::default(),
    )
    .await;
    for i in 0..PER_MODE {
        producer.send_oneway(message(topic, "TagB", &format!("oneway-{i}"))).await.expect("oneway");
    }
    let batches: Vec<usize> = (0..PER_MODE).collect();
    for batch in batches.chunks(100) {
        let messages =
            batch.iter().map(|i| message(topic, "TagC", &format!("batch-{i}"))).collect();
        let result = producer.send_batch(messages).await.expect("batch send");
        assert_eq!(result.send_status, SendStatus::SendOk);
    }

    let total = 3 * PER_MODE;
    let expected: BTreeSet<String> = ["sync", "oneway", "batch"]
        .iter()
        .flat_map(|mode| (0..PER_MODE).map(move |i| format!("{mode}-{i}")))
        .collect();
    wait_until(
        &format!("{total} messages consumed"),
        || inbox.len() >= total,
        || {
            let got: BTreeSet<String> = inbox.bodies().into_iter().collect();
            let stored = stored_bodies(&cluster, topic, 4);
            let missing: Vec<_> = expected.difference(&got).map(|b| (b, stored.get(b))).collect();
            format!(
                "consumed {}, stored {}, missing {} ({:?}…)\n{}",
                inbox.len(),
                stored_in_topic(&cluster, topic, 4),
                missing.len(),
                &missing[..missing.len().min(100)],
                cluster.logs()
            )
        },
    )
    .await;
    consumer.shutdown().await;
    let bodies = inbox.bodies();
    let distinct: BTreeSet<String> = bodies.iter().cloned().collect();
    assert_eq!(bodies.len(), total, "some messages were delivered twice");
    assert!(distinct == expected, "consumed bodies differ from the sent ones");
    Arc::into_inner(producer).expect("the senders are done").shutdown().await;
    assert_no_panic(&cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_of_one_key_reach_an_orderly_consumer_in_send_order() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = RocketmqCluster::start(dir.path(), &[]);
    let namesrv = cluster.namesrv_addr();
    let topic = "Ordered";
    let (keys, per_key) = (16u64, 50u64);
    let mut producer = start_producer(&namesrv, "ordered-producer").await;
    // Interleave the keys, as orders arriving together would be.
    for seq in 0..per_key {
        for key in 0..keys {
            let selector = |queues: &[MessageQueue], _: &Message, key: &u64| {
                let hash = key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
                queues.get(usize::try_from(hash % queues.len() as u64).ok()?).cloned()
            };
            let body = format!("key-{key}-{seq}");
            let result = producer
                .send_with_selector(message(topic, "Order", &body), selector, key)
                .await
                .expect("ordered send")
                .expect("a send result");
            assert_eq!(result.send_status, SendStatus::SendOk);
        }
    }
    producer.shutdown().await;

    cluster.wait_until_routed(topic);
    let options = ConsumerOptions { orderly: true, ..ConsumerOptions::default() };
    let (mut consumer, inbox) =
        start_push_consumer(&namesrv, "ordered-consumer", topic, "*", options).await;
    let total = usize::try_from(keys * per_key).unwrap();
    wait_until(
        &format!("{total} ordered messages consumed"),
        || inbox.len() >= total,
        || format!("consumed {}\n{}", inbox.len(), cluster.logs()),
    )
    .await;
    consumer.shutdown().await;
    let mut by_key: BTreeMap<u64, (Vec<u64>, BTreeSet<i32>)> = BTreeMap::new();
    for received in inbox.messages().iter() {
        let mut parts = received.body.split('-').skip(1).map(|n| n.parse::<u64>().unwrap());
        let (key, seq) = (parts.next().unwrap(), parts.next().unwrap());
        let entry = by_key.entry(key).or_default();
        entry.0.push(seq);
        entry.1.insert(received.queue_id);
    }
    assert_eq!(by_key.len(), usize::try_from(keys).unwrap());
    for (key, (seqs, queues)) in by_key {
        assert_eq!(seqs, (0..per_key).collect::<Vec<_>>(), "key {key} out of order");
        assert_eq!(queues.len(), 1, "key {key} spread over queues {queues:?}");
    }
    assert_no_panic(&cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_expression_delivers_only_the_subscribed_tags() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = RocketmqCluster::start(dir.path(), &[]);
    let namesrv = cluster.namesrv_addr();
    let topic = "Tagged";
    let mut producer = start_producer(&namesrv, "tag-producer").await;
    let tags = ["TagA", "TagB", "TagC", "TagD"];
    for i in 0..100 {
        let tag = tags[i % 4];
        producer.send(message(topic, tag, &format!("{tag}-{i}"))).await.expect("send");
    }
    cluster.wait_until_routed(topic);
    let (mut consumer, inbox) = start_push_consumer(
        &namesrv,
        "tag-consumer",
        topic,
        "TagA || TagC",
        ConsumerOptions::default(),
    )
    .await;
    // A TagC fence at the end of every queue: once all fences are in, every message before
    // them has been pulled, so a TagB or TagD that got through would be in the inbox too.
    let queues = publish_queues(&mut producer, topic).await;
    for (n, queue) in queues.iter().enumerate() {
        producer
            .send_to_queue(message(topic, "TagC", &format!("fence-{n}")), queue.clone())
            .await
            .expect("fence send");
    }
    let expected: BTreeSet<String> = (0..100)
        .filter(|i| i % 2 == 0)
        .map(|i| format!("{}-{i}", tags[i % 4]))
        .chain((0..queues.len()).map(|n| format!("fence-{n}")))
        .collect();
    wait_until(
        "every TagA and TagC message and every fence consumed",
        || inbox.bodies().into_iter().collect::<BTreeSet<_>>().is_superset(&expected),
        || format!("consumed {:?}\n{}", inbox.bodies(), cluster.logs()),
    )
    .await;
    consumer.shutdown().await;
    producer.shutdown().await;
    let unexpected: Vec<String> = inbox
        .messages()
        .iter()
        .filter_map(|m| m.tags.clone())
        .filter(|t| t != "TagA" && t != "TagC")
        .collect();
    assert!(unexpected.is_empty(), "unsubscribed tags delivered: {unexpected:?}");
    assert_eq!(inbox.len(), expected.len(), "duplicates: {:?}", inbox.bodies());
    assert_no_panic(&cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_message_is_stored_for_consumers_only_after_its_level_delay() {
    let dir = tempfile::tempdir().unwrap();
    let cluster =
        RocketmqCluster::start(dir.path(), &["--message-delay-level", SHORT_DELAY_LEVELS]);
    let namesrv = cluster.namesrv_addr();
    let topic = "Delayed";
    let producer = start_producer(&namesrv, "delay-producer").await;
    producer.send(message(topic, "Now", "now")).await.expect("send");
    cluster.wait_until_routed(topic);
    let (mut consumer, inbox) =
        start_push_consumer(&namesrv, "delay-consumer", topic, "*", ConsumerOptions::default())
            .await;
    let mut delayed = message(topic, "Later", "later");
    delayed.set_delay_time_level(3);
    producer.send(delayed).await.expect("delayed send");
    wait_until(
        "the delayed message consumed",
        || inbox.bodies().contains(&"later".to_owned()),
        || format!("consumed {:?}\n{}", inbox.bodies(), cluster.logs()),
    )
    .await;
    consumer.shutdown().await;
    let later = inbox.messages().iter().find(|m| m.body == "later").cloned().unwrap();
    let level_3_ms = 3_000;
    assert!(
        later.store_timestamp_ms - later.born_timestamp_ms >= level_3_ms,
        "stored in its topic {} ms after it was born, before its 3 s delay",
        later.store_timestamp_ms - later.born_timestamp_ms
    );
    assert_eq!(later.topic, topic);
    assert_no_panic(&cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_members_split_queues_survivor_takes_over_and_restart_resumes_at_commit() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = RocketmqCluster::start(dir.path(), &[]);
    let namesrv = cluster.namesrv_addr();
    let (topic, group) = ("Shared", "shared-group");
    let mut producer = start_producer(&namesrv, "shared-producer").await;
    producer.send(message(topic, "T", "create")).await.expect("send");
    let queues = publish_queues(&mut producer, topic).await;
    assert_eq!(queues.len(), 4);
    let options = ConsumerOptions::default();
    let (mut first, first_inbox) = start_push_consumer(&namesrv, group, topic, "*", options).await;
    let (mut second, second_inbox) =
        start_push_consumer(&namesrv, group, topic, "*", options).await;

    // Rounds of one message per queue until a whole round shows the queues split two and two.
    let mut round = 0;
    let deadline = Instant::now() + CONDITION_WAIT;
    loop {
        round += 1;
        let bodies: Vec<String> = (0..4).map(|q| format!("round-{round}-q{q}")).collect();
        for (body, queue) in bodies.iter().zip(&queues) {
            producer.send_to_queue(message(topic, "T", body), queue.clone()).await.expect("send");
        }
        let everyone = || {
            let mut all = first_inbox.bodies();
            all.extend(second_inbox.bodies());
            all
        };
        wait_until(
            &format!("round {round} consumed"),
            || bodies.iter().all(|b| everyone().contains(b)),
            || cluster.logs(),
        )
        .await;
        let queues_of = |inbox: &Inbox| {
            let prefix = format!("round-{round}-");
            inbox
                .messages()
                .iter()
                .filter(|m| m.body.starts_with(&prefix))
                .map(|m| m.queue_id)
                .collect::<BTreeSet<_>>()
        };
        let (mine, theirs) = (queues_of(&first_inbox), queues_of(&second_inbox));
        if mine.len() == 2 && theirs.len() == 2 && mine.is_disjoint(&theirs) {
            break;
        }
        assert!(Instant::now() < deadline, "queues never split: {mine:?} {theirs:?}");
    }

    // The second member leaves: the first takes over its queues from the committed offsets.
    second.shutdown().await;
    let after_second: Vec<String> = (0..100).map(|i| format!("after-second-{i}")).collect();
    for (i, body) in after_second.iter().enumerate() {
        let queue = queues[i % 4].clone();
        producer.send_to_queue(message(topic, "T", body), queue).await.expect("send");
    }
    wait_until(
        "the survivor consumed every message sent after the other left",
        || {
            let got = first_inbox.bodies();
            after_second.iter().all(|b| got.contains(b))
        },
        || cluster.logs(),
    )
    .await;

    // The first member stops too; a new member of the group starts where it committed.
    first.shutdown().await;
    let while_down: Vec<String> = (0..100).map(|i| format!("while-down-{i}")).collect();
    for (i, body) in while_down.iter().enumerate() {
        let queue = queues[i % 4].clone();
        producer.send_to_queue(message(topic, "T", body), queue).await.expect("send");
    }
    let (mut restarted, restarted_inbox) =
        start_push_consumer(&namesrv, group, topic, "*", options).await;
    wait_until(
        "the restarted member consumed what was sent while the group was down",
        || restarted_inbox.len() >= while_down.len(),
        || format!("{:?}\n{}", restarted_inbox.bodies(), cluster.logs()),
    )
    .await;
    restarted.shutdown().await;
    producer.shutdown().await;
    let got = restarted_inbox.bodies();
    assert!(
        got.iter().all(|b| b.starts_with("while-down-")),
        "consumed again what was committed before: {got:?}"
    );
    assert_eq!(got.iter().collect::<BTreeSet<_>>().len(), while_down.len());
    assert_no_panic(&cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_failing_sixteen_retries_lands_in_the_dead_letter_queue() {
    let dir = tempfile::tempdir().unwrap();
    let all_levels_short = ["100ms"; 18].join(" ");
    let cluster = RocketmqCluster::start(dir.path(), &["--message-delay-level", &all_levels_short]);
    let namesrv = cluster.namesrv_addr();
    let (topic, group) = ("Doomed", "doomed-group");
    let producer = start_producer(&namesrv, "doomed-producer").await;
    producer.send(message(topic, "T", "doomed")).await.expect("send");
    let options =
        ConsumerOptions { verdict: Verdict::ReconsumeLater, ..ConsumerOptions::default() };
    cluster.wait_until_routed(topic);
    let (mut failing, attempts) = start_push_consumer(&namesrv, group, topic, "*", options).await;
    let dlq = format!("%DLQ%{group}");
    wait_until(
        "the original delivery and 16 retries",
        || attempts.len() >= 17,
        || format!("{:?}\n{}", attempts.messages(), cluster.logs()),
    )
    .await;
    cluster.wait_until_routed(&dlq);
    let (mut reader, dead) =
        start_push_consumer(&namesrv, "dlq-reader", &dlq, "*", ConsumerOptions::default()).await;
    wait_until("the message in the dead-letter queue", || !dead.is_empty(), || cluster.logs())
        .await;
    failing.shutdown().await;
    reader.shutdown().await;
    let times: Vec<i32> = attempts.messages().iter().map(|m| m.reconsume_times).collect();
    assert_eq!(times, (0..=16).collect::<Vec<_>>(), "deliveries by reconsume times");
    assert!(attempts.messages().iter().all(|m| m.body == "doomed" && m.topic == topic));
    assert_eq!(dead.bodies(), vec!["doomed".to_owned()]);
    assert_no_panic(&cluster);
}

/// Decides transactions by tag: `commit` and `rollback` at once; `pending` answers UNKNOWN
/// until `release` is set, then commits when the broker checks back.
#[derive(Default)]
struct TagDecides {
    release: Arc<AtomicBool>,
    checks: Arc<AtomicUsize>,
}

impl TransactionListener for TagDecides {
    fn execute_local_transaction(
        &self,
        message: &dyn MessageTrait,
        _argument: Option<&(dyn Any + Send + Sync)>,
    ) -> LocalTransactionState {
        match message.tags().as_deref() {
            Some("commit") => LocalTransactionState::CommitMessage,
            Some("rollback") => LocalTransactionState::RollbackMessage,
            _ => LocalTransactionState::Unknown,
        }
    }

    fn check_local_transaction(&self, message: &MessageExt) -> LocalTransactionState {
        self.checks.fetch_add(1, Ordering::SeqCst);
        match message.get_tags().as_deref() {
            Some("commit") => LocalTransactionState::CommitMessage,
            Some("rollback") => LocalTransactionState::RollbackMessage,
            _ if self.release.load(Ordering::SeqCst) => LocalTransactionState::CommitMessage,
            _ => LocalTransactionState::Unknown,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_half_is_invisible_until_committed_rollback_never_delivered_unknown_checked() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--transaction-timeout-ms", "500", "--transaction-check-interval-ms", "500"];
    let cluster = RocketmqCluster::start(dir.path(), &flags);
    let namesrv = cluster.namesrv_addr();
    let topic = "Transfers";
    let listener = TagDecides::default();
    let (release, checks) = (Arc::clone(&listener.release), Arc::clone(&listener.checks));
    let mut producer = TransactionMQProducer::builder(client_runtime("transaction-producer"))
        .producer_group("tx-producer".to_owned())
        .name_server_addr(namesrv.clone())
        .topics(vec![topic])
        .transaction_listener(listener)
        .build();
    producer.start().await.expect("the transactional producer starts");
    for tag in ["commit", "rollback", "pending"] {
        let result = producer
            .send_message_in_transaction::<(), _>(message(topic, tag, tag), None)
            .await
            .expect("half message sent");
        assert_eq!(result.send_result.expect("a send result").send_status, SendStatus::SendOk);
    }
    wait_until(
        "the committed message stored in its topic",
        || stored_in_topic(&cluster, topic, 4) >= 1,
        || cluster.logs(),
    )
    .await;
    wait_until(
        "the broker checked the pending transaction back",
        || checks.load(Ordering::SeqCst) >= 1,
        || cluster.logs(),
    )
    .await;
    assert_eq!(stored_in_topic(&cluster, topic, 4), 1, "an undecided half became visible");
    release.store(true, Ordering::SeqCst);
    wait_until(
        "the checked-back transaction committed",
        || stored_in_topic(&cluster, topic, 4) >= 2,
        || cluster.logs(),
    )
    .await;
    cluster.wait_until_routed(topic);
    let (mut consumer, inbox) =
        start_push_consumer(&namesrv, "tx-consumer", topic, "*", ConsumerOptions::default()).await;
    wait_until("both committed messages consumed", || inbox.len() >= 2, || cluster.logs()).await;
    consumer.shutdown().await;
    producer.shutdown().await;
    let bodies: BTreeSet<String> = inbox.bodies().into_iter().collect();
    assert_eq!(bodies, BTreeSet::from(["commit".to_owned(), "pending".to_owned()]));
    assert_eq!(stored_in_topic(&cluster, topic, 4), 2, "the rolled-back message was stored");
    assert_no_panic(&cluster);
}
