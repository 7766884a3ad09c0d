//! The nemesis: faults drawn from the seed and applied between simulation steps — power-offs
//! and restarts of any server, and network partitions between any two hosts — until the
//! harness asks it to heal everything.
//!
//! A power-off cuts the host off from every other host *before* its runtime is dropped: tokio
//! drops a runtime's tasks in an order set by process-wide task ids (which other simulations
//! running in parallel change), so the connections it closes must not reach anyone for the run
//! to stay a function of its seed. Peers see silence, as after a real power loss, and unsynced
//! writes are lost (turmoil's file system).

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use rand::Rng as _;
use twinmq_runtime::Rng;

/// Least and most simulated time between two faults.
const FAULT_GAP_MS: (u64, u64) = (300, 3_000);

/// One thing the nemesis did.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// A host lost power: cut off, crashed, unsynced writes gone.
    PowerOff(String),
    /// A host came back (its software restarted from its disk).
    PowerOn(String),
    /// Two hosts stopped hearing each other.
    Partition(String, String),
    /// Two hosts hear each other again.
    Repair(String, String),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PowerOff(host) => write!(f, "power-off {host}"),
            Self::PowerOn(host) => write!(f, "power-on {host}"),
            Self::Partition(a, b) => write!(f, "partition {a} {b}"),
            Self::Repair(a, b) => write!(f, "repair {a} {b}"),
        }
    }
}

/// Faults for one run.
#[derive(Debug)]
pub struct Nemesis {
    rng: Rng,
    servers: Vec<String>,
    app: String,
    next_at: Duration,
    down: BTreeSet<String>,
    cut: BTreeSet<(String, String)>,
}

impl Nemesis {
    /// A nemesis for `servers` (which it may power off) and the application host `app` (which
    /// it only partitions).
    pub fn new(seed: u64, servers: Vec<String>, app: String) -> Self {
        let mut rng = Rng::from_seed_and_stream(seed, "nemesis");
        let first = Duration::from_millis(rng.random_range(FAULT_GAP_MS.0..=FAULT_GAP_MS.1));
        Self { rng, servers, app, next_at: first, down: BTreeSet::new(), cut: BTreeSet::new() }
    }

    /// Acts if its next fault is due: returns what it did.
    pub fn step(&mut self, sim: &mut turmoil::Sim<'_>) -> Option<Fault> {
        if sim.elapsed() < self.next_at {
            return None;
        }
        let gap = self.rng.random_range(FAULT_GAP_MS.0..=FAULT_GAP_MS.1);
        self.next_at = sim.elapsed() + Duration::from_millis(gap);
        let heal = (!self.down.is_empty() || !self.cut.is_empty()) && self.rng.random_bool(0.5);
        if heal {
            let downs: Vec<String> = self.down.iter().cloned().collect();
            let cuts: Vec<(String, String)> = self.cut.iter().cloned().collect();
            let pick = self.rng.random_range(0..downs.len() + cuts.len());
            return Some(match downs.get(pick) {
                Some(host) => self.power_on(sim, host.clone()),
                None => {
                    let (a, b) = cuts[pick - downs.len()].clone();
                    self.repair(sim, a, b)
                }
            });
        }
        let everyone: Vec<String> =
            self.servers.iter().chain(std::iter::once(&self.app)).cloned().collect();
        if self.rng.random_bool(0.5) {
            let up: Vec<&String> =
                self.servers.iter().filter(|s| !self.down.contains(*s)).collect();
            let host = up.get(self.rng.random_range(0..up.len().max(1)))?.to_string();
            return Some(self.power_off(sim, host));
        }
        let a = everyone[self.rng.random_range(0..everyone.len())].clone();
        let b = everyone[self.rng.random_range(0..everyone.len())].clone();
        let pair = ordered(a, b);
        if pair.0 == pair.1 || self.cut.contains(&pair) {
            return None;
        }
        sim.partition(pair.0.as_str(), pair.1.as_str());
        self.cut.insert(pair.clone());
        Some(Fault::Partition(pair.0, pair.1))
    }

    /// Powers every host back on and repairs every link; returns what it did.
    pub fn heal_all(&mut self, sim: &mut turmoil::Sim<'_>) -> Vec<Fault> {
        let mut healed = Vec::new();
        for host in self.down.clone() {
            healed.push(self.power_on(sim, host));
        }
        for (a, b) in self.cut.clone() {
            healed.push(self.repair(sim, a, b));
        }
        healed
    }

    fn power_off(&mut self, sim: &mut turmoil::Sim<'_>, host: String) -> Fault {
        for peer in self.servers.iter().chain(std::iter::once(&self.app)) {
            if *peer != host {
                sim.partition(host.as_str(), peer.as_str());
            }
        }
        sim.crash(host.as_str());
        self.down.insert(host.clone());
        Fault::PowerOff(host)
    }

    fn power_on(&mut self, sim: &mut turmoil::Sim<'_>, host: String) -> Fault {
        sim.bounce(host.as_str());
        for peer in self.servers.iter().chain(std::iter::once(&self.app)) {
            if *peer != host && !self.cut.contains(&ordered(host.clone(), peer.clone())) {
                sim.repair(host.as_str(), peer.as_str());
            }
        }
        self.down.remove(&host);
        Fault::PowerOn(host)
    }

    fn repair(&mut self, sim: &mut turmoil::Sim<'_>, a: String, b: String) -> Fault {
        self.cut.remove(&(a.clone(), b.clone()));
        // A powered-off end stays cut off until it powers on.
        if !self.down.contains(&a) && !self.down.contains(&b) {
            sim.repair(a.as_str(), b.as_str());
        }
        Fault::Repair(a, b)
    }
}

fn ordered(a: String, b: String) -> (String, String) {
    if a <= b { (a, b) } else { (b, a) }
}
