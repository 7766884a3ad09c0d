//! `twinmq compare`: measure both models on this machine and write a report. The work is the
//! `twinmq-report` crate's (and, for the durability table, the simulator's: [`durability`]);
//! this file maps flags onto it, keeps the time budget and draws the progress bars.

pub(crate) mod durability;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use twinmq_loadgen::LiveCounts;
use twinmq_report::{DurabilityTable, Plan, Progress, Results, Scale, Setup};
use twinmq_runtime::{Env, RealEnv, RealFs};

/// How often the live counts are redrawn.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);

/// `twinmq compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The same matrix with shorter points: at most 2 minutes.
    #[arg(long, conflicts_with = "smoke")]
    quick: bool,
    /// A few points of each kind, for the command's own end-to-end test.
    #[arg(long, hide = true)]
    smoke: bool,
    /// Where the report goes [default: reports/<date>-<host>/].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where the servers and storage measurements keep their data while they run (a new
    /// directory inside it, removed at the end) [default: the system's temporary directory].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// A durability table made earlier (CSV: configuration, fault_family, seeds,
    /// seeds_with_loss, acked_lost, duplicates, order_violations, unavailability_ms,
    /// time_to_recover_ms), rendered as the report's durability section instead of the
    /// simulator sweep the run makes by default.
    #[arg(long)]
    durability: Option<PathBuf>,
    /// Draw the report in --out again from its results.json, measuring nothing.
    #[arg(long, requires = "out")]
    redraw: bool,
    /// No progress bars, one line per step instead.
    #[arg(long)]
    no_progress: bool,
}

/// Runs `twinmq compare`.
pub fn run(args: CompareArgs) -> anyhow::Result<ExitCode> {
    let env = RealEnv::new();
    let durability = match &args.durability {
        Some(path) => Some(read_durability(path)?),
        None => None,
    };
    if args.redraw {
        let out = args.out.as_deref().context("--redraw needs --out")?;
        let mut results = twinmq_report::read_results(&RealFs, out)?;
        if durability.is_some() {
            results.durability = durability;
        }
        return write(out, &results);
    }
    let scale = match (args.quick, args.smoke) {
        (_, true) => Scale::Smoke,
        (true, false) => Scale::Quick,
        (false, false) => Scale::Full,
    };
    let started_at_ms = env.clock().now_ms();
    let out = args.out.clone().unwrap_or_else(|| default_out(started_at_ms));
    // Fail on an unwritable destination now, not after ten minutes of measuring.
    twinmq_runtime::Fs::create_dir_all(&RealFs, &out)
        .with_context(|| format!("creating the report directory {}", out.display()))?;
    let work_root = args.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = tempfile::Builder::new()
        .prefix("twinmq-compare-")
        .tempdir_in(&work_root)
        .with_context(|| format!("creating a work directory in {}", work_root.display()))?;
    let plan = Plan::standard(scale);
    let deadline_ms = started_at_ms + i64::try_from(plan.budget_secs * 1_000).unwrap_or(i64::MAX);
    let bars = Bars::new(!args.no_progress && std::io::stderr().is_terminal());

    let (storage, mut failures) =
        twinmq_report::run_storage(&plan.storage, plan.storage_runs, work.path(), &bars);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let load = runtime.block_on(async {
        let ticker = tokio::spawn(bars.clone().tick());
        let load = twinmq_report::run_load(&env, &plan, work.path(), deadline_ms, &bars).await;
        ticker.abort();
        load
    });
    failures.extend(load.failures);
    let durability = match durability {
        Some(table) => table,
        None => {
            let sweep = durability::Sweep::at(scale);
            let budget_ms = sweep
                .budget_secs
                .map_or(i64::MAX, |secs| i64::try_from(secs * 1_000).unwrap_or(i64::MAX));
            let until_ms = deadline_ms.min(env.clock().now_ms().saturating_add(budget_ms));
            let jobs = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
            let (table, sweep_failures) = durability::run(&env, sweep, jobs, until_ms, &bars)?;
            failures.extend(sweep_failures);
            table
        }
    };
    bars.finish();
    let results = Results {
        setup: Setup::new(
            command(&args, scale, &out),
            &plan,
            started_at_ms,
            env.clock().now_ms(),
            work_root.display().to_string(),
        ),
        storage,
        load: load.results,
        failures,
        durability: Some(durability),
    };
    write(&out, &results)
}

/// Writes the report and says where; exit status 1 when some points have no figures.
fn write(out: &Path, results: &Results) -> anyhow::Result<ExitCode> {
    twinmq_report::write_report(&RealFs, out, results)
        .with_context(|| format!("writing the report to {}", out.display()))?;
    println!("wrote {} and {}", out.join("index.md").display(), out.join("index.html").display());
    if results.failures.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "twinmq compare: {} points have no figures (the report lists them and why):",
        results.failures.len()
    );
    for failure in &results.failures {
        eprintln!("  {}: {}", failure.what, failure.error);
    }
    Ok(ExitCode::FAILURE)
}

fn read_durability(path: &Path) -> anyhow::Result<DurabilityTable> {
    let bytes = twinmq_report::output::read_file(&RealFs, path)?;
    let text =
        std::str::from_utf8(&bytes).with_context(|| format!("{} is not UTF-8", path.display()))?;
    DurabilityTable::from_csv(text).with_context(|| format!("reading {}", path.display()))
}

/// `reports/<date>-<host>`.
fn default_out(now_ms: i64) -> PathBuf {
    let host = twinmq_runtime::Host::current().hostname.unwrap_or_else(|| "host".to_owned());
    let host: String =
        host.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    PathBuf::from("reports").join(format!("{}-{host}", twinmq_report::date::utc_date(now_ms)))
}

/// The command line that measures this report again.
fn command(args: &CompareArgs, scale: Scale, out: &Path) -> String {
    let mut command = String::from("cargo run --release -- compare");
    match scale {
        Scale::Full => {}
        Scale::Quick => command.push_str(" --quick"),
        Scale::Smoke => command.push_str(" --smoke"),
    }
    command.push_str(&format!(" --out {}", out.display()));
    if let Some(path) = &args.durability {
        command.push_str(&format!(" --durability {}", path.display()));
    }
    command
}

/// Progress bars on a terminal (a phase bar and a live line), or one line per step elsewhere.
#[derive(Clone)]
struct Bars {
    inner: Option<Arc<BarsInner>>,
    /// The step under way.
    label: Arc<Mutex<String>>,
}

struct BarsInner {
    multi: MultiProgress,
    phase: ProgressBar,
    live_line: ProgressBar,
    live: Mutex<Option<Arc<LiveCounts>>>,
}

impl Bars {
    fn new(terminal: bool) -> Self {
        let inner = terminal.then(|| {
            let multi = MultiProgress::new();
            let phase = multi.add(ProgressBar::new(1));
            if let Ok(style) = ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} {prefix}\n  {wide_msg}",
            ) {
                phase.set_style(style.progress_chars("=> "));
            }
            let live_line = multi.add(ProgressBar::new_spinner());
            Arc::new(BarsInner { multi, phase, live_line, live: Mutex::new(None) })
        });
        Self { inner, label: Arc::default() }
    }

    /// Redraws the live counts until aborted.
    async fn tick(self) {
        let Some(inner) = self.inner else { return };
        let mut interval = tokio::time::interval(PROGRESS_INTERVAL);
        loop {
            interval.tick().await;
            let live = inner.live.lock().ok().and_then(|live| live.clone());
            if let Some(live) = live {
                let now = live.snapshot();
                inner.live_line.set_message(format!(
                    "sent {}  acked {}  consumed {}  failed {}",
                    now.sent, now.acked, now.consumed, now.failed
                ));
                inner.live_line.tick();
            }
        }
    }

    fn finish(&self) {
        if let Some(inner) = &self.inner {
            inner.live_line.finish_and_clear();
            inner.phase.finish_and_clear();
            let _ = inner.multi.clear();
        }
    }
}

impl Progress for Bars {
    fn phase(&self, name: &str, steps: u64) {
        match &self.inner {
            Some(inner) => {
                inner.phase.set_length(steps.max(1));
                inner.phase.set_position(0);
                inner.phase.set_prefix(name.to_owned());
            }
            None => eprintln!("twinmq compare: {name} ({steps} steps)"),
        }
    }

    fn step(&self, label: &str, live: Option<Arc<LiveCounts>>) {
        if let Ok(mut current) = self.label.lock() {
            label.clone_into(&mut current);
        }
        if let Some(inner) = &self.inner {
            inner.phase.set_message(label.to_owned());
            if let Ok(mut current) = inner.live.lock() {
                *current = live;
            }
            inner.live_line.set_message(String::new());
        }
    }

    fn step_done(&self, outcome: &str) {
        let label = self.label.lock().map(|label| label.clone()).unwrap_or_default();
        match &self.inner {
            Some(inner) => {
                inner.phase.inc(1);
                inner.phase.println(format!("  {label}: {outcome}"));
            }
            None => eprintln!("  {label}: {outcome}"),
        }
    }
}
