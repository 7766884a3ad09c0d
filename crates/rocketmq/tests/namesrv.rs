//! The nameserver on loopback, spoken to in the remoting protocol: brokers register, clients
//! read routes and cluster info, unknown codes get REQUEST_CODE_NOT_SUPPORTED, bad frames
//! close only their own connection, and a broker whose connection closes leaves the routes.

use std::collections::BTreeMap;

use bytes::Bytes;
use twinmq_rocketmq::namesrv::{NameServer, NamesrvConfig, TopicRouteData};
use twinmq_rocketmq::remoting::frame::put_frame;
use twinmq_rocketmq::remoting::response_code::*;
use twinmq_rocketmq::remoting::{RemotingClient, RemotingCommand, request_code};
use twinmq_runtime::{Env, RealEnv, RealNet, Shutdown};

fn request(code: i32, fields: &[(&str, &str)]) -> RemotingCommand {
    let ext: BTreeMap<String, String> =
        fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    RemotingCommand::request(code, ext, Bytes::new())
}

fn registration(name: &str, id: &str, addr: &str, topics: &[(&str, u32)]) -> RemotingCommand {
    let table: serde_json::Map<String, serde_json::Value> = topics
        .iter()
        .map(|(t, n)| {
            ((*t).to_owned(), serde_json::json!({"topicName": t, "readQueueNums": n, "writeQueueNums": n, "perm": 6, "topicSysFlag": 0}))
        })
        .collect();
    let body = serde_json::json!({"topicConfigSerializeWrapper": {"topicConfigTable": table, "dataVersion": {}}, "filterServerList": []});
    request(
        request_code::REGISTER_BROKER,
        &[
            ("brokerAddr", addr),
            ("brokerName", name),
            ("clusterName", "DefaultCluster"),
            ("brokerId", id),
            ("haServerAddr", ""),
        ],
    )
    .with_body(serde_json::to_vec(&body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_register_clients_route_and_bad_frames_close_only_their_connection() {
    let env = RealEnv::new();
    let namesrv = NameServer::bind(env.clone(), NamesrvConfig::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let addr = namesrv.local_addr().to_string();
    let shutdown = Shutdown::new();
    let server = tokio::spawn(namesrv.run(shutdown.clone()));

    let broker = RemotingClient::<RealNet>::connect(env.net(), &addr, None).await.unwrap();
    let registered = broker
        .request(registration("broker-a", "0", "127.0.0.1:10911", &[("TBW102", 8), ("orders", 4)]))
        .await
        .unwrap();
    assert_eq!(registered.code, SUCCESS);
    let slave =
        broker.request(registration("broker-a", "1", "127.0.0.1:10921", &[])).await.unwrap();
    assert_eq!(slave.field("masterAddr"), Some("127.0.0.1:10911"));

    let client = RemotingClient::<RealNet>::connect(env.net(), &addr, None).await.unwrap();
    // Pipelined: both requests are in flight before either answer is read.
    let (route, missing) = tokio::join!(
        client.request(request(request_code::GET_ROUTEINFO_BY_TOPIC, &[("topic", "orders")])),
        client.request(request(request_code::GET_ROUTEINFO_BY_TOPIC, &[("topic", "nope")])),
    );
    let route = route.unwrap();
    assert_eq!(route.code, SUCCESS);
    let route: TopicRouteData = serde_json::from_slice(&route.body).unwrap();
    assert_eq!(route.queue_datas[0].write_queue_nums, 4);
    assert_eq!(route.broker_datas[0].broker_addrs.len(), 2);
    let missing = missing.unwrap();
    assert_eq!(
        (missing.code, missing.remark.as_deref()),
        (TOPIC_NOT_EXIST, Some("Topic route was not found"))
    );
    let unknown = client.request(request(9_999, &[])).await.unwrap();
    assert_eq!(unknown.code, REQUEST_CODE_NOT_SUPPORTED);
    let info = client.request(request(request_code::GET_BROKER_CLUSTER_INFO, &[])).await.unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.body).unwrap();
    assert_eq!(info["clusterAddrTable"]["DefaultCluster"], serde_json::json!(["broker-a"]));

    for garbage in [
        {
            let mut frame = bytes::BytesMut::new();
            put_frame(&mut frame, 0, b"{not json", b"");
            frame.to_vec()
        },
        vec![0, 0, 0, 8, 0, 0, 0, 200, 1, 2, 3, 4],
        (64u32 * 1024 * 1024).to_be_bytes().to_vec(),
    ] {
        let mut bad = RemotingClient::<RealNet>::connect(env.net(), &addr, None).await.unwrap();
        bad.write_raw(&garbage).await.unwrap();
        bad.closed().await;
    }
    let still = client
        .request(request(request_code::GET_ROUTEINFO_BY_TOPIC, &[("topic", "orders")]))
        .await
        .unwrap();
    assert_eq!(still.code, SUCCESS, "other connections are unaffected");

    // The connection both registered through closes (the broker died): both leave the routes.
    drop(broker);
    let mut gone = false;
    for _ in 0..1_000 {
        let answer = client
            .request(request(request_code::GET_ROUTEINFO_BY_TOPIC, &[("topic", "orders")]))
            .await
            .unwrap();
        if answer.code == TOPIC_NOT_EXIST {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(gone, "a broker whose connection closed is dropped from the routes");

    shutdown.trigger();
    server.await.unwrap();
}
