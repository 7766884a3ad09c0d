//! `twinmq serve <model>`: run a broker on real sockets and disks until SIGTERM or Ctrl-C, then
//! flush and stop cleanly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use twinmq_kafka::{Broker, BrokerConfig};
use twinmq_runtime::{RealEnv, Shutdown};
use twinmq_storage::FlushPolicy;

/// The broker to run.
#[derive(Debug, Subcommand)]
pub enum Serve {
    /// A Kafka-protocol broker with its own controller (a working single-node cluster).
    Kafka(KafkaArgs),
    /// A RocketMQ nameserver.
    RocketmqNamesrv(Pending),
    /// A RocketMQ broker.
    RocketmqBroker(Pending),
}

/// Arguments of a model not built yet: accepted, then refused honestly.
#[derive(Debug, Args)]
pub struct Pending {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    args: Vec<String>,
}

/// When appends are made durable.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Flush {
    /// fsync before acknowledging (group commit).
    Sync,
    /// fsync every 500 ms or 256 MiB, acknowledge at once (Kafka's own default is never).
    Async,
}

/// `twinmq serve kafka`.
#[derive(Debug, Args)]
pub struct KafkaArgs {
    /// This broker's node id.
    #[arg(long, default_value_t = 1)]
    node_id: i32,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9092")]
    listen: SocketAddr,
    /// Data directory (partitions, metadata log, committed offsets).
    #[arg(long, default_value = "twinmq-data/kafka")]
    data_dir: PathBuf,
    /// Host advertised to clients (default: the listen address's IP).
    #[arg(long)]
    advertised_host: Option<String>,
    /// Partitions of an auto-created topic (`num.partitions`).
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Flush policy of partition logs.
    #[arg(long, value_enum, default_value_t = Flush::Async)]
    flush: Flush,
}

/// Runs the chosen broker.
pub fn run(serve: Serve) -> anyhow::Result<ExitCode> {
    match serve {
        Serve::Kafka(args) => run_kafka(args),
        Serve::RocketmqNamesrv(_) | Serve::RocketmqBroker(_) => {
            eprintln!(
                "twinmq serve rocketmq-*: not built yet (tracked in the RocketMQ model issue)"
            );
            Ok(ExitCode::from(2))
        }
    }
}

fn run_kafka(args: KafkaArgs) -> anyhow::Result<ExitCode> {
    let mut config = BrokerConfig::single_node(args.node_id, args.listen, args.data_dir);
    config.advertised_host = args.advertised_host;
    config.num_partitions = args.partitions;
    config.log.flush = match args.flush {
        Flush::Sync => FlushPolicy::Sync,
        Flush::Async => FlushPolicy::ASYNC_DEFAULT,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let broker = Broker::bind(RealEnv::new(), config).await.context("starting the broker")?;
        println!("twinmq kafka broker listening on {}", broker.local_addr());
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
        () = terminate => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
    }
    shutdown.trigger();
}
