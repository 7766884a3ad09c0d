//! MessageStore — the RocketMQ layout as a broker uses it (RocketMQ's DefaultMessageStore): the
//! [`CommitLog`], the [`Dispatcher`] with its consume queues and key index, and the checkpoint.
//!
//! ## Directory
//!
//! ```text
//! <dir>/commitlog/<20-digit physical offset>       preallocated CommitLog files
//! <dir>/consumequeue/<topic>/<queue id>/<20 digits> consume queue files
//! <dir>/index/<20-digit sequence>                   key index files
//! <dir>/checkpoint                                   StoreCheckpoint
//! <dir>/abort                                        present while the store is open
//! ```

use std::collections::BTreeSet;
use std::path::PathBuf;

use twinmq_runtime::{Clock, Fs, OpenMode};

use crate::StorageError;
use crate::checkpoint::StoreCheckpoint;
use crate::commit_log::{AppendedMessage, CommitLog};
use crate::config::CommitLogConfig;
use crate::dispatcher::{DispatchRequest, Dispatcher};
use crate::error::{IoContext, Result};
use crate::flush::{DurableWatermark, FlushPlan, Flushable};
use crate::message::{NewMessage, StoredMessage};
use crate::segment::sync_parent;
use crate::sync_steps::SyncSteps;

/// A checkpoint gathered under the store's lock, to be finished without it.
#[derive(Debug)]
pub struct CheckpointPlan<F: Fs> {
    steps: SyncSteps<F>,
    checkpoint: StoreCheckpoint,
    fs: F,
    dir: PathBuf,
}

impl<F: Fs> CheckpointPlan<F> {
    /// Syncs the consume queues and the index as gathered, then writes the checkpoint.
    pub async fn finish(self) -> Result<StoreCheckpoint> {
        self.steps.run(&self.fs).await?;
        self.checkpoint.write(&self.fs, &self.dir)?;
        Ok(self.checkpoint)
    }
}

/// Most consume queue entries one `get_message` scans (RocketMQ reads 800 by default).
pub const GET_MESSAGE_SCAN_MAX: u64 = 800;

/// A broker's message store.
#[derive(Debug)]
pub struct MessageStore<F: Fs> {
    pub(crate) fs: F,
    pub(crate) clock: Clock,
    pub(crate) dir: PathBuf,
    pub(crate) commit_log: CommitLog<F>,
    pub(crate) dispatcher: Dispatcher<F>,
}

/// How a `get_message` went, in RocketMQ's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetMessageStatus {
    /// Messages were found.
    Found,
    /// The queue holds no message at all.
    NoMessageInQueue,
    /// The offset is below the queue's first.
    OffsetTooSmall,
    /// The offset is the queue's end: nothing new yet.
    OffsetOverflowOne,
    /// The offset is past the queue's end.
    OffsetOverflowBadly,
    /// Entries were scanned but none matched the tag filter.
    NoMatchedMessage,
}

/// The answer to `get_message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetMessageResult {
    /// How it went.
    pub status: GetMessageStatus,
    /// The messages, in queue order.
    pub messages: Vec<StoredMessage>,
    /// Where the next read of this queue should start.
    pub next_begin_offset: u64,
    /// The queue's first offset.
    pub min_offset: u64,
    /// The queue's end offset.
    pub max_offset: u64,
}

/// What [`MessageStore::open`] found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreRecovery {
    /// Whether the store was closed cleanly last time.
    pub clean_shutdown: bool,
    /// Torn or damaged tails cut: file, position, reason.
    pub truncations: Vec<(PathBuf, u64, String)>,
    /// Files removed.
    pub removed: Vec<PathBuf>,
    /// Files that are not the store's, left alone.
    pub unknown: Vec<PathBuf>,
    /// Consume queue entries cut because they pointed past the CommitLog's valid end.
    pub consume_queue_entries_cut: u64,
    /// Messages dispatched again from the checkpoint (or the start).
    pub redispatched: u64,
}

impl<F: Fs> MessageStore<F> {
    /// Opens (recovering) or creates the store in `dir`.
    pub fn open(
        fs: F,
        clock: Clock,
        dir: PathBuf,
        config: CommitLogConfig,
    ) -> Result<(Self, StoreRecovery)> {
        crate::store_recovery::open(fs, clock, dir, config)
    }

    /// Puts one message; it is dispatched at once.
    pub fn put_message(&mut self, message: NewMessage<'_>) -> Result<AppendedMessage> {
        Ok(self.put_messages(&[message])?.remove(0))
    }

    /// Puts messages in order with one CommitLog write per file; all are dispatched at once.
    pub fn put_messages(&mut self, messages: &[NewMessage<'_>]) -> Result<Vec<AppendedMessage>> {
        let appended = self.commit_log.append_batch(messages)?;
        let end = self.commit_log.max_physical_offset();
        for (message, placed) in messages.iter().zip(&appended) {
            let request = DispatchRequest {
                topic: message.topic,
                queue_id: message.queue_id,
                queue_offset: placed.queue_offset,
                physical_offset: placed.physical_offset,
                size: placed.size,
                tag_hash: message.tag_hash,
                keys: message.keys,
                store_timestamp_ms: placed.store_timestamp_ms,
            };
            self.dispatcher.dispatch(&request, end)?;
        }
        Ok(appended)
    }

    /// Reads up to `messages_max` messages (and about `bytes_max` bytes) of a queue from
    /// `queue_offset`, keeping those whose tag hash is in `tag_hashes` when given.
    pub fn get_message(
        &self,
        topic: &str,
        queue_id: u32,
        queue_offset: u64,
        messages_max: u32,
        bytes_max: u64,
        tag_hashes: Option<&BTreeSet<u64>>,
    ) -> Result<GetMessageResult> {
        let Some(queue) = self.dispatcher.consume_queues.get(topic, queue_id) else {
            return Ok(empty(GetMessageStatus::NoMessageInQueue, 0, 0, 0));
        };
        let (min, max) = (queue.min_offset(), queue.max_offset());
        if max == 0 {
            return Ok(empty(GetMessageStatus::NoMessageInQueue, 0, min, max));
        }
        if queue_offset < min {
            return Ok(empty(GetMessageStatus::OffsetTooSmall, min, min, max));
        }
        if queue_offset == max {
            return Ok(empty(GetMessageStatus::OffsetOverflowOne, queue_offset, min, max));
        }
        if queue_offset > max {
            let next = if min == 0 { min } else { max };
            return Ok(empty(GetMessageStatus::OffsetOverflowBadly, next, min, max));
        }
        let mut messages = Vec::new();
        let mut bytes = 0u64;
        let mut next = queue_offset;
        'scan: while next < max && next - queue_offset < GET_MESSAGE_SCAN_MAX {
            let entries = queue.read(next, GET_MESSAGE_SCAN_MAX - (next - queue_offset))?;
            if entries.is_empty() {
                break;
            }
            for entry in entries {
                if messages.len() >= messages_max as usize
                    || (!messages.is_empty() && bytes + u64::from(entry.size) > bytes_max)
                {
                    break 'scan;
                }
                next += 1;
                if tag_hashes.is_some_and(|tags| !tags.contains(&entry.tag_hash)) {
                    continue;
                }
                bytes += u64::from(entry.size);
                messages.push(self.commit_log.read_message(entry.commitlog_offset)?);
            }
        }
        let status = if messages.is_empty() {
            GetMessageStatus::NoMatchedMessage
        } else {
            GetMessageStatus::Found
        };
        Ok(GetMessageResult {
            status,
            messages,
            next_begin_offset: next,
            min_offset: min,
            max_offset: max,
        })
    }

    /// The queue offset the next message of a queue gets (0 for an unknown queue).
    pub fn max_offset_in_queue(&self, topic: &str, queue_id: u32) -> u64 {
        self.dispatcher.consume_queues.get(topic, queue_id).map_or(0, |q| q.max_offset())
    }

    /// The first queue offset a queue holds.
    pub fn min_offset_in_queue(&self, topic: &str, queue_id: u32) -> u64 {
        self.dispatcher.consume_queues.get(topic, queue_id).map_or(0, |q| q.min_offset())
    }

    /// The queue offset of the first message stored at or after `timestamp_ms` (RocketMQ
    /// getOffsetInQueueByTime); the queue's end when every message is older.
    pub fn offset_by_time(&self, topic: &str, queue_id: u32, timestamp_ms: i64) -> Result<u64> {
        let Some(queue) = self.dispatcher.consume_queues.get(topic, queue_id) else {
            return Ok(0);
        };
        let (mut low, mut high) = (queue.min_offset(), queue.max_offset());
        while low < high {
            let middle = low + (high - low) / 2;
            let Some(entry) = queue.get(middle)? else { break };
            if self.commit_log.read_message(entry.commitlog_offset)?.store_timestamp_ms
                < timestamp_ms
            {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        Ok(low)
    }

    /// Messages of `topic` carrying `key`, newest first, at most `count_max`, stored within
    /// `[begin_ms, end_ms]`.
    pub fn query_by_key(
        &self,
        topic: &str,
        key: &[u8],
        count_max: usize,
        begin_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<StoredMessage>> {
        let mut indexed = topic.as_bytes().to_vec();
        indexed.push(b'#');
        indexed.extend_from_slice(key);
        let mut found = Vec::new();
        for physical_offset in
            self.dispatcher.index.lookup(&indexed, usize::MAX, begin_ms, end_ms)?
        {
            if found.len() >= count_max {
                break;
            }
            // A candidate may be stale: the entry of a message a crash took from the CommitLog,
            // whose place a later message now covers. Only a message that starts there counts.
            let message = match self.commit_log.read_message(physical_offset) {
                Ok(message) if message.physical_offset == physical_offset => message,
                _ => continue,
            };
            let in_range =
                message.store_timestamp_ms >= begin_ms && message.store_timestamp_ms <= end_ms;
            if message.topic == topic && message.has_key(key) && in_range {
                found.push(message);
            }
        }
        Ok(found)
    }

    /// Whole CommitLog entries from `from` for a slave (see [`CommitLog::read_replica`]).
    pub fn read_replica(&self, from: u64, bytes_max: u64) -> Result<Option<(bytes::Bytes, u64)>> {
        self.commit_log.read_replica(from, bytes_max)
    }

    /// Appends a master's CommitLog bytes at this store's end and dispatches the messages in
    /// them (see [`CommitLog::append_replica`]); returns the CommitLog's new end.
    pub fn append_replica(&mut self, from: u64, bytes: &bytes::Bytes) -> Result<u64> {
        let messages = self.commit_log.append_replica(from, bytes)?;
        let end = self.commit_log.max_physical_offset();
        for message in &messages {
            let request = DispatchRequest::of(message);
            self.dispatcher.dispatch(&request, end)?;
        }
        Ok(end)
    }

    /// Reads one message by physical offset.
    pub fn read_message(&self, physical_offset: u64) -> Result<StoredMessage> {
        self.commit_log.read_message(physical_offset)
    }

    /// Syncs the consume queues and the index, then records that everything dispatched so far
    /// need not be dispatched again.
    /// Everything on this thread: for a store closing or just recovered.
    pub fn checkpoint(&mut self) -> Result<StoreCheckpoint> {
        // The CommitLog first: a checkpoint never claims messages a crash could still take.
        self.commit_log.flush()?;
        let plan = self.begin_checkpoint()?;
        plan.steps.run_now(&plan.fs)?;
        plan.checkpoint.write(&plan.fs, &plan.dir)?;
        Ok(plan.checkpoint)
    }

    /// The part of a checkpoint that needs the store: writes out buffered consume queue and
    /// index entries and gathers the syncs they owe. The broker calls it under its lock and
    /// carries the plan out after releasing it ([`CheckpointPlan::finish`]), so appends do not
    /// wait for those fsyncs. It claims only what the CommitLog already holds durably.
    pub fn begin_checkpoint(&mut self) -> Result<CheckpointPlan<F>> {
        let durable = self.commit_log.durable_watermark().position();
        let dispatched = self.commit_log.max_physical_offset().min(durable);
        let mut steps = SyncSteps::default();
        self.dispatcher.sync_steps(&mut steps)?;
        Ok(CheckpointPlan {
            steps,
            checkpoint: StoreCheckpoint {
                dispatched_physical_offset: dispatched,
                timestamp_ms: self.clock.now_ms(),
            },
            fs: self.fs.clone(),
            dir: self.dir.clone(),
        })
    }

    /// Syncs the CommitLog now, on this thread.
    pub fn flush(&mut self) -> Result<()> {
        self.commit_log.flush()
    }

    /// Flushes, checkpoints and marks the shutdown clean.
    pub fn close(mut self) -> Result<()> {
        self.flush()?;
        self.checkpoint()?;
        let abort = self.dir.join("abort");
        self.fs.remove_file(&abort).at(&abort)?;
        self.fs.sync_dir(&self.dir).at(&self.dir)
    }

    /// The watermark appenders wait on (a physical offset).
    pub fn durable_watermark(&self) -> DurableWatermark {
        self.commit_log.durable_watermark()
    }

    /// The CommitLog.
    pub fn commit_log(&self) -> &CommitLog<F> {
        &self.commit_log
    }

    /// Every (topic, queue id) the store holds, sorted.
    pub fn queues(&self) -> Vec<(String, u32)> {
        self.dispatcher.consume_queues.iter().map(|(t, q, _)| (t.to_owned(), q)).collect()
    }

    /// Creates the abort marker that tells the next open whether this one ended cleanly.
    pub(crate) fn mark_open(fs: &F, dir: &std::path::Path) -> Result<()> {
        let abort = dir.join("abort");
        fs.open(&abort, OpenMode::Create).at(&abort)?;
        sync_parent(fs, &abort)
    }
}

impl<F: Fs> Flushable for MessageStore<F> {
    type File = F::File;

    fn flush_plan(&mut self) -> Option<FlushPlan<F::File>> {
        self.commit_log.flush_plan()
    }

    fn flush_done(&mut self, up_to: u64) {
        self.commit_log.flush_done(up_to);
    }

    fn flush_failed(&mut self, error: &StorageError) {
        self.commit_log.flush_failed(error);
    }

    fn unflushed_bytes(&self) -> u64 {
        self.commit_log.unflushed_bytes()
    }
}

fn empty(status: GetMessageStatus, next: u64, min: u64, max: u64) -> GetMessageResult {
    GetMessageResult {
        status,
        messages: Vec::new(),
        next_begin_offset: next,
        min_offset: min,
        max_offset: max,
    }
}
