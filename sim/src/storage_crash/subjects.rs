//! The layouts the storage crash harness can drive.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use twinmq_runtime::{Env, SimEnv, SimFile, SimFs};
use twinmq_storage::{
    DurableWatermark, FlushPlan, FlushPolicy, Flushable, Log, LogConfig, NewEntry, StorageError,
};

use super::{Subject, create_dir_durably};

/// Which storage layout a scenario drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The Kafka layout: one segmented [`Log`].
    Log,
    /// Deliberately broken: the Kafka layout whose flusher reports appends durable without
    /// syncing them. It exists to prove the checker catches lost acknowledged entries.
    LogAckedBeforeSync,
}

/// A Kafka-layout log with small segments, so a run rolls through several.
#[derive(Debug)]
pub(super) struct LogSubject<const SYNCS: bool = true> {
    log: Log<SimFs>,
    clock: twinmq_runtime::Clock,
}

/// The broken variant: its flush plans sync nothing.
pub(super) type LogAckedBeforeSyncSubject = LogSubject<false>;

impl<const SYNCS: bool> Subject for LogSubject<SYNCS> {
    fn open(env: &SimEnv, dir: &Path, flush: FlushPolicy) -> Result<(Self, String, bool), String> {
        create_dir_durably(env.fs(), dir)?;
        let config = LogConfig {
            segment_bytes_max: 16 * 1024,
            index_interval_bytes: 512,
            entry_bytes_max: 4 * 1024,
            retention_ms: None,
            flush,
            ..LogConfig::default()
        };
        let (log, recovery) = Log::open(*env.fs(), env.clock().clone(), dir.to_owned(), config)
            .map_err(|error| error.to_string())?;
        let summary = format!(
            "log [{}, {}) segments {} cuts {:?} rebuilt {} removed {}",
            log.log_start_offset(),
            log.log_end_offset(),
            log.segment_base_offsets().len(),
            recovery
                .truncations
                .iter()
                .map(|(_, position, reason)| format!("@{position}: {reason}"))
                .collect::<Vec<_>>(),
            recovery.rebuilt_indexes.len(),
            recovery.removed.len()
        );
        let cut = !recovery.truncations.is_empty();
        Ok((Self { log, clock: env.clock().clone() }, summary, cut))
    }

    fn append(&mut self, _stream: u32, payload: &[u8]) -> Result<u64, String> {
        let entry =
            NewEntry { record_count: 1, timestamp_ms: self.clock.now_ms(), key: None, payload };
        self.log
            .append(entry)
            .map(|appended| appended.log_end_offset)
            .map_err(|error| error.to_string())
    }

    fn contents(&self) -> Result<BTreeMap<u32, Vec<Bytes>>, String> {
        let mut payloads = Vec::new();
        let mut offset = self.log.log_start_offset();
        while offset < self.log.log_end_offset() {
            let entries = self.log.read(offset, 64 * 1024).map_err(|error| error.to_string())?;
            let Some(last) = entries.last() else { break };
            offset = last.next_offset();
            payloads.extend(entries.into_iter().map(|entry| entry.payload));
        }
        Ok(BTreeMap::from([(0, payloads)]))
    }

    fn watermark(&self) -> DurableWatermark {
        self.log.durable_watermark()
    }

    fn stream_count() -> u32 {
        1
    }
}

impl<const SYNCS: bool> Flushable for LogSubject<SYNCS> {
    type File = SimFile;

    fn flush_plan(&mut self) -> Option<FlushPlan<SimFile>> {
        let mut plan = self.log.flush_plan()?;
        if !SYNCS {
            plan.files.clear();
        }
        Some(plan)
    }

    fn flush_done(&mut self, up_to: u64) {
        self.log.flush_done(up_to);
    }

    fn flush_failed(&mut self, error: &StorageError) {
        self.log.flush_failed(error);
    }

    fn unflushed_bytes(&self) -> u64 {
        self.log.unflushed_bytes()
    }
}
