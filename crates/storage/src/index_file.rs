//! IndexFile — RocketMQ's key index: a hash table with chaining, inside a file, from message
//! key to physical offsets.
//!
//! ## Format (big-endian)
//!
//! ```text
//! header   40 bytes: begin_timestamp_ms i64, end_timestamp_ms i64, begin_physical_offset i64,
//!          end_physical_offset i64, hash_slot_count i32, index_count i32
//! slots    hash_slot_count × u32: the index of the newest entry whose key hashes there (0: none)
//! entries  index_entries_max × 20 bytes: key_hash i32, physical_offset i64,
//!          time_diff_s i32 (store time − begin timestamp, seconds), previous_index i32
//! ```
//!
//! Entry 0 is never used, so 0 ends a chain. Files live in `index/`, named by a sequence number
//! (20 digits); a full file is followed by a new one.
//!
//! ## Crash contract
//!
//! Derived data, synced by a store checkpoint and when a file fills up; the newest file's header
//! is kept in memory and written just before each sync (after an unclean shutdown that file is
//! removed whole anyway). On open, the header's `index_count` bounds every
//! chain and `end_physical_offset` is capped at the checkpoint, so re-dispatch re-adds anything
//! later; lookups verify each candidate against the stored message, so a stale or duplicate
//! entry can cost a read, never a wrong answer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use twinmq_runtime::{File, Fs, OpenMode};

use crate::error::{IoContext, Result, StorageError};
use crate::segment::{file_name, parse_file_name, sync_parent};
use crate::sync_steps::SyncSteps;

const HEADER_BYTES: u64 = 40;
const SLOT_BYTES: u64 = 4;
const ENTRY_BYTES: u64 = 20;

/// The header of an index file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Header {
    begin_timestamp_ms: i64,
    end_timestamp_ms: i64,
    begin_physical_offset: i64,
    end_physical_offset: i64,
    hash_slot_count: u32,
    index_count: u32,
}

impl Header {
    fn encode(&self) -> [u8; 40] {
        let mut bytes = [0; 40];
        bytes[..8].copy_from_slice(&self.begin_timestamp_ms.to_be_bytes());
        bytes[8..16].copy_from_slice(&self.end_timestamp_ms.to_be_bytes());
        bytes[16..24].copy_from_slice(&self.begin_physical_offset.to_be_bytes());
        bytes[24..32].copy_from_slice(&self.end_physical_offset.to_be_bytes());
        bytes[32..36].copy_from_slice(&self.hash_slot_count.to_be_bytes());
        bytes[36..40].copy_from_slice(&self.index_count.to_be_bytes());
        bytes
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let i64_at = |at: usize| {
            bytes.get(at..at + 8).and_then(|b| b.try_into().ok()).map(i64::from_be_bytes)
        };
        let u32_at = |at: usize| {
            bytes.get(at..at + 4).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes)
        };
        Some(Self {
            begin_timestamp_ms: i64_at(0)?,
            end_timestamp_ms: i64_at(8)?,
            begin_physical_offset: i64_at(16)?,
            end_physical_offset: i64_at(24)?,
            hash_slot_count: u32_at(32)?,
            index_count: u32_at(36)?,
        })
    }
}

/// One index file.
#[derive(Debug)]
struct Part<F: Fs> {
    sequence: u64,
    path: PathBuf,
    file: Arc<F::File>,
    header: Header,
}

impl<F: Fs> Part<F> {
    /// Writes the header (kept in memory between syncs) and syncs the file.
    fn write_header_and_sync(&self) -> Result<()> {
        self.write_header()?;
        self.file.sync_data().at(&self.path)
    }

    /// Writes the header (kept in memory between syncs).
    fn write_header(&self) -> Result<()> {
        self.file.write_all_at(0, &self.header.encode()).at(&self.path)
    }
}

/// The key index of a store: its files, the newest one taking new entries.
#[derive(Debug)]
pub struct IndexFile<F: Fs> {
    fs: F,
    dir: PathBuf,
    slots: u32,
    entries_max: u32,
    parts: Vec<Part<F>>,
    indexed_end: u64,
    /// The newest file took entries since it was last synced.
    unsynced: bool,
}

impl<F: Fs> IndexFile<F> {
    /// Opens the index in `dir`. After an unclean shutdown the newest file may hold torn
    /// entries, slots or header (none of it was synced since the last checkpoint): like
    /// RocketMQ, it is removed whole. Entries of messages the CommitLog lost (at or past
    /// `commitlog_end`) may remain in older files: they stay, harmless, because lookups verify
    /// every candidate, and indexing resumes at `commitlog_end`. Returns the index and the
    /// physical offset from which messages must be indexed again, if any.
    pub fn open(
        fs: F,
        dir: PathBuf,
        slots: u32,
        entries_max: u32,
        clean_shutdown: bool,
        commitlog_end: u64,
    ) -> Result<(Self, Option<u64>)> {
        if !fs.exists(&dir) {
            fs.create_dir_all(&dir).at(&dir)?;
            sync_parent(&fs, &dir)?;
        }
        let mut parts: Vec<Part<F>> = Vec::new();
        let mut reindex_from: Option<u64> = None;
        let mut removed = false;
        for path in fs.read_dir(&dir).at(&dir)? {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let Some(sequence) = parse_file_name(name, "") else { continue };
            let file = fs.open(&path, OpenMode::ReadWrite).at(&path)?;
            let header = file
                .read_at(0, HEADER_BYTES as usize)
                .ok()
                .and_then(|bytes| Header::decode(&bytes));
            match header {
                Some(header)
                    if header.hash_slot_count == slots && header.index_count <= entries_max + 1 =>
                {
                    parts.push(Part { sequence, path, file: Arc::new(file), header });
                }
                _ => {
                    tracing::warn!(file = %path.display(), "unreadable index file; removing it and indexing again");
                    drop(file);
                    fs.remove_file(&path).at(&path)?;
                    reindex_from = Some(0);
                    removed = true;
                }
            }
        }
        if !clean_shutdown && let Some(last) = parts.pop() {
            let from = if last.header.index_count == 0 {
                u64::MAX
            } else {
                u64::try_from(last.header.begin_physical_offset).unwrap_or(0)
            };
            tracing::info!(file = %last.path.display(), from, "unclean shutdown: removing the newest index file");
            let path = last.path.clone();
            drop(last);
            fs.remove_file(&path).at(&path)?;
            let resume = parts
                .last()
                .map_or(0, |p| u64::try_from(p.header.end_physical_offset).unwrap_or(0) + 1)
                .min(from);
            reindex_from = Some(reindex_from.map_or(resume, |r| r.min(resume)));
            removed = true;
        }
        if removed {
            fs.sync_dir(&dir).at(&dir)?;
        }
        if parts.is_empty() {
            // No index at all (new store, or its files were lost): index everything there is.
            reindex_from = Some(0);
        }
        // Messages at or past the CommitLog's end were lost (or never written): a file that
        // claims to index them is corrected, durably, so a later open does not trust the claim
        // once new messages have filled that range.
        let end_claim_max = i64::try_from(commitlog_end).unwrap_or(i64::MAX) - 1;
        for part in parts.iter_mut() {
            if part.header.end_physical_offset > end_claim_max {
                part.header.end_physical_offset = end_claim_max;
                part.write_header()?;
                part.file.sync_data().at(&part.path)?;
            }
        }
        let indexed_end = parts
            .iter()
            .filter(|p| p.header.index_count > 1)
            .map(|p| u64::try_from(p.header.end_physical_offset).unwrap_or(0) + 1)
            .max()
            .unwrap_or(0)
            .min(commitlog_end);
        let mut index = Self { fs, dir, slots, entries_max, parts, indexed_end, unsynced: false };
        if index.parts.is_empty() {
            index.add_part()?;
        }
        Ok((index, reindex_from))
    }

    /// The physical offset after the last indexed message: messages from here on are not
    /// indexed yet.
    pub fn indexed_end(&self) -> u64 {
        self.indexed_end
    }

    /// Indexes `key` for the message at `physical_offset` stored at `store_timestamp_ms`.
    pub fn put(&mut self, key: &[u8], physical_offset: u64, store_timestamp_ms: i64) -> Result<()> {
        if self.parts.last().is_none_or(|p| p.header.index_count >= self.entries_max) {
            self.add_part()?;
        }
        let slots = u64::from(self.slots);
        let part = self
            .parts
            .last_mut()
            .ok_or_else(|| StorageError::Refused("index has no file".into()))?;
        let hash = key_hash(key);
        let slot_position = HEADER_BYTES + u64::from(hash) % slots * SLOT_BYTES;
        let previous = read_u32(&*part.file, slot_position).at(&part.path)?;
        let previous = if previous < part.header.index_count { previous } else { 0 };
        let index = part.header.index_count.max(1);
        if part.header.index_count == 0 {
            part.header.begin_timestamp_ms = store_timestamp_ms;
            part.header.begin_physical_offset = i64::try_from(physical_offset).unwrap_or(i64::MAX);
        }
        let time_diff_s =
            i32::try_from((store_timestamp_ms - part.header.begin_timestamp_ms).max(0) / 1000)
                .unwrap_or(i32::MAX);
        let mut entry = [0u8; 20];
        entry[..4].copy_from_slice(&hash.to_be_bytes());
        entry[4..12].copy_from_slice(&physical_offset.to_be_bytes());
        entry[12..16].copy_from_slice(&time_diff_s.to_be_bytes());
        entry[16..20].copy_from_slice(&previous.to_be_bytes());
        let entry_position = HEADER_BYTES + slots * SLOT_BYTES + u64::from(index) * ENTRY_BYTES;
        self.unsynced = true;
        part.file.write_all_at(entry_position, &entry).at(&part.path)?;
        part.file.write_all_at(slot_position, &index.to_be_bytes()).at(&part.path)?;
        part.header.index_count = index + 1;
        part.header.end_timestamp_ms = store_timestamp_ms;
        part.header.end_physical_offset = i64::try_from(physical_offset).unwrap_or(i64::MAX);
        self.indexed_end = self.indexed_end.max(physical_offset + 1);
        Ok(())
    }

    /// Physical offsets of entries whose key hashes like `key`, newest first, at most
    /// `count_max`, stored within `[begin_ms, end_ms]`. Candidates: the caller verifies them.
    pub fn lookup(
        &self,
        key: &[u8],
        count_max: usize,
        begin_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<u64>> {
        let hash = key_hash(key);
        let slots = u64::from(self.slots);
        let mut found = Vec::new();
        for part in self.parts.iter().rev() {
            if part.header.end_timestamp_ms < begin_ms || part.header.begin_timestamp_ms > end_ms {
                continue;
            }
            let mut index =
                read_u32(&*part.file, HEADER_BYTES + u64::from(hash) % slots * SLOT_BYTES)
                    .at(&part.path)?;
            let mut steps = 0;
            while index > 0
                && index < part.header.index_count
                && found.len() < count_max
                && steps < self.entries_max
            {
                steps += 1;
                let position = HEADER_BYTES + slots * SLOT_BYTES + u64::from(index) * ENTRY_BYTES;
                let entry = part.file.read_at(position, ENTRY_BYTES as usize).at(&part.path)?;
                let word = |at: usize| {
                    u32::from_be_bytes([entry[at], entry[at + 1], entry[at + 2], entry[at + 3]])
                };
                let physical_offset =
                    u64::from_be_bytes(entry[4..12].try_into().unwrap_or_default());
                let stored_ms = part.header.begin_timestamp_ms + i64::from(word(12) as i32) * 1000;
                if word(0) == hash
                    && stored_ms + 999 >= begin_ms
                    && stored_ms <= end_ms
                    && !found.contains(&physical_offset)
                {
                    found.push(physical_offset);
                }
                let previous = word(16);
                if previous >= index {
                    break;
                }
                index = previous;
            }
        }
        Ok(found)
    }

    /// Syncs the newest index file if it took entries since its last sync (store checkpoint);
    /// older files were synced when they filled up.
    pub fn sync(&mut self) -> Result<()> {
        let mut steps = SyncSteps::default();
        self.sync_steps(&mut steps)?;
        steps.run_now(&self.fs)
    }

    /// Writes the newest file's header if it took entries since the last time and adds its
    /// sync to `steps` (store checkpoint).
    pub fn sync_steps(&mut self, steps: &mut SyncSteps<F>) -> Result<()> {
        if let Some(part) = self.parts.last()
            && self.unsynced
        {
            part.write_header()?;
            steps.file(&part.path, &part.file);
        }
        self.unsynced = false;
        Ok(())
    }

    fn add_part(&mut self) -> Result<()> {
        // A full file is synced before the next one starts: only the newest is ever at risk.
        if let Some(previous) = self.parts.last() {
            previous.write_header_and_sync()?;
        }
        let sequence = self.parts.last().map_or(0, |p| p.sequence + 1);
        let path = self.dir.join(file_name(sequence, ""));
        let file = self.fs.open(&path, OpenMode::Create).at(&path)?;
        let size = HEADER_BYTES
            + u64::from(self.slots) * SLOT_BYTES
            + (u64::from(self.entries_max) + 1) * ENTRY_BYTES;
        file.set_len(0).at(&path)?;
        file.set_len(size).at(&path)?;
        let header = Header { hash_slot_count: self.slots, index_count: 0, ..Header::default() };
        file.write_all_at(0, &header.encode()).at(&path)?;
        file.sync_data().at(&path)?;
        sync_parent(&self.fs, &path)?;
        self.parts.push(Part { sequence, path, file: Arc::new(file), header });
        Ok(())
    }

    /// The index's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Java's `String.hashCode` over the key's bytes, made non-negative (RocketMQ `indexKeyHashMethod`).
fn key_hash(key: &[u8]) -> u32 {
    let hash =
        key.iter().fold(0i32, |hash, byte| hash.wrapping_mul(31).wrapping_add(i32::from(*byte)));
    hash.unsigned_abs()
}

fn read_u32<File: twinmq_runtime::File>(file: &File, position: u64) -> std::io::Result<u32> {
    let bytes = file.read_at(position, 4)?;
    Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}
