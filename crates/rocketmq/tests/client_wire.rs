//! What the client puts on the wire, held against what rocketmq-client-rust 1.0.0 was seen to
//! send (research/rocketmq-wire.md): every request the producer, pull, push (clustering,
//! orderly) and transaction clients make goes through a recording proxy in front of a real
//! broker, and the header fields of each request code must be exactly the reference client's.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use common::patiently;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, mpsc};
use twinmq_rocketmq::broker::{Broker, BrokerConfig};
use twinmq_rocketmq::client::{
    ClientConfig, ConsumeResult, LocalTransactionState, Message, MessageQueue, Producer,
    PullConsumer, PushConsumer, PushConsumerConfig, ReceivedMessage, SendResult,
    TransactionListener, TransactionProducer,
};
use twinmq_rocketmq::remoting::response_code::SUCCESS;
use twinmq_rocketmq::remoting::{
    Peer, Processor, RemotingCommand, request_code::*, serve, try_frame,
};
use twinmq_runtime::{Env, Net, RealEnv, Shutdown};

/// Requests seen, in arrival order.
#[derive(Default)]
struct Recorder {
    requests: Mutex<Vec<RemotingCommand>>,
    recorded: Notify,
}

impl Recorder {
    fn record(&self, request: RemotingCommand) {
        self.requests.lock().unwrap().push(request);
        self.recorded.notify_waiters();
    }

    /// Waits until some recorded request satisfies `wanted`.
    async fn until(&self, what: &str, wanted: impl Fn(&RemotingCommand) -> bool) {
        patiently(what, async {
            loop {
                let recorded = self.recorded.notified();
                tokio::pin!(recorded);
                recorded.as_mut().enable();
                if self.requests.lock().unwrap().iter().any(&wanted) {
                    return;
                }
                recorded.await;
            }
        })
        .await;
    }
}

/// A nameserver that routes every topic to the proxy (4 queues; 1 for retry topics).
struct RoutesToProxy {
    proxy: SocketAddr,
    recorder: Arc<Recorder>,
}

impl Processor for RoutesToProxy {
    async fn process(&self, request: RemotingCommand, _peer: &Peer) -> Option<RemotingCommand> {
        self.recorder.record(request.clone());
        let topic = request.field("topic").unwrap_or_default();
        let queues = if topic.starts_with("%RETRY%") { 1 } else { 4 };
        let route = serde_json::json!({
            "orderTopicConf": null,
            "queueDatas": [{"brokerName": "broker-a", "readQueueNums": queues, "writeQueueNums": queues, "perm": 6, "topicSysFlag": 0}],
            "brokerDatas": [{"cluster": "DefaultCluster", "brokerName": "broker-a", "brokerAddrs": {"0": self.proxy.to_string()}, "zoneName": null, "enableActingMaster": false}],
            "filterServerTable": {},
            "topicQueueMappingInfo": null,
        });
        Some(
            RemotingCommand::response_to(&request, SUCCESS, None)
                .with_body(serde_json::to_vec(&route).unwrap()),
        )
    }
}

/// Relays one connection to `broker`, recording the client's requests.
async fn relay(
    env: RealEnv,
    client: <<RealEnv as Env>::Net as Net>::Stream,
    broker: String,
    recorder: Arc<Recorder>,
) {
    let Ok(server) = env.net().connect(&broker).await else { return };
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut server_read, mut server_write) = tokio::io::split(server);
    let back = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    });
    let mut seen = BytesMut::new();
    let mut chunk = vec![0; 64 * 1024];
    while let Ok(read) = client_read.read(&mut chunk).await {
        if read == 0 || server_write.write_all(&chunk[..read]).await.is_err() {
            break;
        }
        seen.extend_from_slice(&chunk[..read]);
        while let Ok(Some(frame)) = try_frame(&mut seen, 1 << 26) {
            if let Ok(command) = RemotingCommand::decode(frame) {
                recorder.record(command);
            }
        }
    }
    back.abort();
}

fn keys(request: &RemotingCommand) -> BTreeSet<&str> {
    request.ext_fields.keys().map(String::as_str).collect()
}

fn set(names: &[&'static str]) -> BTreeSet<&'static str> {
    names.iter().copied().collect()
}

struct Decides;

impl TransactionListener for Decides {
    fn execute_local_transaction(&self, _: &Message, _: &SendResult) -> LocalTransactionState {
        LocalTransactionState::CommitMessage
    }

    fn check_local_transaction(&self, _: &ReceivedMessage) -> LocalTransactionState {
        LocalTransactionState::CommitMessage
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_carries_the_reference_clients_header_fields() {
    let env = RealEnv::new();
    let dir = tempfile::tempdir().unwrap();
    let shutdown = Shutdown::new();
    let recorder = Arc::new(Recorder::default());

    let mut config =
        BrokerConfig::new("127.0.0.1:0".parse().unwrap(), Vec::new(), dir.path().to_owned());
    config.delay_levels_ms = vec![100; 18];
    let broker = Broker::bind(env.clone(), config).await.unwrap();
    let broker_addr = broker.local_addr().to_string();
    let broker_shutdown = Shutdown::new();
    let broker_task = tokio::spawn(broker.run(broker_shutdown.clone()));

    let proxy = env.net().bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    let proxy_task = tokio::spawn({
        let (env, recorder) = (env.clone(), Arc::clone(&recorder));
        async move {
            while let Ok((stream, _)) = proxy.accept().await {
                tokio::spawn(relay(
                    env.clone(),
                    stream,
                    broker_addr.clone(),
                    Arc::clone(&recorder),
                ));
            }
        }
    });
    let namesrv = env.net().bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let namesrv_addr = namesrv.local_addr().unwrap().to_string();
    let namesrv_task = tokio::spawn(serve::<RealEnv, _>(
        namesrv,
        Arc::new(RoutesToProxy { proxy: proxy_addr, recorder: Arc::clone(&recorder) }),
        1 << 20,
        shutdown.clone(),
    ));
    let client = |id: &str| ClientConfig::new(vec![namesrv_addr.clone()], id);

    // Producer: sync, oneway, batch.
    let producer = Producer::start(env.clone(), client("wire-p"), "wp").await;
    let sent =
        producer.send(&Message::new("w", "sync").with_tags("TagA").with_key("k")).await.unwrap();
    producer.send_oneway(&Message::new("w", "oneway")).await.unwrap();
    producer.send_batch(&[Message::new("w", "b0"), Message::new("w", "b1")]).await.unwrap();

    // Pull consumer: pull, offsets.
    let puller = PullConsumer::new(env.clone(), client("wire-c"), "wpull");
    puller.pull(&sent.queue, "TagA", 0, 32).await.unwrap();
    puller.committed_offset(&sent.queue).await.unwrap();
    puller.max_offset(&sent.queue).await.unwrap();

    // Push consumer: one message handed back once, offsets persisted periodically (oneway).
    let (tx, mut delivered) = mpsc::unbounded_channel();
    let failed_once = Mutex::new(false);
    let push_config = PushConsumerConfig {
        offset_persist_interval_ms: 100,
        long_poll_suspend_ms: 1_000,
        ..PushConsumerConfig::new("wpush")
    };
    let pusher = PushConsumer::start(
        env.clone(),
        client("wire-push"),
        push_config,
        &[("w", "*")],
        move |_: &MessageQueue, messages: &[ReceivedMessage]| {
            let _ = tx.send(messages.len());
            let mut failed = failed_once.lock().unwrap();
            if *failed {
                ConsumeResult::Success
            } else {
                *failed = true;
                ConsumeResult::ReconsumeLater
            }
        },
    );
    let mut deliveries = 0;
    while deliveries < 5 {
        deliveries += patiently("push deliveries", delivered.recv()).await.unwrap();
    }
    recorder
        .until("a periodic offset commit", |r| r.code == UPDATE_CONSUMER_OFFSET && r.is_oneway())
        .await;
    pusher.shutdown().await;

    // Orderly consumer: locks and unlocks.
    let orderly = PushConsumer::start(
        env.clone(),
        client("wire-orderly"),
        PushConsumerConfig { orderly: true, ..PushConsumerConfig::new("worder") },
        &[("w", "*")],
        |_: &MessageQueue, _: &[ReceivedMessage]| ConsumeResult::Success,
    );
    orderly.assignment_when(|owned| owned.iter().filter(|q| q.topic == "w").count() == 4).await;
    orderly.shutdown().await;

    // Transactions.
    let transactions =
        TransactionProducer::start(env.clone(), client("wire-tx"), "wtx", Arc::new(Decides)).await;
    transactions.send_in_transaction(&Message::new("w", "half")).await.unwrap();
    recorder.until("END_TRANSACTION", |r| r.code == END_TRANSACTION).await;
    transactions.shutdown().await;
    producer.shutdown().await;
    puller.shutdown().await;

    let expected: BTreeMap<i32, Vec<BTreeSet<&str>>> = BTreeMap::from([
        (GET_ROUTEINFO_BY_TOPIC, vec![set(&["topic"])]),
        (
            SEND_MESSAGE,
            vec![set(&[
                "producerGroup",
                "topic",
                "defaultTopic",
                "defaultTopicQueueNums",
                "queueId",
                "sysFlag",
                "bornTimestamp",
                "flag",
                "properties",
                "reconsumeTimes",
                "unitMode",
                "batch",
                "bname",
            ])],
        ),
        (
            SEND_BATCH_MESSAGE,
            vec![set(&["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "m", "n", "bname"])],
        ),
        (
            PULL_MESSAGE,
            vec![set(&[
                "consumerGroup",
                "topic",
                "queueId",
                "queueOffset",
                "maxMsgNums",
                "sysFlag",
                "commitOffset",
                "suspendTimeoutMillis",
                "subscription",
                "subVersion",
                "expressionType",
                "maxMsgBytes",
                "bname",
            ])],
        ),
        (QUERY_CONSUMER_OFFSET, vec![set(&["topic", "consumerGroup", "queueId", "bname"])]),
        (
            UPDATE_CONSUMER_OFFSET,
            vec![set(&["topic", "consumerGroup", "queueId", "commitOffset", "bname"])],
        ),
        (GET_MAX_OFFSET, vec![set(&["topic", "queueId", "committed", "bname"])]),
        (HEART_BEAT, vec![set(&[])]),
        (
            UNREGISTER_CLIENT,
            vec![set(&["clientID", "producerGroup"]), set(&["clientID", "consumerGroup"])],
        ),
        (
            CONSUMER_SEND_MSG_BACK,
            vec![set(&[
                "offset",
                "group",
                "delayLevel",
                "originMsgId",
                "originTopic",
                "unitMode",
                "maxReconsumeTimes",
                "bname",
            ])],
        ),
        (
            END_TRANSACTION,
            vec![set(&[
                "producerGroup",
                "tranStateTableOffset",
                "commitLogOffset",
                "commitOrRollback",
                "msgId",
                "transactionId",
                "fromTransactionCheck",
                "topic",
                "bname",
            ])],
        ),
        (GET_CONSUMER_LIST_BY_GROUP, vec![set(&["consumerGroup"])]),
        (LOCK_BATCH_MQ, vec![set(&[])]),
        (UNLOCK_BATCH_MQ, vec![set(&[])]),
    ]);
    let requests = recorder.requests.lock().unwrap().clone();
    let seen: BTreeSet<i32> = requests.iter().map(|r| r.code).collect();
    let expected_codes: BTreeSet<i32> = expected.keys().copied().collect();
    assert_eq!(seen, expected_codes, "exactly the reference client's request codes");
    for request in &requests {
        assert_eq!(request.language, "RUST");
        assert!(
            expected[&request.code].contains(&keys(request)),
            "code {} sent {:?}",
            request.code,
            keys(request)
        );
    }
    let first = |code: i32| requests.iter().find(|r| r.code == code).unwrap();
    let oneway_send = requests.iter().filter(|r| r.code == SEND_MESSAGE && r.is_oneway()).count();
    assert_eq!(oneway_send, 1);
    let end = first(END_TRANSACTION);
    assert!(end.is_oneway() && end.remark.as_deref() == Some(""));
    assert_eq!(end.field("fromTransactionCheck"), Some("false"));
    let half = requests
        .iter()
        .find(|r| r.code == SEND_MESSAGE && r.field("sysFlag") == Some("4"))
        .unwrap();
    assert!(half.field("properties").unwrap().contains("TRAN_MSG\u{1}true\u{2}"));
    let heartbeat: serde_json::Value = serde_json::from_slice(&first(HEART_BEAT).body).unwrap();
    let heartbeat_keys: BTreeSet<&str> =
        heartbeat.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        heartbeat_keys,
        set(&[
            "clientID",
            "producerDataSet",
            "consumerDataSet",
            "heartbeatFingerprint",
            "withoutSub"
        ])
    );
    let lock: serde_json::Value = serde_json::from_slice(&first(LOCK_BATCH_MQ).body).unwrap();
    let lock_keys: BTreeSet<&str> = lock.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(lock_keys, set(&["consumerGroup", "clientId", "onlyThisBroker", "mqSet"]));
    let push_pull = requests
        .iter()
        .find(|r| r.code == PULL_MESSAGE && r.field("consumerGroup") == Some("wpush"))
        .unwrap();
    assert_eq!(
        (push_pull.field("sysFlag"), push_pull.field("subscription")),
        (Some("2"), Some("")),
        "a push consumer's pull suspends and relies on the heartbeat's subscription"
    );

    broker_shutdown.trigger();
    broker_task.await.unwrap().unwrap();
    shutdown.trigger();
    namesrv_task.await.unwrap();
    proxy_task.abort();
}
