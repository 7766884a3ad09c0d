//! The load generator against a Kafka-model broker in this process: it counts exactly what it
//! sent, what the broker acknowledged and what came back, in each acks mode; its files parse
//! back; an unreachable broker is a clear error.

mod common;

use common::{Cluster, assert_exact};
use twinmq_loadgen::report::{SUMMARY_FILE, TIMELINE_FILE, TIMELINE_HEADER};
use twinmq_loadgen::{Acks, Bound, LoadgenError, Summary};
use twinmq_runtime::{File, Fs, OpenMode, RealFs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_every_message_sent_acknowledged_and_consumed() {
    let cluster = Cluster::kafka().await;
    let mut config = cluster.workload("exact", 5_000);
    config.partitions = 4;
    config.producers = 2;
    config.consumers = 1;
    let report = cluster.bench(config).await.unwrap();
    assert_exact(&report, 5_000, true);
    assert_eq!(report.summary.partitions_actual, 4);
    assert_eq!(report.summary.measured.duplicates, 0, "one reader per partition");
    assert!(report.summary.produce.msgs_per_sec > 0.0);
    assert!(report.summary.latency_send_ack_us.p50_us <= report.summary.latency_send_ack_us.p99_us);

    // The same topic again: the second run reads only its own messages.
    let again = cluster.workload("exact", 300);
    assert_exact(&cluster.bench(again).await.unwrap(), 300, true);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_acks_all_and_fire_and_forget_runs_are_exact_too() {
    let cluster = Cluster::kafka().await;
    let mut keyed = cluster.workload("keyed", 1_000);
    keyed.partitions = 3;
    keyed.consumers = 2;
    keyed.keys = true;
    keyed.kafka.acks = Acks::All;
    assert_exact(&cluster.bench(keyed).await.unwrap(), 1_000, true);

    let mut forgotten = cluster.workload("forgotten", 1_000);
    forgotten.kafka.acks = Acks::None;
    let report = cluster.bench(forgotten).await.unwrap();
    assert_exact(&report, 1_000, false);
    assert!(!report.summary.acknowledged);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_parses_back_and_the_timeline_has_one_row_per_second() {
    let cluster = Cluster::kafka().await;
    let mut config = cluster.workload("timed", 0);
    config.rate_msgs_per_sec = 1_000;
    config.warmup_ms = 200;
    config.bound = Bound::Duration { ms: 1_200 };
    let report = cluster.bench(config.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    report.write(&RealFs, dir.path()).unwrap();

    let summary: Summary = serde_json::from_slice(&read(&dir.path().join(SUMMARY_FILE))).unwrap();
    // Floats come back to within their last digit; everything else exactly.
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(1.0);
    assert!(close(summary.produce.msgs_per_sec, report.summary.produce.msgs_per_sec));
    assert!(close(summary.latency_send_ack_us.mean_us, report.summary.latency_send_ack_us.mean_us));
    assert_eq!(summary.latency_end_to_end_us.p99_us, report.summary.latency_end_to_end_us.p99_us);
    assert_eq!(
        (summary.warmup, summary.measured),
        (report.summary.warmup, report.summary.measured)
    );
    assert_eq!(summary.config, config);
    assert!(summary.started_at_ms > 0 && !summary.tool_version.is_empty());
    let m = summary.measured;
    assert!(m.sent > 0 && summary.warmup.sent > 0, "both phases sent: {summary:?}");
    assert_eq!(m.failed, 0);
    assert_eq!((m.acked, m.consumed), (m.sent, m.sent), "every measured message came back");
    assert_eq!(summary.warmup.consumed, summary.warmup.sent, "and every warm-up one");
    assert_eq!(summary.latency_end_to_end_us.count, m.sent, "warm-up is in no histogram");

    let csv = String::from_utf8(read(&dir.path().join(TIMELINE_FILE)).to_vec()).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some(TIMELINE_HEADER));
    let rows: Vec<Vec<u64>> = lines
        .map(|line| line.split(',').take(7).map(|field| field.parse().unwrap()).collect())
        .collect();
    assert!(!rows.is_empty());
    let seconds: Vec<u64> = rows.iter().map(|row| row[0]).collect();
    assert_eq!(seconds, (0..rows.len() as u64).collect::<Vec<_>>(), "one row per second");
    assert_eq!(rows.iter().map(|row| row[1]).sum::<u64>(), m.sent, "sent over the rows");
    assert_eq!(rows.iter().map(|row| row[4]).sum::<u64>(), m.consumed, "consumed over the rows");
    assert_eq!(rows.iter().map(|row| row[5]).sum::<u64>(), m.sent * 100, "bytes over the rows");
    cluster.stop().await;
}

/// A whole file, read through the runtime's seam as the report was written.
fn read(path: &std::path::Path) -> bytes::Bytes {
    let file = RealFs.open(path, OpenMode::Read).unwrap();
    file.read_at(0, usize::try_from(file.len().unwrap()).unwrap()).unwrap()
}

#[tokio::test]
async fn an_unreachable_broker_is_a_clear_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let target = format!("kafka://{addr}").parse().unwrap();
    let live = std::sync::Arc::new(twinmq_loadgen::LiveCounts::default());
    let config = twinmq_loadgen::BenchConfig::new(target);
    let error =
        twinmq_loadgen::run(twinmq_runtime::RealEnv::new(), config, live).await.unwrap_err();
    assert!(matches!(error, LoadgenError::Setup { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&format!("kafka://{addr}")), "{message}");
    assert!(message.contains("reading metadata"), "{message}");
}
