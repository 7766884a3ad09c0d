//! The layouts the storage crash harness can drive.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use twinmq_runtime::{Env, SimEnv, SimFile, SimFs};
use twinmq_storage::{
    CommitLogConfig, DurableWatermark, FlushPlan, FlushPolicy, Flushable, Log, LogConfig,
    MessageStore, NewEntry, NewMessage, StorageError,
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
    /// The RocketMQ layout: a [`MessageStore`] (CommitLog, consume queues, index).
    CommitLog,
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
        let (log, recovery) =
            Log::open(env.fs().clone(), env.clock().clone(), dir.to_owned(), config)
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

/// A RocketMQ-layout store with small files, so a run rolls, pads and indexes through several.
#[derive(Debug)]
pub(super) struct StoreSubject {
    store: MessageStore<SimFs>,
}

const STORE_TOPIC: &str = "SimTopic";

impl Subject for StoreSubject {
    fn open(env: &SimEnv, dir: &Path, flush: FlushPolicy) -> Result<(Self, String, bool), String> {
        create_dir_durably(env.fs(), dir)?;
        let config = CommitLogConfig {
            file_bytes: 16 * 1024,
            consume_queue_entries_per_file: 32,
            index_slots: 31,
            index_entries_max: 400,
            entry_bytes_max: 4 * 1024,
            flush,
        };
        let (store, recovery) =
            MessageStore::open(env.fs().clone(), env.clock().clone(), dir.to_owned(), config)
                .map_err(|error| error.to_string())?;
        let summary = format!(
            "store end {} clean {} cuts {:?} removed {} cq cut {} redispatched {}",
            store.commit_log().max_physical_offset(),
            recovery.clean_shutdown,
            recovery
                .truncations
                .iter()
                .map(|(_, position, reason)| format!("@{position}: {reason}"))
                .collect::<Vec<_>>(),
            recovery.removed.len(),
            recovery.consume_queue_entries_cut,
            recovery.redispatched
        );
        let cut = !recovery.truncations.is_empty();
        Ok((Self { store }, summary, cut))
    }

    fn append(&mut self, stream: u32, payload: &[u8]) -> Result<u64, String> {
        let key = format!(
            "id{}",
            u64::from_be_bytes(
                payload.get(..8).and_then(|b| b.try_into().ok()).unwrap_or_default()
            )
        );
        let message = NewMessage {
            topic: STORE_TOPIC,
            queue_id: stream,
            tag_hash: u64::from(stream),
            keys: Some(key.as_bytes()),
            body: payload,
        };
        let placed = self.store.put_message(message).map_err(|error| error.to_string())?;
        // Checkpoint now and then, so recovery exercises both the checkpoint and the re-dispatch.
        if placed.queue_offset % 16 == 15 {
            self.store.checkpoint().map_err(|error| error.to_string())?;
        }
        Ok(placed.position_end)
    }

    fn contents(&self) -> Result<BTreeMap<u32, Vec<Bytes>>, String> {
        let mut streams = BTreeMap::new();
        for (topic, queue_id) in self.store.queues() {
            let mut bodies = Vec::new();
            let mut offset = 0;
            loop {
                let result = self
                    .store
                    .get_message(&topic, queue_id, offset, 64, u64::MAX, None)
                    .map_err(|error| error.to_string())?;
                if result.messages.is_empty() {
                    break;
                }
                offset = result.next_begin_offset;
                for message in result.messages {
                    let id = u64::from_be_bytes(
                        message.body.get(..8).and_then(|b| b.try_into().ok()).unwrap_or_default(),
                    );
                    let keys_found = self
                        .store
                        .query_by_key(&topic, format!("id{id}").as_bytes(), 4, 0, i64::MAX)
                        .map_err(|error| error.to_string())?;
                    if keys_found
                        .iter()
                        .all(|found| found.physical_offset != message.physical_offset)
                    {
                        return Err(format!(
                            "message id {id} at {} is in queue {queue_id} but its key finds {:?}",
                            message.physical_offset,
                            keys_found.iter().map(|m| m.physical_offset).collect::<Vec<_>>()
                        ));
                    }
                    bodies.push(message.body);
                }
            }
            streams.insert(queue_id, bodies);
        }
        Ok(streams)
    }

    fn watermark(&self) -> DurableWatermark {
        self.store.durable_watermark()
    }

    fn stream_count() -> u32 {
        4
    }
}

impl Flushable for StoreSubject {
    type File = SimFile;

    fn flush_plan(&mut self) -> Option<FlushPlan<SimFile>> {
        self.store.flush_plan()
    }

    fn flush_done(&mut self, up_to: u64) {
        self.store.flush_done(up_to);
    }

    fn flush_failed(&mut self, error: &StorageError) {
        self.store.flush_failed(error);
    }

    fn unflushed_bytes(&self) -> u64 {
        self.store.unflushed_bytes()
    }
}
