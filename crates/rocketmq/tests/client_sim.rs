//! The client in the simulator: a nameserver, a broker and an application host running a
//! producer and a push consumer, all on turmoil's network, disk and clock through `SimEnv`.
//! Every message sent is consumed once, and two runs of one seed produce the same trace.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use tokio::sync::mpsc;
use twinmq_rocketmq::broker::{Broker, BrokerConfig};
use twinmq_rocketmq::client::{
    ClientConfig, ConsumeResult, Message, MessageQueue, Producer, PushConsumer, PushConsumerConfig,
    ReceivedMessage,
};
use twinmq_rocketmq::namesrv::{NameServer, NamesrvConfig};
use twinmq_runtime::{Shutdown, SimEnv};
use twinmq_storage::CommitLogConfig;

const MESSAGES: usize = 60;

/// One simulated run; returns its trace (sends and deliveries with queues and offsets).
fn run(seed: u64) -> Vec<String> {
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .tick_duration(Duration::from_millis(1))
        .simulation_duration(Duration::from_secs(600))
        .build();
    sim.host("namesrv", move || async move {
        let env = SimEnv::for_host(seed, "namesrv");
        let namesrv = NameServer::bind(env, NamesrvConfig::new("0.0.0.0:9876".parse()?)).await?;
        namesrv.run(Shutdown::new()).await;
        Ok(())
    });
    sim.host("broker", move || async move {
        let env = SimEnv::for_host(seed, "broker");
        let IpAddr::V4(ip) = turmoil::lookup("broker") else { panic!("IPv4 hosts") };
        let mut config = BrokerConfig::new(
            "0.0.0.0:10911".parse()?,
            vec!["namesrv:9876".into()],
            "/data/broker".into(),
        );
        config.broker_ip = Some(ip);
        config.store = CommitLogConfig {
            file_bytes: 4 << 20,
            consume_queue_entries_per_file: 4_096,
            index_slots: 1_024,
            index_entries_max: 4_096,
            ..config.store
        };
        let broker = Broker::bind(env, config).await?;
        broker.run(Shutdown::new()).await?;
        Ok(())
    });
    let trace = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&trace);
    sim.client("app", async move {
        let env = SimEnv::for_host(seed, "app");
        let client = |id: &str| ClientConfig::new(vec!["namesrv:9876".into()], id);
        let producer = Producer::start(env.clone(), client("producer"), "sim-producers").await;
        // The first send creates the topic (through the default topic's route).
        let first = producer.send(&Message::new("sim", "m-0")).await?;
        recorded.lock().unwrap().push(format!("sent m-0 {} {}", first.queue, first.queue_offset));

        let (deliveries, mut delivered) = mpsc::unbounded_channel();
        let consumer = PushConsumer::start(
            env.clone(),
            client("consumer"),
            PushConsumerConfig::new("sim-consumers"),
            &[("sim", "*")],
            move |queue: &MessageQueue, messages: &[ReceivedMessage]| {
                for message in messages {
                    let body = String::from_utf8_lossy(message.body()).into_owned();
                    let _ =
                        deliveries.send(format!("got {body} {queue} {}", message.queue_offset()));
                }
                ConsumeResult::Success
            },
        );
        for i in 1..MESSAGES {
            let sent = producer.send(&Message::new("sim", format!("m-{i}"))).await?;
            recorded
                .lock()
                .unwrap()
                .push(format!("sent m-{i} {} {}", sent.queue, sent.queue_offset));
        }
        let mut got = std::collections::BTreeSet::new();
        while got.len() < MESSAGES {
            let delivery = delivered.recv().await.expect("the consumer runs");
            let body = delivery.split(' ').nth(1).unwrap_or_default().to_owned();
            assert!(got.insert(body), "delivered twice: {delivery}");
            recorded.lock().unwrap().push(delivery);
        }
        consumer.shutdown().await;
        producer.shutdown().await;
        Ok(())
    });
    sim.run().expect("the simulation runs to its end");
    Arc::try_unwrap(trace).map(|t| t.into_inner().unwrap()).unwrap_or_default()
}

#[test]
fn producer_and_push_consumer_run_deterministically_in_the_simulator() {
    let first = run(7);
    assert_eq!(first.iter().filter(|line| line.starts_with("got ")).count(), MESSAGES);
    assert_eq!(first.iter().filter(|line| line.starts_with("sent ")).count(), MESSAGES);
    assert_eq!(run(7), first, "one seed, one trace");
    let other = run(8);
    assert_eq!(other.iter().filter(|line| line.starts_with("got ")).count(), MESSAGES);
    assert_ne!(other, first, "the seed drives the run (queue choice, ids)");
}
