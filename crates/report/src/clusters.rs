//! Embedded clusters — the servers a [`Topology`] needs, started in this process on 127.0.0.1
//! with ephemeral ports and data in a temporary directory, exactly as `twinmq serve` builds
//! them: one Kafka-model broker that is its own controller, or a controller and three brokers
//! (replication factor 3, min.insync.replicas 2); a RocketMQ nameserver with one master, or a
//! master and a slave following it.
//!
//! [`Embedded::start`] returns once the cluster can serve the load generator: every Kafka broker
//! registered and unfenced, every RocketMQ broker registered and the slave following.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::task::JoinHandle;
use twinmq_kafka::{BrokerConfig as KafkaConfig, ControllerLocation};
use twinmq_loadgen::Target;
use twinmq_rocketmq::broker::ha::BrokerRole;
use twinmq_rocketmq::broker::{Broker as RocketmqBroker, BrokerConfig as RocketmqConfig};
use twinmq_rocketmq::namesrv::{NameServer, NamesrvConfig};
use twinmq_runtime::{RealEnv, Shutdown};
use twinmq_storage::FlushPolicy;

use crate::matrix::{Ack, Flush, Model, Topology};

/// How long a cluster may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often readiness without a notification (a slave's connection) is looked at again.
const READY_POLL: Duration = Duration::from_millis(20);
/// The controller's node id in a replicated Kafka cluster.
const CONTROLLER_NODE_ID: i32 = 100;
/// Brokers of a replicated Kafka cluster.
const KAFKA_REPLICAS: i16 = 3;
/// `min.insync.replicas` of a replicated Kafka cluster.
const KAFKA_MIN_INSYNC: usize = 2;

/// A running cluster.
pub struct Embedded {
    /// Where the load generator connects.
    pub target: Target,
    /// Servers in the order they stop (brokers before their controller or nameserver).
    servers: Vec<Server>,
    dir: tempfile::TempDir,
}

/// One running server.
struct Server {
    /// What it is, for errors.
    what: String,
    /// Stops it.
    shutdown: Shutdown,
    /// Its task: the server's error, if it had one.
    task: JoinHandle<Result<(), String>>,
}

/// Why a cluster did not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A server failed to start.
    #[error("starting {what}: {reason}")]
    Start {
        /// The server.
        what: String,
        /// Why.
        reason: String,
    },
    /// The cluster did not become ready in time.
    #[error("{0} not ready within {READY_TIMEOUT:?}")]
    NotReady(String),
    /// A server failed while running or stopping.
    #[error("{what} stopped with an error: {reason}")]
    Stop {
        /// The server.
        what: String,
        /// Why.
        reason: String,
    },
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded").field("target", &self.target).finish_non_exhaustive()
    }
}

impl Embedded {
    /// Starts `topology`'s servers with data under a new directory in `work_dir`.
    pub async fn start(
        env: &RealEnv,
        topology: Topology,
        work_dir: &Path,
    ) -> Result<Self, ClusterError> {
        let dir =
            tempfile::Builder::new().prefix("cluster-").tempdir_in(work_dir).map_err(|error| {
                ClusterError::Start {
                    what: format!("a data directory in {}", work_dir.display()),
                    reason: error.to_string(),
                }
            })?;
        let mut cluster =
            Self { target: Target::Kafka { bootstrap: Vec::new() }, servers: Vec::new(), dir };
        let started = match topology.model {
            Model::Kafka => cluster.start_kafka(env, topology).await,
            Model::Rocketmq => cluster.start_rocketmq(env, topology).await,
        };
        if let Err(error) = started {
            let _ = cluster.stop().await;
            return Err(error);
        }
        Ok(cluster)
    }

    /// Stops every server, brokers first, and removes the data.
    pub async fn stop(self) -> Result<(), ClusterError> {
        let mut first_error = None;
        for Server { what, shutdown, task } in self.servers {
            shutdown.trigger();
            let outcome = match task.await {
                Ok(result) => result,
                Err(error) => Err(error.to_string()),
            };
            if let Err(reason) = outcome {
                first_error.get_or_insert(ClusterError::Stop { what, reason });
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn data_dir(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    async fn start_kafka(&mut self, env: &RealEnv, topology: Topology) -> Result<(), ClusterError> {
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        let flush = flush_policy(topology.flush);
        if !topology.replication {
            let mut config = KafkaConfig::single_node(1, any_port, self.data_dir("kafka-1"));
            config.log.flush = flush;
            let addr = self.run_kafka(env, "kafka broker 1", config, None).await?;
            self.target = Target::Kafka { bootstrap: vec![addr.to_string()] };
            return Ok(());
        }
        let mut controller_config =
            KafkaConfig::single_node(CONTROLLER_NODE_ID, any_port, self.data_dir("controller"));
        controller_config.broker_role = false;
        controller_config.default_replication_factor = KAFKA_REPLICAS;
        controller_config.min_insync_replicas = KAFKA_MIN_INSYNC;
        let (controller_tx, controller_rx) = tokio::sync::oneshot::channel();
        let controller_addr =
            self.run_kafka(env, "kafka controller", controller_config, Some(controller_tx)).await?;
        let controller = controller_rx
            .await
            .map_err(|_| ClusterError::NotReady("the kafka controller".to_owned()))?;
        let mut bootstrap = Vec::new();
        for node_id in 1..=i32::from(KAFKA_REPLICAS) {
            let dir = self.data_dir(&format!("kafka-{node_id}"));
            let mut config = KafkaConfig::single_node(node_id, any_port, dir);
            config.controller = ControllerLocation::Remote {
                node_id: CONTROLLER_NODE_ID,
                addr: controller_addr.to_string(),
            };
            config.default_replication_factor = KAFKA_REPLICAS;
            config.min_insync_replicas = KAFKA_MIN_INSYNC;
            config.log.flush = flush;
            let what = format!("kafka broker {node_id}");
            bootstrap.push(self.run_kafka(env, &what, config, None).await?.to_string());
        }
        wait_for_brokers(&controller, usize::from(KAFKA_REPLICAS.unsigned_abs())).await?;
        self.target = Target::Kafka { bootstrap };
        Ok(())
    }

    /// Binds and runs one Kafka-model node; hands its context over when asked.
    async fn run_kafka(
        &mut self,
        env: &RealEnv,
        what: &str,
        config: KafkaConfig,
        context: Option<KafkaContextSender>,
    ) -> Result<SocketAddr, ClusterError> {
        let broker = twinmq_kafka::Broker::bind(env.clone(), config)
            .await
            .map_err(|error| start_error(what, error))?;
        let addr = broker.local_addr();
        if let Some(sender) = context {
            let _ = sender.send(broker.context());
        }
        let shutdown = Shutdown::new();
        let run = broker.run(shutdown.clone());
        let task = tokio::spawn(async move { run.await.map_err(|error| error.to_string()) });
        self.servers.insert(0, Server { what: what.to_owned(), shutdown, task });
        Ok(addr)
    }

    async fn start_rocketmq(
        &mut self,
        env: &RealEnv,
        topology: Topology,
    ) -> Result<(), ClusterError> {
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        let namesrv = NameServer::bind(env.clone(), NamesrvConfig::new(any_port))
            .await
            .map_err(|error| start_error("the rocketmq nameserver", error))?;
        let namesrv_addr = namesrv.local_addr().to_string();
        let shutdown = Shutdown::new();
        let run = namesrv.run(shutdown.clone());
        let task = tokio::spawn(async move {
            run.await;
            Ok(())
        });
        self.servers.push(Server { what: "the rocketmq nameserver".to_owned(), shutdown, task });

        let mut config =
            RocketmqConfig::new(any_port, vec![namesrv_addr.clone()], self.data_dir("master"));
        config.store.flush = flush_policy(topology.flush);
        config.ha.role = match (topology.replication, topology.ack) {
            (true, Ack::Replicas) => BrokerRole::SyncMaster,
            _ => BrokerRole::AsyncMaster,
        };
        let master = self.run_rocketmq(env, "rocketmq master", config).await?;
        if topology.replication {
            let mut config =
                RocketmqConfig::new(any_port, vec![namesrv_addr.clone()], self.data_dir("slave"));
            config.broker_id = 1;
            config.store.flush = flush_policy(topology.flush);
            config.ha.role = BrokerRole::Slave;
            config.ha.master = Some(master.ha.advertised().to_owned());
            let slave = self.run_rocketmq(env, "rocketmq slave", config).await?;
            slave.register_now().await;
            let following = async {
                while master.ha.slaves_connected() == 0 {
                    tokio::time::sleep(READY_POLL).await;
                }
            };
            tokio::time::timeout(READY_TIMEOUT, following)
                .await
                .map_err(|_| ClusterError::NotReady("the rocketmq slave".to_owned()))?;
        }
        master.register_now().await;
        self.target = Target::RocketMq { namesrv: vec![namesrv_addr] };
        Ok(())
    }

    /// Binds and runs one RocketMQ broker; returns its request processor.
    async fn run_rocketmq(
        &mut self,
        env: &RealEnv,
        what: &str,
        config: RocketmqConfig,
    ) -> Result<std::sync::Arc<twinmq_rocketmq::broker::BrokerProcessor<RealEnv>>, ClusterError>
    {
        let broker = RocketmqBroker::bind(env.clone(), config)
            .await
            .map_err(|error| start_error(what, error))?;
        let processor = broker.processor();
        let shutdown = Shutdown::new();
        let run = broker.run(shutdown.clone());
        let task = tokio::spawn(async move { run.await.map_err(|error| error.to_string()) });
        self.servers.insert(0, Server { what: what.to_owned(), shutdown, task });
        Ok(processor)
    }
}

type KafkaContextSender =
    tokio::sync::oneshot::Sender<std::sync::Arc<twinmq_kafka::BrokerContext<RealEnv>>>;

/// The brokers' flush policy for a mode, as `twinmq serve --flush` sets it.
pub fn flush_policy(flush: Flush) -> FlushPolicy {
    match flush {
        Flush::Async => FlushPolicy::ASYNC_DEFAULT,
        Flush::Sync => FlushPolicy::Sync,
    }
}

/// Waits until the controller's image lists `count` unfenced brokers.
async fn wait_for_brokers(
    controller: &twinmq_kafka::BrokerContext<RealEnv>,
    count: usize,
) -> Result<(), ClusterError> {
    let cluster = &controller.cluster;
    let ready = async {
        loop {
            let changed = cluster.changed.notified();
            tokio::pin!(changed);
            // Registered before the check: a change between the check and the wait is seen.
            changed.as_mut().enable();
            let unfenced = cluster
                .with_image(|image| image.brokers.values().filter(|broker| !broker.fenced).count());
            if unfenced >= count {
                return;
            }
            changed.await;
        }
    };
    tokio::time::timeout(READY_TIMEOUT, ready)
        .await
        .map_err(|_| ClusterError::NotReady(format!("{count} kafka brokers")))
}

fn start_error(what: &str, error: impl std::fmt::Display) -> ClusterError {
    ClusterError::Start { what: what.to_owned(), reason: error.to_string() }
}
