//! The nemesis: faults drawn from the seed and applied between simulation steps — power-offs
//! and restarts of any server, network partitions between any two hosts, full and failing
//! disks — until the harness asks it to heal everything. A [`FaultFamily`] says which kinds a
//! run draws.
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
use twinmq_runtime::{DiskFaults, Rng};

/// Least and most simulated time between two faults.
const FAULT_GAP_MS: (u64, u64) = (300, 3_000);

/// The kinds of fault a run draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultFamily {
    /// No faults at all.
    None,
    /// Network partitions between any two hosts (the application's too).
    Network,
    /// Power-offs and restarts of servers; writes tear at 512-byte blocks when power goes.
    Crash,
    /// Disks that fill up or fail (and recover), with power-offs and torn writes.
    Disk,
    /// Partitions and power-offs together (writes are atomic).
    Mixed,
}

impl FaultFamily {
    /// The families that inject something, in table order.
    pub const ALL: [Self; 4] = [Self::Network, Self::Crash, Self::Disk, Self::Mixed];

    /// Its name on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Network => "network",
            Self::Crash => "crash",
            Self::Disk => "disk",
            Self::Mixed => "mixed",
        }
    }

    /// The family called `name`.
    pub fn parse(name: &str) -> Result<Self, String> {
        [Self::None, Self::Network, Self::Crash, Self::Disk, Self::Mixed]
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| {
                format!("unknown fault family {name:?} (none, network, crash, disk, mixed)")
            })
    }

    /// Whether a crash tears the writes in flight (turmoil's `block_size`).
    pub fn tears_writes(self) -> bool {
        matches!(self, Self::Crash | Self::Disk)
    }
}

impl fmt::Display for FaultFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the nemesis does next when it does not heal.
enum Kind {
    PowerOff,
    Partition,
    DiskFull,
    DiskFailing,
}

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
    /// A host's disk filled up: writes fail with ENOSPC.
    DiskFull(String),
    /// A host's disk started failing: writes and syncs fail with EIO.
    DiskFailing(String),
    /// A host's disk works again.
    DiskHealed(String),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PowerOff(host) => write!(f, "power-off {host}"),
            Self::PowerOn(host) => write!(f, "power-on {host}"),
            Self::Partition(a, b) => write!(f, "partition {a} {b}"),
            Self::Repair(a, b) => write!(f, "repair {a} {b}"),
            Self::DiskFull(host) => write!(f, "disk-full {host}"),
            Self::DiskFailing(host) => write!(f, "disk-failing {host}"),
            Self::DiskHealed(host) => write!(f, "disk-healed {host}"),
        }
    }
}

/// Faults for one run.
#[derive(Debug)]
pub struct Nemesis {
    rng: Rng,
    family: FaultFamily,
    servers: Vec<String>,
    disks: Vec<DiskFaults>,
    app: String,
    next_at: Duration,
    down: BTreeSet<String>,
    cut: BTreeSet<(String, String)>,
    sick: BTreeSet<String>,
}

impl Nemesis {
    /// A nemesis drawing `family`'s faults for `servers` (which it may power off, and whose
    /// disks it may break) and the application host `app` (which it only partitions).
    pub fn new(
        seed: u64,
        family: FaultFamily,
        servers: Vec<(String, DiskFaults)>,
        app: String,
    ) -> Self {
        let mut rng = Rng::from_seed_and_stream(seed, "nemesis");
        let first = Duration::from_millis(rng.random_range(FAULT_GAP_MS.0..=FAULT_GAP_MS.1));
        let (servers, disks) = servers.into_iter().unzip();
        Self {
            rng,
            family,
            servers,
            disks,
            app,
            next_at: first,
            down: BTreeSet::new(),
            cut: BTreeSet::new(),
            sick: BTreeSet::new(),
        }
    }

    fn disk(&self, host: &str) -> Option<&DiskFaults> {
        self.servers.iter().position(|s| s == host).map(|i| &self.disks[i])
    }

    /// Acts if its next fault is due: returns what it did.
    pub fn step(&mut self, sim: &mut turmoil::Sim<'_>) -> Option<Fault> {
        if sim.elapsed() < self.next_at {
            return None;
        }
        let gap = self.rng.random_range(FAULT_GAP_MS.0..=FAULT_GAP_MS.1);
        self.next_at = sim.elapsed() + Duration::from_millis(gap);
        let heal = (!self.down.is_empty() || !self.cut.is_empty() || !self.sick.is_empty())
            && self.rng.random_bool(0.5);
        if heal {
            let downs: Vec<String> = self.down.iter().cloned().collect();
            let cuts: Vec<(String, String)> = self.cut.iter().cloned().collect();
            let sick: Vec<String> = self.sick.iter().cloned().collect();
            let pick = self.rng.random_range(0..downs.len() + cuts.len() + sick.len());
            return Some(if let Some(host) = downs.get(pick) {
                self.power_on(sim, host.clone())
            } else if let Some((a, b)) = cuts.get(pick - downs.len()) {
                self.repair(sim, a.clone(), b.clone())
            } else {
                self.heal_disk(sick[pick - downs.len() - cuts.len()].clone())
            });
        }
        let kind = match self.family {
            FaultFamily::None => return None,
            FaultFamily::Network => Kind::Partition,
            FaultFamily::Crash => Kind::PowerOff,
            FaultFamily::Mixed if self.rng.random_bool(0.5) => Kind::PowerOff,
            FaultFamily::Mixed => Kind::Partition,
            FaultFamily::Disk => match self.rng.random_range(0..3) {
                0 => Kind::PowerOff,
                1 => Kind::DiskFull,
                _ => Kind::DiskFailing,
            },
        };
        match kind {
            Kind::PowerOff => {
                let up: Vec<&String> =
                    self.servers.iter().filter(|s| !self.down.contains(*s)).collect();
                let host = up.get(self.rng.random_range(0..up.len().max(1)))?.to_string();
                Some(self.power_off(sim, host))
            }
            Kind::DiskFull | Kind::DiskFailing => {
                let healthy: Vec<&String> =
                    self.servers.iter().filter(|s| !self.sick.contains(*s)).collect();
                let host = healthy.get(self.rng.random_range(0..healthy.len().max(1)))?.to_string();
                let disk = self.disk(&host)?.clone();
                self.sick.insert(host.clone());
                Some(if matches!(kind, Kind::DiskFull) {
                    disk.set_full(true);
                    Fault::DiskFull(host)
                } else {
                    disk.set_failing(true);
                    Fault::DiskFailing(host)
                })
            }
            Kind::Partition => {
                let everyone: Vec<String> =
                    self.servers.iter().chain(std::iter::once(&self.app)).cloned().collect();
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
        }
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
        for host in self.sick.clone() {
            healed.push(self.heal_disk(host));
        }
        healed
    }

    fn heal_disk(&mut self, host: String) -> Fault {
        if let Some(disk) = self.disk(&host) {
            disk.set_full(false);
            disk.set_failing(false);
        }
        self.sick.remove(&host);
        Fault::DiskHealed(host)
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
