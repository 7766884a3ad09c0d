//! A nameserver and a broker on loopback, spoken to in the remoting protocol as the Rust client
//! speaks it: sends (long and one-letter header names) auto-create the topic and reach the
//! nameserver's routes; pulls filter by tag, long-poll until a message arrives, and return
//! RocketMQ's record layout; offsets commit and survive a restart; heartbeats make a group
//! whose members are told when it changes.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use twinmq_rocketmq::broker::{Broker, BrokerConfig};
use twinmq_rocketmq::message::MessageRecord;
use twinmq_rocketmq::namesrv::{NameServer, NamesrvConfig, TopicRouteData};
use twinmq_rocketmq::remoting::response_code::*;
use twinmq_rocketmq::remoting::{RemotingClient, RemotingCommand, request_code};
use twinmq_runtime::{Env, RealEnv, RealNet, Shutdown};

fn request(code: i32, fields: &[(&str, &str)]) -> RemotingCommand {
    let ext: BTreeMap<String, String> =
        fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    RemotingCommand::request(code, ext, Bytes::new())
}

fn send(topic: &str, queue: &str, tag: &str, body: &str) -> RemotingCommand {
    let properties = format!(
        "TAGS\u{1}{tag}\u{2}KEYS\u{1}k-{body}\u{2}UNIQ_KEY\u{1}U-{body}\u{2}WAIT\u{1}true\u{2}"
    );
    request(
        request_code::SEND_MESSAGE,
        &[
            ("producerGroup", "p"),
            ("topic", topic),
            ("defaultTopic", "TBW102"),
            ("defaultTopicQueueNums", "4"),
            ("queueId", queue),
            ("sysFlag", "0"),
            ("bornTimestamp", "1"),
            ("flag", "0"),
            ("properties", &properties),
            ("reconsumeTimes", "0"),
            ("unitMode", "false"),
            ("batch", "false"),
        ],
    )
    .with_body(body.as_bytes().to_vec())
}

fn pull(
    topic: &str,
    queue: &str,
    offset: &str,
    subscription: &str,
    suspend_ms: &str,
) -> RemotingCommand {
    request(
        request_code::PULL_MESSAGE,
        &[
            ("consumerGroup", "g"),
            ("topic", topic),
            ("queueId", queue),
            ("queueOffset", offset),
            ("maxMsgNums", "32"),
            ("sysFlag", "2"),
            ("commitOffset", "-1"),
            ("suspendTimeoutMillis", suspend_ms),
            ("subscription", subscription),
            ("subVersion", "0"),
            ("expressionType", "TAG"),
        ],
    )
}

fn records(body: &[u8]) -> Vec<MessageRecord> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let record = MessageRecord::decode(rest).unwrap();
        rest = &rest[record.encoded_len()..];
        out.push(record);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_route_pull_filter_long_poll_offsets_and_groups() {
    let env = RealEnv::new();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = NameServer::bind(env.clone(), NamesrvConfig::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let namesrv_addr = namesrv.local_addr().to_string();
    let shutdown = Shutdown::new();
    let namesrv_task = tokio::spawn(namesrv.run(shutdown.clone()));
    let mut config = BrokerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        vec![namesrv_addr.clone()],
        dir.path().to_owned(),
    );
    // The restart below binds the broker's own port again; its HA port stays ephemeral, since
    // the default (broker port + 1) may meanwhile belong to another socket on this machine.
    config.ha.listen = Some("127.0.0.1:0".parse().unwrap());
    let broker = Broker::bind(env.clone(), config.clone()).await.unwrap();
    let broker_addr = broker.local_addr().to_string();
    let broker_shutdown = Shutdown::new();
    let broker_task = tokio::spawn(broker.run(broker_shutdown.clone()));

    let client = RemotingClient::<RealNet>::connect(env.net(), &broker_addr, None).await.unwrap();
    for i in 0..10 {
        let tag = if i % 2 == 0 { "TagA" } else { "TagB" };
        let sent = client.request(send("orders", "1", tag, &format!("m{i}"))).await.unwrap();
        assert_eq!(sent.code, SUCCESS, "{:?}", sent.remark);
        assert_eq!(sent.field("queueOffset"), Some(i.to_string().as_str()));
        assert_eq!(sent.field("transactionId"), Some(format!("U-m{i}").as_str()));
        assert_eq!(sent.field("msgId").map(str::len), Some(32));
    }
    let short_names = request(
        request_code::SEND_MESSAGE_V2,
        &[("a", "p"), ("b", "orders"), ("e", "2"), ("i", "TAGS\u{1}TagA\u{2}")],
    )
    .with_body(&b"v2"[..]);
    assert_eq!(client.request(short_names).await.unwrap().field("queueId"), Some("2"));

    // The new topic reaches the nameserver's routes (the broker registers it at once).
    let routes = RemotingClient::<RealNet>::connect(env.net(), &namesrv_addr, None).await.unwrap();
    let mut route = None;
    for _ in 0..500 {
        let answer = routes
            .request(request(request_code::GET_ROUTEINFO_BY_TOPIC, &[("topic", "orders")]))
            .await
            .unwrap();
        if answer.code == SUCCESS {
            route = Some(serde_json::from_slice::<TopicRouteData>(&answer.body).unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let route = route.expect("the broker registers a new topic with the nameserver");
    assert_eq!(route.queue_datas[0].write_queue_nums, 4);
    assert_eq!(route.broker_datas[0].broker_addrs["0"], broker_addr);

    let all = client.request(pull("orders", "1", "0", "*", "0")).await.unwrap();
    assert_eq!(all.code, SUCCESS);
    let got = records(&all.body);
    assert_eq!(got.len(), 10);
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, r)| r.queue_offset == i as i64 && r.topic == "orders" && r.queue_id == 1)
    );
    assert_eq!(all.field("nextBeginOffset"), Some("10"));
    let tagged = client.request(pull("orders", "1", "0", "TagB", "0")).await.unwrap();
    let bodies: Vec<Bytes> = records(&tagged.body).into_iter().map(|r| r.body).collect();
    assert_eq!(bodies, ["m1", "m3", "m5", "m7", "m9"].map(|b| Bytes::from_static(b.as_bytes())));

    // A long poll at the end is answered by the next message, not by its timeout.
    let waiting = client.request(pull("orders", "1", "10", "*", "30000"));
    let producer = RemotingClient::<RealNet>::connect(env.net(), &broker_addr, None).await.unwrap();
    let (woken, _) = tokio::join!(waiting, async {
        tokio::task::yield_now().await;
        producer.request(send("orders", "1", "TagA", "late")).await
    });
    let woken = woken.unwrap();
    assert_eq!(woken.code, SUCCESS);
    assert_eq!(records(&woken.body)[0].body, Bytes::from_static(b"late"));
    let empty = client.request(pull("orders", "3", "0", "*", "50")).await.unwrap();
    assert_eq!((empty.code, empty.field("nextBeginOffset")), (PULL_NOT_FOUND, Some("0")));

    client
        .oneway(request(
            request_code::UPDATE_CONSUMER_OFFSET,
            &[("topic", "orders"), ("consumerGroup", "g"), ("queueId", "1"), ("commitOffset", "7")],
        ))
        .await
        .unwrap();
    let max = client
        .request(request(request_code::GET_MAX_OFFSET, &[("topic", "orders"), ("queueId", "1")]))
        .await
        .unwrap();
    assert_eq!(max.field("offset"), Some("11"));
    let unknown = client.request(request(4_242, &[])).await.unwrap();
    assert_eq!(unknown.code, REQUEST_CODE_NOT_SUPPORTED);

    // Heartbeats form a group; a second member's arrival is announced to the first.
    let (notices, mut noticed) = tokio::sync::mpsc::unbounded_channel();
    let member =
        RemotingClient::<RealNet>::connect(env.net(), &broker_addr, Some(notices)).await.unwrap();
    let heartbeat = |id: &str| {
        let body = serde_json::json!({"clientID": id, "producerDataSet": [], "consumerDataSet": [{"groupName": "g", "consumeType": "CONSUME_PASSIVELY", "messageModel": "CLUSTERING", "consumeFromWhere": "CONSUME_FROM_FIRST_OFFSET", "subscriptionDataSet": [{"topic": "orders", "subString": "TagA", "tagsSet": ["TagA"], "codeSet": [2598919], "subVersion": 0, "expressionType": "TAG"}], "unitMode": false}]});
        request(request_code::HEART_BEAT, &[]).with_body(serde_json::to_vec(&body).unwrap())
    };
    assert_eq!(member.request(heartbeat("c1")).await.unwrap().code, SUCCESS);
    assert_eq!(noticed.recv().await.unwrap().code, request_code::NOTIFY_CONSUMER_IDS_CHANGED);
    assert_eq!(client.request(heartbeat("c2")).await.unwrap().code, SUCCESS);
    let notice = noticed.recv().await.unwrap();
    assert!(notice.is_oneway() && notice.field("consumerGroup") == Some("g"));
    let list = client
        .request(request(request_code::GET_CONSUMER_LIST_BY_GROUP, &[("consumerGroup", "g")]))
        .await
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&list.body).unwrap();
    assert_eq!(list["consumerIdList"], serde_json::json!(["c1", "c2"]));
    // The push consumer's pull carries no subscription: the heartbeat's TagA applies.
    let filtered = client.request(pull("orders", "1", "0", "", "0")).await.unwrap();
    assert!(records(&filtered.body).iter().all(|r| r.properties.contains("TagA")));

    // A clean restart keeps messages and committed offsets.
    broker_shutdown.trigger();
    broker_task.await.unwrap().unwrap();
    let broker =
        Broker::bind(env.clone(), BrokerConfig { listen: broker_addr.parse().unwrap(), ..config })
            .await
            .unwrap();
    let broker_shutdown = Shutdown::new();
    let broker_task = tokio::spawn(broker.run(broker_shutdown.clone()));
    let again = RemotingClient::<RealNet>::connect(env.net(), &broker_addr, None).await.unwrap();
    let committed = again
        .request(request(
            request_code::QUERY_CONSUMER_OFFSET,
            &[("topic", "orders"), ("consumerGroup", "g"), ("queueId", "1")],
        ))
        .await
        .unwrap();
    assert_eq!(committed.field("offset"), Some("7"));
    let replay = again.request(pull("orders", "1", "0", "*", "0")).await.unwrap();
    assert_eq!(records(&replay.body).len(), 11);

    broker_shutdown.trigger();
    broker_task.await.unwrap().unwrap();
    shutdown.trigger();
    namesrv_task.await.unwrap();
}

/// A broker without nameservers in a temp dir, and a client connected to it.
async fn lone_broker() -> (
    RealEnv,
    tempfile::TempDir,
    Shutdown,
    tokio::task::JoinHandle<Result<(), twinmq_storage::StorageError>>,
    RemotingClient<RealNet>,
) {
    let env = RealEnv::new();
    let dir = tempfile::tempdir().unwrap();
    let config =
        BrokerConfig::new("127.0.0.1:0".parse().unwrap(), Vec::new(), dir.path().to_owned());
    let broker = Broker::bind(env.clone(), config).await.unwrap();
    let addr = broker.local_addr().to_string();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(broker.run(shutdown.clone()));
    let client = RemotingClient::<RealNet>::connect(env.net(), &addr, None).await.unwrap();
    (env, dir, shutdown, task, client)
}

fn batch_record(body: &str, properties: &str) -> Vec<u8> {
    let total = 20 + body.len() + 2 + properties.len();
    let mut record = Vec::new();
    record.extend_from_slice(&(total as i32).to_be_bytes());
    record.extend_from_slice(&[0; 8]);
    record.extend_from_slice(&0i32.to_be_bytes());
    record.extend_from_slice(&(body.len() as i32).to_be_bytes());
    record.extend_from_slice(body.as_bytes());
    record.extend_from_slice(&(properties.len() as u16).to_be_bytes());
    record.extend_from_slice(properties.as_bytes());
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_topic_creation_and_queue_locks() {
    let (_env, _dir, shutdown, task, client) = lone_broker().await;

    let mut body = Vec::new();
    for i in 0..3 {
        body.extend(batch_record(
            &format!("batch-{i}"),
            &format!("TAGS\u{1}TagA\u{2}KEYS\u{1}B{i}\u{2}"),
        ));
    }
    let batch = request(
        request_code::SEND_BATCH_MESSAGE,
        &[
            ("a", "p"),
            ("b", "batched"),
            ("e", "0"),
            ("i", "UNIQ_KEY\u{1}BATCH\u{2}"),
            ("m", "true"),
        ],
    )
    .with_body(body);
    let sent = client.request(batch).await.unwrap();
    assert_eq!(sent.code, SUCCESS, "{:?}", sent.remark);
    assert_eq!(
        sent.field("msgId").unwrap().split(',').count(),
        3,
        "one offset message id per message"
    );
    assert_eq!(
        (sent.field("queueOffset"), sent.field("transactionId")),
        (Some("0"), Some("BATCH"))
    );
    let pulled = client.request(pull("batched", "0", "0", "*", "0")).await.unwrap();
    let bodies: Vec<Bytes> = records(&pulled.body).into_iter().map(|r| r.body).collect();
    assert_eq!(bodies, ["batch-0", "batch-1", "batch-2"].map(|b| Bytes::from_static(b.as_bytes())));
    let torn = request(request_code::SEND_BATCH_MESSAGE, &[("b", "batched"), ("e", "0")])
        .with_body(vec![0, 0, 0, 99, 1]);
    assert_eq!(client.request(torn).await.unwrap().code, MESSAGE_ILLEGAL);

    let created = client
        .request(request(
            request_code::UPDATE_AND_CREATE_TOPIC,
            &[("topic", "made"), ("readQueueNums", "8"), ("writeQueueNums", "8"), ("perm", "6")],
        ))
        .await
        .unwrap();
    assert_eq!(created.code, SUCCESS);
    let into_queue_7 = client.request(send("made", "7", "TagA", "x")).await.unwrap();
    assert_eq!(into_queue_7.field("queueId"), Some("7"), "the topic has 8 queues");

    let lock = |code, client_id: &str| {
        let body = serde_json::json!({"consumerGroup": "og", "clientId": client_id, "onlyThisBroker": false, "mqSet": [{"topic": "made", "brokerName": "broker-a", "queueId": 7}]});
        request(code, &[]).with_body(serde_json::to_vec(&body).unwrap())
    };
    let granted = |response: RemotingCommand| -> usize {
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        body["lockOKMQSet"].as_array().unwrap().len()
    };
    assert_eq!(granted(client.request(lock(request_code::LOCK_BATCH_MQ, "a")).await.unwrap()), 1);
    assert_eq!(
        granted(client.request(lock(request_code::LOCK_BATCH_MQ, "b")).await.unwrap()),
        0,
        "held by a"
    );
    assert_eq!(
        granted(client.request(lock(request_code::LOCK_BATCH_MQ, "a")).await.unwrap()),
        1,
        "a renews"
    );
    assert_eq!(
        client.request(lock(request_code::UNLOCK_BATCH_MQ, "a")).await.unwrap().code,
        SUCCESS
    );
    assert_eq!(
        granted(client.request(lock(request_code::LOCK_BATCH_MQ, "b")).await.unwrap()),
        1,
        "free after unlock"
    );

    shutdown.trigger();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_message_waits_for_its_level_then_arrives_in_its_real_queue() {
    let (env, _dir, shutdown, task, client) = lone_broker().await;

    let sent_at = env.clock().now_ms();
    let delayed = request(
        request_code::SEND_MESSAGE,
        &[
            ("producerGroup", "p"),
            ("topic", "later"),
            ("queueId", "2"),
            ("properties", "TAGS\u{1}TagA\u{2}DELAY\u{1}2\u{2}"),
            ("bornTimestamp", "1"),
        ],
    )
    .with_body(&b"in five seconds"[..]);
    assert_eq!(client.request(delayed).await.unwrap().code, SUCCESS);
    let now = client.request(pull("later", "2", "0", "*", "0")).await.unwrap();
    assert_eq!(now.code, PULL_NOT_FOUND, "level 2 is five seconds: not there yet");

    let arrived = client.request(pull("later", "2", "0", "*", "30000")).await.unwrap();
    assert_eq!(arrived.code, SUCCESS);
    let record = &records(&arrived.body)[0];
    assert_eq!(
        (record.topic.as_str(), record.queue_id, &record.body[..]),
        ("later", 2, &b"in five seconds"[..])
    );
    assert!(record.store_timestamp >= sent_at + 5_000, "stored again when due, not before");
    assert!(
        record.properties.contains("REAL_TOPIC\u{1}later") && !record.properties.contains("DELAY")
    );

    shutdown.trigger();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_handed_back_is_retried_after_a_delay_and_finally_dead_lettered() {
    let (_env, _dir, shutdown, task, client) = lone_broker().await;

    assert_eq!(client.request(send("work", "0", "TagA", "poison")).await.unwrap().code, SUCCESS);
    let first =
        records(&client.request(pull("work", "0", "0", "*", "0")).await.unwrap().body).remove(0);
    let back = |record: &MessageRecord, level: &str, max: &str| {
        let offset = record.physical_offset.to_string();
        request(
            request_code::CONSUMER_SEND_MSG_BACK,
            &[
                ("offset", &offset),
                ("group", "g"),
                ("delayLevel", level),
                ("originMsgId", "ORIGIN"),
                ("originTopic", "work"),
                ("maxReconsumeTimes", max),
            ],
        )
    };
    assert_eq!(client.request(back(&first, "1", "16")).await.unwrap().code, SUCCESS);
    let retried = client.request(pull("%RETRY%g", "0", "0", "*", "30000")).await.unwrap();
    assert_eq!(retried.code, SUCCESS, "the retry arrives after its one-second delay");
    let retried = records(&retried.body).remove(0);
    assert_eq!(
        (retried.topic.as_str(), retried.reconsume_times, &retried.body[..]),
        ("%RETRY%g", 1, &b"poison"[..])
    );
    assert!(
        retried.properties.contains("RETRY_TOPIC\u{1}work")
            && retried.properties.contains("ORIGIN_MESSAGE_ID\u{1}ORIGIN")
    );

    assert_eq!(client.request(back(&retried, "0", "1")).await.unwrap().code, SUCCESS);
    let dead = client.request(pull("%DLQ%g", "0", "0", "*", "0")).await.unwrap();
    assert_eq!(dead.code, SUCCESS, "past maxReconsumeTimes the message is dead-lettered at once");
    let dead = records(&dead.body).remove(0);
    assert_eq!((dead.topic.as_str(), dead.reconsume_times), ("%DLQ%g", 2));

    shutdown.trigger();
    task.await.unwrap().unwrap();
}
