//! Brokers of both models in this process on 127.0.0.1:0, for the load generator's tests, and
//! a guard that fails a test instead of letting it hang.

#![expect(dead_code, reason = "each test file uses part of the helpers")]

use std::sync::Arc;
use std::time::Duration;

use twinmq_loadgen::{BenchConfig, LiveCounts, LoadgenError, Report, Target};
use twinmq_rocketmq::broker::{Broker as RocketMqBroker, BrokerConfig as RocketMqBrokerConfig};
use twinmq_rocketmq::namesrv::{NameServer, NamesrvConfig};
use twinmq_runtime::{RealEnv, Shutdown};

/// How long a run may take before the test fails (a hang guard, not a synchronisation).
pub const PATIENCE: Duration = Duration::from_secs(120);

/// A running cluster of one model; dropping it stops nothing, `stop` does.
pub struct Cluster {
    /// The URL the load generator targets.
    pub target: Target,
    pub env: RealEnv,
    /// Servers in the order they stop: brokers before their nameserver.
    servers: Vec<(Shutdown, tokio::task::JoinHandle<()>)>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// One Kafka-model broker that is its own controller.
    pub async fn kafka() -> Self {
        let env = RealEnv::new();
        let dir = tempfile::tempdir().unwrap();
        let config = twinmq_kafka::BrokerConfig::single_node(
            1,
            "127.0.0.1:0".parse().unwrap(),
            dir.path().to_owned(),
        );
        let broker = twinmq_kafka::Broker::bind(env.clone(), config).await.unwrap();
        let target = format!("kafka://{}", broker.local_addr()).parse().unwrap();
        let shutdown = Shutdown::new();
        let run = broker.run(shutdown.clone());
        let task = tokio::spawn(async move {
            let _ = run.await;
        });
        Self { target, env, servers: vec![(shutdown, task)], _dir: dir }
    }

    /// One nameserver and one master broker, registered before this returns.
    pub async fn rocketmq() -> Self {
        let env = RealEnv::new();
        let dir = tempfile::tempdir().unwrap();
        let namesrv =
            NameServer::bind(env.clone(), NamesrvConfig::new("127.0.0.1:0".parse().unwrap()))
                .await
                .unwrap();
        let namesrv_addr = namesrv.local_addr().to_string();
        let namesrv_shutdown = Shutdown::new();
        let namesrv_task = tokio::spawn(namesrv.run(namesrv_shutdown.clone()));
        let config = RocketMqBrokerConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            vec![namesrv_addr.clone()],
            dir.path().join("broker"),
        );
        let broker = RocketMqBroker::bind(env.clone(), config).await.unwrap();
        let processor = broker.processor();
        let broker_shutdown = Shutdown::new();
        let run = broker.run(broker_shutdown.clone());
        let broker_task = tokio::spawn(async move {
            let _ = run.await;
        });
        processor.register_now().await;
        let target = format!("rocketmq://{namesrv_addr}").parse().unwrap();
        let servers = vec![(broker_shutdown, broker_task), (namesrv_shutdown, namesrv_task)];
        Self { target, env, servers, _dir: dir }
    }

    /// A workload of `messages` messages on `topic` against this cluster, otherwise with the
    /// defaults of [`BenchConfig::new`].
    pub fn workload(&self, topic: &str, messages: u64) -> BenchConfig {
        BenchConfig {
            topic: topic.into(),
            bound: twinmq_loadgen::Bound::Count { messages },
            ..BenchConfig::new(self.target.clone())
        }
    }

    /// Runs `config`, failing the test if it takes longer than [`PATIENCE`].
    pub async fn bench(&self, config: BenchConfig) -> Result<Report, LoadgenError> {
        let live = Arc::new(LiveCounts::default());
        tokio::time::timeout(PATIENCE, twinmq_loadgen::run(self.env.clone(), config, live))
            .await
            .expect("the run finished in time")
    }

    /// Stops the brokers.
    pub async fn stop(self) {
        for (shutdown, task) in self.servers {
            shutdown.trigger();
            task.await.unwrap();
        }
    }
}

/// Checks the figures every exact run must show: all `messages` sent, acknowledged (when the
/// mode acknowledges) and consumed once, nothing failed, a latency for each.
pub fn assert_exact(report: &Report, messages: u64, acknowledged: bool) {
    let s = &report.summary;
    let m = &s.measured;
    assert_eq!(m.sent, messages, "sent: {m:?}");
    assert_eq!(m.failed, 0, "failed: {m:?}");
    assert_eq!(m.acked, if acknowledged { messages } else { 0 }, "acked: {m:?}");
    assert_eq!(m.consumed, messages, "consumed: {m:?}");
    assert_eq!(s.warmup, twinmq_loadgen::Counts::default(), "no warm-up was asked");
    assert_eq!(s.latency_send_ack_us.count, m.acked, "one send→ack latency per ack");
    assert_eq!(s.latency_end_to_end_us.count, messages, "one end-to-end latency per message");
    let timeline_sent: u64 = report.timeline.iter().map(|r| r.sent).sum();
    let timeline_consumed: u64 = report.timeline.iter().map(|r| r.consumed).sum();
    assert_eq!(timeline_sent, messages, "the timeline holds every send");
    assert_eq!(timeline_consumed, messages, "the timeline holds every first delivery");
}
