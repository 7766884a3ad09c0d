//! OffsetStore — committed offsets, kept as Kafka keeps them: records in the internal topic
//! `__consumer_offsets` (real RecordBatches in real partitions, so they are flushed, recovered
//! and later replicated like any partition), with the newest commit per key cached in memory.
//! A group's commits go to partition `abs(java_hash(group)) % partitions`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde::{Deserialize, Serialize};

use crate::error::KafkaError;

/// The internal topic holding committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// One committed offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    /// The next offset the group consumes.
    pub offset: i64,
    /// The leader epoch of the record before it, or -1.
    pub leader_epoch: i32,
    /// The client's metadata string.
    pub metadata: Option<String>,
    /// When it was committed.
    pub commit_timestamp_ms: i64,
}

/// (group, topic, partition).
pub type OffsetKey = (String, String, i32);

/// The committed offsets of every group this broker coordinates.
#[derive(Debug, Default)]
pub struct OffsetStore {
    cache: Mutex<BTreeMap<OffsetKey, CommittedOffset>>,
}

impl OffsetStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The `__consumer_offsets` partition of a group (Kafka's `partitionFor`).
    pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
        let hash = java_string_hash(group_id);
        // Kafka's Utils.abs: i32::MIN maps to 0.
        let positive = if hash == i32::MIN { 0 } else { hash.abs() };
        positive % partitions.max(1)
    }

    /// Encodes commits for the offsets partition: one single-record batch per commit, so the
    /// compacted partition keeps exactly the newest commit of each (group, topic, partition).
    pub fn encode(
        group_id: &str,
        commits: &[(String, i32, CommittedOffset)],
        now_ms: i64,
    ) -> Result<Bytes, KafkaError> {
        let mut out = BytesMut::new();
        let options = RecordEncodeOptions { version: 2, compression: Compression::None };
        for (topic, partition, committed) in commits {
            let record = Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: 0,
                sequence: -1,
                timestamp: now_ms,
                key: Some(encode_key(group_id, topic, *partition)),
                value: serde_json::to_vec(committed).ok().map(Bytes::from),
                headers: Default::default(),
            };
            RecordBatchEncoder::encode(&mut out, [&record], &options)
                .map_err(|e| KafkaError::InvalidRequest(format!("offset commit batch: {e}")))?;
        }
        Ok(out.freeze())
    }

    /// Applies commits already durable in the offsets partition.
    pub fn apply(&self, group_id: &str, commits: Vec<(String, i32, CommittedOffset)>) {
        if let Ok(mut cache) = self.cache.lock() {
            for (topic, partition, committed) in commits {
                cache.insert((group_id.to_owned(), topic, partition), committed);
            }
        }
    }

    /// Replays batches read from an offsets partition (on start).
    pub fn replay(&self, batches: &[Bytes]) -> Result<u64, KafkaError> {
        let mut applied = 0;
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| KafkaError::InvalidRequest("offset cache poisoned".into()))?;
        for batch in batches {
            let mut bytes = batch.clone();
            let sets = RecordBatchDecoder::decode_all(&mut bytes)
                .map_err(|e| KafkaError::CorruptBatch(format!("offsets partition: {e}")))?;
            for record in sets.into_iter().flat_map(|set| set.records) {
                let Some(key) = record.key.as_deref().and_then(decode_key) else { continue };
                match record.value.as_deref().map(serde_json::from_slice::<CommittedOffset>) {
                    Some(Ok(committed)) => {
                        cache.insert(key, committed);
                    }
                    Some(Err(error)) => {
                        tracing::warn!(%error, "unreadable committed offset skipped");
                    }
                    None => {
                        cache.remove(&key);
                    }
                }
                applied += 1;
            }
        }
        Ok(applied)
    }

    /// Drops the cached commits of every group `of_group` picks (a coordinator reloading them).
    pub fn forget(&self, of_group: impl Fn(&str) -> bool) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|(group, _, _), _| !of_group(group));
        }
    }

    /// The committed offset of one partition.
    pub fn get(&self, group_id: &str, topic: &str, partition: i32) -> Option<CommittedOffset> {
        let cache = self.cache.lock().ok()?;
        cache.get(&(group_id.to_owned(), topic.to_owned(), partition)).cloned()
    }

    /// Every committed offset of a group, in (topic, partition) order.
    pub fn of_group(&self, group_id: &str) -> Vec<(String, i32, CommittedOffset)> {
        let Ok(cache) = self.cache.lock() else { return Vec::new() };
        cache
            .iter()
            .filter(|((group, _, _), _)| group == group_id)
            .map(|((_, topic, partition), committed)| {
                (topic.clone(), *partition, committed.clone())
            })
            .collect()
    }

    /// Every group with committed offsets.
    pub fn groups(&self) -> Vec<String> {
        let Ok(cache) = self.cache.lock() else { return Vec::new() };
        let mut groups: Vec<String> = cache.keys().map(|(group, _, _)| group.clone()).collect();
        groups.dedup();
        groups
    }
}

fn encode_key(group_id: &str, topic: &str, partition: i32) -> Bytes {
    Bytes::from(format!("{group_id}\u{0}{topic}\u{0}{partition}"))
}

fn decode_key(key: &[u8]) -> Option<OffsetKey> {
    let text = std::str::from_utf8(key).ok()?;
    let mut parts = text.split('\u{0}');
    let (group, topic, partition) = (parts.next()?, parts.next()?, parts.next()?.parse().ok()?);
    Some((group.to_owned(), topic.to_owned(), partition))
}

/// Java's `String.hashCode` over UTF-16 code units.
fn java_string_hash(value: &str) -> i32 {
    value
        .encode_utf16()
        .fold(0i32, |hash, unit| hash.wrapping_mul(31).wrapping_add(i32::from(unit)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_partition_matches_kafkas_partition_for() {
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("ab"), 97 * 31 + 98);
        let p = OffsetStore::partition_for("my-group", 50);
        assert!((0..50).contains(&p));
        assert_eq!(OffsetStore::partition_for("a", 50), 97 % 50);
    }

    #[test]
    fn commits_round_trip_through_a_record_batch_and_the_newest_wins() {
        let committed = |offset| CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: Some("m".into()),
            commit_timestamp_ms: 5,
        };
        let first = OffsetStore::encode(
            "g",
            &[("t".into(), 0, committed(10)), ("t".into(), 1, committed(3))],
            5,
        )
        .unwrap();
        let second = OffsetStore::encode("g", &[("t".into(), 0, committed(12))], 6).unwrap();
        let batches = crate::record_batch::validate(&first).unwrap();
        assert_eq!(batches.len(), 2, "one batch per commit");
        let key = crate::record_batch::single_record_key(&first[..batches[0].size]).unwrap();
        assert_eq!(key, b"g\x00t\x000");
        let store = OffsetStore::new();
        assert_eq!(store.replay(&[first, second]).unwrap(), 3);
        assert_eq!(store.get("g", "t", 0).unwrap().offset, 12);
        assert_eq!(store.get("g", "t", 1).unwrap().offset, 3);
        assert_eq!(store.of_group("g").len(), 2);
        assert!(store.get("h", "t", 0).is_none());
    }
}
