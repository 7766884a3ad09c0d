//! `twinmq sim compare`: the durability comparison on its own — the simulator's six
//! configurations under each fault family over a range of seeds, as the table `twinmq compare`
//! renders: printed as Markdown, written as `durability.md` and `durability.csv` (the CSV
//! `twinmq compare --durability FILE` reads).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use twinmq_loadgen::LiveCounts;
use twinmq_report::Progress;
use twinmq_report::durability::CSV_FILE;
use twinmq_runtime::{Fs, RealEnv, RealFs};
use twinmq_sim::nemesis::FaultFamily;
use twinmq_storage::atomic_file::write_atomically;

use crate::compare::durability::{self, Sweep};

/// The Markdown file beside the CSV.
const MARKDOWN_FILE: &str = "durability.md";

/// `twinmq sim compare`.
#[derive(Debug, Args)]
pub struct SimCompareArgs {
    /// The seeds of each configuration and fault family, `A..B` (B excluded).
    #[arg(long, default_value = "0..16")]
    seeds: String,
    /// Simulations at once (each on its own thread).
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Messages each seed's workload sends.
    #[arg(long, default_value_t = 400)]
    messages: u64,
    /// The fault families, comma-separated: network, crash, disk, mixed.
    #[arg(long, default_value = "network,crash,disk,mixed", value_delimiter = ',', value_parser = FaultFamily::parse)]
    faults: Vec<FaultFamily>,
    /// Where `durability.md` and `durability.csv` go.
    #[arg(long, default_value = "reports/durability")]
    out: PathBuf,
}

/// Runs `twinmq sim compare`.
pub fn run(args: SimCompareArgs) -> anyhow::Result<ExitCode> {
    let seeds = super::parse_range(&args.seeds)?;
    let sweep = Sweep { families: args.faults.clone(), ..Sweep::new(seeds, args.messages, None) };
    let bar = Bar::new(std::io::stderr().is_terminal());
    let started = Instant::now();
    let env = RealEnv::new();
    let (table, failures) = durability::run(&env, sweep, args.jobs.max(1), i64::MAX, &bar)?;
    bar.0.finish_and_clear();
    let markdown = table.to_markdown("Durability under faults (simulator)");
    println!("{markdown}");
    for failure in &failures {
        println!("not run to a verdict: {}: {}", failure.what, failure.error);
    }
    let fs = RealFs;
    fs.create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    for (name, text) in [(MARKDOWN_FILE, markdown), (CSV_FILE, table.to_csv())] {
        let path = args.out.join(name);
        write_atomically(&fs, &path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!(
        "wrote {} and {} in {:.0} s",
        args.out.join(MARKDOWN_FILE).display(),
        args.out.join(CSV_FILE).display(),
        started.elapsed().as_secs_f64()
    );
    Ok(if failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// One progress bar over the sweep's runs (hidden when stderr is not a terminal).
struct Bar(ProgressBar);

impl Bar {
    fn new(terminal: bool) -> Self {
        let bar = if terminal { ProgressBar::new(0) } else { ProgressBar::hidden() };
        if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} runs eta {eta} {msg}")
        {
            bar.set_style(style);
        }
        Self(bar)
    }
}

impl Progress for Bar {
    fn phase(&self, _name: &str, steps: u64) {
        self.0.set_length(steps);
    }

    fn step(&self, label: &str, _live: Option<Arc<LiveCounts>>) {
        self.0.set_message(label.to_owned());
    }

    fn step_done(&self, _outcome: &str) {
        self.0.inc(1);
    }
}
