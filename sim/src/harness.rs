//! What every cluster simulation shares: the turmoil world's settings, the loop that steps it
//! while the nemesis acts, the heal once the workload has sent everything, and the outcome —
//! the checkers' verdict over the history and the hash of its trace.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use crate::checker::{Verdict, check};
use crate::history::{Event, History, Record};
use crate::nemesis::Nemesis;
use crate::trace::TraceHash;

/// The longest simulated time a run may take before turmoil stops it as hung.
pub const SIMULATION_LIMIT: Duration = Duration::from_secs(900);

/// What one run found.
#[derive(Debug, Clone)]
pub struct SimOutcome {
    /// The checkers' verdict.
    pub verdict: Verdict,
    /// The hash of the run's event trace.
    pub trace: TraceHash,
    /// The history, in order.
    pub records: Vec<Record>,
    /// Simulated time the run took.
    pub elapsed: Duration,
}

/// A turmoil world for `seed`: 1 ms ticks, a fixed epoch, the simulation limit.
pub fn world<'a>(seed: u64) -> turmoil::Sim<'a> {
    turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .tick_duration(Duration::from_millis(1))
        .simulation_duration(SIMULATION_LIMIT)
        .build()
}

/// The flags through which the workload and the harness hand over: the workload raises
/// `sending_done` when every send is resolved, the harness heals every fault and raises
/// `healed`, and the workload drains.
#[derive(Debug, Clone, Default)]
pub struct Phases {
    /// Every send has an answer.
    pub sending_done: Arc<AtomicBool>,
    /// Every fault is healed; drain.
    pub healed: Arc<AtomicBool>,
}

impl Phases {
    /// Fresh flags.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits (in simulated time) until the harness healed everything.
    pub async fn wait_healed(&self) {
        while !self.healed.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Steps `world` to its end: the nemesis acts until the workload has sent everything, then
/// heals every fault; returns the outcome judged over `history`.
pub fn drive(
    mut world: turmoil::Sim<'_>,
    mut nemesis: Option<Nemesis>,
    history: &History,
    phases: &Phases,
    keep_trace: bool,
    seed: u64,
) -> Result<SimOutcome, String> {
    loop {
        let done = world.step().map_err(|e| format!("seed {seed}: {e}"))?;
        if done {
            break;
        }
        let healed = phases.healed.load(Ordering::SeqCst);
        if phases.sending_done.load(Ordering::SeqCst) && !healed {
            if let Some(nemesis) = &mut nemesis {
                for fault in nemesis.heal_all(&mut world) {
                    history.record_at(world.elapsed(), Event::Note(fault.to_string()));
                }
            }
            history.record_at(world.elapsed(), Event::Note("healed; draining".into()));
            phases.healed.store(true, Ordering::SeqCst);
        } else if let Some(nemesis) = &mut nemesis
            && !healed
            && let Some(fault) = nemesis.step(&mut world)
        {
            history.record_at(world.elapsed(), Event::Note(fault.to_string()));
        }
    }
    let records = history.records();
    let mut trace = TraceHash::new(keep_trace);
    for record in &records {
        trace.record(record.to_string());
    }
    Ok(SimOutcome { verdict: check(&records), trace, records, elapsed: world.elapsed() })
}
