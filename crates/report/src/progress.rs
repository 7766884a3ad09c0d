//! Progress — how a long run tells its caller what it is doing: phases of steps, each step's
//! live message counts while it runs. The command draws progress bars from it; tests stay
//! silent.

use std::sync::Arc;

use twinmq_loadgen::LiveCounts;

/// Receives a run's progress.
pub trait Progress: Send + Sync {
    /// A phase of `steps` steps begins.
    fn phase(&self, name: &str, steps: u64);
    /// A step begins; `live` counts its messages while it runs (none for storage steps).
    fn step(&self, label: &str, live: Option<Arc<LiveCounts>>);
    /// The step ended; `outcome` says how, in one line.
    fn step_done(&self, outcome: &str);
}

/// Progress nobody watches.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn phase(&self, _name: &str, _steps: u64) {}
    fn step(&self, _label: &str, _live: Option<Arc<LiveCounts>>) {}
    fn step_done(&self, _outcome: &str) {}
}
