//! The load generator inside the simulator: the same engine that measures real brokers drives
//! a Kafka-model broker and a RocketMQ-model nameserver and broker on turmoil's network, disk
//! and clock (through `SimEnv`), counts exactly, and one seed gives one summary to the byte.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use twinmq_loadgen::{BenchConfig, Bound, LiveCounts, SendMode, Summary};
use twinmq_rocketmq::broker::{Broker as RocketMqBroker, BrokerConfig as RocketMqBrokerConfig};
use twinmq_rocketmq::namesrv::{NameServer, NamesrvConfig};
use twinmq_runtime::{Shutdown, SimEnv};
use twinmq_storage::CommitLogConfig;

/// Runs a Kafka and a RocketMQ workload in one simulation; returns both summaries as JSON.
fn simulate(seed: u64) -> Vec<String> {
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .tick_duration(Duration::from_millis(1))
        .simulation_duration(Duration::from_secs(600))
        .build();
    sim.host("kafka", move || async move {
        let env = SimEnv::for_host(seed, "kafka");
        let mut config =
            twinmq_kafka::BrokerConfig::single_node(1, "0.0.0.0:9092".parse()?, "/data".into());
        config.advertised_host = Some("kafka".into());
        let broker = twinmq_kafka::Broker::bind(env, config).await?;
        broker.run(Shutdown::new()).await?;
        Ok(())
    });
    sim.host("namesrv", move || async move {
        let env = SimEnv::for_host(seed, "namesrv");
        let namesrv = NameServer::bind(env, NamesrvConfig::new("0.0.0.0:9876".parse()?)).await?;
        namesrv.run(Shutdown::new()).await;
        Ok(())
    });
    sim.host("broker", move || async move {
        let env = SimEnv::for_host(seed, "broker");
        let IpAddr::V4(ip) = turmoil::lookup("broker") else { panic!("IPv4 hosts") };
        let mut config = RocketMqBrokerConfig::new(
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
        let broker = RocketMqBroker::bind(env, config).await?;
        broker.run(Shutdown::new()).await?;
        Ok(())
    });
    let summaries = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&summaries);
    sim.client("bench", async move {
        let env = SimEnv::for_host(seed, "bench");
        // An operator starts the bench once the cluster is up: give the servers their first
        // ticks to bind and the broker to register (virtual time; the same every run).
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut kafka = BenchConfig::new("kafka://kafka:9092".parse()?);
        kafka.partitions = 3;
        kafka.producers = 2;
        kafka.bound = Bound::Count { messages: 300 };
        let mut rocketmq = BenchConfig::new("rocketmq://namesrv:9876".parse()?);
        rocketmq.partitions = 2;
        rocketmq.producers = 2;
        rocketmq.rocketmq.send_mode = SendMode::Batch { messages: 16 };
        rocketmq.bound = Bound::Count { messages: 300 };
        for config in [kafka, rocketmq] {
            let live = Arc::new(LiveCounts::default());
            let report = twinmq_loadgen::run(env.clone(), config, live).await?;
            recorded.lock().unwrap().push(serde_json::to_string(&report.summary)?);
        }
        Ok(())
    });
    sim.run().expect("the simulation runs to its end");
    Arc::try_unwrap(summaries).map(|s| s.into_inner().unwrap()).unwrap_or_default()
}

#[test]
fn counts_exactly_in_the_simulator_and_one_seed_gives_one_summary() {
    let first = simulate(5);
    let summaries: Vec<Summary> = first.iter().map(|s| serde_json::from_str(s).unwrap()).collect();
    let counts: Vec<(u64, u64, u64, u64)> = summaries
        .iter()
        .map(|s| (s.measured.sent, s.measured.acked, s.measured.consumed, s.measured.failed))
        .collect();
    assert_eq!(counts, vec![(300, 300, 300, 0), (300, 300, 300, 0)]);
    assert_eq!(simulate(5), first, "one seed, one summary");
}
