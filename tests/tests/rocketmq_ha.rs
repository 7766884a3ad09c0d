//! A RocketMQ-model broker group as processes: a nameserver, a SYNC_MASTER + SYNC_FLUSH master
//! and its slave. Four producers send under way when the master is killed with SIGKILL; every
//! message the master acknowledged with SEND_OK is then pulled from the slave, and, after the
//! master restarts from its data dir, from the master too; the slave follows it again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use twinmq_e2e::rocketmq::RocketmqServer;
use twinmq_rocketmq::message::MessageRecord;
use twinmq_rocketmq::remoting::response_code::{SLAVE_NOT_AVAILABLE, SUCCESS};
use twinmq_rocketmq::remoting::{RemotingClient, RemotingCommand, request_code};
use twinmq_runtime::{Env, RealEnv, RealNet};

const QUEUES: u32 = 4;
const ACKED_BEFORE_KILL: u64 = 3_000;

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn send(body: &str, queue: u32) -> RemotingCommand {
    let fields: BTreeMap<String, String> = [
        ("producerGroup", "p".to_owned()),
        ("topic", "ha".to_owned()),
        ("queueId", queue.to_string()),
        ("sysFlag", "0".to_owned()),
        ("properties", format!("UNIQ_KEY\u{1}{body}\u{2}")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    RemotingCommand::request(request_code::SEND_MESSAGE, fields, Bytes::from(body.to_owned()))
}

/// Every body of topic `ha` on the broker at `addr`.
async fn everything(env: &RealEnv, addr: &str) -> BTreeSet<String> {
    let client = RemotingClient::<RealNet>::connect(env.net(), addr, None).await.unwrap();
    let mut found = BTreeSet::new();
    for queue in 0..QUEUES {
        let mut offset = 0u64;
        loop {
            let fields: BTreeMap<String, String> = [
                ("consumerGroup", "check".to_owned()),
                ("topic", "ha".to_owned()),
                ("queueId", queue.to_string()),
                ("queueOffset", offset.to_string()),
                ("maxMsgNums", "1000".to_owned()),
                ("sysFlag", "0".to_owned()),
                ("commitOffset", "-1".to_owned()),
                ("suspendTimeoutMillis", "0".to_owned()),
                ("subscription", "*".to_owned()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            let pull = RemotingCommand::request(request_code::PULL_MESSAGE, fields, Bytes::new());
            let answer = client.request(pull).await.unwrap();
            if answer.code != SUCCESS {
                break;
            }
            let mut rest = &answer.body[..];
            while !rest.is_empty() {
                let record = MessageRecord::decode(rest).unwrap();
                rest = &rest[record.encoded_len()..];
                found.insert(String::from_utf8(record.body.to_vec()).unwrap());
                offset = record.queue_offset as u64 + 1;
            }
        }
    }
    found
}

/// Sends until the master answers SEND_OK (its slave is following).
async fn until_replicated(env: &RealEnv, master: &str) {
    let client = RemotingClient::<RealNet>::connect(env.net(), master, None).await.unwrap();
    for attempt in 0..2_000 {
        let answer = client.request(send(&format!("probe-{attempt}"), 0)).await.unwrap();
        if answer.code == SUCCESS {
            return;
        }
        assert_eq!(answer.code, SLAVE_NOT_AVAILABLE, "{:?}", answer.remark);
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the slave never followed the master");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_sync_master_loses_no_acknowledged_message() {
    let env = RealEnv::new();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let namesrv = RocketmqServer::namesrv(dir.path());
    let (port, ha_port) = (free_port(), free_port());
    let listen = format!("127.0.0.1:{port}");
    let ha_listen = format!("127.0.0.1:{ha_port}");
    let master_dir = path("master");
    let master_flags = [
        "--ha-listen",
        &ha_listen,
        "--broker-role",
        "SYNC_MASTER",
        "--flush",
        "sync",
        "--queues",
        "4",
    ];
    let master = RocketmqServer::broker_at(&namesrv.addr, &listen, &master_dir, &master_flags);
    let slave = RocketmqServer::broker(
        &namesrv.addr,
        &path("slave"),
        &["--broker-role", "SLAVE", "--ha-master", &ha_listen],
    );
    until_replicated(&env, &master.addr).await;

    let acked = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let count = Arc::new(AtomicU64::new(0));
    let mut producers = Vec::new();
    for producer in 0..4u32 {
        let (env, addr, acked, count) =
            (env.clone(), master.addr.clone(), Arc::clone(&acked), Arc::clone(&count));
        producers.push(tokio::spawn(async move {
            let client = RemotingClient::<RealNet>::connect(env.net(), &addr, None).await.unwrap();
            // Bounded: the master is killed long before the last of these.
            for i in 0..1_000_000u64 {
                let body = format!("p{producer}-{i}");
                match client.request(send(&body, (i % u64::from(QUEUES)) as u32)).await {
                    Some(answer) if answer.code == SUCCESS => {
                        acked.lock().unwrap().insert(body);
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(_) => {}
                    None => return,
                }
            }
        }));
    }
    while count.load(Ordering::Relaxed) < ACKED_BEFORE_KILL {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    master.kill();
    for producer in producers {
        producer.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() as u64 >= ACKED_BEFORE_KILL);

    let on_slave = everything(&env, &slave.addr).await;
    let lost: Vec<&String> = acked.difference(&on_slave).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged messages missing on the slave: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );

    let master = RocketmqServer::broker_at(&namesrv.addr, &listen, &master_dir, &master_flags);
    let on_master = everything(&env, &master.addr).await;
    let lost: Vec<&String> = acked.difference(&on_master).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged messages missing on the restarted master",
        lost.len()
    );
    assert!(on_slave.is_subset(&on_master), "the slave never holds what its master lost");
    until_replicated(&env, &master.addr).await;
    assert!(!master.log().contains("panicked") && !slave.log().contains("panicked"));
}
