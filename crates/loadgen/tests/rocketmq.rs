//! The load generator against a RocketMQ-model nameserver and broker in this process: sync,
//! batch and oneway sends are counted exactly, each message consumed once; a bad target URL
//! and an unreachable nameserver are clear errors.

mod common;

use common::{Cluster, assert_exact};
use twinmq_loadgen::{LoadgenError, SendMode, Target};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_every_sync_send_and_consumed_message() {
    let cluster = Cluster::rocketmq().await;
    let mut config = cluster.workload("exact", 5_000);
    config.partitions = 4;
    config.producers = 2;
    config.consumers = 1;
    let report = cluster.bench(config).await.unwrap();
    assert_exact(&report, 5_000, true);
    assert_eq!(report.summary.partitions_actual, 4);

    // The same topic again: a new group starts at the end, so only this run's messages come.
    let again = cluster.workload("exact", 200);
    assert_exact(&cluster.bench(again).await.unwrap(), 200, true);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_and_oneway_sends_are_exact_too() {
    let cluster = Cluster::rocketmq().await;
    let mut batched = cluster.workload("batched", 3_000);
    batched.producers = 2;
    batched.consumers = 2;
    batched.keys = true;
    batched.rocketmq.send_mode = SendMode::Batch { messages: 64 };
    let report = cluster.bench(batched).await.unwrap();
    // Two consumers may both see a message while a queue changes hands: counted apart.
    assert_exact(&report, 3_000, true);

    let mut oneway = cluster.workload("oneway", 1_000);
    oneway.rocketmq.send_mode = SendMode::Oneway;
    let report = cluster.bench(oneway).await.unwrap();
    assert_exact(&report, 1_000, false);
    assert_eq!(report.summary.produce.messages, 1_000, "oneway throughput counts sends");
    cluster.stop().await;
}

#[test]
fn a_bad_target_url_is_a_clear_error() {
    let error = "rocketmq:/127.0.0.1:9876".parse::<Target>().unwrap_err();
    assert!(error.to_string().contains("has no scheme"), "{error}");
    let error = "amqp://127.0.0.1:5672".parse::<Target>().unwrap_err();
    assert!(error.to_string().contains("unknown scheme `amqp`"), "{error}");
}

#[tokio::test]
async fn an_unreachable_nameserver_is_a_clear_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let target: Target = format!("rocketmq://{addr}").parse().unwrap();
    let live = std::sync::Arc::new(twinmq_loadgen::LiveCounts::default());
    let config = twinmq_loadgen::BenchConfig::new(target);
    let error =
        twinmq_loadgen::run(twinmq_runtime::RealEnv::new(), config, live).await.unwrap_err();
    assert!(matches!(error, LoadgenError::Setup { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&format!("rocketmq://{addr}")), "{message}");
    assert!(message.contains("finding the brokers"), "{message}");
}
