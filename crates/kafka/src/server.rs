//! Broker — binds, accepts, and serves each connection's requests in order (Kafka answers one
//! request per connection at a time, so responses never reorder).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use twinmq_runtime::{Env, Listener, Net, Shutdown};
use twinmq_storage::StorageError;

use crate::api::{self, Reply};
use crate::cluster::Cluster;
use crate::config::BrokerConfig;
use crate::config::ControllerLocation;
use crate::controller::{Controller, ControllerPolicy, MetadataLog};
use crate::error::KafkaError;
use crate::group::{GroupCoordinator, OFFSETS_TOPIC, OffsetStore};
use crate::halt::Halt;
use crate::replica::ReplicaManager;
use crate::wire::Connection;

/// What every request handler of a broker shares.
pub struct BrokerContext<E: Env> {
    /// The node's environment.
    pub env: E,
    /// The broker's configuration.
    pub config: BrokerConfig,
    /// The host and port clients are told to use for this broker.
    pub advertised: (String, i32),
    /// The cluster as this broker sees it, and its controller.
    pub cluster: Cluster<E>,
    /// The partitions on this broker.
    pub replicas: ReplicaManager<E::Fs>,
    /// The groups this broker coordinates.
    pub groups: GroupCoordinator<E::Fs>,
    /// Woken whenever records become visible to fetchers (long polls wait on it).
    pub records_visible: Notify,
    /// The broker's shutdown signal.
    pub shutdown: Shutdown,
    /// Raised on a storage failure the broker cannot serve past; it stops with that error.
    pub halt: Halt,
}

impl<E: Env> std::fmt::Debug for BrokerContext<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerContext")
            .field("node_id", &self.config.node_id)
            .finish_non_exhaustive()
    }
}

impl<E: Env> BrokerContext<E> {
    /// A local controller changed the metadata: take its image, apply it to this broker's
    /// partitions, and wake metadata fetchers.
    pub fn metadata_changed(&self) {
        if let Err(error) = self.sync_replicas() {
            tracing::error!(%error, "applying metadata failed");
            self.halt_on_io_error("applying metadata", &error);
        }
        self.records_visible.notify_waiters();
    }

    /// Halts the broker when `error` is an I/O failure of its disk: Kafka takes a log dir
    /// offline on any I/O error under it, and with its only log dir offline a broker halts.
    pub fn halt_on_io_error(&self, what: &str, error: &KafkaError) {
        if let KafkaError::Storage(StorageError::Io { .. }) = error {
            self.halt.raise(format!("{what}: {error}"));
        }
    }

    /// On the controller node: creates `__consumer_offsets` once enough brokers are live to hold
    /// it (Kafka creates it on first use and refuses until then).
    pub fn ensure_offsets_topic(&self) {
        let Some(controller) = &self.cluster.controller else { return };
        if self.cluster.with_image(|image| image.topics.contains_key(OFFSETS_TOPIC)) {
            return;
        }
        let partitions = self.config.group.offsets_partitions;
        let factor = self.config.default_replication_factor;
        if controller.live_brokers().unwrap_or(0) < usize::try_from(factor).unwrap_or(usize::MAX) {
            return;
        }
        match controller.create_topic(OFFSETS_TOPIC, partitions, factor) {
            Ok(_) => self.metadata_changed(),
            Err(error) => tracing::warn!(%error, "creating the offsets topic failed"),
        }
    }

    /// Runs `f` on a group this broker coordinates; NOT_COORDINATOR otherwise.
    pub fn with_group<T>(
        &self,
        group_id: &str,
        f: impl FnOnce(&mut crate::group::Group) -> T,
    ) -> Result<T, KafkaError> {
        self.check_coordinator(group_id)?;
        self.groups.with_group(group_id, f)
    }

    /// NOT_COORDINATOR unless this broker leads `group_id`'s offsets partition and has loaded
    /// it in its current leader epoch.
    pub fn check_coordinator(&self, group_id: &str) -> Result<(), KafkaError> {
        let index = OffsetStore::partition_for(group_id, self.config.group.offsets_partitions);
        match self.replicas.get(OFFSETS_TOPIC, index) {
            Some(partition) if self.groups.coordinates(&partition) => Ok(()),
            _ => Err(KafkaError::NotCoordinator(group_id.to_owned())),
        }
    }

    /// Brings the partitions on this broker in line with the controller's metadata.
    pub fn sync_replicas(&self) -> Result<(), KafkaError> {
        self.cluster.refresh();
        let image = self.cluster.image();
        let new_leaders = self.replicas.sync_with(&image, &self.shutdown)?;
        for partition in new_leaders.iter().filter(|p| p.topic == OFFSETS_TOPIC) {
            let loaded = self.groups.load_partition(partition)?;
            tracing::debug!(
                partition = partition.index,
                loaded,
                "coordinating an offsets partition"
            );
        }
        Ok(())
    }
}

/// A bound Kafka-model broker.
pub struct Broker<E: Env> {
    listener: <E::Net as Net>::Listener,
    context: Arc<BrokerContext<E>>,
}

impl<E: Env> std::fmt::Debug for Broker<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker").field("context", &self.context).finish_non_exhaustive()
    }
}

impl<E: Env> Broker<E> {
    /// Opens the data dir (metadata log, partitions, group offsets) and binds the listener.
    pub async fn bind(env: E, config: BrokerConfig) -> Result<Self, KafkaError> {
        let listener = env.net().bind(config.listen).await.map_err(|source| {
            KafkaError::Storage(twinmq_storage::StorageError::Io {
                path: format!("listen {}", config.listen).into(),
                source,
            })
        })?;
        let local = listener.local_addr().map_err(|source| {
            KafkaError::Storage(twinmq_storage::StorageError::Io {
                path: "listener".into(),
                source,
            })
        })?;
        let host = config.advertised_host.clone().unwrap_or_else(|| local.ip().to_string());
        let advertised = (host, i32::from(local.port()));
        let fs = env.fs().clone();
        let clock = env.clock().clone();
        let controller = match config.controller {
            ControllerLocation::Local => {
                let log = MetadataLog::open(fs.clone(), clock.clone(), config.data_dir.clone())?;
                let policy = ControllerPolicy {
                    node_id: config.node_id,
                    session_timeout_ms: config.broker_session_timeout_ms,
                    unclean_leader_election: config.unclean_leader_election,
                };
                let controller = Controller::new(log, policy, clock.now_ms())?;
                if config.broker_role {
                    controller.register(
                        config.node_id,
                        &advertised.0,
                        advertised.1,
                        clock.now_ms(),
                    )?;
                }
                Some(controller)
            }
            ControllerLocation::Remote { .. } => None,
        };
        let cluster =
            Cluster::new(env.clone(), config.node_id, config.controller.clone(), controller)
                .with_request_timeout(config.controller_request_timeout_ms);
        let halt = Halt::new();
        let replicas = ReplicaManager::new(
            fs.clone(),
            clock.clone(),
            config.data_dir.clone(),
            config.log.clone(),
            config.node_id,
            halt.clone(),
        )?;
        let groups = GroupCoordinator::open(fs, clock, &config)?;
        let context = Arc::new(BrokerContext {
            env,
            config,
            advertised,
            cluster,
            replicas,
            groups,
            records_visible: Notify::new(),
            shutdown: Shutdown::new(),
            halt,
        });
        context.ensure_offsets_topic();
        context.sync_replicas()?;
        tracing::info!(node_id = context.config.node_id, %local, "kafka broker listening");
        Ok(Self { listener, context })
    }

    /// The address the broker listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.context.config.listen)
    }

    /// The shared state (tests, the simulator).
    pub fn context(&self) -> Arc<BrokerContext<E>> {
        Arc::clone(&self.context)
    }

    /// Serves until `shutdown` is triggered, then flushes every partition and returns; or until
    /// the broker halts on a storage failure, which it returns as [`KafkaError::Halted`]
    /// without flushing (as Kafka's halt exits at once).
    pub async fn run(self, shutdown: Shutdown) -> Result<(), KafkaError> {
        let connections = Arc::new(AtomicUsize::new(0));
        let group_timer = tokio::spawn(GroupCoordinator::run_timers(Arc::clone(&self.context)));
        let background = [
            tokio::spawn(crate::controller_link::run(Arc::clone(&self.context))),
            tokio::spawn(crate::replica::fetcher::run(Arc::clone(&self.context))),
            tokio::spawn(crate::replica::fetcher::shrink_isrs(Arc::clone(&self.context))),
            tokio::spawn(crate::replica::fetcher::apply_retention(Arc::clone(&self.context))),
            tokio::spawn(crate::replica::fetcher::compact(Arc::clone(&self.context))),
        ];
        loop {
            let accepted = tokio::select! {
                biased;
                () = shutdown.wait() => break,
                () = self.context.halt.wait() => break,
                accepted = self.listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    continue;
                }
            };
            if connections.load(Ordering::SeqCst) >= self.context.config.connections_max {
                tracing::warn!(%peer, limit = self.context.config.connections_max, "connection limit reached; closing");
                drop(stream);
                continue;
            }
            connections.fetch_add(1, Ordering::SeqCst);
            let (context, connections) = (Arc::clone(&self.context), Arc::clone(&connections));
            tokio::spawn(async move {
                serve_connection(&context, stream, peer).await;
                connections.fetch_sub(1, Ordering::SeqCst);
            });
        }
        self.context.shutdown.trigger();
        group_timer.abort();
        for task in background {
            task.abort();
        }
        if let Some(reason) = self.context.halt.reason() {
            return Err(KafkaError::Halted(reason));
        }
        self.context.replicas.flush_all()?;
        self.context.groups.flush()?;
        tracing::info!(node_id = self.context.config.node_id, "kafka broker stopped");
        Ok(())
    }
}

async fn serve_connection<E: Env, S: AsyncRead + AsyncWrite + Unpin>(
    context: &BrokerContext<E>,
    stream: S,
    peer: SocketAddr,
) {
    let mut connection = Connection::new(stream, context.config.request_bytes_max);
    loop {
        let frame = tokio::select! {
            biased;
            () = context.shutdown.wait() => break,
            frame = connection.read_frame() => frame,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(error) => {
                tracing::warn!(%peer, %error, "closing connection");
                break;
            }
        };
        match api::handle(context, frame).await {
            Reply::Frame(bytes) => connection.queue(&bytes),
            Reply::Nothing => {}
            Reply::Close(reason) => {
                tracing::warn!(%peer, %reason, "closing connection");
                break;
            }
        }
        if !connection.frame_buffered()
            && let Err(error) = connection.flush().await
        {
            tracing::debug!(%peer, %error, "write failed");
            return;
        }
    }
    let _ = connection.shutdown().await;
}
