//! The client facing a server that answers badly: unparseable routes, send replies without
//! their fields, torn pull bodies, non-numeric offsets and silence all come back as errors —
//! never a panic, never a hang.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use twinmq_rocketmq::client::{
    ClientConfig, ClientError, Message, MessageQueue, Producer, PullConsumer,
};
use twinmq_rocketmq::remoting::response_code::SUCCESS;
use twinmq_rocketmq::remoting::{Peer, Processor, RemotingCommand, request_code, serve};
use twinmq_runtime::{Env, Net, RealEnv, Shutdown};

/// Serves routes to itself and bad answers to everything else.
struct BadServer {
    addr: SocketAddr,
}

impl Processor for BadServer {
    async fn process(&self, request: RemotingCommand, _peer: &Peer) -> Option<RemotingCommand> {
        let ok = RemotingCommand::response_to(&request, SUCCESS, None);
        match request.code {
            request_code::GET_ROUTEINFO_BY_TOPIC if request.field("topic") == Some("garbled") => {
                Some(ok.with_body(&b"{not json"[..]))
            }
            request_code::GET_ROUTEINFO_BY_TOPIC => {
                let route = serde_json::json!({
                    "queueDatas": [{"brokerName": "bad", "readQueueNums": 1, "writeQueueNums": 1, "perm": 6, "topicSysFlag": 0}],
                    "brokerDatas": [{"cluster": "c", "brokerName": "bad", "brokerAddrs": {"0": self.addr.to_string()}, "enableActingMaster": false}],
                    "filterServerTable": {},
                });
                Some(ok.with_body(serde_json::to_vec(&route).unwrap()))
            }
            // No queueId, no queueOffset.
            request_code::SEND_MESSAGE => Some(ok.with_field("msgId", "X")),
            request_code::PULL_MESSAGE => Some(
                ok.with_field("nextBeginOffset", 1)
                    .with_field("minOffset", 0)
                    .with_field("maxOffset", 1)
                    .with_body(Bytes::from_static(&[0, 0, 0, 200, 0xDA, 0xA3, 0x20, 0xA7, 1, 2])),
            ),
            request_code::QUERY_CONSUMER_OFFSET => Some(ok.with_field("offset", "abc")),
            // Silence.
            request_code::GET_MAX_OFFSET => None,
            _ => Some(ok),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_answers_are_errors_not_panics_or_hangs() {
    let env = RealEnv::new();
    let listener = env.net().bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let server = tokio::spawn(serve::<RealEnv, _>(
        listener,
        Arc::new(BadServer { addr }),
        1 << 20,
        shutdown.clone(),
    ));
    let config = ClientConfig {
        request_timeout_ms: 300,
        send_timeout_ms: 300,
        send_retries: 1,
        ..ClientConfig::new(vec![addr.to_string()], "victim")
    };

    let producer = Producer::start(env.clone(), config.clone(), "pg").await;
    let garbled = producer.send(&Message::new("garbled", "x")).await;
    assert!(matches!(garbled, Err(ClientError::Malformed { .. })), "{garbled:?}");
    let fieldless = producer.send(&Message::new("t", "x")).await;
    assert!(matches!(fieldless, Err(ClientError::Malformed { .. })), "{fieldless:?}");
    producer.shutdown().await;

    let consumer = PullConsumer::new(env, config, "cg");
    let queue = consumer.fetch_queues("t").await.unwrap().remove(0);
    assert_eq!(queue, MessageQueue { topic: "t".into(), broker_name: "bad".into(), queue_id: 0 });
    let torn = consumer.pull(&queue, "*", 0, 32).await;
    assert!(matches!(torn, Err(ClientError::Malformed { .. })), "{torn:?}");
    let offset = consumer.committed_offset(&queue).await;
    assert!(matches!(offset, Err(ClientError::Malformed { .. })), "{offset:?}");
    let silent = consumer.max_offset(&queue).await;
    assert!(matches!(silent, Err(ClientError::Timeout { .. })), "{silent:?}");
    let nowhere = PullConsumer::new(
        RealEnv::new(),
        ClientConfig::new(vec!["127.0.0.1:1".into()], "lost"),
        "cg",
    );
    assert!(matches!(nowhere.fetch_queues("t").await, Err(ClientError::Connect { .. })));
    consumer.shutdown().await;

    shutdown.trigger();
    server.await.unwrap();
}
