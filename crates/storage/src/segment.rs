//! Segment — one data file of framed entries, named by its base offset: the shared bottom of
//! both layouts (Kafka `LogSegment`'s data file; RocketMQ `MappedFile`).
//!
//! ## Crash contract
//!
//! A segment is created whole: the file is created (and preallocated to its capacity when the
//! layout wants fixed-size files), synced, and its directory synced before the first append.
//! Appended bytes are durable once [`Segment::sync`] returns. [`Segment::recover`] scans the
//! entries from the start, keeps every whole entry with a valid checksum that the layout's check
//! accepts, and cuts everything after the first one that is not — zeroing the cut bytes, so that
//! a stale entry left behind a torn write can never be revived by a later append of the same
//! length.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use twinmq_runtime::{File, Fs, OpenMode};

use crate::entry::{self, Decoded, Entry};
use crate::entry_cursor::EntryCursor;
use crate::error::{IoContext, Result, StorageError};

/// One data file of entries.
#[derive(Debug)]
pub struct Segment<F: Fs> {
    path: PathBuf,
    file: Arc<F::File>,
    base_offset: u64,
    capacity_bytes: u64,
    preallocated: bool,
    position_written: u64,
    position_flushed: u64,
}

/// How [`Segment::recover`] ended its scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanEnd {
    /// The written data ends cleanly (zeros or the end of the file).
    Clean,
    /// The file is full: it ends with a padding entry or exactly at its capacity.
    Full,
    /// An entry was torn or damaged; it and everything after it were cut.
    Cut {
        /// Why the entry at the cut position was refused.
        reason: String,
    },
}

/// The outcome of recovering one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRecovery {
    /// Where valid data ends.
    pub position_end: u64,
    /// Whole valid entries kept (padding not counted).
    pub entry_count: u64,
    /// How the scan ended.
    pub end: ScanEnd,
}

impl<F: Fs> Segment<F> {
    /// Creates a new, empty segment file at `path`, durable (file and directory synced).
    pub fn create(
        fs: &F,
        path: PathBuf,
        base_offset: u64,
        capacity_bytes: u64,
        preallocate: bool,
    ) -> Result<Self> {
        let file = fs.open(&path, OpenMode::CreateNew).at(&path)?;
        if preallocate {
            file.set_len(capacity_bytes).at(&path)?;
        }
        file.sync_data().at(&path)?;
        sync_parent(fs, &path)?;
        Ok(Self {
            path,
            file: Arc::new(file),
            base_offset,
            capacity_bytes,
            preallocated: preallocate,
            position_written: 0,
            position_flushed: 0,
        })
    }

    /// Opens an existing segment. Until [`Segment::recover`] or [`Segment::assume_whole`] runs,
    /// its written position is 0.
    pub fn open(
        fs: &F,
        path: PathBuf,
        base_offset: u64,
        capacity_bytes: u64,
        preallocate: bool,
    ) -> Result<Self> {
        let file = fs.open(&path, OpenMode::ReadWrite).at(&path)?;
        Ok(Self {
            path,
            file: Arc::new(file),
            base_offset,
            capacity_bytes,
            preallocated: preallocate,
            position_written: 0,
            position_flushed: 0,
        })
    }

    /// Trusts a sealed segment: its written data is the whole file (no scan).
    pub fn assume_whole(&mut self) -> Result<()> {
        let len = self.file.len().at(&self.path)?;
        self.position_written = len;
        self.position_flushed = len;
        Ok(())
    }

    /// Scans every entry, keeps the valid prefix and cuts the rest (see the crash contract).
    ///
    /// `check` sees each whole, checksummed, non-padding entry with its position and may refuse
    /// it (for example an offset that does not follow the previous entry's).
    pub fn recover(
        &mut self,
        mut check: impl FnMut(u64, &Entry) -> std::result::Result<(), String>,
    ) -> Result<SegmentRecovery> {
        let file_len = self.file.len().at(&self.path)?;
        let data = self.file.read_at(0, to_usize(file_len)?).at(&self.path)?;
        let mut position = 0u64;
        let mut entry_count = 0u64;
        let end = loop {
            let rest = data.slice(to_usize(position)?..);
            match entry::decode(&rest) {
                Decoded::End => break ScanEnd::Clean,
                Decoded::Incomplete { claimed } if rest.is_empty() || claimed == 0 => {
                    break ScanEnd::Clean;
                }
                Decoded::Incomplete { claimed } => {
                    break ScanEnd::Cut {
                        reason: format!(
                            "entry claims {claimed} bytes but only {} remain (torn write)",
                            rest.len()
                        ),
                    };
                }
                Decoded::Corrupt(reason) => break ScanEnd::Cut { reason },
                Decoded::Entry(entry) if entry.padding => {
                    if position + entry.size != self.capacity_bytes {
                        break ScanEnd::Cut {
                            reason: format!(
                                "padding of {} bytes does not end the file at {}",
                                entry.size, self.capacity_bytes
                            ),
                        };
                    }
                    position += entry.size;
                    break ScanEnd::Full;
                }
                Decoded::Entry(entry) => {
                    if let Err(reason) = check(position, &entry) {
                        break ScanEnd::Cut { reason };
                    }
                    position += entry.size;
                    entry_count += 1;
                    if position == self.capacity_bytes {
                        break ScanEnd::Full;
                    }
                }
            }
        };
        if matches!(end, ScanEnd::Cut { .. }) || (file_len > position && end != ScanEnd::Full) {
            self.zero_from(position)?;
        } else if self.preallocated && file_len < self.capacity_bytes {
            self.file.set_len(self.capacity_bytes).at(&self.path)?;
            self.file.sync_data().at(&self.path)?;
        }
        self.position_written = position;
        self.position_flushed = position;
        Ok(SegmentRecovery { position_end: position, entry_count, end })
    }

    /// Appends encoded entries; returns the position they start at.
    pub fn append(&mut self, encoded: &[u8]) -> Result<u64> {
        let position = self.position_written;
        let end = position + encoded.len() as u64;
        if self.preallocated && end > self.capacity_bytes {
            return Err(StorageError::Refused(format!(
                "{}: append of {} bytes at {position} passes its capacity {}",
                self.path.display(),
                encoded.len(),
                self.capacity_bytes
            )));
        }
        self.file.write_all_at(position, encoded).at(&self.path)?;
        self.position_written = end;
        Ok(position)
    }

    /// Reads `len` bytes at `position` (zero-copy from the map on a real file system).
    pub fn read(&self, position: u64, len: u64) -> Result<Bytes> {
        let end = position.saturating_add(len);
        if end > self.position_written {
            return Err(StorageError::Corrupt {
                path: self.path.clone(),
                position,
                reason: format!(
                    "read of {len} bytes passes the written end {}",
                    self.position_written
                ),
            });
        }
        self.file.read_at(position, to_usize(len)?).at(&self.path)
    }

    /// Reads the whole entries from `position` on, about `bytes_max` of them but always at
    /// least one. Stops early at a padding entry.
    pub fn read_entries(&self, position: u64, bytes_max: u64) -> Result<Vec<(u64, Entry)>> {
        let mut cursor = EntryCursor::new(position, bytes_max);
        let mut entries = Vec::new();
        let mut bytes = 0u64;
        while let Some((at, entry)) = cursor.next_entry(self)? {
            if entry.padding || (!entries.is_empty() && bytes + entry.size > bytes_max) {
                break;
            }
            bytes += entry.size;
            entries.push((at, entry));
        }
        Ok(entries)
    }

    /// Cuts the segment at `position`: later bytes are zeroed and the cut is synced.
    pub fn truncate_to(&mut self, position: u64) -> Result<()> {
        if position >= self.position_written {
            return Ok(());
        }
        self.zero_from(position)?;
        self.position_written = position;
        self.position_flushed = self.position_flushed.min(position);
        Ok(())
    }

    /// Seals a segment that will take no more appends: a preallocated file that the layout
    /// trims (the Kafka layout) is cut to its written length; then everything is synced.
    pub fn seal(&mut self, trim: bool) -> Result<()> {
        if trim && self.file.len().at(&self.path)? != self.position_written {
            self.file.set_len(self.position_written).at(&self.path)?;
            self.capacity_bytes = self.position_written;
            self.preallocated = false;
            // The new length must be durable even when every byte already is: a sealed segment
            // is trusted to end at its file length.
            self.file.sync_data().at(&self.path)?;
            self.position_flushed = self.position_written;
        }
        self.sync()
    }

    /// Makes every appended byte durable.
    pub fn sync(&mut self) -> Result<()> {
        if self.position_flushed < self.position_written || self.position_written == 0 {
            self.file.sync_data().at(&self.path)?;
            self.position_flushed = self.position_written;
        }
        Ok(())
    }

    /// Records that a sync made by someone else (the flusher) covered `position`.
    pub fn mark_flushed(&mut self, position: u64) {
        self.position_flushed = self.position_flushed.max(position.min(self.position_written));
    }

    /// Removes the file (the caller syncs the directory).
    pub fn delete(self, fs: &F) -> Result<()> {
        fs.remove_file(&self.path).at(&self.path)
    }

    /// The file, for a flusher that syncs it without holding the segment.
    pub fn file(&self) -> Arc<F::File> {
        Arc::clone(&self.file)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The offset the file is named by.
    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }

    /// Bytes written so far.
    pub fn position_written(&self) -> u64 {
        self.position_written
    }

    /// Bytes known durable.
    pub fn position_flushed(&self) -> u64 {
        self.position_flushed
    }

    /// The file's capacity (its roll limit).
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }

    /// Bytes that can still be appended before the capacity is reached.
    pub fn remaining_bytes(&self) -> u64 {
        self.capacity_bytes.saturating_sub(self.position_written)
    }

    fn zero_from(&mut self, position: u64) -> Result<()> {
        self.file.set_len(position).at(&self.path)?;
        if self.preallocated {
            self.file.set_len(self.capacity_bytes).at(&self.path)?;
        }
        self.file.sync_data().at(&self.path)
    }
}

/// The conventional file name for a base offset: twenty zero-padded digits, then `extension`.
pub fn file_name(base_offset: u64, extension: &str) -> String {
    if extension.is_empty() {
        format!("{base_offset:020}")
    } else {
        format!("{base_offset:020}.{extension}")
    }
}

/// Parses a [`file_name`]: `Some(base_offset)` when `name` is twenty digits then `extension`.
pub fn parse_file_name(name: &str, extension: &str) -> Option<u64> {
    let digits = if extension.is_empty() {
        name
    } else {
        name.strip_suffix(extension)?.strip_suffix('.')?
    };
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Syncs the directory holding `path`, making its creation, rename or removal durable.
pub fn sync_parent<F: Fs>(fs: &F, path: &Path) -> Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    fs.sync_dir(parent).at(parent)
}

fn to_usize(value: u64) -> Result<usize> {
    usize::try_from(value)
        .map_err(|_| StorageError::Refused(format!("{value} bytes exceed memory")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::NewEntry;
    use twinmq_runtime::RealFs;

    fn encoded(offset: u64, payload: &[u8]) -> Vec<u8> {
        let mut buffer = Vec::new();
        NewEntry { record_count: 1, timestamp_ms: 5, key: None, payload }
            .encode_into(offset, &mut buffer);
        buffer
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(file_name(42, "log"), "00000000000000000042.log");
        assert_eq!(parse_file_name("00000000000000000042.log", "log"), Some(42));
        assert_eq!(parse_file_name("00000000000000000042", ""), Some(42));
        assert_eq!(parse_file_name("0000000000000000042.log", "log"), None);
        assert_eq!(parse_file_name("00000000000000000042.index", "log"), None);
    }

    #[test]
    fn recovers_after_torn_tail_write_and_never_revives_a_stale_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(0, "log"));
        let mut segment = Segment::create(&RealFs, path.clone(), 0, 4096, true).unwrap();
        let first = encoded(0, b"first");
        let second = encoded(1, b"second");
        let third = encoded(2, b"third!");
        segment.append(&first).unwrap();
        segment.append(&second).unwrap();
        segment.append(&third).unwrap();
        // Tear the second entry's header: the third stays on disk behind it.
        let file = RealFs.open(&path, OpenMode::ReadWrite).unwrap();
        file.write_all_at(first.len() as u64, &[0; 12]).unwrap();
        drop(segment);

        let mut reopened = Segment::open(&RealFs, path.clone(), 0, 4096, true).unwrap();
        let recovery = reopened.recover(|_, _| Ok(())).unwrap();
        assert_eq!(recovery.entry_count, 1);
        assert_eq!(recovery.position_end, first.len() as u64);
        // An append of the same length as the lost entry must not make the stale third visible.
        reopened.append(&encoded(1, b"SECOND")).unwrap();
        drop(reopened);
        let mut again = Segment::open(&RealFs, path, 0, 4096, true).unwrap();
        let recovery = again.recover(|_, _| Ok(())).unwrap();
        assert_eq!(recovery.entry_count, 2);
        assert_eq!(recovery.end, ScanEnd::Clean);
    }
}
