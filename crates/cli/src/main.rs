//! `twinmq`: one binary for both broker models, the simulator, the benchmarks and the tools.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
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
    Compare(Pending),
    /// Print a data directory's segments, commit log and consume queues entry by entry.
    Dump {
        /// The data directory (a partition, a broker store, or any directory above them).
        dir: PathBuf,
    },
}

/// Arguments of a subcommand that is not built yet: accepted, then refused honestly.
#[derive(Debug, clap::Args)]
struct Pending {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    args: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A simulation's brokers log as servers do; by default only their errors show.
    let default_level = if matches!(cli.command, Command::Sim(_)) { "error" } else { "info" };
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
        Command::Compare(_) => not_built("compare", "the comparison report issue"),
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

/// Refuses a subcommand that does not exist yet, loudly, with a non-zero exit.
fn not_built(command: &str, tracked_in: &str) -> anyhow::Result<ExitCode> {
    eprintln!("twinmq {command}: not built yet (tracked in {tracked_in})");
    Ok(ExitCode::from(2))
}
