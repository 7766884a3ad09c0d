//! The simulated environment: turmoil's network and file system, its virtual clock, and random
//! streams derived from the simulation seed and the host's name.

mod fs;
mod net;

pub use fs::{DiskFaults, SimFile, SimFs};
pub use net::SimNet;

use crate::{Clock, Env, Rng};

/// The environment of one turmoil host. Use it only inside a turmoil simulation.
#[derive(Debug, Clone)]
pub struct SimEnv {
    net: SimNet,
    fs: SimFs,
    clock: Clock,
    seed: u64,
}

impl SimEnv {
    /// The environment of the host named `host` in the simulation seeded with `seed`.
    pub fn for_host(seed: u64, host: &str) -> Self {
        let host_seed = Rng::from_seed_and_stream(seed, host);
        Self {
            net: SimNet,
            fs: SimFs::default(),
            clock: Clock::simulated(),
            seed: rand::RngCore::next_u64(&mut host_seed.clone()),
        }
    }

    /// The same host on a disk whose faults `faults` switches.
    pub fn with_disk_faults(mut self, faults: DiskFaults) -> Self {
        self.fs = SimFs::with_faults(faults);
        self
    }
}

impl Env for SimEnv {
    type Net = SimNet;
    type Fs = SimFs;

    fn net(&self) -> &SimNet {
        &self.net
    }

    fn fs(&self) -> &SimFs {
        &self.fs
    }

    fn clock(&self) -> &Clock {
        &self.clock
    }

    fn rng(&self, stream: &str) -> Rng {
        Rng::from_seed_and_stream(self.seed, stream)
    }
}
