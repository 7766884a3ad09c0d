//! The real environment: tokio sockets, `std::fs` with memory-mapped reads, the system clock.

mod fs;
mod net;

pub use fs::{RealFile, RealFs};
pub use net::RealNet;

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

use crate::{Clock, Env, Rng};

/// The environment of a real process.
#[derive(Debug, Clone)]
pub struct RealEnv {
    net: RealNet,
    fs: RealFs,
    clock: Clock,
    seed: u64,
}

impl RealEnv {
    /// A real environment whose random streams are seeded from the operating system.
    pub fn new() -> Self {
        Self::with_seed(SmallRng::from_os_rng().next_u64())
    }

    /// A real environment whose random streams derive from `seed` (for repeatable benches).
    pub fn with_seed(seed: u64) -> Self {
        Self { net: RealNet, fs: RealFs, clock: Clock::system(), seed }
    }

    /// The seed every random stream of this environment derives from.
    pub fn seed(&self) -> u64 {
        self.seed
    }
}

impl Default for RealEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl Env for RealEnv {
    type Net = RealNet;
    type Fs = RealFs;

    fn net(&self) -> &RealNet {
        &self.net
    }

    fn fs(&self) -> &RealFs {
        &self.fs
    }

    fn clock(&self) -> &Clock {
        &self.clock
    }

    fn rng(&self, stream: &str) -> Rng {
        Rng::from_seed_and_stream(self.seed, stream)
    }
}
