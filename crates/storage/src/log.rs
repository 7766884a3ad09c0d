//! Log — the Kafka layout: one segmented log per partition in its own directory.
//!
//! Offsets are assigned on append: an entry of `record_count` records takes the offsets
//! `log_end_offset .. log_end_offset + record_count`. Entries never span segments; a segment is
//! rolled when the next entry would pass `segment_bytes_max` or the segment is older than
//! `segment_ms_max`, and it is sealed (trimmed, synced) before the next one is created.
//! Reads return whole entries, zero-copy, starting with the one that holds the offset asked for.
//!
//! ## Crash contract
//!
//! Everything the flush policy reported durable survives a crash. On open the last segment is
//! scanned and cut after its last whole, valid entry (see [`crate::segment`]); sealed segments,
//! synced when they were sealed, are trusted, with their indexes checked and rebuilt if needed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use twinmq_runtime::{Clock, Fs};

use crate::config::LogConfig;
use crate::entry::{Entry, NewEntry};
use crate::error::{IoContext, Result, StorageError};
use crate::flush::{DurableWatermark, FlushPlan, Flushable};
use crate::log_segment::{EncodedMeta, LogSegment};

/// One partition's log.
#[derive(Debug)]
pub struct Log<F: Fs> {
    pub(crate) fs: F,
    clock: Clock,
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    pub(crate) segments: BTreeMap<u64, LogSegment<F>>,
    pub(crate) log_start_offset: u64,
    log_end_offset: u64,
    flushed_offset: u64,
    unflushed_bytes: u64,
    watermark: DurableWatermark,
    failure: Option<String>,
    buffer: Vec<u8>,
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Offset of the entry's first record.
    pub offset_base: u64,
    /// Offset of the entry's last record.
    pub offset_last: u64,
    /// The log end offset after the append: wait for the durable watermark to reach it.
    pub log_end_offset: u64,
}

/// What [`Log::open`] found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogRecovery {
    /// Torn or damaged tails cut: file, position of the cut, reason.
    pub truncations: Vec<(PathBuf, u64, String)>,
    /// Index files rebuilt from their segment.
    pub rebuilt_indexes: Vec<PathBuf>,
    /// Files removed (orphan indexes, empty sealed segments, unfinished compaction output).
    pub removed: Vec<PathBuf>,
    /// Files that are not the log's, left alone.
    pub unknown: Vec<PathBuf>,
}

impl LogRecovery {
    /// Whether open found nothing to repair.
    pub fn is_clean(&self) -> bool {
        self.truncations.is_empty() && self.rebuilt_indexes.is_empty() && self.removed.is_empty()
    }
}

impl<F: Fs> Log<F> {
    /// Opens (recovering) or creates the log in `dir`.
    pub fn open(
        fs: F,
        clock: Clock,
        dir: PathBuf,
        config: LogConfig,
    ) -> Result<(Self, LogRecovery)> {
        validate(&config)?;
        let mut recovery = LogRecovery::default();
        let segments = crate::log_recovery::load_segments(&fs, &dir, &config, &mut recovery)?;
        let mut log = Self {
            fs,
            clock,
            dir,
            config,
            segments,
            log_start_offset: 0,
            log_end_offset: 0,
            flushed_offset: 0,
            unflushed_bytes: 0,
            watermark: DurableWatermark::new(0),
            failure: None,
            buffer: Vec::new(),
        };
        if log.segments.is_empty() {
            let segment = LogSegment::create(&log.fs, &log.dir, 0, log.config.segment_bytes_max)?;
            log.segments.insert(0, segment);
        }
        log.log_start_offset = log.segments.keys().next().copied().unwrap_or(0);
        log.log_end_offset = log.active().next_offset();
        log.flushed_offset = log.log_end_offset;
        log.watermark = DurableWatermark::new(log.log_end_offset);
        Ok((log, recovery))
    }

    /// Appends one entry; its records take the next offsets.
    pub fn append(&mut self, entry: NewEntry<'_>) -> Result<Appended> {
        if let Some(reason) = &self.failure {
            return Err(StorageError::Refused(format!(
                "log {} failed: {reason}",
                self.dir.display()
            )));
        }
        let size = entry.encoded_len() as u64;
        if size > self.config.entry_bytes_max {
            return Err(StorageError::EntryTooLarge { size, limit: self.config.entry_bytes_max });
        }
        if entry.record_count == 0 {
            return Err(StorageError::Refused("an entry holds at least one record".into()));
        }
        let now_ms = self.clock.now_ms();
        if self.should_roll(size, now_ms) {
            self.roll()?;
        }
        let offset_base = self.log_end_offset;
        let next_offset = offset_base + u64::from(entry.record_count);
        self.buffer.clear();
        entry.encode_into(offset_base, &mut self.buffer);
        let meta =
            EncodedMeta { offset: offset_base, next_offset, timestamp_ms: entry.timestamp_ms };
        let interval = self.config.index_interval_bytes;
        let active = self.active_mut();
        active.first_append_ms.get_or_insert(now_ms);
        let buffer = std::mem::take(&mut self.buffer);
        let appended = self.active_mut().append(&meta, &buffer, interval);
        self.buffer = buffer;
        appended?;
        self.log_end_offset = next_offset;
        self.unflushed_bytes += size;
        Ok(Appended { offset_base, offset_last: next_offset - 1, log_end_offset: next_offset })
    }

    /// Whole entries from the one holding `offset` onward, at most `bytes_max` bytes of them but
    /// always at least one when one exists; empty at the log end offset.
    pub fn read(&self, offset: u64, bytes_max: u64) -> Result<Vec<Entry>> {
        if offset < self.log_start_offset || offset > self.log_end_offset {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                start: self.log_start_offset,
                end: self.log_end_offset,
            });
        }
        let floor = self
            .segments
            .range(..=offset)
            .next_back()
            .map_or(self.log_start_offset, |(base, _)| *base);
        for segment in self.segments.range(floor..).map(|(_, s)| s) {
            let entries = segment.read(offset, bytes_max)?;
            if !entries.is_empty() {
                return Ok(entries);
            }
        }
        Ok(Vec::new())
    }

    /// The offset of the first entry whose timestamp is at least `timestamp_ms` (Kafka
    /// ListOffsets by time), or `None` when every entry is older.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<u64>> {
        for segment in self.segments.values() {
            if let Some(entry) = segment.find_by_timestamp(timestamp_ms)? {
                return Ok(Some(entry.offset.max(self.log_start_offset)));
            }
        }
        Ok(None)
    }

    /// Removes every record at or after `offset` (follower truncation after divergence). An
    /// entry holding `offset` is removed whole: the new log end offset is its first offset.
    pub fn truncate_to(&mut self, offset: u64) -> Result<()> {
        if offset >= self.log_end_offset {
            return Ok(());
        }
        if offset < self.log_start_offset {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                start: self.log_start_offset,
                end: self.log_end_offset,
            });
        }
        let later: Vec<u64> =
            self.segments.range(offset.saturating_add(1)..).map(|(base, _)| *base).collect();
        for base in later {
            if self.segments.len() == 1 {
                break;
            }
            if let Some(segment) = self.segments.remove(&base) {
                segment.delete(&self.fs)?;
            }
        }
        self.fs.sync_dir(&self.dir).at(&self.dir)?;
        let interval = self.config.index_interval_bytes;
        let active = self.active_mut();
        active.truncate_to(offset, interval)?;
        self.log_end_offset = self.active().next_offset();
        self.flushed_offset = self.flushed_offset.min(self.log_end_offset);
        self.watermark.reset(self.flushed_offset);
        Ok(())
    }

    /// Seals the active segment and starts a new one at the log end offset.
    pub fn roll(&mut self) -> Result<()> {
        if self.active().size_bytes() == 0 {
            return Ok(());
        }
        self.active_mut().seal()?;
        let base = self.log_end_offset;
        let segment = LogSegment::create(&self.fs, &self.dir, base, self.config.segment_bytes_max)?;
        self.segments.insert(base, segment);
        Ok(())
    }

    /// Syncs everything appended, now, on this thread (shutdown, tests). The flusher task
    /// ([`crate::run_flusher`]) does the same without blocking appenders.
    ///
    /// A failed sync fails the log, as a failed flusher sync does: what it holds past the
    /// flushed offset may or may not be on disk, so it takes no more appends.
    pub fn flush(&mut self) -> Result<()> {
        let end = self.log_end_offset;
        let active = self.active_mut();
        let synced = active.data.sync().and_then(|()| active.sync_written_indexes());
        if let Err(error) = synced {
            self.flush_failed(&error);
            return Err(error);
        }
        self.flush_done(end);
        Ok(())
    }

    /// The watermark appenders wait on for durability (in offsets).
    pub fn durable_watermark(&self) -> DurableWatermark {
        self.watermark.clone()
    }

    /// Offsets below it are synced to disk.
    pub fn flushed_offset(&self) -> u64 {
        self.flushed_offset
    }

    /// The first offset the log holds.
    pub fn log_start_offset(&self) -> u64 {
        self.log_start_offset
    }

    /// The offset the next append gets.
    pub fn log_end_offset(&self) -> u64 {
        self.log_end_offset
    }

    /// Bytes of entries in every segment.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(LogSegment::size_bytes).sum()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<u64> {
        self.segments.keys().copied().collect()
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn should_roll(&self, size: u64, now_ms: i64) -> bool {
        let active = self.active();
        if active.size_bytes() == 0 {
            return false;
        }
        let full = active.size_bytes() + size > self.config.segment_bytes_max;
        let old = active
            .first_append_ms
            .is_some_and(|first| now_ms - first >= self.config.segment_ms_max);
        full || old
    }

    pub(crate) fn active(&self) -> &LogSegment<F> {
        self.segments.values().next_back().expect("a log always has an active segment")
    }

    pub(crate) fn active_mut(&mut self) -> &mut LogSegment<F> {
        self.segments.values_mut().next_back().expect("a log always has an active segment")
    }
}

impl<F: Fs> Flushable for Log<F> {
    type File = F::File;

    fn flush_plan(&mut self) -> Option<FlushPlan<F::File>> {
        if self.flushed_offset >= self.log_end_offset {
            return None;
        }
        self.unflushed_bytes = 0;
        let active = self.active_mut();
        let mut files = vec![Arc::clone(&active.data.file())];
        files.extend(active.take_unsynced_indexes());
        Some(FlushPlan { files, up_to: self.log_end_offset })
    }

    fn flush_done(&mut self, up_to: u64) {
        self.flushed_offset = self.flushed_offset.max(up_to.min(self.log_end_offset));
        self.watermark.advance(self.flushed_offset);
    }

    fn flush_failed(&mut self, error: &StorageError) {
        tracing::error!(dir = %self.dir.display(), %error, "flush failed; the log refuses further appends");
        self.failure = Some(error.to_string());
        self.watermark.fail(error.to_string());
    }

    fn unflushed_bytes(&self) -> u64 {
        self.unflushed_bytes
    }
}

fn validate(config: &LogConfig) -> Result<()> {
    let invalid = |reason: &str| Err(StorageError::InvalidConfig(reason.to_owned()));
    if config.segment_bytes_max < 1024 || config.segment_bytes_max > u64::from(u32::MAX) {
        return invalid("segment_bytes_max must be between 1 KiB and 4 GiB");
    }
    if config.entry_bytes_max > config.segment_bytes_max {
        return invalid("entry_bytes_max must not exceed segment_bytes_max");
    }
    if config.index_interval_bytes == 0 {
        return invalid("index_interval_bytes must be positive");
    }
    Ok(())
}
