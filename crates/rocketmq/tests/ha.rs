//! Master/slave on loopback: a SYNC_MASTER answers SLAVE_NOT_AVAILABLE without a slave and
//! FLUSH_SLAVE_TIMEOUT when its slave does not confirm; with a real slave (which finds its
//! master through the nameserver) every acknowledged message is already pullable from the
//! slave; the slave refuses writes, copies the master's committed offsets, keeps serving after
//! the master stops (which leaves the routes at once), and catches up with what the master took
//! while it was away.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use twinmq_rocketmq::broker::ha::BrokerRole;
use twinmq_rocketmq::broker::{Broker, BrokerConfig};
use twinmq_rocketmq::message::MessageRecord;
use twinmq_rocketmq::namesrv::{NameServer, NamesrvConfig, TopicRouteData};
use twinmq_rocketmq::remoting::response_code::*;
use twinmq_rocketmq::remoting::{RemotingClient, RemotingCommand, request_code};
use twinmq_runtime::{Env, Net, RealEnv, RealNet, Shutdown};
use twinmq_storage::FlushPolicy;

type BrokerTask = tokio::task::JoinHandle<Result<(), twinmq_storage::StorageError>>;

fn request(code: i32, fields: &[(&str, &str)]) -> RemotingCommand {
    let ext: BTreeMap<String, String> =
        fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    RemotingCommand::request(code, ext, Bytes::new())
}

fn send(body: &str) -> RemotingCommand {
    request(
        request_code::SEND_MESSAGE,
        &[("producerGroup", "p"), ("topic", "replicated"), ("queueId", "0"), ("sysFlag", "0")],
    )
    .with_body(body.as_bytes().to_vec())
}

fn pull(offset: u64) -> RemotingCommand {
    request(
        request_code::PULL_MESSAGE,
        &[
            ("consumerGroup", "g"),
            ("topic", "replicated"),
            ("queueId", "0"),
            ("queueOffset", &offset.to_string()),
            ("maxMsgNums", "1000"),
            ("sysFlag", "0"),
            ("commitOffset", "-1"),
            ("suspendTimeoutMillis", "0"),
            ("subscription", "*"),
        ],
    )
}

/// Every body in the queue, pulled from `client`'s broker.
async fn bodies(client: &RemotingClient<RealNet>) -> Vec<Bytes> {
    let mut out = Vec::new();
    loop {
        let answer = client.request(pull(out.len() as u64)).await.unwrap();
        if answer.code != SUCCESS {
            return out;
        }
        let mut rest = &answer.body[..];
        while !rest.is_empty() {
            let record = MessageRecord::decode(rest).unwrap();
            rest = &rest[record.encoded_len()..];
            out.push(record.body);
        }
    }
}

fn config(dir: &std::path::Path, namesrv: &str, role: BrokerRole) -> BrokerConfig {
    let mut config =
        BrokerConfig::new("127.0.0.1:0".parse().unwrap(), vec![namesrv.to_owned()], dir.to_owned());
    config.register_interval_ms = 100;
    // Room for an fsync and a slave's round trip on a loaded 2-core machine (a send that
    // waits for a mute slave waits this long).
    config.sync_timeout_ms = 2_000;
    config.store.flush = FlushPolicy::Sync;
    config.ha.role = role;
    config.ha.reconnect_ms = 50;
    config.ha.sync_interval_ms = 50;
    if role == BrokerRole::Slave {
        config.broker_id = 1;
    }
    config
}

async fn start(env: &RealEnv, config: BrokerConfig) -> (Shutdown, BrokerTask, String) {
    let broker = Broker::bind(env.clone(), config).await.unwrap();
    let addr = broker.local_addr().to_string();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(broker.run(shutdown.clone()));
    (shutdown, task, addr)
}

/// Polls `condition` until it holds, failing after a generous bound.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..1_000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_master_answers_only_when_its_slave_holds_the_message() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let env = RealEnv::new();
    let namesrv = NameServer::bind(env.clone(), NamesrvConfig::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let namesrv_addr = namesrv.local_addr().to_string();
    let namesrv_shutdown = Shutdown::new();
    let namesrv_task = tokio::spawn(namesrv.run(namesrv_shutdown.clone()));
    let (master_dir, slave_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

    let master_config = config(master_dir.path(), &namesrv_addr, BrokerRole::SyncMaster);
    let master = Broker::bind(env.clone(), master_config.clone()).await.unwrap();
    let master_processor = master.processor();
    let master_addr = master.local_addr().to_string();
    let shutdown = Shutdown::new();
    let master_task = tokio::spawn(master.run(shutdown.clone()));
    let client = RemotingClient::<RealNet>::connect(env.net(), &master_addr, None).await.unwrap();

    let alone = client.request(send("before any slave")).await.unwrap();
    assert_eq!(alone.code, SLAVE_NOT_AVAILABLE);
    assert!(alone.field("msgId").is_some(), "stored all the same, as RocketMQ answers");

    // A slave that never confirms anything: the send times out waiting for it.
    let ha_addr = master_processor.ha.advertised().to_owned();
    let mut mute = env.net().connect(&ha_addr).await.unwrap();
    mute.write_u64(0).await.unwrap();
    eventually("the mute slave is seen", || master_processor.ha.slaves_connected() == 1).await;
    let unconfirmed = client.request(send("unconfirmed")).await.unwrap();
    assert_eq!(unconfirmed.code, FLUSH_SLAVE_TIMEOUT);
    let mut header = [0u8; 12];
    mute.read_exact(&mut header).await.unwrap();
    assert_eq!(u64::from_be_bytes(header[..8].try_into().unwrap()), 0, "streams from its end");
    drop(mute);
    eventually("the mute slave is gone", || master_processor.ha.slaves_connected() == 0).await;

    let (slave_shutdown, slave_task, slave_addr) =
        start(&env, config(slave_dir.path(), &namesrv_addr, BrokerRole::Slave)).await;
    eventually("the slave finds its master", || master_processor.ha.slaves_connected() == 1).await;
    let on_slave = RemotingClient::<RealNet>::connect(env.net(), &slave_addr, None).await.unwrap();
    for i in 0..200 {
        let sent = client.request(send(&format!("m{i}"))).await.unwrap();
        assert_eq!(sent.code, SUCCESS, "{:?}", sent.remark);
        let offset: u64 = sent.field("queueOffset").unwrap().parse().unwrap();
        let there = on_slave.request(pull(offset)).await.unwrap();
        assert_eq!(there.code, SUCCESS, "m{i} is on the slave the moment it is acknowledged");
    }
    let expected: Vec<Bytes> = ["before any slave", "unconfirmed"]
        .into_iter()
        .map(String::from)
        .chain((0..200).map(|i| format!("m{i}")))
        .map(Bytes::from)
        .collect();
    assert_eq!(bodies(&on_slave).await, expected, "acknowledged means on the slave");
    assert_eq!(on_slave.request(send("no")).await.unwrap().code, SERVICE_NOT_AVAILABLE);

    // The nameserver routes to both.
    let routes = RemotingClient::<RealNet>::connect(env.net(), &namesrv_addr, None).await.unwrap();
    let route = routes
        .request(request(request_code::GET_ROUTEINFO_BY_TOPIC, &[("topic", "replicated")]))
        .await
        .unwrap();
    let route: TopicRouteData = serde_json::from_slice(&route.body).unwrap();
    assert_eq!(route.broker_datas[0].broker_addrs["0"], master_addr);
    assert_eq!(route.broker_datas[0].broker_addrs["1"], slave_addr);

    // Committed offsets reach the slave, so consumers turning to it resume where they were.
    let commit = request(
        request_code::UPDATE_CONSUMER_OFFSET,
        &[
            ("topic", "replicated"),
            ("consumerGroup", "g"),
            ("queueId", "0"),
            ("commitOffset", "150"),
        ],
    );
    assert_eq!(client.request(commit).await.unwrap().code, SUCCESS);
    let query = || {
        request(
            request_code::QUERY_CONSUMER_OFFSET,
            &[("topic", "replicated"), ("consumerGroup", "g"), ("queueId", "0")],
        )
    };
    let mut copied = None;
    for _ in 0..1_000 {
        let answer = on_slave.request(query()).await.unwrap();
        if answer.code == SUCCESS && answer.field("offset") == Some("150") {
            copied = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let last = on_slave.request(query()).await.unwrap();
    assert!(copied.is_some(), "the slave copies its master's committed offsets: {last:?}");

    // The master stops; the slave still serves everything.
    drop(client);
    shutdown.trigger();
    master_task.await.unwrap().unwrap();
    assert_eq!(bodies(&on_slave).await, expected);
    let route = routes
        .request(request(request_code::GET_ROUTEINFO_BY_TOPIC, &[("topic", "replicated")]))
        .await
        .unwrap();
    let route: TopicRouteData = serde_json::from_slice(&route.body).unwrap();
    assert_eq!(
        route.broker_datas[0].broker_addrs.keys().collect::<Vec<_>>(),
        ["1"],
        "a master that leaves is gone from the routes at once; its slave stays"
    );

    // The master comes back on its old ports, takes more; the slave catches up.
    let mut again = master_config;
    again.listen = master_addr.parse().unwrap();
    again.ha.listen = Some(ha_addr.parse().unwrap());
    let master = Broker::bind(env.clone(), again).await.unwrap();
    let master_processor = master.processor();
    let shutdown = Shutdown::new();
    let master_task = tokio::spawn(master.run(shutdown.clone()));
    eventually("the slave reconnects", || master_processor.ha.slaves_connected() == 1).await;
    let client = RemotingClient::<RealNet>::connect(env.net(), &master_addr, None).await.unwrap();
    assert_eq!(client.request(send("after")).await.unwrap().code, SUCCESS);
    let mut expected = expected;
    expected.push(Bytes::from("after"));
    assert_eq!(bodies(&on_slave).await, expected);
    assert_eq!(bodies(&client).await, expected);
    assert_eq!(
        master_processor.ha.slave_offset(),
        master_processor.commit_log_end(),
        "the slave confirmed the master's whole CommitLog"
    );

    slave_shutdown.trigger();
    slave_task.await.unwrap().unwrap();
    shutdown.trigger();
    master_task.await.unwrap().unwrap();
    namesrv_shutdown.trigger();
    namesrv_task.await.unwrap();
}
