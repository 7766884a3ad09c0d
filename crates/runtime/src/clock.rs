//! Wall-clock time: the system's on a real machine, the simulation's epoch plus its virtual
//! elapsed time in turmoil, with an adjustable skew so a nemesis can make clocks disagree.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock timestamps in milliseconds since the Unix epoch.
#[derive(Debug, Clone)]
pub struct Clock {
    source: Source,
    skew_ms: Arc<AtomicI64>,
}

#[derive(Debug, Clone, Copy)]
enum Source {
    System,
    Simulated,
}

impl Clock {
    /// The operating system's clock.
    pub fn system() -> Self {
        Self { source: Source::System, skew_ms: Arc::default() }
    }

    /// turmoil's virtual clock (the simulation's epoch plus its elapsed virtual time).
    pub fn simulated() -> Self {
        Self { source: Source::Simulated, skew_ms: Arc::default() }
    }

    /// Milliseconds since the Unix epoch, skew included.
    pub fn now_ms(&self) -> i64 {
        let since_epoch = match self.source {
            Source::System => {
                SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO)
            }
            Source::Simulated => turmoil::since_epoch().unwrap_or(Duration::ZERO),
        };
        i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
            + self.skew_ms.load(Ordering::Relaxed)
    }

    /// Shifts this clock (and every clone of it) by `skew_ms` from its source.
    pub fn set_skew_ms(&self, skew_ms: i64) {
        self.skew_ms.store(skew_ms, Ordering::Relaxed);
    }
}
