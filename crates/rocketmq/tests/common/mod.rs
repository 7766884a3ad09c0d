//! A nameserver and a broker of this crate on loopback, for the client tests: the broker has
//! registered (with TBW102) before `start` returns, so a producer's first route lookup finds it.

#![allow(dead_code, reason = "each test file uses part of the helpers")]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use twinmq_rocketmq::broker::{Broker, BrokerConfig, BrokerProcessor};
use twinmq_rocketmq::client::ClientConfig;
use twinmq_rocketmq::namesrv::{NameServer, NamesrvConfig};
use twinmq_rocketmq::remoting::{RemotingClient, RemotingCommand, request_code};
use twinmq_runtime::{Env, RealEnv, RealNet, Shutdown};

/// How long any one test may wait for what it expects before failing (a hang guard, not a
/// synchronisation).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Awaits `future`, failing the test if it takes longer than [`PATIENCE`].
pub async fn patiently<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("gave up waiting for {what}"))
}

/// One running broker.
pub struct BrokerHandle {
    pub addr: String,
    processor: Arc<BrokerProcessor<RealEnv>>,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<Result<(), twinmq_storage::StorageError>>,
}

impl BrokerHandle {
    /// Stops it (cleanly: flushed, checkpointed).
    pub async fn stop(self) {
        self.shutdown.trigger();
        self.task.await.unwrap().unwrap();
    }
}

/// One nameserver and one or more brokers (`broker-a`, `broker-b`, …).
pub struct Cluster {
    pub env: RealEnv,
    pub namesrv_addr: String,
    pub broker_addr: String,
    pub brokers: Vec<BrokerHandle>,
    _dir: tempfile::TempDir,
    shutdown: Shutdown,
    namesrv_task: tokio::task::JoinHandle<()>,
}

impl Cluster {
    /// Starts a nameserver and `broker-a`, configured by `tweak`.
    pub async fn start(tweak: impl Fn(&mut BrokerConfig)) -> Self {
        Self::start_brokers(1, tweak).await
    }

    /// Starts a nameserver and `count` brokers, each configured by `tweak`.
    pub async fn start_brokers(count: usize, tweak: impl Fn(&mut BrokerConfig)) -> Self {
        let env = RealEnv::new();
        let dir = tempfile::tempdir().unwrap();
        let namesrv =
            NameServer::bind(env.clone(), NamesrvConfig::new("127.0.0.1:0".parse().unwrap()))
                .await
                .unwrap();
        let namesrv_addr = namesrv.local_addr().to_string();
        let shutdown = Shutdown::new();
        let namesrv_task = tokio::spawn(namesrv.run(shutdown.clone()));
        let mut brokers = Vec::new();
        for (index, letter) in ('a'..='z').take(count).enumerate() {
            let mut config = BrokerConfig::new(
                "127.0.0.1:0".parse().unwrap(),
                vec![namesrv_addr.clone()],
                dir.path().join(format!("broker-{index}")),
            );
            config.broker_name = format!("broker-{letter}");
            tweak(&mut config);
            let broker = Broker::bind(env.clone(), config).await.unwrap();
            let addr = broker.local_addr().to_string();
            let processor = broker.processor();
            let broker_shutdown = Shutdown::new();
            let task = tokio::spawn(broker.run(broker_shutdown.clone()));
            processor.register_now().await;
            brokers.push(BrokerHandle { addr, processor, shutdown: broker_shutdown, task });
        }
        Self {
            env,
            namesrv_addr,
            broker_addr: brokers[0].addr.clone(),
            brokers,
            _dir: dir,
            shutdown,
            namesrv_task,
        }
    }

    /// A client configuration for this cluster.
    pub fn client(&self, client_id: &str) -> ClientConfig {
        ClientConfig::new(vec![self.namesrv_addr.clone()], client_id)
    }

    /// Creates `topic` with `queues` queues on every broker and waits until the nameserver
    /// routes it.
    pub async fn create_topic(&self, topic: &str, queues: u32) {
        for broker in &self.brokers {
            let client = RemotingClient::<RealNet>::connect(self.env.net(), &broker.addr, None)
                .await
                .unwrap();
            let request = RemotingCommand::request(
                request_code::UPDATE_AND_CREATE_TOPIC,
                BTreeMap::from([
                    ("topic".to_owned(), topic.to_owned()),
                    ("readQueueNums".to_owned(), queues.to_string()),
                    ("writeQueueNums".to_owned(), queues.to_string()),
                    ("perm".to_owned(), "6".to_owned()),
                ]),
                Bytes::new(),
            );
            assert_eq!(client.request(request).await.unwrap().code, 0);
            broker.processor.register_now().await;
        }
    }

    /// A raw remoting connection to the broker.
    pub async fn raw_client(&self) -> RemotingClient<RealNet> {
        RemotingClient::connect(self.env.net(), &self.broker_addr, None).await.unwrap()
    }

    /// Stops everything still running.
    pub async fn stop(self) {
        for broker in self.brokers {
            broker.stop().await;
        }
        self.shutdown.trigger();
        self.namesrv_task.await.unwrap();
    }
}
