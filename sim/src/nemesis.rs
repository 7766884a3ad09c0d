//! The nemesis: faults drawn from the seed and applied between simulation steps — power-offs
//! and restarts of any server; partitions between two hosts, between random halves of the
//! cluster, around one server, or one way only; held, slow and flaky links; full and failing
//! disks — until the harness asks it to heal everything. A [`FaultFamily`] says which kinds a
//! run draws; each fault, once applied, may be undone by a later step.
//!
//! A power-off cuts the host off from every other host *before* its runtime is dropped: tokio
//! drops a runtime's tasks in an order set by process-wide task ids (which other simulations
//! running in parallel change), so the connections it closes must not reach anyone for the run
//! to stay a function of its seed. Peers see silence, as after a real power loss, and unsynced
//! writes are lost (turmoil's file system).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use rand::Rng as _;
use twinmq_runtime::{DiskFaults, Rng};

use link::{LinkFault, Pair, pair};

pub mod link;

/// Least and most simulated time between two faults.
const FAULT_GAP_MS: (u64, u64) = (300, 3_000);

/// The kinds of fault a run draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultFamily {
    /// No faults at all.
    None,
    /// Link faults between hosts (the application's too): partitions of every shape, held,
    /// slow and flaky links.
    Network,
    /// Power-offs and restarts of servers; writes tear at 512-byte blocks when power goes.
    Crash,
    /// Disks that fill up or fail (and recover), with power-offs and torn writes.
    Disk,
    /// Link faults and power-offs together (writes are atomic).
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
#[derive(Clone, Copy)]
enum Kind {
    PowerOff,
    Link(LinkKind),
    DiskFull,
    DiskFailing,
}

/// The shapes of link fault.
#[derive(Clone, Copy)]
enum LinkKind {
    /// Two hosts cut apart.
    Partition,
    /// Every host on one side of a random split cut from every host on the other.
    Split,
    /// One server cut from everyone.
    Isolate,
    /// Two hosts, cut one way.
    OneWay,
    /// A link that holds its messages.
    Hold,
    /// A slow link.
    Slow,
    /// A flaky link.
    Flaky,
}

impl LinkKind {
    const ALL: [Self; 7] = [
        Self::Partition,
        Self::Split,
        Self::Isolate,
        Self::OneWay,
        Self::Hold,
        Self::Slow,
        Self::Flaky,
    ];
}

/// One thing the nemesis did.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// A host lost power: cut off, crashed, unsynced writes gone.
    PowerOff(String),
    /// A host came back (its software restarted from its disk).
    PowerOn(String),
    /// Links failed, as described.
    LinksBroke(String),
    /// The links of an earlier fault work again.
    LinksMended(String),
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
            Self::LinksBroke(what) => f.write_str(what),
            Self::LinksMended(what) => write!(f, "mend {what}"),
            Self::DiskFull(host) => write!(f, "disk-full {host}"),
            Self::DiskFailing(host) => write!(f, "disk-failing {host}"),
            Self::DiskHealed(host) => write!(f, "disk-healed {host}"),
        }
    }
}

/// A fault in force, which a later step may undo.
#[derive(Debug)]
enum Active {
    Down(String),
    Sick(String),
    Links { what: String, pairs: Vec<Pair> },
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
    active: Vec<Active>,
    down: BTreeSet<String>,
    links: BTreeMap<Pair, LinkFault>,
}

impl Nemesis {
    /// A nemesis drawing `family`'s faults for `servers` (which it may power off, and whose
    /// disks it may break) and the application host `app` (whose links it may break).
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
            active: Vec::new(),
            down: BTreeSet::new(),
            links: BTreeMap::new(),
        }
    }

    fn disk(&self, host: &str) -> Option<&DiskFaults> {
        self.servers.iter().position(|s| s == host).map(|i| &self.disks[i])
    }

    /// Every host: the servers, then the application.
    fn everyone(&self) -> Vec<String> {
        self.servers.iter().chain(std::iter::once(&self.app)).cloned().collect()
    }

    /// Acts if its next fault is due: returns what it did.
    pub fn step(&mut self, sim: &mut turmoil::Sim<'_>) -> Option<Fault> {
        if sim.elapsed() < self.next_at {
            return None;
        }
        let gap = self.rng.random_range(FAULT_GAP_MS.0..=FAULT_GAP_MS.1);
        self.next_at = sim.elapsed() + Duration::from_millis(gap);
        if !self.active.is_empty() && self.rng.random_bool(0.5) {
            let pick = self.rng.random_range(0..self.active.len());
            let undone = self.active.remove(pick);
            return Some(self.undo(sim, undone));
        }
        let kind = match self.family {
            FaultFamily::None => return None,
            FaultFamily::Crash => Kind::PowerOff,
            FaultFamily::Mixed if self.rng.random_bool(0.5) => Kind::PowerOff,
            FaultFamily::Network | FaultFamily::Mixed => {
                Kind::Link(LinkKind::ALL[self.rng.random_range(0..LinkKind::ALL.len())])
            }
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
                let sick: BTreeSet<&String> = self
                    .active
                    .iter()
                    .filter_map(|a| if let Active::Sick(h) = a { Some(h) } else { None })
                    .collect();
                let healthy: Vec<&String> =
                    self.servers.iter().filter(|s| !sick.contains(s)).collect();
                let host = healthy.get(self.rng.random_range(0..healthy.len().max(1)))?.to_string();
                let disk = self.disk(&host)?.clone();
                self.active.push(Active::Sick(host.clone()));
                Some(if matches!(kind, Kind::DiskFull) {
                    disk.set_full(true);
                    Fault::DiskFull(host)
                } else {
                    disk.set_failing(true);
                    Fault::DiskFailing(host)
                })
            }
            Kind::Link(shape) => self.break_links(sim, shape),
        }
    }

    /// Draws and applies a link fault of `shape`; `None` when the draw found no link free of
    /// faults between running hosts.
    fn break_links(&mut self, sim: &mut turmoil::Sim<'_>, shape: LinkKind) -> Option<Fault> {
        let everyone = self.everyone();
        let draw = |rng: &mut Rng| everyone[rng.random_range(0..everyone.len())].clone();
        let (what, faults): (String, Vec<(Pair, LinkFault)>) = match shape {
            LinkKind::Split => {
                let (side, other): (Vec<String>, Vec<String>) =
                    everyone.iter().cloned().partition(|_| self.rng.random_bool(0.5));
                let cross = side.iter().flat_map(|a| other.iter().map(|b| pair(a, b)));
                let what = format!("split [{}] | [{}]", side.join(" "), other.join(" "));
                (what, cross.map(|p| (p, LinkFault::Cut)).collect())
            }
            LinkKind::Isolate => {
                let host = self.servers[self.rng.random_range(0..self.servers.len())].clone();
                let around = everyone.iter().filter(|h| **h != host).map(|h| pair(&host, h));
                (format!("isolate {host}"), around.map(|p| (p, LinkFault::Cut)).collect())
            }
            LinkKind::Partition
            | LinkKind::OneWay
            | LinkKind::Hold
            | LinkKind::Slow
            | LinkKind::Flaky => {
                let (a, b) = (draw(&mut self.rng), draw(&mut self.rng));
                if a == b || self.down.contains(&a) || self.down.contains(&b) {
                    return None;
                }
                let (fault, what) = match shape {
                    LinkKind::Partition => (LinkFault::Cut, format!("partition {a} {b}")),
                    LinkKind::OneWay => {
                        (LinkFault::OneWay { from: a.clone() }, format!("partition {a} -> {b}"))
                    }
                    LinkKind::Hold => (LinkFault::Held, format!("hold {a} {b}")),
                    LinkKind::Slow => (LinkFault::Slow, format!("slow {a} {b}")),
                    _ => (LinkFault::Flaky, format!("flaky {a} {b}")),
                };
                (what, vec![(pair(&a, &b), fault)])
            }
        };
        let free: Vec<(Pair, LinkFault)> =
            faults.into_iter().filter(|(p, _)| !self.links.contains_key(p)).collect();
        if free.is_empty() {
            return None;
        }
        let mut pairs = Vec::with_capacity(free.len());
        for (link, fault) in free {
            fault.apply(sim, &link);
            self.links.insert(link.clone(), fault);
            pairs.push(link);
        }
        self.active.push(Active::Links { what: what.clone(), pairs });
        Some(Fault::LinksBroke(what))
    }

    /// Undoes one fault in force.
    fn undo(&mut self, sim: &mut turmoil::Sim<'_>, fault: Active) -> Fault {
        match fault {
            Active::Down(host) => self.power_on(sim, host),
            Active::Sick(host) => {
                if let Some(disk) = self.disk(&host) {
                    disk.set_full(false);
                    disk.set_failing(false);
                }
                Fault::DiskHealed(host)
            }
            Active::Links { what, pairs } => {
                for link in pairs {
                    if let Some(fault) = self.links.remove(&link) {
                        // A powered-off end stays cut off until it powers on.
                        let up = !self.down.contains(&link.0) && !self.down.contains(&link.1);
                        fault.restore(sim, &link, up);
                    }
                }
                Fault::LinksMended(what)
            }
        }
    }

    /// Powers every host back on, mends every link and heals every disk; returns what it did.
    pub fn heal_all(&mut self, sim: &mut turmoil::Sim<'_>) -> Vec<Fault> {
        let mut active = std::mem::take(&mut self.active);
        // Power first, so that mending a link finds both its ends up.
        active.sort_by_key(|a| !matches!(a, Active::Down(_)));
        active.into_iter().map(|fault| self.undo(sim, fault)).collect()
    }

    fn power_off(&mut self, sim: &mut turmoil::Sim<'_>, host: String) -> Fault {
        for peer in self.everyone() {
            if peer != host {
                sim.partition(host.as_str(), peer.as_str());
            }
        }
        sim.crash(host.as_str());
        self.down.insert(host.clone());
        self.active.push(Active::Down(host.clone()));
        Fault::PowerOff(host)
    }

    fn power_on(&mut self, sim: &mut turmoil::Sim<'_>, host: String) -> Fault {
        sim.bounce(host.as_str());
        self.down.remove(&host);
        for peer in self.everyone() {
            if peer == host || self.down.contains(&peer) {
                continue;
            }
            match self.links.get(&pair(&host, &peer)) {
                Some(LinkFault::Cut) => {}
                Some(fault) if fault.blocks() => {
                    sim.repair(host.as_str(), peer.as_str());
                    fault.apply(sim, &pair(&host, &peer));
                }
                _ => sim.repair(host.as_str(), peer.as_str()),
            }
        }
        Fault::PowerOn(host)
    }
}
