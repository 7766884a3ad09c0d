//! `twinmq bench`: drive a Kafka-protocol or RocketMQ cluster (twinmq's or any other) with a
//! workload, print the figures as a table and, with `--out`, write `summary.json` and
//! `timeline.csv`. The engine is the `twinmq-loadgen` crate; this file maps flags onto it and
//! draws the progress bar.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use twinmq_loadgen::{Acks, BenchConfig, Bound, LiveCounts, SendMode, Target};
use twinmq_runtime::{Env, RealEnv};

/// How often the progress bar is redrawn.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);

/// `twinmq bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The cluster: kafka://HOST:PORT[,HOST:PORT…] (bootstrap servers) or
    /// rocketmq://NAMESRV:PORT[;NAMESRV:PORT…] (nameservers).
    #[arg(long)]
    target: String,
    /// Topic to produce to and consume from (created when missing).
    #[arg(long, default_value = "twinmq-bench")]
    topic: String,
    /// Partitions (Kafka) or queues per broker (RocketMQ) to create the topic with.
    #[arg(long, default_value_t = 8)]
    partitions: u32,
    /// Concurrent producers.
    #[arg(long, default_value_t = 1)]
    producers: u32,
    /// Concurrent consumers (0: produce only).
    #[arg(long, default_value_t = 1)]
    consumers: u32,
    /// Bytes per message body (at least 24: the stamp with the send time).
    #[arg(long, default_value_t = 100)]
    message_bytes: usize,
    /// Give every message a key.
    #[arg(long)]
    keys: bool,
    /// Messages per second over all producers (0: as fast as the brokers take them).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Measured messages to send, over all producers [default: 100000 unless --duration-secs].
    #[arg(long, conflicts_with = "duration_secs")]
    count: Option<u64>,
    /// Measured seconds to produce for.
    #[arg(long)]
    duration_secs: Option<f64>,
    /// Seconds at the start whose messages are left out of the figures.
    #[arg(long, default_value_t = 0.0)]
    warmup_secs: f64,
    /// After producing stops, seconds consumers may go without a new message before the run
    /// stops waiting for the rest.
    #[arg(long, default_value_t = 10.0)]
    drain_idle_secs: f64,
    /// Kafka `acks`: 0, 1 or all.
    #[arg(long, default_value = "1")]
    acks: String,
    /// Kafka `linger.ms`.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// Kafka `batch.size` in bytes.
    #[arg(long, default_value_t = 65_536)]
    batch_bytes: usize,
    /// Kafka `compression.type` (only `none`).
    #[arg(long, default_value = "none")]
    compression: String,
    /// Kafka: unacknowledged messages one producer may have out.
    #[arg(long, default_value_t = 65_536)]
    in_flight: usize,
    /// RocketMQ: sync, oneway or batch:N.
    #[arg(long, default_value = "sync")]
    send_mode: String,
    /// RocketMQ: messages a consumer pulls from a queue at once (`pullBatchSize`).
    #[arg(long, default_value_t = twinmq_loadgen::PULL_BATCH_MESSAGES_DEFAULT)]
    pull_batch: u32,
    /// Write summary.json and timeline.csv here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// No progress bar, even on a terminal.
    #[arg(long)]
    no_progress: bool,
}

/// Runs `twinmq bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let config = config(&args)?;
    config.validate().context("checking the workload")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let report = runtime.block_on(async {
        let env = RealEnv::new();
        let live = Arc::new(LiveCounts::default());
        let progress = (!args.no_progress && std::io::stdout().is_terminal())
            .then(|| tokio::spawn(draw_progress(config.clone(), Arc::clone(&live))));
        let report = twinmq_loadgen::run(env.clone(), config, live).await;
        if let Some(progress) = progress {
            progress.abort();
            let _ = progress.await;
        }
        let report = report.context("running the workload")?;
        if let Some(dir) = &args.out {
            report.write(env.fs(), dir).context("writing the report")?;
        }
        anyhow::Ok(report)
    })?;
    print!("{}", report.table());
    if let Some(dir) = &args.out {
        println!(
            "\nwrote {} and {}",
            dir.join("summary.json").display(),
            dir.join("timeline.csv").display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn config(args: &BenchArgs) -> anyhow::Result<BenchConfig> {
    let target: Target = args.target.parse()?;
    let mut config = BenchConfig::new(target);
    config.topic = args.topic.clone();
    config.partitions = args.partitions;
    config.producers = args.producers;
    config.consumers = args.consumers;
    config.message_bytes = args.message_bytes;
    config.keys = args.keys;
    config.rate_msgs_per_sec = args.rate;
    config.bound = match (args.count, args.duration_secs) {
        (_, Some(secs)) => Bound::Duration { ms: seconds_to_ms("--duration-secs", secs)? },
        (Some(messages), None) => Bound::Count { messages },
        (None, None) => Bound::Count { messages: 100_000 },
    };
    config.warmup_ms = seconds_to_ms("--warmup-secs", args.warmup_secs)?;
    config.drain_idle_ms = seconds_to_ms("--drain-idle-secs", args.drain_idle_secs)?;
    config.kafka.acks = args.acks.parse::<Acks>()?;
    config.kafka.linger_ms = args.linger_ms;
    config.kafka.batch_bytes = args.batch_bytes;
    config.kafka.compression = args.compression.to_ascii_lowercase();
    config.kafka.in_flight_messages_max = args.in_flight;
    config.rocketmq.send_mode = args.send_mode.parse::<SendMode>()?;
    config.rocketmq.pull_batch_messages = args.pull_batch;
    Ok(config)
}

fn seconds_to_ms(flag: &str, secs: f64) -> anyhow::Result<u64> {
    anyhow::ensure!(
        secs.is_finite() && secs >= 0.0,
        "{flag} {secs}: must be a number of seconds ≥ 0"
    );
    Ok((secs * 1_000.0).round() as u64)
}

/// Redraws a progress bar until aborted: messages for a count, seconds for a duration.
async fn draw_progress(config: BenchConfig, live: Arc<LiveCounts>) {
    let (length, by_time) = match config.bound {
        Bound::Count { messages } => (messages, false),
        Bound::Duration { ms } => ((config.warmup_ms + ms) / 1_000, true),
    };
    let bar = ProgressBar::new(length.max(1));
    let template = if by_time {
        "{elapsed_precise} [{bar:30}] {pos}/{len} s  {msg}"
    } else {
        "{elapsed_precise} [{bar:30}] {pos}/{len} msgs  {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    let mut tick = tokio::time::interval(PROGRESS_INTERVAL);
    let _clear = ClearOnDrop(bar.clone());
    loop {
        tick.tick().await;
        let now = live.snapshot();
        bar.set_position(if by_time { bar.elapsed().as_secs() } else { now.sent }.min(length));
        bar.set_message(format!(
            "sent {}  acked {}  consumed {}  failed {}",
            now.sent, now.acked, now.consumed, now.failed
        ));
    }
}

/// Clears the bar when its task is aborted, so the table prints on a clean line.
struct ClearOnDrop(ProgressBar);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
