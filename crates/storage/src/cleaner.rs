//! Compaction for the Kafka layout (Kafka's log cleaner): keep only the newest entry per key.
//!
//! A pass maps every key to the offset of its newest entry over the whole log (the active
//! segment included, since its entries supersede older ones), then rewrites each sealed segment
//! keeping the entries that are the newest for their key and the entries without a key. Offsets
//! are preserved; the gaps are normal in a compacted log. A segment left with no entry is
//! deleted, and when it was the first, the log now starts at the next one.
//!
//! ## Crash contract
//!
//! A segment is rewritten into `<base>.log.cleaned`, synced; its index files are removed and the
//! directory synced; then the cleaned file is renamed over the segment and the directory synced
//! again, and the indexes are rebuilt. A crash before the rename leaves the old segment and a
//! `.cleaned` file that the next open deletes; after it, the new segment and missing indexes,
//! which open rebuilds.

use std::collections::BTreeMap;

use bytes::Bytes;
use twinmq_runtime::Fs;

use crate::entry::NewEntry;
use crate::entry_cursor::{EntryCursor, READ_WINDOW_MAX_BYTES};
use crate::error::{IoContext, Result};
use crate::log::Log;
use crate::log_segment::LogSegment;
use crate::segment::{Segment, file_name};
use crate::sparse_index::SparseIndex;

/// What a compaction pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// Sealed segments rewritten.
    pub segments_rewritten: u64,
    /// Entries dropped because a newer entry has the same key.
    pub entries_removed: u64,
    /// Bytes reclaimed.
    pub bytes_reclaimed: u64,
}

impl<F: Fs> Log<F> {
    /// Runs one compaction pass over the sealed segments.
    pub fn compact(&mut self) -> Result<CompactionReport> {
        let mut newest: BTreeMap<Bytes, u64> = BTreeMap::new();
        for segment in self.segments.values() {
            let mut cursor = EntryCursor::new(0, READ_WINDOW_MAX_BYTES);
            while let Some(entry) = segment.next_entry(&mut cursor)? {
                if let Some(key) = entry.key {
                    newest.insert(key, entry.offset);
                }
            }
        }
        let mut report = CompactionReport::default();
        let active_base = self.active().base_offset();
        let sealed: Vec<u64> = self.segments.range(..active_base).map(|(base, _)| *base).collect();
        for base in sealed {
            self.compact_segment(base, &newest, &mut report)?;
        }
        // Segments left with nothing are gone; the log starts at the first one left (Kafka
        // keeps a log start checkpoint instead; either way no kept entry moves).
        self.log_start_offset =
            self.segments.keys().next().copied().unwrap_or(self.log_start_offset);
        Ok(report)
    }

    fn compact_segment(
        &mut self,
        base: u64,
        newest: &BTreeMap<Bytes, u64>,
        report: &mut CompactionReport,
    ) -> Result<()> {
        let Some(segment) = self.segments.get(&base) else { return Ok(()) };
        let mut kept = Vec::new();
        let mut removed = 0u64;
        let mut cursor = EntryCursor::new(0, READ_WINDOW_MAX_BYTES);
        while let Some(entry) = segment.next_entry(&mut cursor)? {
            let superseded = entry
                .key
                .as_ref()
                .is_some_and(|key| newest.get(key).is_some_and(|&o| o != entry.offset));
            if superseded {
                removed += 1;
            } else {
                kept.push(entry);
            }
        }
        if removed == 0 {
            return Ok(());
        }
        let old_bytes = segment.size_bytes();
        if kept.is_empty() {
            // Nothing survives: delete the segment rather than leave an empty file, which a
            // reopen would take for damage.
            let old = self.segments.remove(&base).expect("the segment was just read");
            old.delete(&self.fs)?;
            self.fs.sync_dir(&self.dir).at(&self.dir)?;
            report.segments_rewritten += 1;
            report.entries_removed += removed;
            report.bytes_reclaimed += old_bytes;
            return Ok(());
        }
        let log_path = self.dir.join(file_name(base, "log"));
        let cleaned_path = self.dir.join(format!("{}.cleaned", file_name(base, "log")));
        let mut buffer = Vec::new();
        for entry in &kept {
            NewEntry {
                record_count: entry.record_count,
                timestamp_ms: entry.timestamp_ms,
                key: entry.key.as_deref(),
                payload: &entry.payload,
            }
            .encode_into(entry.offset, &mut buffer);
        }
        let mut cleaned =
            Segment::<F>::create(&self.fs, cleaned_path.clone(), base, buffer.len() as u64, false)?;
        cleaned.append(&buffer)?;
        cleaned.sync()?;
        drop(cleaned);
        let old = self.segments.remove(&base).expect("the segment was just read");
        let index_path = old.offset_index.path().to_owned();
        let time_path = old.time_index.path().to_owned();
        drop(old);
        for path in [&index_path, &time_path] {
            self.fs.remove_file(path).at(path)?;
        }
        self.fs.sync_dir(&self.dir).at(&self.dir)?;
        self.fs.rename(&cleaned_path, &log_path).at(&cleaned_path)?;
        self.fs.sync_dir(&self.dir).at(&self.dir)?;
        let mut data = Segment::open(&self.fs, log_path, base, 0, false)?;
        data.assume_whole()?;
        let mut segment = LogSegment::assemble(
            data,
            SparseIndex::create(&self.fs, index_path)?,
            SparseIndex::create(&self.fs, time_path)?,
        );
        segment.rebuild_indexes(self.config.index_interval_bytes)?;
        segment.seal()?;
        report.segments_rewritten += 1;
        report.entries_removed += removed;
        report.bytes_reclaimed += old_bytes - segment.size_bytes();
        self.segments.insert(base, segment);
        Ok(())
    }
}
