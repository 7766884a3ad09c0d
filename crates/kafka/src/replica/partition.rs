//! Partition — one replica of a topic partition on this broker: its Log, its high watermark,
//! its leader epoch and its producers' state, behind one lock that the produce path, the fetch
//! path and the partition's flusher share.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use twinmq_runtime::{Clock, Fs};
use twinmq_storage::{
    DurableWatermark, FlushPlan, FlushPolicy, FlushSignal, Flushable, Log, LogConfig, NewEntry,
    StorageError,
};

use crate::error::KafkaError;
use crate::record_batch::{self, BatchHeader};
use crate::replica::producer_state::{ProducerStateTable, SequenceCheck};

/// A partition's name, as Kafka prints it: `topic-index`.
pub fn partition_name(topic: &str, index: i32) -> String {
    format!("{topic}-{index}")
}

/// The state a partition's lock guards.
#[derive(Debug)]
pub struct PartitionState<F: Fs> {
    /// The replica's log.
    pub log: Log<F>,
    /// Idempotent producers' sequence state.
    pub producers: ProducerStateTable,
    /// The epoch of the current leader.
    pub leader_epoch: i32,
    /// Offsets below it are committed: replicated to the whole ISR, visible to consumers.
    pub high_watermark: u64,
    scratch: Vec<u8>,
}

impl<F: Fs> Flushable for PartitionState<F> {
    type File = F::File;

    fn flush_plan(&mut self) -> Option<FlushPlan<F::File>> {
        self.log.flush_plan()
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

/// What a produce to one partition did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    /// Offset of the first record of the request's first batch.
    pub base_offset: u64,
    /// The log end offset after the append: durable and replicated once these are at it.
    pub log_end_offset: u64,
    /// The log start offset.
    pub log_start_offset: u64,
}

/// Batches read for a fetch.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    /// Whole RecordBatches, in offset order, zero-copy from the log where the Fs allows.
    pub batches: Vec<Bytes>,
    /// Their total size.
    pub bytes: u64,
    /// The high watermark when read.
    pub high_watermark: u64,
    /// The log start offset when read.
    pub log_start_offset: u64,
    /// The log end offset when read.
    pub log_end_offset: u64,
}

/// One partition replica.
#[derive(Debug)]
pub struct Partition<F: Fs> {
    /// The topic.
    pub topic: String,
    /// The partition index.
    pub index: i32,
    state: Arc<Mutex<PartitionState<F>>>,
    flush_signal: FlushSignal,
    durable: DurableWatermark,
    flush_policy: FlushPolicy,
}

impl<F: Fs> Partition<F> {
    /// Opens (or creates) the replica's log in `dir` and rebuilds its producers' state from it.
    pub fn open(
        fs: F,
        clock: Clock,
        dir: PathBuf,
        config: LogConfig,
        topic: &str,
        index: i32,
    ) -> Result<Self, KafkaError> {
        let flush_policy = config.flush;
        let (log, recovery) = Log::open(fs, clock, dir, config)?;
        if !recovery.is_clean() {
            tracing::warn!(partition = %partition_name(topic, index), ?recovery, "log recovered");
        }
        let producers = rebuild_producers(&log)?;
        let durable = log.durable_watermark();
        let high_watermark = log.log_end_offset();
        let state =
            PartitionState { log, producers, leader_epoch: 0, high_watermark, scratch: Vec::new() };
        Ok(Self {
            topic: topic.to_owned(),
            index,
            state: Arc::new(Mutex::new(state)),
            flush_signal: FlushSignal::new(),
            durable,
            flush_policy,
        })
    }

    /// The state shared with the flusher task.
    pub fn shared_state(&self) -> Arc<Mutex<PartitionState<F>>> {
        Arc::clone(&self.state)
    }

    /// The signal that wakes this partition's flusher.
    pub fn flush_signal(&self) -> FlushSignal {
        self.flush_signal.clone()
    }

    /// The partition's flush policy.
    pub fn flush_policy(&self) -> FlushPolicy {
        self.flush_policy
    }

    /// Locks the partition's state.
    pub fn lock(&self) -> Result<MutexGuard<'_, PartitionState<F>>, KafkaError> {
        self.state.lock().map_err(|_| {
            KafkaError::Storage(StorageError::Refused("a task panicked holding a partition".into()))
        })
    }

    /// Validates, stamps and appends a produced record set as the leader; a retried idempotent
    /// batch is acknowledged with its first offset and not appended again.
    pub fn append_as_leader(
        &self,
        records: &[u8],
        batch_bytes_max: u64,
    ) -> Result<Produced, KafkaError> {
        let headers = record_batch::validate(records)?;
        if let Some(large) = headers.iter().find(|h| h.size as u64 > batch_bytes_max) {
            return Err(KafkaError::RecordSetTooLarge {
                size: large.size as u64,
                limit: batch_bytes_max,
            });
        }
        let mut state = self.lock()?;
        let state = &mut *state;
        let mut base_offset = None;
        let mut position = 0;
        for header in &headers {
            let batch = &records[position..position + header.size];
            position += header.size;
            match state.producers.check(header)? {
                SequenceCheck::Duplicate { first_offset } => {
                    base_offset.get_or_insert(first_offset);
                }
                SequenceCheck::Append => {
                    let offset = state.log.log_end_offset();
                    state.scratch.clear();
                    state.scratch.extend_from_slice(batch);
                    record_batch::stamp(&mut state.scratch, offset, state.leader_epoch);
                    let entry = NewEntry {
                        record_count: header.offset_count(),
                        timestamp_ms: header.max_timestamp,
                        key: None,
                        payload: &state.scratch,
                    };
                    state.log.append(entry)?;
                    state.producers.record(header, offset);
                    base_offset.get_or_insert(offset);
                }
            }
        }
        let log_end_offset = state.log.log_end_offset();
        // A leader without followers commits what it appends (the ISR is itself).
        state.high_watermark = log_end_offset;
        Ok(Produced {
            base_offset: base_offset.unwrap_or(log_end_offset),
            log_end_offset,
            log_start_offset: state.log.log_start_offset(),
        })
    }

    /// Waits until the log is durable up to `end_offset` under the partition's flush policy
    /// (at once under an async policy).
    pub async fn wait_durable(&self, end_offset: u64) -> Result<(), KafkaError> {
        if self.flush_policy == FlushPolicy::Sync {
            self.flush_signal.request();
            self.durable.wait_for(end_offset).await?;
        }
        Ok(())
    }

    /// Whole batches from the one holding `offset` up to the high watermark, at most `bytes_max`
    /// bytes of them but at least one when one is committed.
    pub fn read_committed(&self, offset: u64, bytes_max: u64) -> Result<Fetched, KafkaError> {
        let state = self.lock()?;
        let (start, end, high_watermark) =
            (state.log.log_start_offset(), state.log.log_end_offset(), state.high_watermark);
        if offset < start || offset > end {
            return Err(KafkaError::OffsetOutOfRange {
                offset: i64::try_from(offset).unwrap_or(i64::MAX),
                start,
                end,
            });
        }
        let mut fetched = Fetched {
            high_watermark,
            log_start_offset: start,
            log_end_offset: end,
            ..Fetched::default()
        };
        if offset >= high_watermark {
            return Ok(fetched);
        }
        for entry in state.log.read(offset, bytes_max)? {
            if entry.offset >= high_watermark {
                break;
            }
            fetched.bytes += entry.payload.len() as u64;
            fetched.batches.push(entry.payload);
        }
        Ok(fetched)
    }

    /// The offset of the first record at or after `timestamp_ms`, or the log end offset.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<u64, KafkaError> {
        let state = self.lock()?;
        Ok(state.log.offset_for_timestamp(timestamp_ms)?.unwrap_or(state.high_watermark))
    }

    /// (log start offset, high watermark, log end offset).
    pub fn offsets(&self) -> Result<(u64, u64, u64), KafkaError> {
        let state = self.lock()?;
        Ok((state.log.log_start_offset(), state.high_watermark, state.log.log_end_offset()))
    }

    /// Syncs the log now (shutdown).
    pub fn flush(&self) -> Result<(), KafkaError> {
        Ok(self.lock()?.log.flush()?)
    }
}

fn rebuild_producers<F: Fs>(log: &Log<F>) -> Result<ProducerStateTable, KafkaError> {
    let mut producers = ProducerStateTable::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let entries = log.read(offset, 1 << 20)?;
        let Some(last) = entries.last() else { break };
        offset = last.next_offset();
        for entry in entries {
            if let Ok(header) = record_batch::read_header(&entry.payload)
                && header.is_idempotent()
            {
                producers.record(&header, entry.offset);
            }
        }
    }
    Ok(producers)
}

/// The batch headers of a record set read back (tests, dump).
pub fn headers_of(batches: &[Bytes]) -> Vec<BatchHeader> {
    batches.iter().filter_map(|b| record_batch::read_header(b).ok()).collect()
}
