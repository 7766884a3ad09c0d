//! `twinmq serve <model>`: run a broker on real sockets and disks until SIGTERM or Ctrl-C, then
//! flush and stop cleanly.
//!
//! Broker settings come from flags, or from a TOML file (`--config`) whose keys are the flags'
//! names with underscores; a flag given on the command line wins over the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use serde::Deserialize;
use twinmq_kafka::{Broker, BrokerConfig, ControllerLocation};
use twinmq_runtime::{RealEnv, RealFs, Shutdown};
use twinmq_storage::FlushPolicy;

/// The broker to run.
#[derive(Debug, Subcommand)]
pub enum Serve {
    /// A Kafka-protocol broker; with no --controller it is its own controller (a working
    /// single-node cluster).
    Kafka(Box<KafkaArgs>),
    /// A Kafka-model controller without partitions of its own, for clusters of brokers.
    KafkaController(Box<KafkaArgs>),
    /// A RocketMQ nameserver.
    RocketmqNamesrv(NamesrvArgs),
    /// A RocketMQ broker (master, ASYNC_FLUSH by default).
    RocketmqBroker(Box<RocketmqBrokerArgs>),
}

/// `twinmq serve rocketmq-namesrv`.
#[derive(Debug, Args)]
pub struct NamesrvArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9876")]
    listen: SocketAddr,
    /// Drop a broker not heard from for this long (ms).
    #[arg(long, default_value_t = 120_000)]
    broker_expiry_ms: i64,
}

/// `twinmq serve rocketmq-broker`.
#[derive(Debug, Args, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RocketmqBrokerArgs {
    /// A TOML file with any of these settings.
    #[arg(long)]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Nameserver addresses, `;`-separated (`namesrvAddr`) [default: 127.0.0.1:9876].
    #[arg(long)]
    namesrv: Option<String>,
    /// Address to listen on [default: 127.0.0.1:10911].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory [default: twinmq-data/rocketmq-<broker name>-<broker id>].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// `brokerClusterName` [default: DefaultCluster].
    #[arg(long)]
    cluster: Option<String>,
    /// `brokerName` [default: broker-a].
    #[arg(long)]
    broker_name: Option<String>,
    /// `brokerId`: 0 for the master, above 0 for a slave [default: 0].
    #[arg(long)]
    broker_id: Option<i64>,
    /// Queues of an auto-created topic (`defaultTopicQueueNums`) [default: 4].
    #[arg(long)]
    queues: Option<u32>,
    /// `autoCreateTopicEnable` [default: true].
    #[arg(long)]
    auto_create_topic: Option<bool>,
    /// `flushDiskType`: sync (SYNC_FLUSH) or async (ASYNC_FLUSH) [default: async].
    #[arg(long, value_enum)]
    flush: Option<Flush>,
    /// `messageDelayLevel`: the delays of levels 1, 2, … [default: 1s 5s 10s 30s 1m 2m 3m 4m 5m
    /// 6m 7m 8m 9m 10m 20m 30m 1h 2h].
    #[arg(long)]
    message_delay_level: Option<String>,
    /// `brokerRole`: ASYNC_MASTER, SYNC_MASTER (a send is answered once a slave has it) or
    /// SLAVE [default: ASYNC_MASTER].
    #[arg(long)]
    broker_role: Option<twinmq_rocketmq::broker::ha::BrokerRole>,
    /// Where a master takes slaves (`haListenPort`) [default: the listen port + 1].
    #[arg(long)]
    ha_listen: Option<SocketAddr>,
    /// `haMasterAddress`: a slave's master HA address [default: learned from the nameservers].
    #[arg(long)]
    ha_master: Option<String>,
    /// `transactionTimeOut`: a half message younger than this is not checked back yet (ms)
    /// [default: 6000].
    #[arg(long)]
    transaction_timeout_ms: Option<i64>,
    /// `transactionCheckInterval`: the least time between two check-backs of one half message
    /// (ms) [default: 60000].
    #[arg(long)]
    transaction_check_interval_ms: Option<u64>,
}

/// When appends are made durable.
#[derive(Debug, Clone, Copy, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flush {
    /// fsync before acknowledging (group commit).
    Sync,
    /// fsync every 500 ms or 256 MiB, acknowledge at once (Kafka's own default is never).
    Async,
}

/// `twinmq serve kafka` and `kafka-controller`.
#[derive(Debug, Args, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaArgs {
    /// A TOML file with any of these settings.
    #[arg(long)]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// This node's id [default: 1].
    #[arg(long)]
    node_id: Option<i32>,
    /// Address to listen on [default: 127.0.0.1:9092].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory [default: twinmq-data/kafka-<node id>].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Host advertised to clients [default: the listen address's IP].
    #[arg(long)]
    advertised_host: Option<String>,
    /// The cluster's controller as `node_id@host:port` [default: this process].
    #[arg(long)]
    controller: Option<String>,
    /// Partitions of an auto-created topic (`num.partitions`) [default: 1].
    #[arg(long)]
    partitions: Option<i32>,
    /// Replicas of a topic created without one (`default.replication.factor`) [default: 1].
    #[arg(long)]
    replication_factor: Option<i16>,
    /// `min.insync.replicas` [default: 1].
    #[arg(long)]
    min_insync_replicas: Option<usize>,
    /// `unclean.leader.election.enable` [default: false].
    #[arg(long)]
    unclean_leader_election: Option<bool>,
    /// `replica.lag.time.max.ms` [default: 30000].
    #[arg(long)]
    replica_lag_time_max_ms: Option<i64>,
    /// `broker.session.timeout.ms` [default: 9000].
    #[arg(long)]
    broker_session_timeout_ms: Option<i64>,
    /// `retention.ms` of partition logs [default: 7 days].
    #[arg(long)]
    retention_ms: Option<i64>,
    /// `retention.bytes` of partition logs [default: unlimited].
    #[arg(long)]
    retention_bytes: Option<u64>,
    /// `segment.bytes` [default: 1 GiB].
    #[arg(long)]
    segment_bytes: Option<u64>,
    /// Flush policy of partition logs [default: async].
    #[arg(long, value_enum)]
    flush: Option<Flush>,
}

/// Runs the chosen broker.
pub fn run(serve: Serve) -> anyhow::Result<ExitCode> {
    match serve {
        Serve::Kafka(args) => run_kafka(*args, true),
        Serve::KafkaController(args) => run_kafka(*args, false),
        Serve::RocketmqNamesrv(args) => run_namesrv(args),
        Serve::RocketmqBroker(args) => run_rocketmq_broker(*args),
    }
}

fn read_file<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let bytes = twinmq_storage::atomic_file::read_whole(&RealFs, path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let text =
        std::str::from_utf8(&bytes).with_context(|| format!("{} is not UTF-8", path.display()))?;
    toml::from_str(text).with_context(|| format!("parsing {}", path.display()))
}

/// Flags over the file over the defaults.
fn kafka_config(flags: KafkaArgs, broker_role: bool) -> anyhow::Result<BrokerConfig> {
    let file = match &flags.config {
        Some(path) => read_file(path)?,
        None => KafkaArgs::default(),
    };
    macro_rules! pick {
        ($field:ident) => {
            flags.$field.clone().or(file.$field.clone())
        };
    }
    let node_id = pick!(node_id).unwrap_or(1);
    let listen = pick!(listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9092)));
    let data_dir =
        pick!(data_dir).unwrap_or_else(|| PathBuf::from(format!("twinmq-data/kafka-{node_id}")));
    let mut config = BrokerConfig::single_node(node_id, listen, data_dir);
    config.broker_role = broker_role;
    config.advertised_host = pick!(advertised_host);
    if let Some(controller) = pick!(controller) {
        let (id, addr) = controller.split_once('@').context("--controller is node_id@host:port")?;
        let node_id = id.parse().context("--controller's node id")?;
        config.controller = ControllerLocation::Remote { node_id, addr: addr.to_owned() };
    }
    config.num_partitions = pick!(partitions).unwrap_or(config.num_partitions);
    config.default_replication_factor =
        pick!(replication_factor).unwrap_or(config.default_replication_factor);
    config.min_insync_replicas = pick!(min_insync_replicas).unwrap_or(config.min_insync_replicas);
    config.unclean_leader_election = pick!(unclean_leader_election).unwrap_or(false);
    config.replica_lag_time_max_ms =
        pick!(replica_lag_time_max_ms).unwrap_or(config.replica_lag_time_max_ms);
    config.broker_session_timeout_ms =
        pick!(broker_session_timeout_ms).unwrap_or(config.broker_session_timeout_ms);
    if let Some(ms) = pick!(retention_ms) {
        config.log.retention_ms = Some(ms);
    }
    if let Some(bytes) = pick!(retention_bytes) {
        config.log.retention_bytes = Some(bytes);
    }
    if let Some(bytes) = pick!(segment_bytes) {
        config.log.segment_bytes_max = bytes;
    }
    config.log.flush = match pick!(flush).unwrap_or(Flush::Async) {
        Flush::Sync => FlushPolicy::Sync,
        Flush::Async => FlushPolicy::ASYNC_DEFAULT,
    };
    Ok(config)
}

fn run_kafka(args: KafkaArgs, broker_role: bool) -> anyhow::Result<ExitCode> {
    let config = kafka_config(args, broker_role)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let broker = Broker::bind(RealEnv::new(), config).await.context("starting the broker")?;
        println!("twinmq kafka listening on {}", broker.local_addr());
        let shutdown = Shutdown::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        broker.run(shutdown).await.context("running the broker")?;
        Ok(ExitCode::SUCCESS)
    })
}

fn run_namesrv(args: NamesrvArgs) -> anyhow::Result<ExitCode> {
    let mut config = twinmq_rocketmq::namesrv::NamesrvConfig::new(args.listen);
    config.broker_expiry_ms = args.broker_expiry_ms;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let namesrv = twinmq_rocketmq::namesrv::NameServer::bind(RealEnv::new(), config)
            .await
            .context("binding the nameserver")?;
        println!("twinmq rocketmq-namesrv listening on {}", namesrv.local_addr());
        let shutdown = Shutdown::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        namesrv.run(shutdown).await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Flags over the file over the defaults.
fn rocketmq_broker_config(
    flags: RocketmqBrokerArgs,
) -> anyhow::Result<twinmq_rocketmq::broker::BrokerConfig> {
    use twinmq_rocketmq::broker::{BrokerConfig, schedule};
    let file = match &flags.config {
        Some(path) => read_file(path)?,
        None => RocketmqBrokerArgs::default(),
    };
    macro_rules! pick {
        ($field:ident) => {
            flags.$field.clone().or(file.$field.clone())
        };
    }
    let namesrv = pick!(namesrv)
        .unwrap_or_else(|| "127.0.0.1:9876".into())
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let listen = pick!(listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 10911)));
    let broker_name = pick!(broker_name).unwrap_or_else(|| "broker-a".into());
    let role = pick!(broker_role).unwrap_or(twinmq_rocketmq::broker::ha::BrokerRole::AsyncMaster);
    let broker_id = pick!(broker_id).unwrap_or(if role.is_master() { 0 } else { 1 });
    if role.is_master() != (broker_id == 0) {
        anyhow::bail!("a master has --broker-id 0 and a slave a --broker-id above 0");
    }
    let data_dir = pick!(data_dir).unwrap_or_else(|| {
        PathBuf::from(format!("twinmq-data/rocketmq-{broker_name}-{broker_id}"))
    });
    let mut config = BrokerConfig::new(listen, namesrv, data_dir);
    config.broker_name = broker_name;
    config.broker_id = broker_id;
    config.cluster = pick!(cluster).unwrap_or(config.cluster);
    config.default_queues = pick!(queues).unwrap_or(config.default_queues);
    config.auto_create_topic = pick!(auto_create_topic).unwrap_or(config.auto_create_topic);
    config.store.flush = match pick!(flush).unwrap_or(Flush::Async) {
        Flush::Sync => FlushPolicy::Sync,
        Flush::Async => FlushPolicy::ASYNC_DEFAULT,
    };
    config.ha.role = role;
    config.ha.listen = pick!(ha_listen);
    config.ha.master = pick!(ha_master);
    if let Some(levels) = pick!(message_delay_level) {
        config.delay_levels_ms = schedule::parse_delay_levels(&levels)
            .map_err(anyhow::Error::msg)
            .context("--message-delay-level")?;
    }
    config.transaction_timeout_ms =
        pick!(transaction_timeout_ms).unwrap_or(config.transaction_timeout_ms);
    config.transaction_check_interval_ms =
        pick!(transaction_check_interval_ms).unwrap_or(config.transaction_check_interval_ms);
    Ok(config)
}

fn run_rocketmq_broker(args: RocketmqBrokerArgs) -> anyhow::Result<ExitCode> {
    use twinmq_rocketmq::broker::Broker;
    let config = rocketmq_broker_config(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let broker = Broker::bind(RealEnv::new(), config).await.context("starting the broker")?;
        println!("twinmq rocketmq-broker listening on {}", broker.local_addr());
        let shutdown = Shutdown::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        broker.run(shutdown).await.context("running the broker")?;
        Ok(ExitCode::SUCCESS)
    })
}

async fn stop_on_signal(shutdown: Shutdown) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        biased;
        () = terminate => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
    }
    shutdown.trigger();
}
