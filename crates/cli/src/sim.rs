//! `twinmq sim`: one deterministic simulation of either model (`--seed N`), or a sweep over a
//! range of seeds (`--seeds A..B --jobs J`) with a progress bar, a summary, and for every
//! failing seed the one command that replays it; `twinmq sim compare` makes the durability
//! table ([`compare`]). The engine is the `twinmq-sim` crate.

mod compare;

use std::io::IsTerminal;
use std::ops::Range;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use twinmq_sim::harness::SimOutcome;
use twinmq_sim::nemesis::FaultFamily;
use twinmq_sim::scenario::{Model, Scenario};
use twinmq_sim::sweep::{SeedResult, sweep};

/// How many violations a run prints.
const VIOLATIONS_SHOWN: usize = 10;

/// `twinmq sim`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SimArgs {
    /// A sweep of its own instead of one model's run.
    #[command(subcommand)]
    command: Option<SimCommand>,
    /// The model: kafka or rocketmq.
    #[arg(long, default_value = "kafka")]
    model: String,
    /// The configuration (`--list-presets` lists them).
    #[arg(long, default_value = "durable")]
    preset: String,
    /// Run this one seed.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Sweep these seeds, `A..B` (B excluded).
    #[arg(long)]
    seeds: Option<String>,
    /// Simulations at once in a sweep (each on its own thread).
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Messages the workload sends [default: the preset's].
    #[arg(long)]
    messages: Option<u64>,
    /// The faults the nemesis draws: none, network (partitions), crash (power-offs, torn
    /// writes), disk (full and failing disks, power-offs, torn writes), mixed (partitions and
    /// power-offs).
    #[arg(long, default_value = "mixed", value_parser = FaultFamily::parse)]
    faults: FaultFamily,
    /// Print every event of the run.
    #[arg(long, conflicts_with = "seeds")]
    trace: bool,
    /// List each model's presets and exit.
    #[arg(long)]
    list_presets: bool,
}

/// What `twinmq sim` does besides running one model.
#[derive(Debug, Subcommand)]
enum SimCommand {
    /// Every durability configuration under every fault family over a range of seeds: the
    /// table of lost, duplicated and reordered messages, unavailability and time to recover,
    /// as Markdown and CSV.
    Compare(compare::SimCompareArgs),
}

impl SimArgs {
    fn scenario(&self, model: Model, seed: u64) -> anyhow::Result<Scenario> {
        let mut scenario =
            Scenario::preset(model, &self.preset, seed).map_err(anyhow::Error::msg)?;
        let settings = scenario.settings();
        settings.faults = self.faults;
        settings.keep_trace = self.trace;
        if let Some(messages) = self.messages {
            settings.messages = messages;
        }
        Ok(scenario)
    }

    /// The command that replays `seed` with every setting of this one.
    fn replay(&self, model: Model, seed: u64) -> String {
        let mut command =
            format!("twinmq sim --model {model} --preset {} --seed {seed}", self.preset);
        if let Some(messages) = self.messages {
            command.push_str(&format!(" --messages {messages}"));
        }
        if self.faults != FaultFamily::Mixed {
            command.push_str(&format!(" --faults {}", self.faults));
        }
        command
    }
}

/// Runs `twinmq sim`.
pub fn run(args: SimArgs) -> anyhow::Result<ExitCode> {
    if let Some(SimCommand::Compare(compare)) = args.command {
        return compare::run(compare);
    }
    if args.list_presets {
        for model in [Model::Kafka, Model::Rocketmq] {
            for (name, what) in model.presets() {
                println!("{model:<9} {name:<12} {what}");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let model = Model::parse(&args.model).map_err(anyhow::Error::msg)?;
    args.scenario(model, 0)?;
    match (&args.seeds, args.seed) {
        (Some(range), _) => run_sweep(&args, model, parse_range(range)?),
        (None, seed) => run_one(&args, model, seed.unwrap_or(0)),
    }
}

fn run_one(args: &SimArgs, model: Model, seed: u64) -> anyhow::Result<ExitCode> {
    let scenario = args.scenario(model, seed)?;
    let outcome = scenario.run().map_err(anyhow::Error::msg).context("the simulation stopped")?;
    for line in outcome.trace.lines() {
        println!("{line}");
    }
    println!("{}", outcome.explain(VIOLATIONS_SHOWN));
    if outcome.verdict.is_clean() {
        return Ok(ExitCode::SUCCESS);
    }
    println!("replay: {}", args.replay(model, seed));
    Ok(ExitCode::FAILURE)
}

fn run_sweep(args: &SimArgs, model: Model, seeds: Range<u64>) -> anyhow::Result<ExitCode> {
    let count = seeds.end - seeds.start;
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(count)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} seeds {per_sec} eta {eta} {msg}")
            .context("the progress bar's template")?,
    );
    let template = args.scenario(model, seeds.start)?;
    let started = Instant::now();
    let failing = std::sync::atomic::AtomicU64::new(0);
    let results = sweep(
        seeds.clone(),
        args.jobs,
        |seed| {
            let mut scenario = template.clone();
            scenario.settings().seed = seed;
            scenario
        },
        |result| {
            if !result.is_clean() {
                let failed = failing.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                bar.set_message(format!("{failed} failing"));
            }
            bar.inc(1);
        },
    );
    bar.finish_and_clear();
    let wall = started.elapsed().as_secs_f64();
    print_summary(args, model, &results, wall);
    Ok(if results.iter().all(SeedResult::is_clean) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn print_summary(args: &SimArgs, model: Model, results: &[SeedResult], wall_secs: f64) {
    let outcomes: Vec<&SimOutcome> =
        results.iter().filter_map(|r| r.outcome.as_ref().ok()).collect();
    let sum = |f: fn(&SimOutcome) -> u64| outcomes.iter().map(|o| f(o)).sum::<u64>();
    let with_loss = outcomes.iter().filter(|o| o.verdict.lost > 0).count();
    let simulated: f64 = outcomes.iter().map(|o| o.elapsed.as_secs_f64()).sum();
    println!("{model} {} over {} seeds ({} jobs):", args.preset, results.len(), args.jobs);
    println!(
        "  clean {} | with loss {with_loss} | stopped {}",
        results.iter().filter(|r| r.is_clean()).count(),
        results.len() - outcomes.len()
    );
    println!(
        "  acknowledged {} lost {} duplicates {} order violations {} commits backwards {} \
         invariants broken {}",
        sum(|o| o.verdict.acknowledged),
        sum(|o| o.verdict.lost),
        sum(|o| o.verdict.duplicates),
        sum(|o| o.verdict.order_violations),
        sum(|o| o.verdict.commits_backwards),
        sum(|o| o.verdict.invariants_broken)
    );
    println!(
        "  {wall_secs:.1} s wall, {:.2} seeds/s, {simulated:.0} s simulated",
        results.len() as f64 / wall_secs.max(f64::EPSILON)
    );
    for result in results.iter().filter(|r| !r.is_clean()) {
        let why = match &result.outcome {
            Ok(outcome) => {
                let v = &outcome.verdict;
                format!(
                    "lost {} order {} commits back {} invariants {}",
                    v.lost, v.order_violations, v.commits_backwards, v.invariants_broken
                )
            }
            Err(error) => format!("stopped: {error}"),
        };
        println!("  seed {}: {why}\n    replay: {}", result.seed, args.replay(model, result.seed));
    }
}

/// Parses `A..B`.
fn parse_range(text: &str) -> anyhow::Result<Range<u64>> {
    let Some((start, end)) = text.split_once("..") else {
        bail!("--seeds takes A..B, not `{text}`");
    };
    let start: u64 = start.trim().parse().with_context(|| format!("--seeds start `{start}`"))?;
    let end: u64 = end.trim().parse().with_context(|| format!("--seeds end `{end}`"))?;
    if end <= start {
        bail!("--seeds {text}: the range is empty");
    }
    Ok(start..end)
}
