//! The client and a broker group of a SYNC_MASTER and its slave: every message the producer
//! had acknowledged is consumed by a push consumer started after the master stopped — the
//! route then names only the slave, and the client reads the group's queues there.

mod common;

use std::collections::BTreeSet;

use common::{Cluster, patiently};
use tokio::sync::mpsc;
use twinmq_rocketmq::broker::ha::BrokerRole;
use twinmq_rocketmq::client::{
    ConsumeFrom, ConsumeResult, Message, MessageQueue, Producer, PushConsumer, PushConsumerConfig,
    ReceivedMessage, SendStatus,
};
use twinmq_storage::FlushPolicy;

const MESSAGES: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_reads_a_stopped_masters_queues_from_its_slave() {
    // Two brokers of one group: the first the master, the second its slave.
    let cluster = Cluster::start_brokers(2, |config| {
        config.store.flush = FlushPolicy::Sync;
        config.register_interval_ms = 100;
        config.ha.reconnect_ms = 50;
        if config.broker_name == "broker-b" {
            config.broker_name = "broker-a".into();
            config.broker_id = 1;
            config.ha.role = BrokerRole::Slave;
        } else {
            config.ha.role = BrokerRole::SyncMaster;
        }
    })
    .await;
    cluster.create_topic("replicated", 4).await;
    let producer =
        Producer::start(cluster.env.clone(), cluster.client("producer"), "ha-producers").await;
    let mut sent = BTreeSet::new();
    let mut attempts = 0;
    while sent.len() < MESSAGES {
        attempts += 1;
        assert!(attempts < 10_000, "the slave never followed its master");
        let body = format!("m{}", sent.len());
        // SLAVE_NOT_AVAILABLE until the slave has connected: stored, but not acknowledged.
        let result = producer.send(&Message::new("replicated", body.clone())).await;
        if result.is_ok_and(|r| r.status == SendStatus::SendOk) {
            sent.insert(body);
        } else {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    producer.shutdown().await;

    let mut brokers = cluster.brokers;
    let slave = brokers.pop().unwrap();
    let master = brokers.pop().unwrap();
    master.stop().await;

    let (deliveries, mut delivered) = mpsc::unbounded_channel();
    let mut config = PushConsumerConfig::new("after-the-master");
    config.consume_from = ConsumeFrom::FirstOffset;
    let consumer = PushConsumer::start(
        cluster.env.clone(),
        twinmq_rocketmq::client::ClientConfig::new(vec![cluster.namesrv_addr.clone()], "reader"),
        config,
        &[("replicated", "*")],
        move |_: &MessageQueue, messages: &[ReceivedMessage]| {
            for message in messages {
                let _ = deliveries.send(String::from_utf8_lossy(message.body()).into_owned());
            }
            ConsumeResult::Success
        },
    );
    let mut got = BTreeSet::new();
    while !sent.is_subset(&got) {
        got.insert(patiently("deliveries from the slave", delivered.recv()).await.unwrap());
    }
    consumer.shutdown().await;
    slave.stop().await;
}
