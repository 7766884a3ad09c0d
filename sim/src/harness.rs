//! What every cluster simulation shares: the settings every run has, the turmoil world, the
//! application host and the loop that steps the world while the nemesis acts, the heal once the
//! workload has sent everything, the drain, and the outcome — the checkers' verdict over the
//! history and the hash of its trace.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use crate::availability::{Availability, measure};
use crate::checker::{Verdict, check};
use crate::history::{Event, History, Record};
use crate::invariants::Invariants;
use crate::nemesis::{FaultFamily, Nemesis};
use crate::trace::TraceHash;
use twinmq_runtime::{Clock, DiskFaults, SimEnv};

/// The longest simulated time a run may take before turmoil stops it as hung.
pub const SIMULATION_LIMIT: Duration = Duration::from_secs(900);
/// The host the workload (producers and consumers) runs on; the nemesis only cuts it off.
pub const APP: &str = "app";
/// How long the drain may take once every fault is healed.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(120);
/// How often the drain looks whether every acknowledged message has arrived.
const DRAIN_POLL: Duration = Duration::from_millis(200);
/// How often (in simulated time) the brokers' state is checked against the model's invariants.
const INVARIANTS_EVERY: Duration = Duration::from_millis(20);
/// How long a supervised server stays down after it stopped on an error.
const RESTART_DELAY: Duration = Duration::from_secs(1);
/// Least and most one-way delay of a healthy link, a busy LAN's (turmoil draws each message's
/// delay between them on an exponential curve, mean ≈ 2 ms); the nemesis slows links further.
pub const LINK_LATENCY: (Duration, Duration) =
    (Duration::from_millis(1), Duration::from_millis(10));
/// How far simulated time moves per step of the world: timers fire and messages arrive at
/// this resolution. Every host's runtime is polled each step, busy or not, so a step's cost is
/// paid per tick: 4 ms rather than turmoil's 1 ms makes a seed about twice as fast, and a
/// link's 1-10 ms delay arrives on the next 4 ms boundary.
pub const TICK: Duration = Duration::from_millis(4);
/// The block size at which writes in flight tear when a host loses power.
const TORN_WRITE_BLOCK: u64 = 512;

/// What every run has, whatever the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSettings {
    /// The seed: the whole run is a function of it.
    pub seed: u64,
    /// Messages the workload sends in all.
    pub messages: u64,
    /// The faults the nemesis draws (`None`: it does not act).
    pub faults: FaultFamily,
    /// Keep every event line for `--trace`.
    pub keep_trace: bool,
}

impl RunSettings {
    /// `messages` messages for `seed`, with faults, without keeping the trace's lines.
    pub fn new(seed: u64, messages: u64) -> Self {
        Self { seed, messages, faults: FaultFamily::Mixed, keep_trace: false }
    }
}

/// What one run found.
#[derive(Debug, Clone)]
pub struct SimOutcome {
    /// The checkers' verdict.
    pub verdict: Verdict,
    /// How long the cluster took no writes, and took to recover after the heal.
    pub availability: Availability,
    /// The hash of the run's event trace.
    pub trace: TraceHash,
    /// The history, in order.
    pub records: Vec<Record>,
    /// Simulated time the run took.
    pub elapsed: Duration,
}

impl SimOutcome {
    /// The counts, the first `violations` violations with their context, and the trace hash.
    pub fn explain(&self, violations: usize) -> Explained<'_> {
        Explained { outcome: self, violations }
    }
}

/// A [`SimOutcome`] rendered for people (see [`SimOutcome::explain`]).
#[derive(Debug)]
pub struct Explained<'a> {
    outcome: &'a SimOutcome,
    violations: usize,
}

impl fmt::Display for Explained<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (outcome, v) = (self.outcome, &self.outcome.verdict);
        writeln!(
            f,
            "sent {} acknowledged {} failed {} delivered {} | lost {} duplicates {} \
             order violations {} commits backwards {} invariants broken {}",
            v.sent,
            v.acknowledged,
            v.failed,
            v.delivered,
            v.lost,
            v.duplicates,
            v.order_violations,
            v.commits_backwards,
            v.invariants_broken
        )?;
        for violation in v.violations.iter().take(self.violations) {
            write!(f, "{violation}")?;
        }
        if v.violations.len() > self.violations {
            writeln!(f, "… and {} more violations", v.violations.len() - self.violations)?;
        }
        write!(
            f,
            "trace hash {:016x} ({} events, {:.1} s simulated)",
            outcome.trace.hash(),
            outcome.trace.event_count(),
            outcome.elapsed.as_secs_f64()
        )
    }
}

/// A turmoil world for `run`: its seed, [`TICK`], LAN latency, a fixed epoch, the simulation
/// limit, and torn writes when its fault family tears them.
pub fn world<'a>(run: &RunSettings) -> turmoil::Sim<'a> {
    let mut builder = turmoil::Builder::new();
    builder
        .rng_seed(run.seed)
        .epoch(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .tick_duration(TICK)
        .min_message_latency(LINK_LATENCY.0)
        .max_message_latency(LINK_LATENCY.1)
        .simulation_duration(SIMULATION_LIMIT);
    if run.faults.tears_writes() {
        builder.fs().block_size(TORN_WRITE_BLOCK);
    }
    builder.build()
}

/// One disk per server, in the order given, for the nemesis to break and the hosts to use.
pub fn disks(servers: &[String]) -> Vec<(String, DiskFaults)> {
    servers.iter().map(|s| (s.clone(), DiskFaults::new())).collect()
}

/// Puts server `host` on `world`, on its disk from `disks`: at every start (and restart after
/// a power-off) it runs `serve` with the host's environment, as a supervisor would
/// (`Restart=always`) — when `serve` stops on an error (a failed disk at start, a fatal
/// storage error) that is logged and it starts again after a pause, instead of ending the
/// simulation.
pub fn serve<S, Fut>(
    world: &mut turmoil::Sim<'_>,
    seed: u64,
    disks: &[(String, DiskFaults)],
    host: &str,
    serve: S,
) where
    S: Fn(SimEnv) -> Fut + Clone + 'static,
    Fut: Future<Output = turmoil::Result> + 'static,
{
    let disk = disks.iter().find(|(name, _)| name == host).map(|(_, d)| d.clone());
    let (disk, name) = (disk.unwrap_or_default(), host.to_owned());
    world.host(host, move || {
        let (serve, disk, name) = (serve.clone(), disk.clone(), name.clone());
        async move {
            loop {
                let env = SimEnv::for_host(seed, &name).with_disk_faults(disk.clone());
                match serve(env).await {
                    Ok(()) => return Ok(()),
                    Err(error) => {
                        tracing::warn!(host = %name, %error, "server stopped; restarting")
                    }
                }
                tokio::time::sleep(RESTART_DELAY).await;
            }
        }
    });
}

/// How long the workload spreads its sends over, whatever their number: the messages keep
/// flowing while the nemesis acts, instead of all going out before its first fault.
pub const SEND_WINDOW: Duration = Duration::from_secs(20);

/// Spreads one sender's sends evenly over [`SEND_WINDOW`] of simulated time.
#[derive(Debug)]
pub struct Pacer {
    clock: Clock,
    start_ms: i64,
    interval_ms: i64,
    due: i64,
}

impl Pacer {
    /// A pacer for `count` sends, starting now on `clock`.
    pub fn new(count: usize, clock: &Clock) -> Self {
        let count = i64::try_from(count.max(1)).unwrap_or(i64::MAX);
        let window_ms = i64::try_from(SEND_WINDOW.as_millis()).unwrap_or(i64::MAX);
        Self {
            clock: clock.clone(),
            start_ms: clock.now_ms(),
            interval_ms: window_ms / count,
            due: 0,
        }
    }

    /// Waits until the next send is due (not at all when the sender is behind).
    pub async fn next(&mut self) {
        let due_ms = self.start_ms + self.interval_ms * self.due;
        self.due += 1;
        let wait_ms = due_ms - self.clock.now_ms();
        if let Ok(wait_ms) = u64::try_from(wait_ms)
            && wait_ms > 0
        {
            tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        }
    }
}

/// The flags through which the workload and the harness hand over: the workload raises
/// `sending_done` when every send is resolved, the harness heals every fault and raises
/// `healed`, and the workload drains.
#[derive(Debug, Clone, Default)]
pub struct Phases {
    sending_done: Arc<AtomicBool>,
    healed: Arc<AtomicBool>,
}

impl Phases {
    /// Tells the harness every send has an answer, and waits (in simulated time) until it has
    /// healed every fault.
    pub async fn sending_done(&self) {
        self.sending_done.store(true, Ordering::SeqCst);
        while !self.healed.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Waits until every acknowledged message in `history` has been delivered, or for at most the
/// drain limit.
pub async fn drain(history: &History) {
    let drained = async {
        while history.undelivered_acks() > 0 {
            tokio::time::sleep(DRAIN_POLL).await;
        }
    };
    let _ = tokio::time::timeout(DRAIN_LIMIT, drained).await;
}

/// Runs `world` — the model's servers already on it, on `disks` — with `workload` on the
/// application host and the nemesis drawing `run.faults`, checking `invariants` as it goes;
/// returns the outcome.
pub fn run<W, F>(
    run: &RunSettings,
    mut world: turmoil::Sim<'_>,
    disks: Vec<(String, DiskFaults)>,
    invariants: impl Invariants,
    workload: W,
) -> Result<SimOutcome, String>
where
    W: FnOnce(History, Phases) -> F,
    F: Future<Output = turmoil::Result> + 'static,
{
    let history = History::new();
    let phases = Phases::default();
    world.client(APP, workload(history.clone(), phases.clone()));
    let nemesis = (run.faults != FaultFamily::None)
        .then(|| Nemesis::new(run.seed, run.faults, disks, APP.to_owned()));
    drive(world, nemesis, invariants, &history, &phases, run)
}

/// Steps `world` to its end: the nemesis acts until the workload has sent everything, then
/// heals every fault; returns the outcome judged over `history`.
fn drive(
    mut world: turmoil::Sim<'_>,
    mut nemesis: Option<Nemesis>,
    mut invariants: impl Invariants,
    history: &History,
    phases: &Phases,
    run: &RunSettings,
) -> Result<SimOutcome, String> {
    let (mut breached, mut next_check) = (BTreeSet::new(), Duration::ZERO);
    loop {
        let done = world.step().map_err(|e| format!("seed {}: {e}", run.seed))?;
        if done {
            break;
        }
        if world.elapsed() >= next_check {
            next_check = world.elapsed() + INVARIANTS_EVERY;
            for breach in invariants.check() {
                if breached.insert(breach.key) {
                    history.record_at(world.elapsed(), Event::InvariantBroken(breach.detail));
                }
            }
        }
        let healed = phases.healed.load(Ordering::SeqCst);
        if phases.sending_done.load(Ordering::SeqCst) && !healed {
            if let Some(nemesis) = &mut nemesis {
                for fault in nemesis.heal_all(&mut world) {
                    history.record_at(world.elapsed(), Event::Note(fault.to_string()));
                }
            }
            history.record_at(world.elapsed(), Event::Healed);
            phases.healed.store(true, Ordering::SeqCst);
        } else if let Some(nemesis) = &mut nemesis
            && !healed
            && let Some(fault) = nemesis.step(&mut world)
        {
            history.record_at(world.elapsed(), Event::Note(fault.to_string()));
        }
    }
    let records = history.records();
    let mut trace = TraceHash::new(run.keep_trace);
    for record in &records {
        trace.record(record.to_string());
    }
    Ok(SimOutcome {
        verdict: check(&records),
        availability: measure(&records),
        trace,
        records,
        elapsed: world.elapsed(),
    })
}
