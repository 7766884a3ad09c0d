//! ConsumeQueue — RocketMQ's per-queue index into the CommitLog: the logical queue offset is
//! the entry's index, so a consumer reads a queue by offset without scanning the CommitLog.
//!
//! ## Format
//!
//! Directory `consumequeue/<topic>/<queue_id>/`, files of `entries_per_file` 20-byte entries,
//! preallocated, named by the byte position of their first entry (20 digits). An entry, big-
//! endian: `commitlog_offset u64 | size u32 | tag_hash u64`; an all-zero entry is unwritten.
//!
//! ## Crash contract
//!
//! Derived data: buffered on dispatch ([`PENDING_BYTES_MAX`] at a time, so a small message costs
//! no write of its own), written and synced by a store checkpoint — new files and
//! directories too: creating a queue costs no fsync, the next checkpoint makes it durable. On open, the
//! entries after the last one that is whole and points below the CommitLog's valid end are
//! zeroed, and re-dispatch from the checkpoint rebuilds what is missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use twinmq_runtime::{File, Fs, OpenMode};

use crate::error::{IoContext, Result, StorageError};
use crate::segment::{file_name, parse_file_name};
use crate::sync_steps::SyncSteps;

/// Bytes of one consume queue entry (RocketMQ `CQ_STORE_UNIT_SIZE`).
pub const CONSUME_QUEUE_ENTRY_BYTES: u64 = 20;

/// Bytes of dispatched entries a queue buffers before it writes them to its file.
pub const PENDING_BYTES_MAX: usize = 4096;

/// One consume queue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CqEntry {
    /// The message's physical offset in the CommitLog.
    pub commitlog_offset: u64,
    /// The message's size in the CommitLog.
    pub size: u32,
    /// The message's tag hash.
    pub tag_hash: u64,
}

impl CqEntry {
    fn encode(&self) -> [u8; 20] {
        let mut bytes = [0; 20];
        bytes[..8].copy_from_slice(&self.commitlog_offset.to_be_bytes());
        bytes[8..12].copy_from_slice(&self.size.to_be_bytes());
        bytes[12..].copy_from_slice(&self.tag_hash.to_be_bytes());
        bytes
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(Self {
            commitlog_offset: u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?),
            size: u32::from_be_bytes(bytes.get(8..12)?.try_into().ok()?),
            tag_hash: u64::from_be_bytes(bytes.get(12..20)?.try_into().ok()?),
        })
    }
}

/// One queue's consume queue.
#[derive(Debug)]
pub struct ConsumeQueue<F: Fs> {
    fs: F,
    dir: PathBuf,
    entries_per_file: u64,
    files: BTreeMap<u64, Arc<F::File>>,
    dirty: BTreeMap<u64, ()>,
    unsynced_dirs: UnsyncedDirs,
    pending: Vec<u8>,
    pending_start: u64,
    min_offset: u64,
    max_offset: u64,
    last_commitlog_offset: Option<u64>,
}

impl<F: Fs> ConsumeQueue<F> {
    /// Opens (or creates) the queue in `dir`, keeping only entries that point below
    /// `commitlog_end`; returns the queue and the number of entries cut.
    pub fn open(
        fs: F,
        dir: PathBuf,
        entries_per_file: u64,
        commitlog_end: u64,
    ) -> Result<(Self, u64)> {
        let mut unsynced_dirs = UnsyncedDirs::None;
        if !fs.exists(&dir) {
            fs.create_dir_all(&dir).at(&dir)?;
            unsynced_dirs = UnsyncedDirs::QueueAndParents;
        }
        let file_bytes = entries_per_file * CONSUME_QUEUE_ENTRY_BYTES;
        let mut files = BTreeMap::new();
        for path in fs.read_dir(&dir).at(&dir)? {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            match parse_file_name(name, "") {
                Some(base) if base % file_bytes == 0 => {
                    let file = fs.open(&path, OpenMode::ReadWrite).at(&path)?;
                    if file.len().at(&path)? < file_bytes {
                        file.set_len(file_bytes).at(&path)?;
                    }
                    files.insert(base / CONSUME_QUEUE_ENTRY_BYTES, Arc::new(file));
                }
                _ => tracing::warn!(file = %path.display(), "not a consume queue file; left alone"),
            }
        }
        let min_offset = files.keys().next().copied().unwrap_or(0);
        let mut queue = Self {
            fs,
            dir,
            entries_per_file,
            files,
            dirty: BTreeMap::new(),
            unsynced_dirs,
            pending: Vec::new(),
            pending_start: min_offset,
            min_offset,
            max_offset: min_offset,
            last_commitlog_offset: None,
        };
        let cut = queue.recover(commitlog_end)?;
        Ok((queue, cut))
    }

    fn recover(&mut self, commitlog_end: u64) -> Result<u64> {
        let mut offset = self.min_offset;
        let mut previous: Option<u64> = None;
        let file_starts: Vec<u64> = self.files.keys().copied().collect();
        'files: for start in file_starts {
            if start != offset {
                break;
            }
            let bytes = self
                .file_at(start)?
                .read_at(0, to_usize(self.entries_per_file * CONSUME_QUEUE_ENTRY_BYTES))
                .at(&self.dir)?;
            for chunk in bytes.chunks_exact(20) {
                let Some(entry) = CqEntry::decode(chunk) else { break 'files };
                let valid = entry.size > 0
                    && entry.commitlog_offset + u64::from(entry.size) <= commitlog_end
                    && previous.is_none_or(|p| entry.commitlog_offset > p);
                if !valid {
                    break 'files;
                }
                previous = Some(entry.commitlog_offset);
                offset += 1;
            }
        }
        let cut = self.truncate_from(offset)?;
        self.max_offset = offset;
        self.pending_start = offset;
        self.last_commitlog_offset = previous;
        Ok(cut)
    }

    /// Appends the entry for queue offset `max_offset`.
    pub fn append(&mut self, entry: CqEntry) -> Result<()> {
        if self.last_commitlog_offset.is_some_and(|last| entry.commitlog_offset <= last) {
            return Err(StorageError::Refused(format!(
                "{}: commitlog offset {} does not follow {:?}",
                self.dir.display(),
                entry.commitlog_offset,
                self.last_commitlog_offset
            )));
        }
        let offset = self.max_offset;
        let start = offset - offset % self.entries_per_file;
        if !self.files.contains_key(&start) {
            let path = self.dir.join(file_name(start * CONSUME_QUEUE_ENTRY_BYTES, ""));
            let file = self.fs.open(&path, OpenMode::CreateNew).at(&path)?;
            file.set_len(self.entries_per_file * CONSUME_QUEUE_ENTRY_BYTES).at(&path)?;
            self.unsynced_dirs = self.unsynced_dirs.max(UnsyncedDirs::Queue);
            self.files.insert(start, Arc::new(file));
        }
        if self.pending_start < start {
            self.write_pending()?;
        }
        self.pending.extend_from_slice(&entry.encode());
        self.max_offset += 1;
        self.last_commitlog_offset = Some(entry.commitlog_offset);
        if self.pending.len() >= PENDING_BYTES_MAX {
            self.write_pending()?;
        }
        Ok(())
    }

    /// Writes the buffered entries (all in one file) to their file.
    fn write_pending(&mut self) -> Result<()> {
        if !self.pending.is_empty() {
            let start = self.pending_start - self.pending_start % self.entries_per_file;
            let position = (self.pending_start - start) * CONSUME_QUEUE_ENTRY_BYTES;
            self.file_at(start)?.write_all_at(position, &self.pending).at(&self.dir)?;
            self.dirty.insert(start, ());
            self.pending.clear();
        }
        self.pending_start = self.max_offset;
        Ok(())
    }

    /// The entry at `queue_offset`, if the queue holds it.
    pub fn get(&self, queue_offset: u64) -> Result<Option<CqEntry>> {
        Ok(self.read(queue_offset, 1)?.into_iter().next())
    }

    /// Up to `count` entries from `queue_offset`, never past the end of one file.
    pub fn read(&self, queue_offset: u64, count: u64) -> Result<Vec<CqEntry>> {
        if queue_offset < self.min_offset || queue_offset >= self.max_offset || count == 0 {
            return Ok(Vec::new());
        }
        if queue_offset >= self.pending_start {
            let from = to_usize((queue_offset - self.pending_start) * CONSUME_QUEUE_ENTRY_BYTES);
            let bytes = &self.pending[from..];
            let take = to_usize(count.saturating_mul(CONSUME_QUEUE_ENTRY_BYTES)).min(bytes.len());
            return Ok(bytes[..take].chunks_exact(20).filter_map(CqEntry::decode).collect());
        }
        let start = queue_offset - queue_offset % self.entries_per_file;
        let end = (queue_offset + count).min(self.pending_start).min(start + self.entries_per_file);
        let bytes = self
            .file_at(start)?
            .read_at(
                (queue_offset - start) * CONSUME_QUEUE_ENTRY_BYTES,
                to_usize((end - queue_offset) * CONSUME_QUEUE_ENTRY_BYTES),
            )
            .at(&self.dir)?;
        Ok(bytes.chunks_exact(20).filter_map(CqEntry::decode).collect())
    }

    /// The first queue offset the queue holds.
    pub fn min_offset(&self) -> u64 {
        self.min_offset
    }

    /// The queue offset the next message gets.
    pub fn max_offset(&self) -> u64 {
        self.max_offset
    }

    /// Syncs the files written and the directories changed since the last sync, now.
    pub fn sync(&mut self) -> Result<()> {
        let mut steps = SyncSteps::default();
        self.sync_steps(&mut steps)?;
        steps.run_now(&self.fs)
    }

    /// Writes out buffered entries and adds to `steps` the syncs of the files written and the
    /// directories changed since the last time (store checkpoint).
    pub fn sync_steps(&mut self, steps: &mut SyncSteps<F>) -> Result<()> {
        self.write_pending()?;
        for start in std::mem::take(&mut self.dirty).into_keys() {
            steps.file(&self.dir, self.file_at(start)?);
        }
        let unsynced = std::mem::replace(&mut self.unsynced_dirs, UnsyncedDirs::None);
        if unsynced >= UnsyncedDirs::Queue {
            steps.dir(&self.dir);
        }
        if unsynced == UnsyncedDirs::QueueAndParents {
            steps.parent_of(&self.dir);
            if let Some(topic_dir) = self.dir.parent() {
                steps.parent_of(topic_dir);
            }
        }
        Ok(())
    }

    /// The queue's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Zeroes every entry from `offset` on and removes later files; returns how many were cut.
    fn truncate_from(&mut self, offset: u64) -> Result<u64> {
        self.write_pending()?;
        let mut cut = 0;
        let later: Vec<u64> = self
            .files
            .range(offset + 1..)
            .map(|(start, _)| *start)
            .filter(|s| *s > offset - offset % self.entries_per_file)
            .collect();
        for start in later {
            if let Some(file) = self.files.remove(&start) {
                cut += count_written(&*file, self.entries_per_file)?;
                let path = self.dir.join(file_name(start * CONSUME_QUEUE_ENTRY_BYTES, ""));
                drop(file);
                self.fs.remove_file(&path).at(&path)?;
            }
        }
        let start = offset - offset % self.entries_per_file;
        if let Some(file) = self.files.get(&start) {
            let from = (offset - start) * CONSUME_QUEUE_ENTRY_BYTES;
            let file_bytes = self.entries_per_file * CONSUME_QUEUE_ENTRY_BYTES;
            let tail = file.read_at(from, to_usize(file_bytes - from)).at(&self.dir)?;
            let written =
                tail.chunks_exact(20).filter(|c| c.iter().any(|b| *b != 0)).count() as u64;
            if written > 0 {
                cut += written;
                file.set_len(from).at(&self.dir)?;
                file.set_len(file_bytes).at(&self.dir)?;
                file.sync_data().at(&self.dir)?;
            }
        }
        if cut > 0 {
            self.fs.sync_dir(&self.dir).at(&self.dir)?;
        }
        Ok(cut)
    }

    fn file_at(&self, start: u64) -> Result<&Arc<F::File>> {
        self.files.get(&start).ok_or_else(|| {
            StorageError::Refused(format!(
                "{}: no file for queue offset {start}",
                self.dir.display()
            ))
        })
    }
}

/// Which directories hold entries not yet synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum UnsyncedDirs {
    /// None.
    None,
    /// The queue's directory (a file was created in it).
    Queue,
    /// The queue's directory and the two above it (the queue itself is new).
    QueueAndParents,
}

fn count_written<File: twinmq_runtime::File>(file: &File, entries_per_file: u64) -> Result<u64> {
    let bytes = file
        .read_at(0, to_usize(entries_per_file * CONSUME_QUEUE_ENTRY_BYTES))
        .map_err(|source| StorageError::Io { path: "(consume queue)".into(), source })?;
    Ok(bytes.chunks_exact(20).filter(|c| c.iter().any(|b| *b != 0)).count() as u64)
}

fn to_usize(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}
