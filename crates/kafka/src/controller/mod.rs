//! The controller: the one writer of the cluster's metadata.
//!
//! Its state machine ([`MetadataImage`]) is the fold of a log of [`MetadataRecord`]s kept on
//! the storage core ([`MetadataLog`]), synced before a change is acknowledged, replayed on
//! start. The controller decides (replica placement, producer id blocks, leaders) and appends;
//! everything else reads the image. The log is the seam a Raft quorum replaces later: the
//! state machine only needs "append durably, replay in order".

pub mod election;
pub mod image;
pub mod metadata_log;
pub mod record;

use std::sync::{Mutex, MutexGuard};

use twinmq_runtime::Fs;

pub use image::{BrokerImage, MetadataImage, PartitionImage, TopicImage};
pub use metadata_log::MetadataLog;
pub use record::MetadataRecord;

use crate::error::KafkaError;

/// Longest legal topic name (Kafka `Topic.MAX_NAME_LENGTH`).
pub const TOPIC_NAME_BYTES_MAX: usize = 249;
/// Most partitions one topic may have.
pub const PARTITIONS_MAX: i32 = 10_000;
/// Producer ids handed out per metadata record.
const PRODUCER_ID_BLOCK: i64 = 1_000;

/// The controller of a cluster.
#[derive(Debug)]
pub struct Controller<F: Fs> {
    state: Mutex<ControllerState<F>>,
}

#[derive(Debug)]
struct ControllerState<F: Fs> {
    log: MetadataLog<F>,
    image: MetadataImage,
    producer_ids_handed: i64,
}

impl<F: Fs> Controller<F> {
    /// A controller over `log`, its image replayed from it.
    pub fn new(log: MetadataLog<F>) -> Result<Self, KafkaError> {
        let mut image = MetadataImage::default();
        for record in log.replay()? {
            image.apply(&record);
        }
        let producer_ids_handed = image.next_producer_id;
        Ok(Self { state: Mutex::new(ControllerState { log, image, producer_ids_handed }) })
    }

    /// A copy of the current metadata.
    pub fn image(&self) -> Result<MetadataImage, KafkaError> {
        Ok(self.lock()?.image.clone())
    }

    /// How many replicas of a partition are in sync (0 for an unknown partition).
    pub fn isr_len(&self, topic: &str, partition: i32) -> Result<usize, KafkaError> {
        Ok(self.lock()?.image.partition(topic, partition).map_or(0, |p| p.isr.len()))
    }

    /// Registers a broker (or its new address).
    pub fn register_broker(&self, node_id: i32, host: &str, port: i32) -> Result<(), KafkaError> {
        let mut state = self.lock()?;
        let known = state.image.brokers.get(&node_id);
        if known.is_some_and(|b| b.host == host && b.port == port) {
            return Ok(());
        }
        state.commit(MetadataRecord::RegisterBroker { node_id, host: host.to_owned(), port })
    }

    /// Creates a topic, placing `replication_factor` replicas of each partition round-robin
    /// over the registered brokers.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
    ) -> Result<TopicImage, KafkaError> {
        validate_topic_name(name)?;
        if !(1..=PARTITIONS_MAX).contains(&partitions) {
            return Err(KafkaError::InvalidPartitions(partitions));
        }
        let mut state = self.lock()?;
        if state.image.topics.contains_key(name) {
            return Err(KafkaError::TopicAlreadyExists(name.to_owned()));
        }
        let brokers: Vec<i32> = state.image.brokers.keys().copied().collect();
        let factor = usize::try_from(replication_factor).unwrap_or(0);
        if factor == 0 || factor > brokers.len() {
            return Err(KafkaError::InvalidReplicationFactor(i32::from(replication_factor)));
        }
        let start = state.image.topics.len();
        let replicas = (0..partitions)
            .map(|p| {
                let first = start + usize::try_from(p).unwrap_or(0);
                (0..factor).map(|r| brokers[(first + r) % brokers.len()]).collect()
            })
            .collect();
        let topic_id = topic_id_for(name, state.log.next_offset());
        state.commit(MetadataRecord::CreateTopic { name: name.to_owned(), topic_id, replicas })?;
        state
            .image
            .topics
            .get(name)
            .cloned()
            .ok_or_else(|| KafkaError::UnknownTopicOrPartition(name.to_owned()))
    }

    /// Deletes a topic.
    pub fn delete_topic(&self, name: &str) -> Result<(), KafkaError> {
        let mut state = self.lock()?;
        if !state.image.topics.contains_key(name) {
            return Err(KafkaError::UnknownTopicOrPartition(name.to_owned()));
        }
        state.commit(MetadataRecord::DeleteTopic { name: name.to_owned() })
    }

    /// Hands out a producer id never handed out before, across restarts.
    pub fn allocate_producer_id(&self) -> Result<i64, KafkaError> {
        let mut state = self.lock()?;
        if state.producer_ids_handed >= state.image.next_producer_id {
            let next =
                state.image.next_producer_id.max(state.producer_ids_handed) + PRODUCER_ID_BLOCK;
            state.commit(MetadataRecord::AllocateProducerIds { next })?;
        }
        let id = state.producer_ids_handed;
        state.producer_ids_handed += 1;
        Ok(id)
    }

    fn lock(&self) -> Result<MutexGuard<'_, ControllerState<F>>, KafkaError> {
        self.state.lock().map_err(|_| KafkaError::InvalidRequest("controller lock poisoned".into()))
    }
}

impl<F: Fs> ControllerState<F> {
    fn commit(&mut self, record: MetadataRecord) -> Result<(), KafkaError> {
        self.log.append(&record)?;
        self.image.apply(&record);
        Ok(())
    }
}

/// A topic id unique across re-creations of a name: the name's hash and the metadata offset of
/// its creation (deterministic, so simulated runs of one seed agree).
fn topic_id_for(name: &str, offset: u64) -> u128 {
    let hash = name
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    (u128::from(hash) << 64) | u128::from(offset.max(1))
}

/// Kafka's topic name rules: 1-249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), KafkaError> {
    let invalid = |why| Err(KafkaError::InvalidTopic(name.to_owned(), why));
    if name.is_empty() {
        return invalid("empty");
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return invalid("longer than 249 characters");
    }
    if name == "." || name == ".." {
        return invalid("'.' and '..' are reserved");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-') {
        return invalid("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}
