//! `twinmq`: one binary for both broker models, the simulator, the benchmarks and the tools.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod compare;
mod dump;
mod serve;
mod sim;

/// twinmq: Kafka's and RocketMQ's designs side by side on one storage core.
#[derive(Debug, Parser)]
#[command(name = "twinmq", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker (kafka, rocketmq-namesrv, rocketmq-broker) that real clients talk to.
    #[command(subcommand)]
    Serve(serve::Serve),
    /// Run deterministic fault-injection simulations of either model.
    Sim(Box<sim::SimArgs>),
    /// Load-generate against a Kafka or RocketMQ endpoint and record throughput and latency.
    Bench(Box<bench::BenchArgs>),
    /// Measure both models on the same machine and workload and write a report.
    Compare(Box<compare::CompareArgs>),
    /// Print a data directory's segments, commit log and consume queues entry by entry.
    Dump {
        /// The data directory (a partition, a broker store, or any directory above them).
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `compare` runs many servers in-process: their routine logs would bury the command's own
    // output, so by default only errors show. A simulation's brokers fail on purpose (the
    // nemesis breaks their disks and networks) and the run reports what that did, so their
    // logs show only when RUST_LOG asks.
    let default_level = match cli.command {
        Command::Compare(_) => "error",
        Command::Sim(_) => "off",
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .init();
    let result = match cli.command {
        Command::Serve(serve) => serve::run(serve),
        Command::Sim(args) => sim::run(*args),
        Command::Bench(args) => bench::run(*args),
        Command::Compare(args) => compare::run(*args),
        Command::Dump { dir } => dump::run(&dir),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("twinmq: {error:#}");
            ExitCode::FAILURE
        }
    }
}
