//! The broker: the storage core's MessageStore (one CommitLog, a ConsumeQueue per queue) behind
//! RocketMQ's remoting protocol; registers with every nameserver every 30 s.

pub mod admin;
pub mod processor;
pub mod retry;
pub mod schedule;
pub mod send;
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
        }
    }
}

/// A bound broker.
pub struct Broker<E: Env> {
    listener: <E::Net as Net>::Listener,
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
            queue_locks: Mutex::new(BTreeMap::new()),
            producers: Mutex::new(BTreeMap::new()),
            transactions: Mutex::new(transactions),
            config,
        });
        Ok(Self { listener, processor })
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
        let persisting =
            tokio::spawn(persist_offsets_periodically(Arc::clone(&processor), shutdown.clone()));
        let scheduling = tokio::spawn(schedule::run(Arc::clone(&processor), shutdown.clone()));
        let checking = tokio::spawn(transaction::run(Arc::clone(&processor), shutdown.clone()));
        tracing::info!(addr = %processor.store_host, broker = %processor.config.broker_name, "rocketmq broker listening");
        serve::<E, _>(
            self.listener,
            Arc::clone(&processor),
            processor.config.frame_bytes_max,
            shutdown,
        )
        .await;
        let _ = registration.await;
        let _ = persisting.await;
        let _ = scheduling.await;
        let _ = checking.await;
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

/// REGISTER_BROKER with every topic, to every nameserver (RocketMQ `registerBrokerAll`).
pub async fn register_all<E: Env>(processor: &BrokerProcessor<E>) {
    let table = match processor.topics.lock() {
        Ok(topics) => topics.topics.clone(),
        Err(_) => return,
    };
    let body = serde_json::json!({
        "topicConfigSerializeWrapper": {"topicConfigTable": table, "dataVersion": {"stateVersion": 0, "timestamp": 0, "counter": 0}},
        "filterServerList": [],
    });
    let config = &processor.config;
    for namesrv in &config.namesrv {
        let Ok(client) = RemotingClient::connect(processor.env.net(), namesrv, None).await else {
            tracing::debug!(%namesrv, "nameserver unreachable");
            continue;
        };
        let request = RemotingCommand::request(
            request_code::REGISTER_BROKER,
            BTreeMap::new(),
            Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
        )
        .with_field("brokerAddr", processor.store_host)
        .with_field("brokerName", &config.broker_name)
        .with_field("clusterName", &config.cluster)
        .with_field("brokerId", config.broker_id)
        .with_field("haServerAddr", "")
        .with_field("compressed", "false");
        match tokio::time::timeout(Duration::from_secs(3), client.request(request)).await {
            Ok(Some(response)) if response.code == 0 => {}
            other => tracing::warn!(%namesrv, ?other, "registration failed"),
        }
    }
}

async fn register_periodically<E: Env>(processor: Arc<BrokerProcessor<E>>, shutdown: Shutdown) {
    loop {
        register_all(&processor).await;
        tokio::select! {
            biased;
            () = shutdown.wait() => return,
            () = processor.registered.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(processor.config.register_interval_ms)) => {}
        }
    }
}

async fn persist_offsets_periodically<E: Env>(
    processor: Arc<BrokerProcessor<E>>,
    shutdown: Shutdown,
) {
    loop {
        tokio::select! {
            biased;
            () = shutdown.wait() => return,
            () = tokio::time::sleep(Duration::from_millis(processor.config.offsets_persist_interval_ms)) => {}
        }
        if let Ok(mut offsets) = processor.offsets.lock()
            && let Err(error) = offsets.persist()
        {
            tracing::error!(%error, "persisting consumer offsets failed");
        }
    }
}
