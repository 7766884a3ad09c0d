//! LogSegment — one segment of a Kafka-layout [`crate::Log`]: a data file of entries named by
//! its base offset (`<base>.log`) with its sparse [`OffsetIndex`] and [`TimeIndex`].
//!
//! ## Crash contract
//!
//! The data file follows [`Segment`]'s contract. The indexes are derived: written through on
//! append, synced with the data when the log is flushed and when the segment is sealed,
//! rebuilt from the data whenever they are missing or do not match it. Every offset in the segment is at least its base offset.
//! Not thread-safe: the owning `Log` is behind one lock.

use std::path::Path;

use twinmq_runtime::Fs;

use crate::entry::Entry;
use crate::entry_cursor::{EntryCursor, READ_WINDOW_MAX_BYTES, READ_WINDOW_MIN_BYTES};
use crate::error::{Result, StorageError};
use crate::offset_index::{self, OffsetIndex, OffsetPosition};
use crate::segment::{Segment, file_name};
use crate::sparse_index::SparseIndex;
use crate::time_index::{self, TimeIndex, TimestampOffset};

/// One segment: data file plus indexes.
#[derive(Debug)]
pub struct LogSegment<F: Fs> {
    /// The data file.
    pub(crate) data: Segment<F>,
    pub(crate) offset_index: OffsetIndex<F>,
    pub(crate) time_index: TimeIndex<F>,
    /// The offset after the segment's last entry (its base offset when empty).
    pub(crate) next_offset: u64,
    /// The largest entry timestamp in the segment (`i64::MIN` when empty).
    pub(crate) timestamp_max_ms: i64,
    /// Relative offset of the entry with the largest timestamp.
    timestamp_max_relative: u32,
    /// When the segment took its first entry (for roll by age).
    pub(crate) first_append_ms: Option<i64>,
    bytes_since_index_entry: u64,
}

impl<F: Fs> LogSegment<F> {
    /// Creates an empty segment with `base_offset` in `dir`.
    pub fn create(fs: &F, dir: &Path, base_offset: u64, capacity_bytes: u64) -> Result<Self> {
        let data = Segment::create(
            fs,
            dir.join(file_name(base_offset, "log")),
            base_offset,
            capacity_bytes,
            true,
        )?;
        let offset_index = SparseIndex::create(fs, dir.join(file_name(base_offset, "index")))?;
        let time_index = SparseIndex::create(fs, dir.join(file_name(base_offset, "timeindex")))?;
        Ok(Self::assemble(data, offset_index, time_index))
    }

    pub(crate) fn assemble(
        data: Segment<F>,
        offset_index: OffsetIndex<F>,
        time_index: TimeIndex<F>,
    ) -> Self {
        let base_offset = data.base_offset();
        Self {
            data,
            offset_index,
            time_index,
            next_offset: base_offset,
            timestamp_max_ms: i64::MIN,
            timestamp_max_relative: 0,
            first_append_ms: None,
            bytes_since_index_entry: 0,
        }
    }

    /// The segment's base offset.
    pub fn base_offset(&self) -> u64 {
        self.data.base_offset()
    }

    /// Bytes of entries in the segment.
    pub fn size_bytes(&self) -> u64 {
        self.data.position_written()
    }

    /// The offset after the last entry.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// The largest entry timestamp, if any entry.
    pub fn timestamp_max_ms(&self) -> Option<i64> {
        (self.timestamp_max_ms != i64::MIN).then_some(self.timestamp_max_ms)
    }

    /// Appends one encoded entry (offsets already assigned), maintaining the indexes.
    pub(crate) fn append(
        &mut self,
        entry: &EncodedMeta,
        encoded: &[u8],
        index_interval_bytes: u64,
    ) -> Result<u64> {
        let position = self.data.position_written();
        if self.bytes_since_index_entry >= index_interval_bytes && position > 0 {
            self.add_index_entries(entry.offset, position)?;
        }
        let position = self.data.append(encoded)?;
        self.observe(entry, encoded.len() as u64);
        Ok(position)
    }

    /// Records an entry's metadata (on append, and while rebuilding from a scan).
    fn observe(&mut self, entry: &EncodedMeta, size: u64) {
        if entry.timestamp_ms > self.timestamp_max_ms {
            self.timestamp_max_ms = entry.timestamp_ms;
            self.timestamp_max_relative = self.relative(entry.offset);
        }
        self.next_offset = entry.next_offset;
        self.bytes_since_index_entry += size;
    }

    fn add_index_entries(&mut self, offset: u64, position: u64) -> Result<()> {
        let relative_offset = self.relative(offset);
        self.offset_index.push(OffsetPosition { relative_offset, position: to_u32(position)? })?;
        self.bytes_since_index_entry = 0;
        self.add_time_entry()
    }

    fn add_time_entry(&mut self) -> Result<()> {
        let grew = self.time_index.entries().last().is_none_or(|last| {
            self.timestamp_max_ms > last.timestamp_ms
                && self.timestamp_max_relative > last.relative_offset
        });
        if grew && self.timestamp_max_ms != i64::MIN {
            self.time_index.push(TimestampOffset {
                timestamp_ms: self.timestamp_max_ms,
                relative_offset: self.timestamp_max_relative,
            })?;
        }
        Ok(())
    }

    /// Rebuilds both indexes and the metadata from a scan of the data.
    pub(crate) fn rebuild_indexes(&mut self, index_interval_bytes: u64) -> Result<()> {
        let mut offsets = Vec::new();
        let mut times: Vec<TimestampOffset> = Vec::new();
        self.next_offset = self.base_offset();
        self.timestamp_max_ms = i64::MIN;
        self.timestamp_max_relative = 0;
        self.bytes_since_index_entry = 0;
        let mut cursor = EntryCursor::new(0, READ_WINDOW_MAX_BYTES);
        loop {
            let position = cursor.position();
            let Some(entry) = self.next_entry(&mut cursor)? else { break };
            if self.bytes_since_index_entry >= index_interval_bytes && position > 0 {
                offsets.push(OffsetPosition {
                    relative_offset: self.relative(entry.offset),
                    position: to_u32(position)?,
                });
                self.bytes_since_index_entry = 0;
                if times.last().is_none_or(|t| self.timestamp_max_ms > t.timestamp_ms)
                    && self.timestamp_max_ms != i64::MIN
                {
                    times.push(TimestampOffset {
                        timestamp_ms: self.timestamp_max_ms,
                        relative_offset: self.timestamp_max_relative,
                    });
                }
            }
            self.observe(&EncodedMeta::of(&entry), entry.size);
        }
        self.offset_index.replace(offsets)?;
        self.time_index.replace(times)
    }

    /// Loads metadata for a sealed segment whose indexes are already consistent: the largest
    /// timestamp and the next offset come from the last time index entry and a scan of the
    /// entries after the last offset index entry.
    pub(crate) fn load_sealed(&mut self, index_interval_bytes: u64) -> Result<()> {
        let offsets_ok =
            offset_index::is_consistent(self.offset_index.entries(), self.data.position_written());
        let times_ok = time_index::is_consistent(self.time_index.entries());
        if !offsets_ok || !times_ok {
            return self.rebuild_indexes(index_interval_bytes);
        }
        let start = self.offset_index.entries().last().map_or(0, |e| u64::from(e.position));
        let Some(first) = self.entry_at(start)? else {
            return self.rebuild_indexes(index_interval_bytes);
        };
        if start > 0
            && self
                .offset_index
                .entries()
                .last()
                .is_some_and(|e| self.relative(first.offset) != e.relative_offset)
        {
            return self.rebuild_indexes(index_interval_bytes);
        }
        if let Some(last) = self.time_index.entries().last() {
            self.timestamp_max_ms = last.timestamp_ms;
            self.timestamp_max_relative = last.relative_offset;
        }
        let mut cursor = EntryCursor::new(start, READ_WINDOW_MAX_BYTES);
        while let Some(entry) = self.next_entry(&mut cursor)? {
            self.observe(&EncodedMeta::of(&entry), entry.size);
        }
        Ok(())
    }

    /// The whole entry at `position`, `None` at the end of the data.
    pub(crate) fn entry_at(&self, position: u64) -> Result<Option<Entry>> {
        self.next_entry(&mut EntryCursor::new(position, READ_WINDOW_MIN_BYTES))
    }

    /// The entry at `cursor`, which moves past it; `None` at the end of the data. The data has
    /// no padding, so a padding entry is corrupt.
    pub(crate) fn next_entry(&self, cursor: &mut EntryCursor) -> Result<Option<Entry>> {
        match cursor.next_entry(&self.data)? {
            Some((position, entry)) if entry.padding => Err(StorageError::Corrupt {
                path: self.data.path().to_owned(),
                position,
                reason: "a padding entry in a Kafka-layout log".into(),
            }),
            found => Ok(found.map(|(_, entry)| entry)),
        }
    }

    /// Entries holding `offset` and after it, up to `bytes_max` (always one if any).
    pub(crate) fn read(&self, offset: u64, bytes_max: u64) -> Result<Vec<Entry>> {
        let relative = self.relative(offset.max(self.base_offset()));
        let position =
            u64::from(offset_index::floor_position(self.offset_index.entries(), relative));
        // The floor entry is at most about an index interval before `offset`.
        let mut cursor =
            EntryCursor::new(position, bytes_max.saturating_add(READ_WINDOW_MIN_BYTES));
        let mut entries = Vec::new();
        let mut bytes = 0;
        while let Some(entry) = self.next_entry(&mut cursor)? {
            if entry.next_offset() <= offset {
                continue;
            }
            if !entries.is_empty() && bytes + entry.size > bytes_max {
                break;
            }
            bytes += entry.size;
            entries.push(entry);
            if bytes >= bytes_max {
                break;
            }
        }
        Ok(entries)
    }

    /// The first entry whose timestamp is at least `timestamp_ms`.
    pub(crate) fn find_by_timestamp(&self, timestamp_ms: i64) -> Result<Option<Entry>> {
        if self.timestamp_max_ms < timestamp_ms {
            return Ok(None);
        }
        let start_offset = time_index::scan_after(self.time_index.entries(), timestamp_ms)
            .map_or(self.base_offset(), |relative| self.base_offset() + u64::from(relative));
        let relative = self.relative(start_offset);
        let position =
            u64::from(offset_index::floor_position(self.offset_index.entries(), relative));
        let mut cursor = EntryCursor::new(position, READ_WINDOW_MIN_BYTES);
        while let Some(entry) = self.next_entry(&mut cursor)? {
            if entry.timestamp_ms >= timestamp_ms {
                return Ok(Some(entry));
            }
        }
        Ok(None)
    }

    /// Cuts the segment before the first entry that holds `offset` or comes after it.
    pub(crate) fn truncate_to(&mut self, offset: u64, index_interval_bytes: u64) -> Result<()> {
        let relative = self.relative(offset.max(self.base_offset()));
        let position =
            u64::from(offset_index::floor_position(self.offset_index.entries(), relative));
        let mut cursor = EntryCursor::new(position, READ_WINDOW_MIN_BYTES);
        let mut cut = position;
        while let Some(entry) = self.next_entry(&mut cursor)? {
            if entry.next_offset() > offset {
                break;
            }
            cut = cursor.position();
        }
        self.data.truncate_to(cut)?;
        self.rebuild_indexes(index_interval_bytes)
    }

    /// Seals the segment: trims and syncs the data, adds a last time entry, syncs the indexes.
    pub(crate) fn seal(&mut self) -> Result<()> {
        self.data.seal(true)?;
        self.add_time_entry()?;
        self.offset_index.sync()?;
        self.time_index.sync()
    }

    /// Syncs each index written since it was last synced or handed to a flush.
    pub(crate) fn sync_written_indexes(&mut self) -> Result<()> {
        self.offset_index.sync_if_written()?;
        self.time_index.sync_if_written()
    }

    /// The index files written since they were last synced or handed to a flush.
    pub(crate) fn take_unsynced_indexes(
        &mut self,
    ) -> impl Iterator<Item = std::sync::Arc<F::File>> {
        [self.offset_index.take_unsynced(), self.time_index.take_unsynced()].into_iter().flatten()
    }

    /// Deletes the segment's three files (the caller syncs the directory).
    pub(crate) fn delete(self, fs: &F) -> Result<()> {
        let index = self.offset_index.path().to_owned();
        let time = self.time_index.path().to_owned();
        self.data.delete(fs)?;
        for path in [index, time] {
            if fs.exists(&path) {
                fs.remove_file(&path).map_err(|source| StorageError::Io { path, source })?;
            }
        }
        Ok(())
    }

    fn relative(&self, offset: u64) -> u32 {
        u32::try_from(offset.saturating_sub(self.base_offset())).unwrap_or(u32::MAX)
    }
}

/// What the indexes need to know of an entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EncodedMeta {
    pub(crate) offset: u64,
    pub(crate) next_offset: u64,
    pub(crate) timestamp_ms: i64,
}

impl EncodedMeta {
    pub(crate) fn of(entry: &Entry) -> Self {
        Self {
            offset: entry.offset,
            next_offset: entry.next_offset(),
            timestamp_ms: entry.timestamp_ms,
        }
    }
}

fn to_u32(position: u64) -> Result<u32> {
    u32::try_from(position).map_err(|_| {
        StorageError::InvalidConfig(format!("segment position {position} exceeds 4 GiB"))
    })
}
