//! Retention for the Kafka layout: delete the oldest sealed segments by size and by age.

use twinmq_runtime::Fs;

use crate::error::{IoContext, Result};
use crate::log::Log;

/// What a retention pass deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Base offsets of the deleted segments.
    pub deleted_segments: Vec<u64>,
    /// Bytes freed.
    pub deleted_bytes: u64,
    /// The log start offset afterwards.
    pub log_start_offset: u64,
}

impl<F: Fs> Log<F> {
    /// Deletes sealed segments while the log is larger than `retention_bytes`, and segments whose
    /// newest entry is older than `retention_ms` before `now_ms`. The active segment stays.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<RetentionOutcome> {
        let mut outcome = RetentionOutcome::default();
        let mut size = self.size_bytes();
        let active_base = self.active().base_offset();
        let candidates: Vec<u64> =
            self.segments.range(..active_base).map(|(base, _)| *base).collect();
        for base in candidates {
            let Some(segment) = self.segments.get(&base) else { continue };
            let too_big = self
                .config
                .retention_bytes
                .is_some_and(|limit| size - segment.size_bytes() >= limit);
            let too_old = self.config.retention_ms.is_some_and(|limit| {
                segment.timestamp_max_ms().is_none_or(|newest| now_ms - newest > limit)
            });
            if !too_big && !too_old {
                break;
            }
            if let Some(segment) = self.segments.remove(&base) {
                size -= segment.size_bytes();
                outcome.deleted_bytes += segment.size_bytes();
                outcome.deleted_segments.push(base);
                segment.delete(&self.fs)?;
            }
        }
        if !outcome.deleted_segments.is_empty() {
            self.fs.sync_dir(&self.dir).at(&self.dir)?;
            let first = self.segments.keys().next().copied().unwrap_or(active_base);
            self.log_start_offset = self.log_start_offset.max(first);
        }
        outcome.log_start_offset = self.log_start_offset;
        Ok(outcome)
    }
}
