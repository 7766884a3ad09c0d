//! A Kafka-model cluster in the simulator: a controller and three brokers, a topic replicated
//! three ways, all the production code on turmoil hosts; keyed producers and a consumer group of
//! our own client; a nemesis from the seed; then every fault healed, every partition drained,
//! and the history judged by [`crate::checker`].
//!
//! Each key's messages are sent one at a time, the next after the last was answered and not
//! before its turn (a [`Pacer`] spreads them over the send window; many keys at once, so
//! batches still form); a send counts as acknowledged only when the producer's
//! future resolves with an offset. The consumer group commits as it goes, so a rebalance or a
//! coordinator move resumes from a commit and re-delivers what came after it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use twinmq_kafka::client::consumer::OffsetReset;
use twinmq_kafka::client::{ClusterClient, Consumer, ConsumerConfig, Producer, ProducerConfig};
use twinmq_kafka::{Broker, BrokerConfig, ControllerLocation};
use twinmq_runtime::{Env, Shutdown, SimEnv};
use twinmq_storage::{FlushPolicy, LogConfig};

use crate::harness::{self, APP, Pacer, Phases};
pub use crate::harness::{RunSettings, SimOutcome};
use crate::history::{Event, History};
use crate::invariants::KafkaInvariants;

/// The topic every producer writes.
const TOPIC: &str = "sim";
/// The consumer group.
const GROUP: &str = "sim-consumers";
/// The controller's host and node id.
const CONTROLLER: (&str, i32) = ("controller", 100);
/// The brokers' hosts; broker `kafka-N` is node N.
const BROKERS: [&str; 3] = ["kafka-1", "kafka-2", "kafka-3"];
/// The port every node listens on.
const PORT: u16 = 9092;
/// How often the consumer commits its positions.
const COMMIT_INTERVAL_MS: i64 = 1_000;
/// The consumer's pause after a poll that brought nothing (or failed).
const POLL_BACKOFF: Duration = Duration::from_millis(50);

/// One simulated run's settings.
#[derive(Debug, Clone)]
pub struct KafkaSim {
    /// Seed, message count, faults, trace.
    pub run: RunSettings,
    /// The producers' `acks` (-1 = all).
    pub acks: i16,
    /// `min.insync.replicas`.
    pub min_insync_replicas: usize,
    /// `unclean.leader.election.enable`.
    pub unclean_leader_election: bool,
    /// Every broker's flush policy.
    pub flush: FlushPolicy,
    /// The topic's replication factor.
    pub replication_factor: i16,
    /// The topic's partitions.
    pub partitions: i32,
    /// Concurrent producers (each owns a share of the keys).
    pub producers: u32,
    /// Ordering keys.
    pub keys: u32,
    /// A last change to every broker's configuration (tests use it to break a broker on
    /// purpose).
    pub broker_config: Option<fn(&mut BrokerConfig)>,
}

impl KafkaSim {
    /// The durable configuration with faults, for `seed`: acks=all, replication factor 3,
    /// min.insync.replicas 2, no unclean election, and every append synced before it counts
    /// (the nemesis cuts power, and only synced bytes survive a power cut).
    pub fn new(seed: u64) -> Self {
        Self {
            run: RunSettings::new(seed, 400),
            acks: -1,
            min_insync_replicas: 2,
            unclean_leader_election: false,
            flush: FlushPolicy::Sync,
            replication_factor: 3,
            partitions: 4,
            producers: 2,
            keys: 16,
            broker_config: None,
        }
    }
}

/// Every server host: the controller, then the brokers.
fn servers() -> Vec<String> {
    std::iter::once(CONTROLLER.0).chain(BROKERS).map(str::to_owned).collect()
}

fn bootstrap() -> String {
    BROKERS.iter().map(|b| format!("{b}:{PORT}")).collect::<Vec<_>>().join(",")
}

fn node_config(sim: &KafkaSim, host: &str, node_id: i32) -> BrokerConfig {
    let listen = SocketAddr::from(([0, 0, 0, 0], PORT));
    let mut config = BrokerConfig::single_node(node_id, listen, "/data".into());
    config.advertised_host = Some(host.to_owned());
    config.auto_create_topics = false;
    config.default_replication_factor = sim.replication_factor;
    config.min_insync_replicas = sim.min_insync_replicas;
    config.unclean_leader_election = sim.unclean_leader_election;
    config.replica_lag_time_max_ms = 5_000;
    config.broker_session_timeout_ms = 3_000;
    config.broker_heartbeat_interval_ms = 500;
    config.replica_fetch_wait_max_ms = 200;
    config.replica_socket_timeout_ms = 2_000;
    config.message_bytes_max = 64 * 1024;
    config.log = LogConfig {
        segment_bytes_max: 1 << 20,
        entry_bytes_max: 64 * 1024 + 64,
        flush: sim.flush,
        ..config.log
    };
    config.group.offsets_partitions = 2;
    config.group.session_timeout_ms_min = 1_000;
    if host == CONTROLLER.0 {
        config.broker_role = false;
    } else {
        config.controller = ControllerLocation::Remote {
            node_id: CONTROLLER.1,
            addr: format!("{}:{PORT}", CONTROLLER.0),
        };
    }
    if let Some(change) = sim.broker_config {
        change(&mut config);
    }
    config
}

/// Runs one simulation.
pub fn run(sim: &KafkaSim) -> Result<SimOutcome, String> {
    let mut world = harness::world(&sim.run);
    let seed = sim.run.seed;
    let disks = harness::disks(&servers());
    let invariants = KafkaInvariants::default();
    let nodes = std::iter::once(CONTROLLER).chain(BROKERS.iter().zip(1..).map(|(h, n)| (*h, n)));
    for (host, node_id) in nodes {
        let config = node_config(sim, host, node_id);
        let registry = invariants.brokers.clone();
        harness::serve(&mut world, seed, &disks, host, move |env| {
            let (config, registry) = (config.clone(), registry.clone());
            async move {
                let broker = Broker::bind(env, config).await?;
                registry.register(host, &broker.context());
                broker.run(Shutdown::new()).await?;
                Ok(())
            }
        });
    }
    let workload_sim = sim.clone();
    harness::run(&sim.run, world, disks, invariants, |history, phases| {
        workload(workload_sim, history, phases)
    })
}

/// Creates the topic (as `kafka-topics --create` would) and waits until every partition has a
/// leader.
async fn create_topic(env: &SimEnv, sim: &KafkaSim) {
    let client =
        ClusterClient::new(*env.net(), &bootstrap(), "sim-admin").with_request_timeout(2_000);
    loop {
        let created = async {
            client.refresh(&[]).await.ok()?;
            let node = client.any_node()?;
            let request = CreateTopicsRequest::default().with_timeout_ms(2_000).with_topics(vec![
                CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                    .with_num_partitions(sim.partitions)
                    .with_replication_factor(sim.replication_factor),
            ]);
            let response = client.send_to(node, 5, &request).await.ok()?;
            response
                .topics
                .iter()
                .all(|t| {
                    t.error_code == 0 || t.error_code == ResponseError::TopicAlreadyExists.code()
                })
                .then_some(())
        };
        if created.await.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    loop {
        let _ = client.refresh(&[TOPIC.to_owned()]).await;
        let partitions = client.partitions(TOPIC).unwrap_or_default();
        if partitions.len() == usize::try_from(sim.partitions).unwrap_or(0)
            && partitions.iter().all(|p| p.leader >= 0)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The application: producers until every message is answered, then (once the harness healed
/// every fault) a drain until every acknowledged message arrived or the drain time is up.
async fn workload(sim: KafkaSim, history: History, phases: Phases) -> turmoil::Result {
    let env = SimEnv::for_host(sim.run.seed, APP);
    create_topic(&env, &sim).await;
    let stop = Shutdown::new();
    let consumer = tokio::spawn(consume(env.clone(), history.clone(), stop.clone()));
    let mut senders = Vec::new();
    for producer_index in 0..sim.producers {
        let config = ProducerConfig {
            acks: sim.acks,
            linger_ms: 2,
            retries: 3,
            retry_backoff_ms: 200,
            idempotent: sim.acks == -1,
            request_timeout_ms: 3_000,
            ..ProducerConfig::default()
        };
        let producer = Arc::new(Producer::new(
            *env.net(),
            env.clock().clone(),
            &bootstrap(),
            &format!("producer-{producer_index}"),
            config,
        ));
        let keys = (0..sim.keys).filter(|key| key % sim.producers == producer_index);
        for key in keys {
            let (producer, history) = (Arc::clone(&producer), history.clone());
            let clock = env.clock().clone();
            let ids: Vec<u64> = (0..sim.run.messages)
                .filter(|id| id % u64::from(sim.keys) == u64::from(key))
                .collect();
            senders.push(tokio::spawn(async move {
                let mut pacer = Pacer::new(ids.len(), &clock);
                for id in ids {
                    pacer.next().await;
                    if !send(&producer, &history, producer_index, key, id).await {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }));
        }
    }
    for sender in senders {
        let _ = sender.await;
    }
    phases.sending_done().await;
    harness::drain(&history).await;
    stop.trigger();
    let _ = consumer.await;
    Ok(())
}

/// Sends message `id` with key `key` and waits for its answer; records what happened and
/// returns whether it was acknowledged.
async fn send(
    producer: &Producer<twinmq_runtime::SimNet>,
    history: &History,
    producer_index: u32,
    key: u32,
    id: u64,
) -> bool {
    history.record(Event::Send { producer: producer_index, id, key });
    let key_bytes = Bytes::from(format!("k{key}"));
    let answer =
        match producer.send(TOPIC, Some(key_bytes), Some(Bytes::from(id.to_string()))).await {
            Ok(answer) => answer,
            Err(error) => {
                history.record(Event::SendFailed { id, reason: error.to_string() });
                return false;
            }
        };
    match answer.await {
        Ok(Ok(metadata)) => {
            history.record(Event::Ack {
                id,
                queue: format!("{TOPIC}/{}", metadata.partition),
                offset: u64::try_from(metadata.offset).unwrap_or(0),
            });
            true
        }
        Ok(Err(error)) => {
            history.record(Event::SendFailed { id, reason: error.to_string() });
            false
        }
        Err(_) => {
            history.record(Event::SendFailed { id, reason: "producer stopped".into() });
            false
        }
    }
}

/// One group member: polls, records every delivery, commits its positions every second, until
/// `stop`.
async fn consume(env: SimEnv, history: History, stop: Shutdown) {
    let config = ConsumerConfig {
        group_id: Some(GROUP.to_owned()),
        session_timeout_ms: 6_000,
        heartbeat_interval_ms: 500,
        offset_reset: OffsetReset::Earliest,
        fetch_max_wait_ms: 200,
        request_timeout_ms: 2_000,
        ..ConsumerConfig::default()
    };
    let mut consumer =
        Consumer::new(*env.net(), env.clock().clone(), &bootstrap(), "consumer-0", config);
    consumer.subscribe(&[TOPIC]);
    let clock = env.clock().clone();
    let mut last_commit_ms = clock.now_ms();
    while !stop.is_triggered() {
        let records = tokio::select! {
            biased;
            () = stop.wait() => break,
            polled = consumer.poll() => polled,
        };
        match records {
            Ok(records) if records.is_empty() => tokio::time::sleep(POLL_BACKOFF).await,
            Ok(records) => {
                for record in records {
                    let Some(id) = record
                        .value
                        .as_deref()
                        .and_then(|v| std::str::from_utf8(v).ok())
                        .and_then(|v| v.parse::<u64>().ok())
                    else {
                        continue;
                    };
                    history.record(Event::Deliver {
                        consumer: 0,
                        id,
                        queue: format!("{TOPIC}/{}", record.partition),
                        offset: u64::try_from(record.offset).unwrap_or(0),
                    });
                }
            }
            Err(error) => {
                tracing::debug!(%error, "poll failed");
                tokio::time::sleep(POLL_BACKOFF).await;
            }
        }
        if clock.now_ms() - last_commit_ms >= COMMIT_INTERVAL_MS {
            last_commit_ms = clock.now_ms();
            let positions: Vec<(String, u64)> = consumer
                .assignment()
                .into_iter()
                .filter_map(|(topic, partition)| {
                    let offset = consumer.position(&topic, partition)?;
                    Some((format!("{topic}/{partition}"), u64::try_from(offset).ok()?))
                })
                .collect();
            if consumer.commit().await.is_ok() {
                for (queue, offset) in positions {
                    history.record(Event::Commit { consumer: 0, queue, offset });
                }
            }
        }
    }
}
