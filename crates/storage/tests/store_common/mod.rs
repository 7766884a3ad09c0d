//! Shared helpers for the RocketMQ-layout store tests: a model of what was put.

#![allow(dead_code, reason = "each test file uses a different part of the helpers")]

use std::collections::BTreeMap;
use std::path::Path;

use twinmq_runtime::{Clock, RealFs};
use twinmq_storage::{
    CommitLogConfig, FlushPolicy, MessageStore, NewMessage, StoreRecovery, StoredMessage,
};

/// One put message as the model remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelMessage {
    /// Topic.
    pub topic: String,
    /// Queue.
    pub queue_id: u32,
    /// Assigned queue offset.
    pub queue_offset: u64,
    /// Assigned physical offset.
    pub physical_offset: u64,
    /// Tag hash.
    pub tag_hash: u64,
    /// Keys.
    pub keys: Option<Vec<u8>>,
    /// Body.
    pub body: Vec<u8>,
    /// Store timestamp.
    pub store_timestamp_ms: i64,
}

impl ModelMessage {
    /// Whether a stored message is this one.
    pub fn matches(&self, stored: &StoredMessage) -> bool {
        stored.topic == self.topic
            && stored.queue_id == self.queue_id
            && stored.queue_offset == self.queue_offset
            && stored.physical_offset == self.physical_offset
            && stored.tag_hash == self.tag_hash
            && stored.keys.as_deref() == self.keys.as_deref()
            && stored.body[..] == self.body[..]
    }
}

/// Small files so tests roll and pad often.
pub fn small_config() -> CommitLogConfig {
    CommitLogConfig {
        file_bytes: 16 * 1024,
        consume_queue_entries_per_file: 64,
        index_slots: 17,
        index_entries_max: 200,
        entry_bytes_max: 8 * 1024,
        flush: FlushPolicy::Sync,
    }
}

/// Opens the store in `dir`.
pub fn open(dir: &Path, config: &CommitLogConfig) -> (MessageStore<RealFs>, StoreRecovery) {
    MessageStore::open(RealFs, Clock::system(), dir.to_owned(), config.clone())
        .expect("store opens")
}

/// A message to put: topic, queue id, tag hash, keys, body.
pub type Put = (String, u32, u64, Option<Vec<u8>>, Vec<u8>);

/// Puts a batch into the store and the model.
pub fn put(store: &mut MessageStore<RealFs>, model: &mut Vec<ModelMessage>, batch: &[Put]) {
    let messages: Vec<NewMessage<'_>> = batch
        .iter()
        .map(|(topic, queue_id, tag_hash, keys, body)| NewMessage {
            topic,
            queue_id: *queue_id,
            tag_hash: *tag_hash,
            keys: keys.as_deref(),
            body,
        })
        .collect();
    let placed = store.put_messages(&messages).expect("put");
    for ((topic, queue_id, tag_hash, keys, body), placed) in batch.iter().zip(placed) {
        model.push(ModelMessage {
            topic: topic.clone(),
            queue_id: *queue_id,
            queue_offset: placed.queue_offset,
            physical_offset: placed.physical_offset,
            tag_hash: *tag_hash,
            keys: keys.clone(),
            body: body.clone(),
            store_timestamp_ms: placed.store_timestamp_ms,
        });
    }
}

/// The model's messages per queue, in queue order.
pub fn by_queue(model: &[ModelMessage]) -> BTreeMap<(String, u32), Vec<ModelMessage>> {
    let mut queues: BTreeMap<(String, u32), Vec<ModelMessage>> = BTreeMap::new();
    for message in model {
        queues.entry((message.topic.clone(), message.queue_id)).or_default().push(message.clone());
    }
    queues
}

/// Asserts every queue of the store holds exactly the model's messages, read back through the
/// consume queues.
pub fn assert_same(store: &MessageStore<RealFs>, model: &[ModelMessage]) {
    let queues = by_queue(model);
    for ((topic, queue_id), expected) in &queues {
        assert_eq!(
            store.max_offset_in_queue(topic, *queue_id),
            expected.len() as u64,
            "{topic}/{queue_id} max offset"
        );
        let mut offset = 0;
        let mut read = Vec::new();
        while offset < expected.len() as u64 {
            let result = store.get_message(topic, *queue_id, offset, 7, u64::MAX, None).unwrap();
            assert!(
                !result.messages.is_empty(),
                "{topic}/{queue_id} at {offset}: {:?}",
                result.status
            );
            offset = result.next_begin_offset;
            read.extend(result.messages);
        }
        assert_eq!(read.len(), expected.len());
        for (stored, model) in read.iter().zip(expected) {
            assert!(model.matches(stored), "{topic}/{queue_id}: {stored:?} vs {model:?}");
        }
    }
    for (topic, queue_id) in store.queues() {
        if !queues.contains_key(&(topic.clone(), queue_id)) {
            assert_eq!(
                store.max_offset_in_queue(&topic, queue_id),
                0,
                "{topic}/{queue_id} holds messages the model lacks"
            );
        }
    }
}
