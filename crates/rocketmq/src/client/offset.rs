//! A push consumer's offsets: the next offset to consume per queue, advanced as messages are
//! consumed. In clustering mode they belong to the group and live on the broker
//! (RocketMQ `RemoteBrokerOffsetStore`: committed periodically, oneway, and on queue release and
//! shutdown); in broadcasting mode each member keeps its own (`LocalFileOffsetStore`; here kept
//! in the consumer's memory for its lifetime).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use twinmq_runtime::Env;

use super::instance::ClientInstance;
use super::pull::update_offset;
use super::{ClientError, MessageQueue};

/// Where offsets are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetKeeping {
    /// On the broker, shared by the group.
    Broker,
    /// In this consumer only.
    Local,
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
    pub fn keeping(&self) -> OffsetKeeping {
        self.keeping
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

    /// Commits every changed offset (oneway) to the broker; a no-op for local keeping.
    pub async fn persist_all<E: Env>(&self, instance: &ClientInstance<E>, group: &str) {
        if self.keeping == OffsetKeeping::Local {
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
        if self.keeping == OffsetKeeping::Local {
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
