//! Figures — which charts the report shows, drawn from [`Results`] alone: throughput over
//! partitions/queues for each message size, the storage layouts against the machine's ceiling,
//! peak throughput and latency percentiles per durability mode, throughput over time. Each has
//! a title, a caption naming its unit and configuration, and a file stem.

use crate::chart::{BarChart, BarGroup, Chart, Line, LineChart};
use crate::matrix::{MESSAGE_BYTES_SWEEP, Mode, Model, Series};
use crate::results::{LoadResult, Results};

/// A chart with what the page says about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// File name without extension.
    pub stem: String,
    /// The chart.
    pub chart: Chart,
    /// Its unit and configuration, in words.
    pub caption: String,
}

/// Every figure the results support, in page order.
pub fn figures(results: &Results) -> Vec<Figure> {
    let mut figures = Vec::new();
    figures.extend(storage_ceiling(results));
    figures.extend(storage_partitions(results));
    for bytes in MESSAGE_BYTES_SWEEP {
        figures.extend(throughput_partitions(results, bytes));
    }
    figures.extend(mode_throughput(results));
    figures.extend(mode_latency(results));
    figures.extend(throughput_over_time(results));
    figures
}

/// The load generator settings of a series, in words.
pub fn workload_words(results: &Results, series: Series) -> String {
    let settings = &results.setup.workload;
    let timing = results.load.iter().find(|r| r.series == series).map(|r| {
        let config = &r.summary.config;
        let measured = match config.bound {
            twinmq_loadgen::Bound::Duration { ms } => format!("{:.1} s", ms as f64 / 1e3),
            twinmq_loadgen::Bound::Count { messages } => format!("{messages} messages"),
        };
        format!("{measured} measured after a {:.1} s warm-up", config.warmup_ms as f64 / 1e3)
    });
    format!(
        "{} producers and {} consumer per run; Kafka linger.ms={} batch.size={} KiB; RocketMQ \
         batch sends of up to {} KiB ({} messages at most), pullBatchSize={}; {}",
        settings.producers,
        settings.consumers,
        settings.kafka_linger_ms,
        settings.kafka_batch_bytes / 1024,
        settings.rocketmq_batch_bytes / 1024,
        settings.rocketmq_batch_messages_max,
        settings.rocketmq_pull_batch_messages,
        timing.unwrap_or_else(|| "no run of this series completed".to_owned())
    )
}

fn storage_ceiling(results: &Results) -> Option<Figure> {
    let rows: [(&str, usize, u64); 3] = [
        ("100 B records, async", 100, 0),
        ("1 KiB records, async", 1024, 0),
        ("1 KiB records, fsync per 64 appends", 1024, 64),
    ];
    let group = |writer: &str, name: &str| BarGroup {
        name: name.to_owned(),
        values: rows
            .iter()
            .map(|(_, bytes, group)| {
                results.storage_of(writer, *bytes, 1, *group).map(|r| r.bytes_per_sec / 1e6)
            })
            .collect(),
    };
    let groups = vec![
        group("log", "Kafka layout: Log"),
        group("commitlog", "RocketMQ layout: CommitLog"),
        group("ceiling", "machine ceiling (plain sequential write)"),
    ];
    if groups.iter().all(|g| g.values.iter().all(Option::is_none)) {
        return None;
    }
    Some(Figure {
        stem: "storage-ceiling".to_owned(),
        chart: Chart::Bars(BarChart {
            title: "Storage append vs the machine's sequential-write ceiling (1 partition/queue)"
                .to_owned(),
            value_label: "record bytes written per second (MB/s)".to_owned(),
            value_log: false,
            categories: rows.iter().map(|(name, _, _)| (*name).to_owned()).collect(),
            groups,
        }),
        caption: "Unit: MB/s of record bytes (10^6 bytes per second), final fsync included. \
                  Configuration: the storage core called in-process (no network), one Kafka Log \
                  or one CommitLog with one queue, against a plain loop writing the same \
                  records with the same fsync policy in the same directory."
            .to_owned(),
    })
}

fn storage_partitions(results: &Results) -> Option<Figure> {
    let line = |writer: &str, name: &str, color: usize| Line {
        name: name.to_owned(),
        points: results
            .storage
            .iter()
            .filter(|r| r.writer == writer && r.record_bytes == 1024 && r.group_commit_appends == 0)
            .map(|r| (f64::from(r.partitions), r.bytes_per_sec / 1e6))
            .collect(),
        color,
        dashed: false,
    };
    let log = line("log", "Kafka layout: one Log per partition", 0);
    let commitlog =
        line("commitlog", "RocketMQ layout: one CommitLog, a ConsumeQueue per queue", 1);
    if log.points.len() < 2 && commitlog.points.len() < 2 {
        return None;
    }
    let mut lines = vec![log, commitlog];
    if let Some(ceiling) = results.storage_of("ceiling", 1024, 1, 0) {
        let xs: Vec<f64> = lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)).collect();
        let (low, high) = (
            xs.iter().copied().fold(f64::INFINITY, f64::min),
            xs.iter().copied().fold(1.0, f64::max),
        );
        let rate = ceiling.bytes_per_sec / 1e6;
        lines.push(Line {
            name: "machine ceiling, 1 file".to_owned(),
            points: vec![(low, rate), (high, rate)],
            color: 2,
            dashed: true,
        });
    }
    Some(Figure {
        stem: "storage-partitions".to_owned(),
        chart: Chart::Lines(LineChart {
            title: "Storage append over partitions/queues (1 KiB records, async)".to_owned(),
            x_label: "partitions (Log) or queues (CommitLog), log scale".to_owned(),
            y_label: "record bytes written per second (MB/s)".to_owned(),
            x_log: true,
            lines,
        }),
        caption: "Unit: MB/s of record bytes over partitions or queues (log scale). \
                  Configuration: the storage core in-process, 1 KiB records appended round-robin, \
                  fsync at the end only; partitions and queues created before the clock starts."
            .to_owned(),
    })
}

fn throughput_partitions(results: &Results, bytes: usize) -> Option<Figure> {
    let lines: Vec<Line> = Model::BOTH
        .iter()
        .map(|&model| Line {
            name: format!("{} ({})", model.name(), model.partition_noun()),
            points: results
                .load_of(Series::PartitionSweep, model)
                .filter(|r| r.message_bytes == bytes)
                .map(|r| (f64::from(r.partitions), r.summary.produce.msgs_per_sec))
                .collect(),
            color: model_color(model),
            dashed: false,
        })
        .collect();
    if lines.iter().all(|l| l.points.is_empty()) {
        return None;
    }
    let size = size_words(bytes);
    Some(Figure {
        stem: format!("throughput-partitions-{bytes}b"),
        chart: Chart::Lines(LineChart {
            title: format!(
                "Peak produce throughput vs partitions/queues ({size} messages, 1 broker, async flush)"
            ),
            x_label: "partitions (Kafka) or queues (RocketMQ) of the topic, log scale".to_owned(),
            y_label: "messages acknowledged per second (msgs/s)".to_owned(),
            x_log: true,
            lines,
        }),
        caption: format!(
            "Unit: messages acknowledged per second (msgs/s) over partitions or queues (log \
             scale). Configuration: {size} bodies; one Kafka broker with acks=1, one RocketMQ \
             master; async flush; {}.",
            workload_words(results, Series::PartitionSweep)
        ),
    })
}

/// Both models' mode results in report order, labelled.
fn mode_rows(results: &Results, series: Series) -> Vec<(String, &LoadResult)> {
    let mut rows = Vec::new();
    for model in Model::BOTH {
        for mode in Mode::all() {
            if let Some(result) = results.load_of(series, model).find(|r| r.mode == mode) {
                rows.push((format!("{}: {}", model.name(), mode.label(model)), result));
            }
        }
    }
    rows
}

fn mode_throughput(results: &Results) -> Option<Figure> {
    let rows = mode_rows(results, Series::ModeSweep);
    if rows.is_empty() {
        return None;
    }
    let groups = Model::BOTH
        .iter()
        .map(|&model| BarGroup {
            name: model.name().to_owned(),
            values: rows
                .iter()
                .map(|(_, r)| (r.model == model).then_some(r.summary.produce.msgs_per_sec))
                .collect(),
        })
        .collect();
    Some(Figure {
        stem: "modes-throughput".to_owned(),
        chart: Chart::Bars(BarChart {
            title: "Peak produce throughput per durability mode (8 partitions/queues, 100 B)"
                .to_owned(),
            value_label: "messages acknowledged per second (msgs/s)".to_owned(),
            value_log: false,
            categories: rows.iter().map(|(label, _)| label.clone()).collect(),
            groups,
        }),
        caption: format!(
            "Unit: messages acknowledged per second (msgs/s). Configuration: 8 partitions or \
             queues, 100 B bodies; replication is 3 Kafka brokers (replication factor 3, \
             min.insync.replicas 2) or a RocketMQ master with one slave; sync flush fsyncs \
             before acknowledging (group commit); {}.",
            workload_words(results, Series::ModeSweep)
        ),
    })
}

fn mode_latency(results: &Results) -> Option<Figure> {
    let rows = mode_rows(results, Series::HalfPeak);
    if rows.is_empty() {
        return None;
    }
    let percentile = |name: &str, pick: fn(&LoadResult) -> u64| BarGroup {
        name: name.to_owned(),
        values: rows
            .iter()
            .map(|(_, r)| {
                (r.summary.latency_end_to_end_us.count > 0).then(|| pick(r) as f64 / 1_000.0)
            })
            .collect(),
    };
    let groups = vec![
        percentile("p50", |r| r.summary.latency_end_to_end_us.p50_us),
        percentile("p99", |r| r.summary.latency_end_to_end_us.p99_us),
        percentile("p99.9", |r| r.summary.latency_end_to_end_us.p999_us),
    ];
    if groups.iter().all(|g| g.values.iter().all(Option::is_none)) {
        return None;
    }
    Some(Figure {
        stem: "modes-latency".to_owned(),
        chart: Chart::Bars(BarChart {
            title:
                "Produce→consume latency per mode at half of its peak (8 partitions/queues, 100 B)"
                    .to_owned(),
            value_label: "produce→consume latency (ms, log scale)".to_owned(),
            value_log: true,
            categories: rows.iter().map(|(label, _)| label.clone()).collect(),
            groups,
        }),
        caption: format!(
            "Unit: milliseconds from the producer's send to the consumer's delivery, log scale \
             (p50, p99, p99.9 of every measured message). Configuration: each mode paced at \
             half the rate its peak run sustained end to end (the rate is in the table below); 8 partitions \
             or queues, 100 B bodies; {}.",
            workload_words(results, Series::HalfPeak)
        ),
    })
}

fn throughput_over_time(results: &Results) -> Option<Figure> {
    let mut lines = Vec::new();
    for model in Model::BOTH {
        let Some(run) = results.load_of(Series::ModeSweep, model).find(|r| r.mode == Mode::BASE)
        else {
            continue;
        };
        let acknowledged = run.summary.acknowledged;
        lines.push(Line {
            name: format!("{} produced", model.name()),
            points: run
                .timeline
                .iter()
                .map(|row| {
                    (row.second as f64, if acknowledged { row.acked } else { row.sent } as f64)
                })
                .collect(),
            color: model_color(model),
            dashed: false,
        });
        lines.push(Line {
            name: format!("{} consumed", model.name()),
            points: run
                .timeline
                .iter()
                .map(|row| (row.second as f64, row.consumed as f64))
                .collect(),
            color: model_color(model),
            dashed: true,
        });
    }
    if lines.iter().all(|l| l.points.is_empty()) {
        return None;
    }
    Some(Figure {
        stem: "throughput-time".to_owned(),
        chart: Chart::Lines(LineChart {
            title:
                "Throughput over time at peak (8 partitions/queues, 100 B, 1 broker, async flush)"
                    .to_owned(),
            x_label: "seconds since the warm-up ended (s)".to_owned(),
            y_label: "messages per second (msgs/s)".to_owned(),
            x_log: false,
            lines,
        }),
        caption: format!(
            "Unit: messages acknowledged (produced) and delivered for the first time (consumed) \
             in each second (msgs/s), over seconds since the warm-up. Configuration: the \
             mode-series peak run of {} and of {}; {}.",
            Mode::BASE.label(Model::Kafka),
            Mode::BASE.label(Model::Rocketmq),
            workload_words(results, Series::ModeSweep)
        ),
    })
}

/// A model's colour in every chart.
fn model_color(model: Model) -> usize {
    match model {
        Model::Kafka => 0,
        Model::Rocketmq => 1,
    }
}

/// A message size in words: `100 B`, `1 KiB`.
pub fn size_words(bytes: usize) -> String {
    if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}
