//! StoreCheckpoint — the physical offset below which every consume queue and index entry of a
//! RocketMQ-layout store is durable, so recovery re-dispatches only what comes after it.
//!
//! ## Format
//!
//! File `checkpoint`, 20 bytes, big-endian: `dispatched_physical_offset u64 | timestamp_ms i64
//! | crc32c u32` (CRC of the first 16 bytes).
//!
//! ## Crash contract
//!
//! Written to `checkpoint.tmp`, synced, renamed over `checkpoint`, directory synced: a crash
//! leaves either the old or the new checkpoint whole. A missing or damaged checkpoint means
//! "re-dispatch everything", never an error.

use std::path::Path;

use twinmq_runtime::Fs;

use crate::atomic_file::{read_whole, write_atomically};
use crate::error::Result;

/// The recovery point of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreCheckpoint {
    /// Every message below this physical offset is in the consume queues and index, durably.
    pub dispatched_physical_offset: u64,
    /// When the checkpoint was taken.
    pub timestamp_ms: i64,
}

impl StoreCheckpoint {
    /// Reads the checkpoint in `dir`; `None` when missing or damaged.
    pub fn read<F: Fs>(fs: &F, dir: &Path) -> Option<Self> {
        let path = dir.join("checkpoint");
        let bytes = read_whole(fs, &path)?;
        let crc = u32::from_be_bytes(bytes.get(16..20)?.try_into().ok()?);
        if crc32c::crc32c(bytes.get(..16)?) != crc {
            tracing::warn!(file = %path.display(), "damaged checkpoint; re-dispatching from the start");
            return None;
        }
        Some(Self {
            dispatched_physical_offset: u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?),
            timestamp_ms: i64::from_be_bytes(bytes.get(8..16)?.try_into().ok()?),
        })
    }

    /// Writes the checkpoint into `dir` atomically and durably.
    pub fn write<F: Fs>(&self, fs: &F, dir: &Path) -> Result<()> {
        let mut bytes = Vec::with_capacity(20);
        bytes.extend_from_slice(&self.dispatched_physical_offset.to_be_bytes());
        bytes.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        bytes.extend_from_slice(&crc32c::crc32c(&bytes).to_be_bytes());
        write_atomically(fs, &dir.join("checkpoint"), &bytes)
    }
}
