//! Transactional messages against a real broker on loopback: a half message stays invisible
//! until END_TRANSACTION commits it and never appears after a rollback; resolutions survive a
//! restart; a half nobody resolves is checked back with the producer that sent it, whose answer
//! decides it; one never answered is given up after `transaction_check_max` checks.

use std::collections::BTreeMap;

use bytes::Bytes;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use twinmq_rocketmq::broker::transaction::{COMMIT, GIVEN_UP_TOPIC, ROLLBACK};
use twinmq_rocketmq::broker::{Broker, BrokerConfig};
use twinmq_rocketmq::message::{MessageRecord, SYSFLAG_TRANSACTION_COMMIT};
use twinmq_rocketmq::remoting::response_code::*;
use twinmq_rocketmq::remoting::{RemotingClient, RemotingCommand, request_code};
use twinmq_runtime::{Env, RealEnv, RealNet, Shutdown};

type BrokerTask = tokio::task::JoinHandle<Result<(), twinmq_storage::StorageError>>;

fn request(code: i32, fields: &[(&str, &str)]) -> RemotingCommand {
    let ext: BTreeMap<String, String> =
        fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    RemotingCommand::request(code, ext, Bytes::new())
}

/// A half message as the client's transactional producer sends it.
fn half(body: &str) -> RemotingCommand {
    let properties = format!(
        "TAGS\u{1}TagA\u{2}UNIQ_KEY\u{1}U-{body}\u{2}TRAN_MSG\u{1}true\u{2}PGROUP\u{1}tp\u{2}"
    );
    request(
        request_code::SEND_MESSAGE,
        &[
            ("producerGroup", "tp"),
            ("topic", "tx"),
            ("queueId", "1"),
            ("sysFlag", "4"),
            ("bornTimestamp", "1"),
            ("properties", &properties),
        ],
    )
    .with_body(body.as_bytes().to_vec())
}

/// What END_TRANSACTION needs to name a half: its CommitLog offset and its half-queue offset.
#[derive(Clone, Copy, Debug)]
struct HalfRef {
    commit_log_offset: u64,
    queue_offset: u64,
}

async fn send_half(client: &RemotingClient<RealNet>, body: &str) -> HalfRef {
    let sent = client.request(half(body)).await.unwrap();
    assert_eq!(sent.code, SUCCESS, "{:?}", sent.remark);
    let msg_id = sent.field("msgId").unwrap();
    HalfRef {
        commit_log_offset: u64::from_str_radix(&msg_id[msg_id.len() - 16..], 16).unwrap(),
        queue_offset: sent.field("queueOffset").unwrap().parse().unwrap(),
    }
}

fn end(half: HalfRef, decision: i32, from_check: bool) -> RemotingCommand {
    request(
        request_code::END_TRANSACTION,
        &[
            ("producerGroup", "tp"),
            ("tranStateTableOffset", &half.queue_offset.to_string()),
            ("commitLogOffset", &half.commit_log_offset.to_string()),
            ("commitOrRollback", &decision.to_string()),
            ("fromTransactionCheck", &from_check.to_string()),
            ("msgId", "ignored"),
        ],
    )
}

fn pull(topic: &str, queue: &str, offset: u64, suspend_ms: &str) -> RemotingCommand {
    request(
        request_code::PULL_MESSAGE,
        &[
            ("consumerGroup", "g"),
            ("topic", topic),
            ("queueId", queue),
            ("queueOffset", &offset.to_string()),
            ("maxMsgNums", "32"),
            ("sysFlag", "2"),
            ("commitOffset", "-1"),
            ("suspendTimeoutMillis", suspend_ms),
            ("subscription", "*"),
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

async fn start(
    config: BrokerConfig,
) -> (RealEnv, Shutdown, BrokerTask, String, RemotingClient<RealNet>) {
    let env = RealEnv::new();
    let broker = Broker::bind(env.clone(), config).await.unwrap();
    let addr = broker.local_addr().to_string();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(broker.run(shutdown.clone()));
    let client = RemotingClient::<RealNet>::connect(env.net(), &addr, None).await.unwrap();
    (env, shutdown, task, addr, client)
}

fn config(dir: &std::path::Path) -> BrokerConfig {
    let mut config = BrokerConfig::new("127.0.0.1:0".parse().unwrap(), Vec::new(), dir.to_owned());
    config.transaction_timeout_ms = 0;
    config.transaction_check_interval_ms = 100;
    config
}

/// A connection that announces itself as a producer of group `tp`: the broker's checks come to
/// the returned receiver.
async fn transactional_producer(
    env: &RealEnv,
    addr: &str,
) -> (RemotingClient<RealNet>, UnboundedReceiver<RemotingCommand>) {
    let (checks, receiver) = unbounded_channel();
    let producer = RemotingClient::<RealNet>::connect(env.net(), addr, Some(checks)).await.unwrap();
    let body = serde_json::json!({"clientID": "producer-1", "producerDataSet": [{"groupName": "tp"}], "consumerDataSet": []});
    let heartbeat =
        request(request_code::HEART_BEAT, &[]).with_body(serde_json::to_vec(&body).unwrap());
    assert_eq!(producer.request(heartbeat).await.unwrap().code, SUCCESS);
    (producer, receiver)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_is_invisible_until_commit_gone_after_rollback_and_resolutions_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (_env, shutdown, task, _addr, client) = start(config(dir.path())).await;

    let first = send_half(&client, "first").await;
    let second = send_half(&client, "second").await;
    let third = send_half(&client, "third").await;
    let nothing = client.request(pull("tx", "1", 0, "0")).await.unwrap();
    assert_eq!(nothing.code, PULL_NOT_FOUND, "half messages are invisible");

    assert_eq!(client.request(end(first, COMMIT, false)).await.unwrap().code, SUCCESS);
    let visible = client.request(pull("tx", "1", 0, "0")).await.unwrap();
    assert_eq!(visible.code, SUCCESS);
    let committed = records(&visible.body);
    assert_eq!(committed.len(), 1);
    assert_eq!(
        (committed[0].topic.as_str(), committed[0].queue_id, &committed[0].body[..]),
        ("tx", 1, &b"first"[..])
    );
    assert_eq!(committed[0].sys_flag & 0xC, SYSFLAG_TRANSACTION_COMMIT);
    assert_eq!(committed[0].prepared_transaction_offset, first.commit_log_offset as i64);
    assert!(!committed[0].properties.contains("TRAN_MSG"));

    assert_eq!(client.request(end(second, ROLLBACK, false)).await.unwrap().code, SUCCESS);
    // A repeated commit, and a commit after a rollback, change nothing.
    assert_eq!(client.request(end(first, COMMIT, false)).await.unwrap().code, SUCCESS);
    assert_eq!(client.request(end(second, COMMIT, false)).await.unwrap().code, SUCCESS);
    let after = client.request(pull("tx", "1", 1, "0")).await.unwrap();
    assert_eq!(after.code, PULL_NOT_FOUND, "rolled back and repeated decisions add nothing");
    // Naming something that is not a half message is refused.
    let wrong = HalfRef { commit_log_offset: committed[0].physical_offset as u64, queue_offset: 0 };
    assert_eq!(client.request(end(wrong, COMMIT, false)).await.unwrap().code, SYSTEM_ERROR);

    drop(client);
    shutdown.trigger();
    task.await.unwrap().unwrap();

    // After a restart the first two stay decided; only the third is checked back.
    let (env, shutdown, task, addr, client) = start(config(dir.path())).await;
    assert_eq!(client.request(end(second, COMMIT, false)).await.unwrap().code, SUCCESS);
    assert_eq!(client.request(pull("tx", "1", 1, "0")).await.unwrap().code, PULL_NOT_FOUND);
    let (producer, mut checks) = transactional_producer(&env, &addr).await;
    let check = checks.recv().await.unwrap();
    assert_eq!(check.code, request_code::CHECK_TRANSACTION_STATE);
    assert_eq!(check.field("commitLogOffset"), Some(third.commit_log_offset.to_string().as_str()));
    producer.oneway(end(third, COMMIT, true)).await.unwrap();
    let third_visible = client.request(pull("tx", "1", 1, "30000")).await.unwrap();
    assert_eq!(third_visible.code, SUCCESS);
    assert_eq!(records(&third_visible.body)[0].body, Bytes::from_static(b"third"));

    shutdown.trigger();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresolved_half_is_checked_back_and_given_up_after_the_last_check() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.transaction_check_max = 2;
    let (env, shutdown, task, addr, client) = start(config).await;
    let (producer, mut checks) = transactional_producer(&env, &addr).await;

    let answered = send_half(&client, "answered").await;
    let check = checks.recv().await.unwrap();
    assert!(check.is_oneway());
    assert_eq!(
        (check.field("commitLogOffset"), check.field("tranStateTableOffset")),
        (
            Some(answered.commit_log_offset.to_string().as_str()),
            Some(answered.queue_offset.to_string().as_str())
        )
    );
    let asked = MessageRecord::decode(&check.body).unwrap();
    assert_eq!((asked.topic.as_str(), &asked.body[..]), ("tx", &b"answered"[..]));
    assert!(asked.properties.contains("TRANSACTION_CHECK_TIMES\u{1}1"));
    assert!(asked.properties.contains("__transactionId__\u{1}U-answered"));
    producer.oneway(end(answered, COMMIT, true)).await.unwrap();
    let visible = client.request(pull("tx", "1", 0, "30000")).await.unwrap();
    assert_eq!(visible.code, SUCCESS, "the check's answer commits the half");
    assert_eq!(records(&visible.body)[0].body, Bytes::from_static(b"answered"));

    // Asked twice, never answered: given up, and never delivered to its topic.
    let ignored = send_half(&client, "ignored").await;
    let mut times = Vec::new();
    while times.len() < 2 {
        let check = checks.recv().await.unwrap();
        if check.field("commitLogOffset") == Some(&ignored.commit_log_offset.to_string()) {
            let record = MessageRecord::decode(&check.body).unwrap();
            times.push(
                record
                    .properties
                    .contains(&format!("TRANSACTION_CHECK_TIMES\u{1}{}", times.len() + 1)),
            );
        }
    }
    assert_eq!(times, [true, true], "each check counts itself");
    let given_up = client.request(pull(GIVEN_UP_TOPIC, "0", 0, "30000")).await.unwrap();
    assert_eq!(given_up.code, SUCCESS);
    assert_eq!(records(&given_up.body)[0].body, Bytes::from_static(b"ignored"));
    assert_eq!(client.request(pull("tx", "1", 1, "0")).await.unwrap().code, PULL_NOT_FOUND);

    shutdown.trigger();
    task.await.unwrap().unwrap();
}
