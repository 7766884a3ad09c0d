//! The seams through which twinmq touches the world.
//!
//! Every broker, client and storage structure in twinmq is generic over an [`Env`]: the network
//! ([`Net`]), the file system ([`Fs`]), wall-clock time ([`Clock`]) and randomness ([`Rng`]).
//! There are exactly two implementations, chosen by value at start-up:
//!
//! - [`RealEnv`]: tokio sockets, `std::fs` with reads served from a memory map, the system clock
//!   and a seed drawn from the OS.
//! - [`SimEnv`]: turmoil's simulated sockets and file system (`unstable-fs`: unsynced writes are
//!   lost on crash, writes may tear, I/O may fail), the simulation's virtual clock and a seeded
//!   random stream, so that a simulated run is a pure function of its seed.
//!
//! Durations and timeouts use `tokio::time`, which turmoil virtualises; nothing else in the
//! workspace may touch `tokio::net`, `std::fs`, `SystemTime`, `Instant::now` or an unseeded rng.

mod clock;
mod fs;
mod host;
mod net;
mod real;
mod rng;
mod shutdown;
mod sim;

pub use clock::Clock;
pub use fs::{File, Fs, OpenMode};
pub use host::Host;
pub use net::{Listener, Net};
pub use real::{RealEnv, RealFile, RealFs, RealNet};
pub use rng::Rng;
pub use shutdown::Shutdown;
pub use sim::{DiskFaults, SimEnv, SimFile, SimFs, SimNet};

/// Everything a node may touch outside its own memory.
///
/// Production code is generic over it; [`RealEnv`] and [`SimEnv`] are the only implementations.
pub trait Env: Clone + Send + Sync + 'static {
    /// The network seam.
    type Net: Net;
    /// The file system seam.
    type Fs: Fs;
    /// The network this node uses.
    fn net(&self) -> &Self::Net;
    /// The file system this node uses.
    fn fs(&self) -> &Self::Fs;
    /// Wall-clock timestamps (message time, retention).
    fn clock(&self) -> &Clock;
    /// An independent random stream named `stream`: a draw in one component never shifts another's.
    fn rng(&self, stream: &str) -> Rng;
}
