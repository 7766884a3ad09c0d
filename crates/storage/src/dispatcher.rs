//! Dispatcher — RocketMQ's ReputMessageService: turns CommitLog messages into consume queue
//! entries and key index entries. It runs inline after every append, and over the CommitLog's
//! tail on recovery; both ways it is idempotent, so a message dispatched twice is indexed once.

use std::path::Path;

use twinmq_runtime::Fs;

use crate::consume_queue::{ConsumeQueue, CqEntry};
use crate::error::{Result, StorageError};
use crate::index_file::IndexFile;
use crate::queue_map::QueueMap;
use crate::sync_steps::SyncSteps;

/// What the dispatcher needs of a message.
#[derive(Debug, Clone, Copy)]
pub struct DispatchRequest<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The queue.
    pub queue_id: u32,
    /// The message's index in its queue.
    pub queue_offset: u64,
    /// Where it is in the CommitLog.
    pub physical_offset: u64,
    /// Its size there.
    pub size: u32,
    /// Its tag hash.
    pub tag_hash: u64,
    /// Its keys, space-separated.
    pub keys: Option<&'a [u8]>,
    /// Its store timestamp.
    pub store_timestamp_ms: i64,
}

impl<'a> DispatchRequest<'a> {
    /// The request for a message read back from the CommitLog (recovery, replication).
    pub fn of(message: &'a crate::message::StoredMessage) -> Self {
        Self {
            topic: &message.topic,
            queue_id: message.queue_id,
            queue_offset: message.queue_offset,
            physical_offset: message.physical_offset,
            size: message.size,
            tag_hash: message.tag_hash,
            keys: message.keys.as_deref(),
            store_timestamp_ms: message.store_timestamp_ms,
        }
    }
}

/// Builds consume queues and the key index from CommitLog messages.
#[derive(Debug)]
pub struct Dispatcher<F: Fs> {
    pub(crate) fs: F,
    pub(crate) consume_queues: QueueMap<ConsumeQueue<F>>,
    pub(crate) index: IndexFile<F>,
    pub(crate) queue_root: std::path::PathBuf,
    pub(crate) entries_per_file: u64,
}

impl<F: Fs> Dispatcher<F> {
    /// Dispatches one message; skips whatever is already there.
    pub fn dispatch(&mut self, request: &DispatchRequest<'_>, commitlog_end: u64) -> Result<()> {
        if self.consume_queues.get(request.topic, request.queue_id).is_none() {
            let dir = self.queue_dir(request.topic, request.queue_id);
            let (queue, _) =
                ConsumeQueue::open(self.fs.clone(), dir, self.entries_per_file, commitlog_end)?;
            self.consume_queues.insert(request.topic, request.queue_id, queue);
        }
        let queue = self
            .consume_queues
            .get_mut(request.topic, request.queue_id)
            .ok_or_else(|| StorageError::Refused("consume queue vanished".into()))?;
        let entry = CqEntry {
            commitlog_offset: request.physical_offset,
            size: request.size,
            tag_hash: request.tag_hash,
        };
        match request.queue_offset.cmp(&queue.max_offset()) {
            std::cmp::Ordering::Equal => queue.append(entry)?,
            std::cmp::Ordering::Less => {
                let existing = queue.get(request.queue_offset)?;
                if existing.is_some_and(|e| e.commitlog_offset != request.physical_offset) {
                    return Err(StorageError::Corrupt {
                        path: queue.dir().to_owned(),
                        position: request.queue_offset,
                        reason: format!(
                            "queue offset holds commitlog offset {existing:?}, the commitlog says {}",
                            request.physical_offset
                        ),
                    });
                }
            }
            std::cmp::Ordering::Greater => {
                return Err(StorageError::Corrupt {
                    path: queue.dir().to_owned(),
                    position: request.queue_offset,
                    reason: format!(
                        "message at commitlog offset {} skips queue offsets from {}",
                        request.physical_offset,
                        queue.max_offset()
                    ),
                });
            }
        }
        if let Some(keys) = request.keys
            && request.physical_offset >= self.index.indexed_end()
        {
            for key in keys.split(|b| *b == b' ').filter(|k| !k.is_empty()) {
                let mut indexed = Vec::with_capacity(request.topic.len() + 1 + key.len());
                indexed.extend_from_slice(request.topic.as_bytes());
                indexed.push(b'#');
                indexed.extend_from_slice(key);
                self.index.put(&indexed, request.physical_offset, request.store_timestamp_ms)?;
            }
        }
        Ok(())
    }

    /// Adds to `steps` the syncs every consume queue and the index owe (before a checkpoint).
    pub fn sync_steps(&mut self, steps: &mut SyncSteps<F>) -> Result<()> {
        for queue in self.consume_queues.values_mut() {
            queue.sync_steps(steps)?;
        }
        self.index.sync_steps(steps)
    }

    pub(crate) fn queue_dir(&self, topic: &str, queue_id: u32) -> std::path::PathBuf {
        self.queue_root.join(topic).join(queue_id.to_string())
    }

    /// The consume queue root.
    pub fn queue_root(&self) -> &Path {
        &self.queue_root
    }
}
