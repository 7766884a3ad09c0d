//! A push consumer's offsets: the next offset to consume per queue, advanced as messages are
//! consumed. In clustering mode they belong to the group and live on the broker
//! (RocketMQ `RemoteBrokerOffsetStore`: committed periodically, oneway, and on queue release and
//! shutdown); in broadcasting mode each member keeps its own (`LocalFileOffsetStore`): in
//! memory, and — when given a file — written there whole and atomically (through the Fs seam)
//! every persist interval and at shutdown, read back at start.
//!
//! ## Local file format
//!
//! JSON: `{"offsetTable":[{"topic":"t","brokerName":"broker-a","queueId":0,"offset":5},…]}`
//! (RocketMQ's own file keys a map by queue objects, which only fastjson reads).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use twinmq_runtime::{Env, Fs};
use twinmq_storage::atomic_file::{read_whole, write_atomically};

use super::instance::ClientInstance;
use super::pull::update_offset;
use super::{ClientError, MessageQueue};

/// Where offsets are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetKeeping {
    /// On the broker, shared by the group.
    Broker,
    /// In this consumer only, and in this file when given.
    Local(Option<PathBuf>),
}

/// One row of the local offsets file.
#[derive(Debug, Serialize, Deserialize)]
struct LocalOffset {
    #[serde(flatten)]
    queue: MessageQueue,
    offset: i64,
}

/// The local offsets file.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LocalOffsetFile {
    offset_table: Vec<LocalOffset>,
}

/// Next offsets per queue, with what the broker has not heard yet.
#[derive(Debug)]
pub struct OffsetStore {
    keeping: OffsetKeeping,
    /// Queue → (next offset to consume, changed since last committed).
    table: Mutex<BTreeMap<MessageQueue, (i64, bool)>>,
    /// Held while committing, so a periodic commit of an older offset is on the wire before a
    /// release commits the final one.
    committing: tokio::sync::Mutex<()>,
}

impl OffsetStore {
    /// An empty store.
    pub fn new(keeping: OffsetKeeping) -> Self {
        Self { keeping, table: Mutex::default(), committing: tokio::sync::Mutex::default() }
    }

    fn table(&self) -> MutexGuard<'_, BTreeMap<MessageQueue, (i64, bool)>> {
        self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Where offsets are kept.
    pub fn keeping(&self) -> &OffsetKeeping {
        &self.keeping
    }

    /// Reads the local offsets file, if there is one; an unreadable file counts as empty.
    pub fn load<F: Fs>(&self, fs: &F) {
        let OffsetKeeping::Local(Some(path)) = &self.keeping else { return };
        let Some(bytes) = read_whole(fs, path) else { return };
        match serde_json::from_slice::<LocalOffsetFile>(&bytes) {
            Ok(file) => {
                let mut table = self.table();
                for row in file.offset_table {
                    table.insert(row.queue, (row.offset, false));
                }
            }
            Err(error) => tracing::warn!(path = %path.display(), %error, "offsets file unreadable"),
        }
    }

    fn write_local<F: Fs>(&self, fs: &F, path: &std::path::Path) {
        let file = LocalOffsetFile {
            offset_table: self
                .table()
                .iter()
                .map(|(queue, (offset, _))| LocalOffset { queue: queue.clone(), offset: *offset })
                .collect(),
        };
        let bytes = serde_json::to_vec(&file).unwrap_or_default();
        let written = match path.parent() {
            Some(dir) => fs.create_dir_all(dir).map_err(|e| e.to_string()),
            None => Ok(()),
        }
        .and_then(|()| write_atomically(fs, path, &bytes).map_err(|e| e.to_string()));
        match written {
            Ok(()) => self.table().values_mut().for_each(|entry| entry.1 = false),
            Err(error) => tracing::warn!(path = %path.display(), %error, "offsets not written"),
        }
    }

    /// Records that everything before `offset` in `queue` is consumed.
    pub fn update(&self, queue: &MessageQueue, offset: i64) {
        let mut table = self.table();
        let entry = table.entry(queue.clone()).or_insert((offset, true));
        if entry.0 != offset {
            *entry = (offset, true);
        }
    }

    /// Records a starting offset read from the broker (nothing to commit).
    pub fn start_at(&self, queue: &MessageQueue, offset: i64) {
        self.table().insert(queue.clone(), (offset, false));
    }

    /// The next offset to consume, if known.
    pub fn read(&self, queue: &MessageQueue) -> Option<i64> {
        self.table().get(queue).map(|(offset, _)| *offset)
    }

    /// Commits every changed offset (oneway) to the broker, or writes the local file.
    pub async fn persist_all<E: Env>(&self, instance: &ClientInstance<E>, group: &str) {
        if let OffsetKeeping::Local(file) = &self.keeping {
            if let Some(path) = file
                && self.table().values().any(|(_, dirty)| *dirty)
            {
                self.write_local(instance.env().fs(), path);
            }
            return;
        }
        let _committing = self.committing.lock().await;
        let changed: Vec<(MessageQueue, i64)> = self
            .table()
            .iter()
            .filter(|(_, (_, dirty))| *dirty)
            .map(|(q, (o, _))| (q.clone(), *o))
            .collect();
        for (queue, offset) in changed {
            match update_offset(instance, group, &queue, offset, true).await {
                Ok(()) => self.mark_committed(&queue, offset),
                Err(error) => tracing::debug!(%queue, %error, "offset commit failed"),
            }
        }
    }

    /// Commits one queue's offset and waits for the broker to take it (a queue being handed to
    /// another member must not be read again from an older offset); then forgets the queue.
    pub async fn persist_and_remove<E: Env>(
        &self,
        instance: &ClientInstance<E>,
        group: &str,
        queue: &MessageQueue,
    ) -> Result<(), ClientError> {
        if matches!(self.keeping, OffsetKeeping::Local(_)) {
            return Ok(());
        }
        let _committing = self.committing.lock().await;
        let offset = self.table().get(queue).copied();
        if let Some((offset, true)) = offset {
            update_offset(instance, group, queue, offset, false).await?;
        }
        self.table().remove(queue);
        Ok(())
    }

    fn mark_committed(&self, queue: &MessageQueue, offset: i64) {
        if let Some(entry) = self.table().get_mut(queue)
            && entry.0 == offset
        {
            entry.1 = false;
        }
    }
}
