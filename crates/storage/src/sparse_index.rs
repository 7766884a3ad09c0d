//! SparseIndex — the file and in-memory copy behind [`crate::OffsetIndex`] and
//! [`crate::TimeIndex`]: fixed-width entries appended in order, kept in memory for binary
//! search and written through to `<base>.<extension>` so that a clean open need not rebuild them.
//!
//! ## Crash contract
//!
//! Index files are derived data and are never synced on the append path: as in Kafka, they are
//! synced with their log when it is flushed (only when they took entries since the last
//! flush) and when their segment is sealed, and rebuilt from the segment whenever they are
//! missing, torn or inconsistent with it.

use std::path::PathBuf;
use std::sync::Arc;

use twinmq_runtime::{File, Fs, OpenMode};

use crate::error::{IoContext, Result};
use crate::segment::sync_parent;

/// One fixed-width index entry.
pub trait IndexEntry: Copy + std::fmt::Debug {
    /// Encoded width in bytes.
    const WIDTH: usize;
    /// Big-endian encoding.
    fn encode(&self, out: &mut Vec<u8>);
    /// Decodes exactly `WIDTH` bytes.
    fn decode(bytes: &[u8]) -> Self;
}

/// A sparse index: entries in memory, written through to a file.
#[derive(Debug)]
pub struct SparseIndex<F: Fs, E: IndexEntry> {
    path: PathBuf,
    file: Arc<F::File>,
    entries: Vec<E>,
    scratch: Vec<u8>,
    /// Written since the file was last synced or handed to a flush.
    unsynced: bool,
}

impl<F: Fs, E: IndexEntry> SparseIndex<F, E> {
    /// Creates an empty index file (truncating any old one) and syncs its directory.
    pub fn create(fs: &F, path: PathBuf) -> Result<Self> {
        let file = fs.open(&path, OpenMode::Create).at(&path)?;
        file.set_len(0).at(&path)?;
        sync_parent(fs, &path)?;
        Ok(Self {
            path,
            file: Arc::new(file),
            entries: Vec::new(),
            scratch: Vec::new(),
            unsynced: false,
        })
    }

    /// Loads an existing index file; `None` when it is missing or its length is not a whole
    /// number of entries (the caller rebuilds it).
    pub fn load(fs: &F, path: PathBuf) -> Result<Option<Self>> {
        if !fs.exists(&path) {
            return Ok(None);
        }
        let file = fs.open(&path, OpenMode::ReadWrite).at(&path)?;
        let len = file.len().at(&path)?;
        if len % E::WIDTH as u64 != 0 {
            return Ok(None);
        }
        let bytes = file.read_at(0, usize::try_from(len).unwrap_or(usize::MAX)).at(&path)?;
        let entries = bytes.chunks_exact(E::WIDTH).map(E::decode).collect();
        Ok(Some(Self { path, file: Arc::new(file), entries, scratch: Vec::new(), unsynced: false }))
    }

    /// Appends an entry (written through, not synced).
    pub fn push(&mut self, entry: E) -> Result<()> {
        self.scratch.clear();
        entry.encode(&mut self.scratch);
        let position = (self.entries.len() * E::WIDTH) as u64;
        self.unsynced = true;
        self.file.write_all_at(position, &self.scratch).at(&self.path)?;
        self.entries.push(entry);
        Ok(())
    }

    /// Replaces every entry (after a rebuild or a truncation) and rewrites the file.
    pub fn replace(&mut self, entries: Vec<E>) -> Result<()> {
        self.scratch.clear();
        for entry in &entries {
            entry.encode(&mut self.scratch);
        }
        self.unsynced = true;
        self.file.set_len(0).at(&self.path)?;
        if !self.scratch.is_empty() {
            self.file.write_all_at(0, &self.scratch).at(&self.path)?;
        }
        self.entries = entries;
        Ok(())
    }

    /// Syncs the file (on seal, or with its log's flush).
    pub fn sync(&mut self) -> Result<()> {
        self.file.sync_data().at(&self.path)?;
        self.unsynced = false;
        Ok(())
    }

    /// Syncs the file if it was written since the last sync or flush.
    pub fn sync_if_written(&mut self) -> Result<()> {
        if self.unsynced { self.sync() } else { Ok(()) }
    }

    /// The file, for a flush that syncs it without holding the index, when it was written
    /// since the last sync or flush (`None` otherwise).
    pub fn take_unsynced(&mut self) -> Option<Arc<F::File>> {
        std::mem::take(&mut self.unsynced).then(|| Arc::clone(&self.file))
    }

    /// The entries, in order.
    pub fn entries(&self) -> &[E] {
        &self.entries
    }

    /// Bytes the entries take.
    pub fn size_bytes(&self) -> u64 {
        (self.entries.len() * E::WIDTH) as u64
    }

    /// The file's path.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}
