//! The client in the simulator: a nameserver, a broker and an application host running a
//! producer and a push consumer, all on turmoil's network, disk and clock through `SimEnv`.
//! Every message sent is consumed, two runs of one seed produce the same trace, and a broker
//! that crashes and restarts mid-run — or is cut off from the application for a while — costs
//! neither acknowledged messages nor progress: the client's timeouts, reconnects and retries
//! carry it through.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use tokio::sync::mpsc;
use twinmq_rocketmq::broker::{Broker, BrokerConfig};
use twinmq_rocketmq::client::{
    ClientConfig, ConsumeResult, Message, MessageQueue, Producer, PushConsumer, PushConsumerConfig,
    ReceivedMessage, SendResult,
};
use twinmq_rocketmq::namesrv::{NameServer, NamesrvConfig};
use twinmq_runtime::{Shutdown, SimEnv};
use twinmq_storage::{CommitLogConfig, FlushPolicy};

const MESSAGES: usize = 60;

/// A simulation with a nameserver and a broker (flushing by `flush`) on it.
fn cluster(seed: u64, flush: FlushPolicy) -> turmoil::Sim<'static> {
    cluster_expiring(seed, flush, 120_000)
}

/// As [`cluster`], the broker dropping clients silent for `client_expiry_ms`.
fn cluster_expiring(seed: u64, flush: FlushPolicy, client_expiry_ms: i64) -> turmoil::Sim<'static> {
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
        config.client_expiry_ms = client_expiry_ms;
        config.client_scan_interval_ms = 1_000;
        config.store = CommitLogConfig {
            file_bytes: 4 << 20,
            consume_queue_entries_per_file: 4_096,
            index_slots: 1_024,
            index_entries_max: 4_096,
            flush,
            ..config.store
        };
        let broker = Broker::bind(env, config).await?;
        broker.run(Shutdown::new()).await?;
        Ok(())
    });
    sim
}

/// A client of the simulated cluster, with short timeouts (a crashed peer's requests must fail
/// fast enough to be retried).
fn client(id: &str) -> ClientConfig {
    ClientConfig {
        request_timeout_ms: 1_000,
        send_timeout_ms: 1_000,
        ..ClientConfig::new(vec!["namesrv:9876".into()], id)
    }
}

/// A push consumer reporting `"got <body> <queue> <offset>"` for each delivery.
fn consumer(env: SimEnv, deliveries: mpsc::UnboundedSender<String>) -> PushConsumer<SimEnv> {
    let config = PushConsumerConfig {
        long_poll_suspend_ms: 2_000,
        pull_backoff_ms: 200,
        rebalance_retry_ms: 200,
        offset_persist_interval_ms: 1_000,
        ..PushConsumerConfig::new("sim-consumers")
    };
    PushConsumer::start(
        env,
        client("consumer"),
        config,
        &[("sim", "*")],
        move |queue: &MessageQueue, messages: &[ReceivedMessage]| {
            for message in messages {
                let body = String::from_utf8_lossy(message.body()).into_owned();
                let _ = deliveries.send(format!("got {body} {queue} {}", message.queue_offset()));
            }
            ConsumeResult::Success
        },
    )
}

/// Sends until the broker acknowledges (the first send of a run may precede the broker's
/// registration with the nameserver: no route yet).
async fn send_acked(producer: &Producer<SimEnv>, message: &Message) -> SendResult {
    loop {
        match producer.send(message).await {
            Ok(sent) => return sent,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// One simulated run; returns its trace (sends and deliveries with queues and offsets).
fn run(seed: u64) -> Vec<String> {
    let mut sim = cluster(seed, FlushPolicy::ASYNC_DEFAULT);
    let trace = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&trace);
    sim.client("app", async move {
        let env = SimEnv::for_host(seed, "app");
        let producer = Producer::start(env.clone(), client("producer"), "sim-producers").await;
        // The first send creates the topic (through the default topic's route).
        let first = send_acked(&producer, &Message::new("sim", "m-0")).await;
        recorded.lock().unwrap().push(format!("sent m-0 {} {}", first.queue, first.queue_offset));
        let (deliveries, mut delivered) = mpsc::unbounded_channel();
        let consumer = consumer(env, deliveries);
        for i in 1..MESSAGES {
            let sent = producer.send(&Message::new("sim", format!("m-{i}"))).await?;
            recorded
                .lock()
                .unwrap()
                .push(format!("sent m-{i} {} {}", sent.queue, sent.queue_offset));
        }
        let mut got = BTreeSet::new();
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

/// Messages acknowledged before the fault strikes.
const FAULT_AFTER_ACKED: usize = 20;
/// How long the fault lasts.
const DOWN_FOR: Duration = Duration::from_secs(3);

/// What goes wrong mid-run.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The broker loses power (cut off, then crashed: unsynced writes and every connection
    /// gone, its peers hear nothing) and restarts.
    BrokerCrash,
    /// The network between the application and the broker drops everything, then heals (the
    /// streams it cut stay dead: turmoil does not retransmit).
    Partition,
}

/// A run whose broker (SYNC_FLUSH) suffers `fault` after [`FAULT_AFTER_ACKED`] acknowledged
/// sends, for [`DOWN_FOR`]. Returns the trace and how many sends failed.
fn run_with_fault(seed: u64, fault: Fault) -> (Vec<String>, usize) {
    let mut sim = cluster(seed, FlushPolicy::Sync);
    let trace = Arc::new(Mutex::new(Vec::new()));
    let acked = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let (recorded, acked_in_app, failed_in_app) =
        (Arc::clone(&trace), Arc::clone(&acked), Arc::clone(&failed));
    sim.client("app", async move {
        let env = SimEnv::for_host(seed, "app");
        let producer = Producer::start(env.clone(), client("producer"), "sim-producers").await;
        let (deliveries, mut delivered) = mpsc::unbounded_channel();
        let mut consumer = None;
        for i in 0..MESSAGES {
            // Retry until acknowledged: a send that failed may still have been stored, so a
            // body can arrive twice, but an acknowledged one must arrive.
            loop {
                match producer.send(&Message::new("sim", format!("m-{i}"))).await {
                    Ok(sent) => {
                        recorded.lock().unwrap().push(format!("sent m-{i} {}", sent.queue));
                        acked_in_app.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                    Err(error) => {
                        recorded.lock().unwrap().push(format!("failed m-{i}: {error}"));
                        failed_in_app.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
            if i == 0 {
                consumer = Some(self::consumer(env.clone(), deliveries.clone()));
            }
        }
        let mut got = BTreeSet::new();
        while got.len() < MESSAGES {
            let delivery = delivered.recv().await.expect("the consumer runs");
            got.insert(delivery.split(' ').nth(1).unwrap_or_default().to_owned());
            recorded.lock().unwrap().push(delivery);
        }
        if let Some(consumer) = consumer {
            consumer.shutdown().await;
        }
        producer.shutdown().await;
        Ok(())
    });
    let mut struck_at = None;
    let mut healed = false;
    while !sim.step().expect("the simulation steps") {
        match struck_at {
            None if acked.load(Ordering::SeqCst) >= FAULT_AFTER_ACKED => {
                match fault {
                    Fault::BrokerCrash => {
                        // Power off: cut the host off first, so that the connections its
                        // dropped runtime closes (in an order set by tokio's process-wide task
                        // ids, not by the seed) send nothing; peers see silence, as after a
                        // real power loss, and the run stays a function of its seed.
                        for peer in ["app", "namesrv"] {
                            sim.partition("broker", peer);
                        }
                        sim.crash("broker");
                    }
                    Fault::Partition => sim.partition("app", "broker"),
                }
                struck_at = Some(sim.elapsed());
            }
            Some(at) if !healed && sim.elapsed() >= at + DOWN_FOR => {
                match fault {
                    Fault::BrokerCrash => {
                        sim.bounce("broker");
                        for peer in ["app", "namesrv"] {
                            sim.repair("broker", peer);
                        }
                    }
                    Fault::Partition => sim.repair("app", "broker"),
                }
                healed = true;
            }
            _ => {}
        }
    }
    assert!(healed, "the fault struck and healed before the run ended");
    let trace = Arc::try_unwrap(trace).map(|t| t.into_inner().unwrap()).unwrap_or_default();
    (trace, failed.load(Ordering::SeqCst))
}

/// Every message was delivered at least once, the fault was felt, and the run replays (a crash
/// too: it is a power-off, see `run_with_fault`).
fn check_fault(seed: u64, fault: Fault) {
    let (trace, failed) = run_with_fault(seed, fault);
    assert!(failed > 0, "{fault:?} was felt by the producer (seed {seed})");
    let delivered: BTreeSet<&str> = trace
        .iter()
        .filter_map(|line| line.strip_prefix("got "))
        .filter_map(|rest| rest.split(' ').next())
        .collect();
    let expected: BTreeSet<String> = (0..MESSAGES).map(|i| format!("m-{i}")).collect();
    assert_eq!(
        delivered,
        expected.iter().map(String::as_str).collect(),
        "every message, at least once, despite {fault:?} (seed {seed})"
    );
    assert_eq!(run_with_fault(seed, fault), (trace, failed), "one seed, one trace");
}

/// Seeds each fault scenario is tried with.
const FAULT_SEEDS: std::ops::Range<u64> = 11..19;

#[test]
fn a_broker_crash_and_restart_loses_no_acknowledged_message() {
    for seed in FAULT_SEEDS {
        check_fault(seed, Fault::BrokerCrash);
    }
}

#[test]
fn a_partition_between_client_and_broker_heals_without_loss() {
    for seed in FAULT_SEEDS {
        check_fault(seed, Fault::Partition);
    }
}

/// How `member-b` goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MemberLoss {
    /// Its process crashes: its connections close and the broker sees them go. (The order
    /// they close in is not a function of the seed, so such runs are not replayed.)
    ProcessCrash,
    /// Its machine loses power: silence. Only the broker's expiry of silent clients (5 s here,
    /// with heartbeats every second) notices.
    PowerOff,
}

/// A run with two members of one group, `member-b` on its own host; once they have split the
/// queues, `member-b` is lost. Neither member rebalances on a timer (hour-long intervals), so
/// the survivor can only learn of the loss from the broker. Returns the deliveries.
fn run_with_member_loss(seed: u64, loss: MemberLoss) -> Vec<String> {
    let (client_expiry_ms, heartbeat_interval_ms) = match loss {
        MemberLoss::ProcessCrash => (120_000, 3_600_000),
        MemberLoss::PowerOff => (5_000, 1_000),
    };
    let mut sim = cluster_expiring(seed, FlushPolicy::Sync, client_expiry_ms);
    let patient = |config: PushConsumerConfig| PushConsumerConfig {
        rebalance_interval_ms: 3_600_000,
        ..config
    };
    let member = move |id: &str| ClientConfig { heartbeat_interval_ms, ..client(id) };
    sim.host("member-b", move || async move {
        let env = SimEnv::for_host(seed, "member-b");
        let _member = PushConsumer::start(
            env,
            member("member-b"),
            patient(PushConsumerConfig::new("sim-consumers")),
            &[("sim", "*")],
            |_: &MessageQueue, _: &[ReceivedMessage]| ConsumeResult::Success,
        );
        std::future::pending::<()>().await;
        Ok(())
    });
    let split = Arc::new(AtomicUsize::new(0));
    let trace = Arc::new(Mutex::new(Vec::new()));
    let (split_in_app, recorded) = (Arc::clone(&split), Arc::clone(&trace));
    sim.client("app", async move {
        let env = SimEnv::for_host(seed, "app");
        let producer = Producer::start(env.clone(), client("producer"), "sim-producers").await;
        send_acked(&producer, &Message::new("sim", "m-0")).await;
        let (deliveries, mut delivered) = mpsc::unbounded_channel();
        let survivor = PushConsumer::start(
            env,
            member("member-a"),
            patient(PushConsumerConfig::new("sim-consumers")),
            &[("sim", "*")],
            move |queue: &MessageQueue, messages: &[ReceivedMessage]| {
                for message in messages {
                    let body = String::from_utf8_lossy(message.body()).into_owned();
                    let _ = deliveries.send(format!("got {body} {queue}"));
                }
                ConsumeResult::Success
            },
        );
        let of_topic =
            |owned: &BTreeSet<MessageQueue>| owned.iter().filter(|q| q.topic == "sim").count();
        survivor.assignment_when(|owned| of_topic(owned) == 2).await;
        split_in_app.store(1, Ordering::SeqCst);
        survivor.assignment_when(|owned| of_topic(owned) == 4).await;
        for i in 1..MESSAGES {
            producer.send(&Message::new("sim", format!("m-{i}"))).await?;
        }
        let mut got = BTreeSet::new();
        while got.len() < MESSAGES {
            let delivery = delivered.recv().await.expect("the survivor runs");
            got.insert(delivery.split(' ').nth(1).unwrap_or_default().to_owned());
            recorded.lock().unwrap().push(delivery);
        }
        survivor.shutdown().await;
        producer.shutdown().await;
        Ok(())
    });
    let mut crashed = false;
    while !sim.step().expect("the survivor takes over before the simulation's time runs out") {
        if !crashed && split.load(Ordering::SeqCst) == 1 {
            if loss == MemberLoss::PowerOff {
                for peer in ["broker", "namesrv", "app"] {
                    sim.partition("member-b", peer);
                }
            }
            sim.crash("member-b");
            crashed = true;
        }
    }
    assert!(crashed);
    Arc::try_unwrap(trace).map(|t| t.into_inner().unwrap()).unwrap_or_default()
}

#[test]
fn a_crashed_members_queues_go_to_the_survivor_on_the_brokers_notice() {
    for seed in FAULT_SEEDS {
        let delivered = run_with_member_loss(seed, MemberLoss::ProcessCrash);
        let bodies: BTreeSet<&str> =
            delivered.iter().filter_map(|line| line.split(' ').nth(1)).collect();
        assert_eq!(bodies.len(), MESSAGES, "seed {seed}: every message reached the survivor");
    }
}

#[test]
fn a_powered_off_members_queues_go_to_the_survivor_once_the_broker_expires_it() {
    for seed in FAULT_SEEDS {
        let delivered = run_with_member_loss(seed, MemberLoss::PowerOff);
        let bodies: BTreeSet<&str> =
            delivered.iter().filter_map(|line| line.split(' ').nth(1)).collect();
        assert_eq!(bodies.len(), MESSAGES, "seed {seed}: every message reached the survivor");
        assert_eq!(
            run_with_member_loss(seed, MemberLoss::PowerOff),
            delivered,
            "one seed, one run"
        );
    }
}
