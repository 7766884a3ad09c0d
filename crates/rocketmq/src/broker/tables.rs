//! The broker's small tables: topic configuration and consumer offsets (both persisted as
//! JSON, replaced atomically, like RocketMQ's `topics.json` and `consumerOffset.json`), and the
//! consumer groups it learned from heartbeats (memory only, as in RocketMQ).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use twinmq_runtime::Fs;
use twinmq_storage::StorageError;
use twinmq_storage::atomic_file::{read_whole, write_atomically};

use crate::remoting::Peer;

/// The topic a producer's first send to a new topic names as its template.
pub const DEFAULT_TOPIC: &str = "TBW102";
/// Permission bits.
pub const PERM_READ: u32 = 4;
/// Permission bits.
pub const PERM_WRITE: u32 = 2;
/// Permission bits.
pub const PERM_INHERIT: u32 = 1;

/// One topic's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicConfigEntry {
    /// The topic.
    pub topic_name: String,
    /// Queues consumers read.
    pub read_queue_nums: u32,
    /// Queues producers write.
    pub write_queue_nums: u32,
    /// Permissions.
    pub perm: u32,
    /// System flags.
    pub topic_sys_flag: u32,
}

/// Topics this broker serves.
#[derive(Debug)]
pub struct TopicTable<F: Fs> {
    fs: F,
    path: PathBuf,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicConfigEntry>,
}

impl<F: Fs> TopicTable<F> {
    /// Loads `topics.json` from `dir` (with the default topic when `auto_create`).
    pub fn load(fs: F, dir: &Path, auto_create: bool) -> Result<Self, StorageError> {
        let path = dir.join("topics.json");
        let mut topics: BTreeMap<String, TopicConfigEntry> = match read_whole(&fs, &path) {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| StorageError::Corrupt {
                path: path.clone(),
                position: 0,
                reason: format!("topic table: {e}"),
            })?,
            None => BTreeMap::new(),
        };
        if auto_create {
            topics.entry(DEFAULT_TOPIC.into()).or_insert_with(|| TopicConfigEntry {
                topic_name: DEFAULT_TOPIC.into(),
                read_queue_nums: 8,
                write_queue_nums: 8,
                perm: PERM_READ | PERM_WRITE | PERM_INHERIT,
                topic_sys_flag: 0,
            });
        }
        Ok(Self { fs, path, topics })
    }

    /// The topic's configuration, creating it with `queues` queues if it is new; `true` when
    /// it was created.
    pub fn get_or_create(
        &mut self,
        topic: &str,
        queues: u32,
    ) -> Result<(TopicConfigEntry, bool), StorageError> {
        if let Some(entry) = self.topics.get(topic) {
            return Ok((entry.clone(), false));
        }
        let entry = TopicConfigEntry {
            topic_name: topic.to_owned(),
            read_queue_nums: queues,
            write_queue_nums: queues,
            perm: PERM_READ | PERM_WRITE,
            topic_sys_flag: 0,
        };
        self.topics.insert(topic.to_owned(), entry.clone());
        self.persist()?;
        Ok((entry, true))
    }

    /// Replaces every topic with `topics` (a slave copying its master) and persists them.
    pub fn replace_all(
        &mut self,
        topics: BTreeMap<String, TopicConfigEntry>,
    ) -> Result<(), StorageError> {
        if topics != self.topics {
            self.topics = topics;
            self.persist()?;
        }
        Ok(())
    }

    fn persist(&self) -> Result<(), StorageError> {
        let json = serde_json::to_vec_pretty(&self.topics).unwrap_or_default();
        write_atomically(&self.fs, &self.path, &json)
    }
}

/// Committed consumer offsets: `topic@group` → queue → next offset.
#[derive(Debug)]
pub struct ConsumerOffsets<F: Fs> {
    fs: F,
    path: PathBuf,
    table: BTreeMap<String, BTreeMap<u32, u64>>,
    dirty: bool,
}

impl<F: Fs> ConsumerOffsets<F> {
    /// Loads `consumerOffset.json` from `dir`.
    pub fn load(fs: F, dir: &Path) -> Result<Self, StorageError> {
        let path = dir.join("consumerOffset.json");
        let table = match read_whole(&fs, &path) {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| StorageError::Corrupt {
                path: path.clone(),
                position: 0,
                reason: format!("consumer offsets: {e}"),
            })?,
            None => BTreeMap::new(),
        };
        Ok(Self { fs, path, table, dirty: false })
    }

    /// A group's committed offset of a queue.
    pub fn get(&self, topic: &str, group: &str, queue_id: u32) -> Option<u64> {
        self.table.get(&format!("{topic}@{group}"))?.get(&queue_id).copied()
    }

    /// Commits an offset (persisted by the next `persist`).
    pub fn set(&mut self, topic: &str, group: &str, queue_id: u32, offset: u64) {
        self.table.entry(format!("{topic}@{group}")).or_default().insert(queue_id, offset);
        self.dirty = true;
    }

    /// Every committed offset: `topic@group` → queue → next offset.
    pub fn table(&self) -> &BTreeMap<String, BTreeMap<u32, u64>> {
        &self.table
    }

    /// Replaces every offset with `table` (a slave copying its master).
    pub fn replace_all(&mut self, table: BTreeMap<String, BTreeMap<u32, u64>>) {
        if table != self.table {
            self.table = table;
            self.dirty = true;
        }
    }

    /// Writes the table if it changed.
    pub fn persist(&mut self) -> Result<(), StorageError> {
        if !self.dirty {
            return Ok(());
        }
        let json = serde_json::to_vec_pretty(&self.table).unwrap_or_default();
        write_atomically(&self.fs, &self.path, &json)?;
        self.dirty = false;
        Ok(())
    }
}

/// One consumer group's live members and subscriptions.
#[derive(Debug, Default)]
pub struct ConsumerGroup {
    /// Client id → its connection and last heartbeat.
    pub clients: BTreeMap<String, (Peer, i64)>,
    /// Topic → subscription expression ("*" or "TagA || TagB").
    pub subscriptions: BTreeMap<String, String>,
}

impl ConsumerGroup {
    /// The tag hashes a subscription to `topic` selects, `None` for all.
    pub fn tag_filter(&self, topic: &str) -> Option<BTreeSet<u64>> {
        parse_tags(self.subscriptions.get(topic)?)
    }
}

/// The tag hashes of a subscription expression; `None` for `*` or an empty one.
pub fn parse_tags(expression: &str) -> Option<BTreeSet<u64>> {
    let tags: BTreeSet<u64> = expression
        .split("||")
        .map(str::trim)
        .filter(|t| !t.is_empty() && *t != "*")
        .map(|t| crate::remoting::properties::tag_hash(t) as u64)
        .collect();
    (!tags.is_empty()).then_some(tags)
}

#[cfg(test)]
mod tests {
    use twinmq_runtime::RealFs;

    use super::*;

    #[test]
    fn topics_and_offsets_survive_a_reload() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_owned();
        let mut topics = TopicTable::load(RealFs, &dir, true).unwrap();
        assert!(topics.topics.contains_key(DEFAULT_TOPIC));
        let (entry, created) = topics.get_or_create("orders", 4).unwrap();
        assert!(created && entry.write_queue_nums == 4 && entry.perm == 6);
        assert!(!topics.get_or_create("orders", 8).unwrap().1);
        let reloaded = TopicTable::load(RealFs, &dir, false).unwrap();
        assert_eq!(reloaded.topics["orders"].read_queue_nums, 4);

        let mut offsets = ConsumerOffsets::load(RealFs, &dir).unwrap();
        offsets.set("orders", "g", 2, 17);
        offsets.persist().unwrap();
        let offsets = ConsumerOffsets::load(RealFs, &dir).unwrap();
        assert_eq!(offsets.get("orders", "g", 2), Some(17));
        assert_eq!(offsets.get("orders", "g", 1), None);
    }

    #[test]
    fn subscription_expressions_become_tag_hash_sets() {
        assert_eq!(parse_tags("*"), None);
        assert_eq!(parse_tags(""), None);
        let tags = parse_tags("TagA || TagB").unwrap();
        assert!(tags.contains(&2_598_919));
        assert_eq!(tags.len(), 2);
    }
}
