//! A RocketMQ-model cluster in the simulator: two nameservers and two broker groups, each a
//! master and its slave, all the production code on turmoil hosts; keyed producers and an
//! orderly push consumer of our own client; a nemesis from the seed; then every fault healed
//! and every queue drained, and the history judged by [`crate::checker`].
//!
//! Producers write each key to one fixed queue (RocketMQ's strict order: a key's queue never
//! changes, so a send to a dead master fails instead of moving), one message at a time per key.
//! A send counts as acknowledged only on SEND_OK; a SYNC_MASTER's FLUSH_SLAVE_TIMEOUT or
//! SLAVE_NOT_AVAILABLE is stored but not promised, so it counts as failed.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use twinmq_rocketmq::broker::ha::BrokerRole;
use twinmq_rocketmq::broker::{Broker, BrokerConfig};
use twinmq_rocketmq::client::{
    ClientConfig, ConsumeFrom, ConsumeResult, Message, MessageQueue, Producer, PushConsumer,
    PushConsumerConfig, ReceivedMessage, SendStatus,
};
use twinmq_rocketmq::namesrv::{NameServer, NamesrvConfig, TopicRouteData};
use twinmq_rocketmq::remoting::{RemotingClient, RemotingCommand, request_code};
use twinmq_runtime::{Env, Shutdown, SimEnv};
use twinmq_storage::{CommitLogConfig, FlushPolicy};

use crate::harness::{self, APP, Pacer, Phases};
pub use crate::harness::{RunSettings, SimOutcome};
use crate::history::{Event, History};
use crate::invariants::RocketmqInvariants;

/// The topic every producer writes.
const TOPIC: &str = "sim";
/// Broker groups.
const GROUPS: [&str; 2] = ["broker-a", "broker-b"];
/// Nameservers.
const NAMESRVS: [&str; 2] = ["namesrv-1", "namesrv-2"];

/// One simulated run's settings.
#[derive(Debug, Clone)]
pub struct RocketmqSim {
    /// Seed, message count, faults, trace.
    pub run: RunSettings,
    /// Both masters' role.
    pub role: BrokerRole,
    /// Every broker's flush policy.
    pub flush: FlushPolicy,
    /// Concurrent producers (each owns a share of the keys).
    pub producers: u32,
    /// Ordering keys.
    pub keys: u32,
    /// Queues of the topic on each broker group.
    pub queues: u32,
}

impl RocketmqSim {
    /// The durable configuration (SYNC_MASTER + SYNC_FLUSH) with faults, for `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            run: RunSettings::new(seed, 400),
            role: BrokerRole::SyncMaster,
            flush: FlushPolicy::Sync,
            producers: 2,
            keys: 8,
            queues: 2,
        }
    }
}

/// Every host of the cluster but the application.
fn servers() -> Vec<String> {
    NAMESRVS
        .iter()
        .map(|n| (*n).to_owned())
        .chain(GROUPS.iter().flat_map(|g| [(*g).to_owned(), format!("{g}-s")]))
        .collect()
}

fn broker_config(sim: &RocketmqSim, group: &str, slave: bool) -> BrokerConfig {
    let mut config = BrokerConfig::new(
        "0.0.0.0:10911".parse().expect("a socket address"),
        NAMESRVS.iter().map(|n| format!("{n}:9876")).collect(),
        "/data".into(),
    );
    config.broker_name = group.to_owned();
    config.broker_id = i64::from(slave);
    config.default_queues = sim.queues;
    config.register_interval_ms = 1_000;
    config.sync_timeout_ms = 2_000;
    config.store = CommitLogConfig {
        file_bytes: 1 << 20,
        consume_queue_entries_per_file: 4_096,
        // Small key-index files: each fills (and is synced) every 64 keyed messages, which
        // keeps the unsynced writes turmoil's file system replays on every read few.
        index_slots: 64,
        index_entries_max: 64,
        flush: sim.flush,
        ..config.store
    };
    config.ha.role = if slave { BrokerRole::Slave } else { sim.role };
    config.ha.master = slave.then(|| format!("{group}:10912"));
    config.ha.heartbeat_ms = 500;
    config.ha.housekeeping_ms = 3_000;
    config.ha.reconnect_ms = 500;
    config.ha.sync_interval_ms = 1_000;
    config
}

/// Runs one simulation.
pub fn run(sim: &RocketmqSim) -> Result<SimOutcome, String> {
    let mut world = harness::world(&sim.run);
    let seed = sim.run.seed;
    let disks = harness::disks(&servers());
    for namesrv in NAMESRVS {
        harness::serve(&mut world, seed, &disks, namesrv, |env| async move {
            let mut config = NamesrvConfig::new("0.0.0.0:9876".parse()?);
            config.broker_expiry_ms = 10_000;
            config.expiry_scan_ms = 1_000;
            NameServer::bind(env, config).await?.run(Shutdown::new()).await;
            Ok(())
        });
    }
    let pairs = GROUPS.iter().map(|g| ((*g).to_owned(), format!("{g}-s"))).collect();
    let invariants = RocketmqInvariants { pairs, ..RocketmqInvariants::default() };
    for group in GROUPS {
        for slave in [false, true] {
            let host = if slave { format!("{group}-s") } else { group.to_owned() };
            let config = broker_config(sim, group, slave);
            let (name, registry) = (host.clone(), invariants.brokers.clone());
            harness::serve(&mut world, seed, &disks, &host, move |env| {
                let (mut config, name, registry) = (config.clone(), name.clone(), registry.clone());
                async move {
                    let IpAddr::V4(ip) = turmoil::lookup(name.as_str()) else {
                        return Err("IPv4 hosts".into());
                    };
                    config.broker_ip = Some(ip);
                    let broker = Broker::bind(env, config).await?;
                    registry.register(&name, &broker.processor());
                    broker.run(Shutdown::new()).await?;
                    Ok(())
                }
            });
        }
    }
    let workload_sim = sim.clone();
    harness::run(&sim.run, world, disks, invariants, |history, phases| {
        workload(workload_sim, history, phases)
    })
}

/// Creates the topic on every master (as `mqadmin updateTopic` would) and waits until both
/// nameservers route it to every group.
async fn create_topic(env: &SimEnv, queues: u32) {
    let fields = |pairs: &[(&str, String)]| -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    };
    for group in GROUPS {
        loop {
            let request = RemotingCommand::request(
                request_code::UPDATE_AND_CREATE_TOPIC,
                fields(&[
                    ("topic", TOPIC.to_owned()),
                    ("readQueueNums", queues.to_string()),
                    ("writeQueueNums", queues.to_string()),
                    ("perm", "6".to_owned()),
                ]),
                Bytes::new(),
            );
            if ask(env, &format!("{group}:10911"), request).await.is_some_and(|r| r.code == 0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for namesrv in NAMESRVS {
        loop {
            let request = RemotingCommand::request(
                request_code::GET_ROUTEINFO_BY_TOPIC,
                fields(&[("topic", TOPIC.to_owned())]),
                Bytes::new(),
            );
            let routed = ask(env, &format!("{namesrv}:9876"), request)
                .await
                .and_then(|r| serde_json::from_slice::<TopicRouteData>(&r.body).ok())
                .is_some_and(|route| route.queue_datas.len() == GROUPS.len());
            if routed {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// One request on a fresh connection, `None` if it could not be made or answered in time.
async fn ask(env: &SimEnv, addr: &str, request: RemotingCommand) -> Option<RemotingCommand> {
    let client = RemotingClient::connect(env.net(), addr, None).await.ok()?;
    tokio::time::timeout(Duration::from_secs(2), client.request(request)).await.ok()?
}

/// The application: producers until every message is sent, then (once the harness healed
/// every fault) a drain until every acknowledged message arrived or the drain time is up.
async fn workload(sim: RocketmqSim, history: History, phases: Phases) -> turmoil::Result {
    let env = SimEnv::for_host(sim.run.seed, APP);
    let client = |id: &str| ClientConfig {
        request_timeout_ms: 2_000,
        send_timeout_ms: 2_000,
        send_retries: 0,
        route_refresh_interval_ms: 2_000,
        heartbeat_interval_ms: 2_000,
        ..ClientConfig::new(NAMESRVS.iter().map(|n| format!("{n}:9876")).collect(), id)
    };
    // Every key's one queue, fixed for the run.
    let queues: Vec<MessageQueue> = GROUPS
        .iter()
        .flat_map(|group| {
            (0..sim.queues).map(move |queue_id| MessageQueue {
                topic: TOPIC.into(),
                broker_name: (*group).to_owned(),
                queue_id,
            })
        })
        .collect();
    create_topic(&env, sim.queues).await;
    let consumer = {
        let history = history.clone();
        let mut config = PushConsumerConfig::new("sim-consumers");
        config.orderly = true;
        config.consume_from = ConsumeFrom::FirstOffset;
        config.long_poll_suspend_ms = 2_000;
        config.pull_backoff_ms = 500;
        config.rebalance_interval_ms = 2_000;
        config.offset_persist_interval_ms = 1_000;
        config.orderly_suspend_ms = 200;
        PushConsumer::start(
            env.clone(),
            client("consumer"),
            config,
            &[(TOPIC, "*")],
            move |queue: &MessageQueue, messages: &[ReceivedMessage]| {
                for message in messages {
                    let Some(id) = std::str::from_utf8(message.body())
                        .ok()
                        .and_then(|body| body.parse::<u64>().ok())
                    else {
                        continue;
                    };
                    history.record(Event::Deliver {
                        consumer: 0,
                        id,
                        queue: format!("{}/{}", queue.broker_name, queue.queue_id),
                        offset: u64::try_from(message.queue_offset()).unwrap_or(0),
                    });
                }
                ConsumeResult::Success
            },
        )
    };
    let mut producers = Vec::new();
    for producer_index in 0..sim.producers {
        let (env, history, queues) = (env.clone(), history.clone(), queues.clone());
        let config = client(&format!("producer-{producer_index}"));
        let sim = sim.clone();
        producers.push(tokio::spawn(async move {
            let clock = env.clock().clone();
            let producer = Arc::new(Producer::start(env, config, "sim-producers").await);
            // One lane per key, as an orderly application sends: a key's messages go one at a
            // time, in order, to its queue, while the other keys' go on.
            let mut lanes: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
            for id in (0..sim.run.messages)
                .filter(|id| id % u64::from(sim.producers) == u64::from(producer_index))
            {
                let key = u32::try_from(id % u64::from(sim.keys)).unwrap_or(0);
                lanes.entry(key).or_default().push(id);
            }
            let lanes: Vec<_> = lanes
                .into_iter()
                .map(|(key, ids)| {
                    let lane = Lane {
                        producer: Arc::clone(&producer),
                        producer_index,
                        key,
                        queue: queues[key as usize % queues.len()].clone(),
                        history: history.clone(),
                    };
                    let pacer = Pacer::new(ids.len(), &clock);
                    tokio::spawn(lane.send_all(ids, pacer))
                })
                .collect();
            for lane in lanes {
                let _ = lane.await;
            }
            if let Ok(producer) = Arc::try_unwrap(producer) {
                producer.shutdown().await;
            }
        }));
    }
    for producer in producers {
        let _ = producer.await;
    }
    phases.sending_done().await;
    harness::drain(&history).await;
    consumer.shutdown().await;
    Ok(())
}

/// The sends of one key from one producer, one at a time.
struct Lane {
    producer: Arc<Producer<SimEnv>>,
    producer_index: u32,
    key: u32,
    queue: MessageQueue,
    history: History,
}

impl Lane {
    async fn send_all(self, ids: Vec<u64>, mut pacer: Pacer) {
        let queue_name = format!("{}/{}", self.queue.broker_name, self.queue.queue_id);
        let (history, key) = (&self.history, self.key);
        for id in ids {
            pacer.next().await;
            history.record(Event::Send { producer: self.producer_index, id, key });
            let message = Message::new(TOPIC, id.to_string()).with_key(format!("k{key}"));
            match self.producer.send_to_queue(&message, &self.queue).await {
                Ok(result) if result.status == SendStatus::SendOk => history.record(Event::Ack {
                    id,
                    queue: queue_name.clone(),
                    offset: u64::try_from(result.queue_offset).unwrap_or(0),
                }),
                Ok(result) => {
                    history.record(Event::SendFailed { id, reason: format!("{:?}", result.status) })
                }
                Err(error) => {
                    history.record(Event::SendFailed { id, reason: error.to_string() });
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}
