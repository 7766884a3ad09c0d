//! The broker: the storage core's MessageStore (one CommitLog, a ConsumeQueue per queue) behind
//! RocketMQ's remoting protocol; registers with every nameserver every 30 s.

pub mod admin;
pub mod ha;
pub mod housekeeping;
pub mod processor;
pub mod retry;
pub mod schedule;
pub mod send;
pub mod slave_sync;
pub mod tables;
pub mod transaction;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;
use twinmq_runtime::{Env, Listener, Net, Shutdown};
use twinmq_storage::{
    CommitLogConfig, FlushPolicy, FlushSignal, MessageStore, StorageError, run_flusher,
};

use crate::remoting::{RemotingClient, RemotingCommand, request_code, serve};
pub use processor::BrokerProcessor;
use tables::{ConsumerOffsets, TopicTable};

/// Broker settings (RocketMQ's names where it has them).
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `brokerClusterName`.
    pub cluster: String,
    /// `brokerName`.
    pub broker_name: String,
    /// `brokerId`: 0 master, >0 slave.
    pub broker_id: i64,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// `brokerIP1`: the IPv4 address clients are told to reach (and the store host in message
    /// ids); `None` takes the listener's own. Needed when listening on 0.0.0.0.
    pub broker_ip: Option<Ipv4Addr>,
    /// `namesrvAddr`: every nameserver to register with.
    pub namesrv: Vec<String>,
    /// `storePathRootDir`.
    pub data_dir: PathBuf,
    /// `autoCreateTopicEnable`.
    pub auto_create_topic: bool,
    /// `defaultTopicQueueNums`.
    pub default_queues: u32,
    /// `registerNameServerPeriod`.
    pub register_interval_ms: u64,
    /// `flushConsumerOffsetInterval`.
    pub offsets_persist_interval_ms: u64,
    /// Largest frame accepted.
    pub frame_bytes_max: usize,
    /// `maxMessageSize`.
    pub message_bytes_max: usize,
    /// The CommitLog's layout and flush policy (`flushDiskType`).
    pub store: CommitLogConfig,
    /// `messageDelayLevel`: the delay of each level, in ms (level n is index n − 1).
    pub delay_levels_ms: Vec<i64>,
    /// `transactionTimeOut`: a half message younger than this is not checked yet.
    pub transaction_timeout_ms: i64,
    /// `transactionCheckInterval`: the least time between two checks of one half message.
    pub transaction_check_interval_ms: u64,
    /// `transactionCheckMax`: checks before a half message is given up.
    pub transaction_check_max: u32,
    /// `syncFlushTimeout`: how long a send waits for the disk (SYNC_FLUSH) or a slave
    /// (SYNC_MASTER) before answering FLUSH_DISK_TIMEOUT / FLUSH_SLAVE_TIMEOUT.
    pub sync_timeout_ms: u64,
    /// Role and master/slave replication.
    pub ha: ha::HaConfig,
    /// `channelExpiredTimeout`: a client not heard from (heartbeat) for this long is dropped
    /// from its groups, as if its connection had closed.
    pub client_expiry_ms: i64,
    /// How often silent clients are looked for (RocketMQ's ClientHousekeepingService: 10 s).
    pub client_scan_interval_ms: u64,
    /// `flushIntervalConsumeQueue`: how often the store syncs its consume queues and index and
    /// writes its checkpoint, so that recovery after a crash re-dispatches only what came
    /// after it.
    pub checkpoint_interval_ms: u64,
}

impl BrokerConfig {
    /// Defaults: DefaultCluster, broker-a, id 0, ASYNC_FLUSH, auto-created topics with 4 queues.
    pub fn new(listen: SocketAddr, namesrv: Vec<String>, data_dir: PathBuf) -> Self {
        Self {
            cluster: "DefaultCluster".into(),
            broker_name: "broker-a".into(),
            broker_id: 0,
            listen,
            broker_ip: None,
            namesrv,
            data_dir,
            auto_create_topic: true,
            default_queues: 4,
            register_interval_ms: 30_000,
            offsets_persist_interval_ms: 5_000,
            frame_bytes_max: 16 * 1024 * 1024,
            message_bytes_max: 4 * 1024 * 1024,
            store: CommitLogConfig {
                flush: FlushPolicy::ASYNC_DEFAULT,
                ..CommitLogConfig::default()
            },
            delay_levels_ms: schedule::parse_delay_levels(schedule::DEFAULT_DELAY_LEVELS)
                .unwrap_or_default(),
            transaction_timeout_ms: 6_000,
            transaction_check_interval_ms: 60_000,
            transaction_check_max: 15,
            sync_timeout_ms: 5_000,
            ha: ha::HaConfig::default(),
            client_expiry_ms: 120_000,
            client_scan_interval_ms: 10_000,
            checkpoint_interval_ms: 1_000,
        }
    }
}

/// A bound broker.
pub struct Broker<E: Env> {
    listener: <E::Net as Net>::Listener,
    ha_listener: Option<<E::Net as Net>::Listener>,
    processor: Arc<BrokerProcessor<E>>,
}

impl<E: Env> std::fmt::Debug for Broker<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker").finish_non_exhaustive()
    }
}

impl<E: Env> Broker<E> {
    /// Opens (recovering) the store and binds the listener.
    pub async fn bind(env: E, config: BrokerConfig) -> Result<Self, StorageError> {
        let listener = env.net().bind(config.listen).await.map_err(|source| StorageError::Io {
            path: format!("listen {}", config.listen).into(),
            source,
        })?;
        let local = listener
            .local_addr()
            .map_err(|source| StorageError::Io { path: "listener".into(), source })?;
        let store_host = match (config.broker_ip, local) {
            (Some(ip), _) => SocketAddrV4::new(ip, local.port()),
            (None, SocketAddr::V4(v4)) => v4,
            (None, SocketAddr::V6(_)) => SocketAddrV4::new([127, 0, 0, 1].into(), local.port()),
        };
        let ha_listener = if config.ha.role.is_master() {
            let ha_addr = config.ha.listen.unwrap_or_else(|| {
                let port = if config.listen.port() == 0 { 0 } else { local.port().wrapping_add(1) };
                SocketAddr::new(local.ip(), port)
            });
            let bound = env.net().bind(ha_addr).await.map_err(|source| StorageError::Io {
                path: format!("HA listen {ha_addr}").into(),
                source,
            })?;
            Some(bound)
        } else {
            None
        };
        let advertised = ha_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|addr| addr.to_string())
            .unwrap_or_default();
        let fs = env.fs().clone();
        let store_dir = config.data_dir.join("store");
        let (store, recovery) =
            MessageStore::open(fs.clone(), env.clock().clone(), store_dir, config.store.clone())?;
        tracing::info!(?recovery, "message store opened");
        let topics = TopicTable::load(fs.clone(), &config.data_dir, config.auto_create_topic)?;
        let offsets = ConsumerOffsets::load(fs, &config.data_dir)?;
        let transactions = transaction::TransactionState::recover(&store, &offsets)?;
        let processor = Arc::new(BrokerProcessor {
            env,
            store_host,
            durable: store.durable_watermark(),
            store: Arc::new(Mutex::new(store)),
            topics: Mutex::new(topics),
            offsets: Mutex::new(offsets),
            groups: Mutex::new(BTreeMap::new()),
            arrived: Notify::new(),
            flush_signal: FlushSignal::new(),
            registered: Notify::new(),
            registrations_asked: std::sync::atomic::AtomicU64::new(0),
            registrations_done: twinmq_storage::DurableWatermark::new(0),
            queue_locks: Mutex::new(BTreeMap::new()),
            producers: Mutex::new(BTreeMap::new()),
            transactions: Mutex::new(transactions),
            ha: ha::HaState::new(advertised),
            config,
        });
        Ok(Self { listener, ha_listener, processor })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.processor.config.listen)
    }

    /// The request handling (tests).
    pub fn processor(&self) -> Arc<BrokerProcessor<E>> {
        Arc::clone(&self.processor)
    }

    /// Serves until `shutdown`, then flushes, persists offsets and checkpoints the store.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), StorageError> {
        let processor = self.processor;
        let flusher = tokio::spawn(run_flusher(
            processor.env.fs().clone(),
            Arc::clone(&processor.store),
            processor.config.store.flush,
            processor.flush_signal.clone(),
            {
                let shutdown = shutdown.clone();
                async move { shutdown.wait().await }
            },
        ));
        let registration =
            tokio::spawn(register_periodically(Arc::clone(&processor), shutdown.clone()));
        let every = |interval_ms: u64, task: fn(&BrokerProcessor<E>)| {
            let run = move |processor: Arc<BrokerProcessor<E>>| async move { task(&processor) };
            tokio::spawn(periodically(Arc::clone(&processor), interval_ms, shutdown.clone(), run))
        };
        let config = &processor.config;
        let persisting = every(config.offsets_persist_interval_ms, persist_offsets);
        let checkpointing = tokio::spawn(periodically(
            Arc::clone(&processor),
            config.checkpoint_interval_ms,
            shutdown.clone(),
            checkpoint_store,
        ));
        let housekeeping = every(config.client_scan_interval_ms, |processor| {
            processor.expire_silent_clients();
        });
        // A master schedules, checks transactions and feeds its slaves; a slave only copies.
        let mut tasks = Vec::new();
        match self.ha_listener {
            Some(ha_listener) => {
                tasks.push(tokio::spawn(schedule::run(Arc::clone(&processor), shutdown.clone())));
                tasks
                    .push(tokio::spawn(transaction::run(Arc::clone(&processor), shutdown.clone())));
                tasks.push(tokio::spawn(ha::serve_slaves::<E>(
                    ha_listener,
                    Arc::clone(&processor),
                    shutdown.clone(),
                )));
            }
            None => {
                tasks.push(tokio::spawn(ha::follow_master(
                    Arc::clone(&processor),
                    shutdown.clone(),
                )));
                tasks.push(tokio::spawn(slave_sync::run(Arc::clone(&processor), shutdown.clone())));
            }
        }
        tracing::info!(addr = %processor.store_host, broker = %processor.config.broker_name, role = ?processor.config.ha.role, ha = %processor.ha.advertised, "rocketmq broker listening");
        serve::<E, _>(
            self.listener,
            Arc::clone(&processor),
            processor.config.frame_bytes_max,
            shutdown,
        )
        .await;
        let _ = registration.await;
        let _ = persisting.await;
        let _ = checkpointing.await;
        let _ = housekeeping.await;
        for task in tasks {
            let _ = task.await;
        }
        if let Ok(result) = flusher.await {
            result?;
        }
        processor.offsets.lock().map_err(|_| poisoned())?.persist()?;
        let mut store = processor.store.lock().map_err(|_| poisoned())?;
        store.flush()?;
        store.checkpoint()?;
        Ok(())
    }
}

fn poisoned() -> StorageError {
    StorageError::Refused("a task panicked holding broker state".into())
}

/// Connections to the nameservers, kept open between registrations: a nameserver forgets a
/// broker whose connection closes (RocketMQ's onChannelDestroy), so a killed broker leaves the
/// routes at once instead of after the expiry.
pub type NamesrvLinks<N> = BTreeMap<String, RemotingClient<N>>;

/// REGISTER_BROKER with every topic, to every nameserver (RocketMQ `registerBrokerAll`).
async fn register_all<E: Env>(processor: &BrokerProcessor<E>, links: &mut NamesrvLinks<E::Net>) {
    let table = match processor.topics.lock() {
        Ok(topics) => topics.topics.clone(),
        Err(_) => return,
    };
    let body = serde_json::json!({
        "topicConfigSerializeWrapper": {"topicConfigTable": table, "dataVersion": {"stateVersion": 0, "timestamp": 0, "counter": 0}},
        "filterServerList": [],
    });
    let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    let config = &processor.config;
    for namesrv in &config.namesrv {
        if links.get(namesrv).is_none_or(RemotingClient::is_closed) {
            match RemotingClient::connect(processor.env.net(), namesrv, None).await {
                Ok(client) => {
                    links.insert(namesrv.clone(), client);
                }
                Err(error) => {
                    tracing::debug!(%namesrv, %error, "nameserver unreachable");
                    links.remove(namesrv);
                    continue;
                }
            }
        }
        let Some(client) = links.get(namesrv) else { continue };
        let request =
            RemotingCommand::request(request_code::REGISTER_BROKER, BTreeMap::new(), body.clone())
                .with_field("brokerAddr", processor.store_host)
                .with_field("brokerName", &config.broker_name)
                .with_field("clusterName", &config.cluster)
                .with_field("brokerId", config.broker_id)
                .with_field("haServerAddr", &processor.ha.advertised)
                .with_field("compressed", "false");
        match tokio::time::timeout(Duration::from_secs(3), client.request(request)).await {
            Ok(Some(response)) if response.code == 0 => {
                // A slave learns where its master is.
                if !config.ha.role.is_master() {
                    let field = |name| response.field(name).filter(|a| !a.is_empty());
                    let mut learned = processor::lock(&processor.ha.master_learned);
                    if let Some(ha) = field("haServerAddr") {
                        learned.0 = Some(ha.to_owned());
                    }
                    if let Some(master) = field("masterAddr") {
                        learned.1 = Some(master.to_owned());
                    }
                }
            }
            other => {
                tracing::warn!(%namesrv, ?other, "registration failed");
                links.remove(namesrv);
            }
        }
    }
}

async fn register_periodically<E: Env>(processor: Arc<BrokerProcessor<E>>, shutdown: Shutdown) {
    let mut links = NamesrvLinks::new();
    loop {
        let covers = processor.registrations_asked.load(std::sync::atomic::Ordering::SeqCst);
        register_all(&processor, &mut links).await;
        processor.registrations_done.advance(covers);
        tokio::select! {
            biased;
            () = shutdown.wait() => break,
            () = processor.registered.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(processor.config.register_interval_ms)) => {}
        }
    }
    // Leaving: the nameservers drop this broker from their routes (UNREGISTER_BROKER).
    let config = &processor.config;
    for client in links.values() {
        let request = RemotingCommand::request(
            request_code::UNREGISTER_BROKER,
            BTreeMap::new(),
            Bytes::new(),
        )
        .with_field("brokerAddr", processor.store_host)
        .with_field("brokerName", &config.broker_name)
        .with_field("clusterName", &config.cluster)
        .with_field("brokerId", config.broker_id);
        let _ = tokio::time::timeout(Duration::from_secs(1), client.request(request)).await;
    }
}

/// Runs `task` on the broker every `interval_ms` (at least 1 ms) until `shutdown`.
async fn periodically<E: Env, T: Future<Output = ()>>(
    processor: Arc<BrokerProcessor<E>>,
    interval_ms: u64,
    shutdown: Shutdown,
    task: impl Fn(Arc<BrokerProcessor<E>>) -> T,
) {
    let interval = Duration::from_millis(interval_ms.max(1));
    loop {
        tokio::select! {
            biased;
            () = shutdown.wait() => return,
            () = tokio::time::sleep(interval) => {}
        }
        task(Arc::clone(&processor)).await;
    }
}

/// Writes the consumer offsets (`flushConsumerOffsetInterval`); a failure is logged.
fn persist_offsets<E: Env>(processor: &BrokerProcessor<E>) {
    if let Ok(mut offsets) = processor.offsets.lock()
        && let Err(error) = offsets.persist()
    {
        tracing::error!(%error, "persisting consumer offsets failed");
    }
}

/// Checkpoints the store (`flushIntervalConsumeQueue`); a failure is logged. The store's lock
/// is held only while the checkpoint is gathered, not during its fsyncs, so sends go on.
async fn checkpoint_store<E: Env>(processor: Arc<BrokerProcessor<E>>) {
    let plan = match processor.store.lock() {
        Ok(mut store) => store.begin_checkpoint(),
        Err(_) => return,
    };
    if let Err(error) = async { plan?.finish().await }.await {
        tracing::error!(%error, "store checkpoint failed");
    }
}
