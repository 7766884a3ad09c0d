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

use std::collections::{BTreeMap, BTreeSet};
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
    /// Unfenced brokers: their registration epoch and last heartbeat.
    live: BTreeMap<i32, Liveness>,
    policy: ControllerPolicy,
    /// Set when a metadata record could not be made durable: the log may hold a record the
    /// image lacks, so the controller answers nothing more until it is restarted and replays.
    failure: Option<String>,
}

#[derive(Debug, Clone, Copy)]
struct Liveness {
    broker_epoch: i64,
    last_heartbeat_ms: i64,
}

/// How the controller judges brokers and elects leaders.
#[derive(Debug, Clone, Copy)]
pub struct ControllerPolicy {
    /// The node the controller runs on (never fenced by its own liveness check).
    pub node_id: i32,
    /// `broker.session.timeout.ms`: a broker silent this long is fenced.
    pub session_timeout_ms: i64,
    /// `unclean.leader.election.enable`.
    pub unclean_leader_election: bool,
}

impl<F: Fs> Controller<F> {
    /// A controller over `log`, its image replayed from it; every registered broker gets one
    /// session timeout from `now_ms` to heartbeat before it is fenced.
    pub fn new(
        log: MetadataLog<F>,
        policy: ControllerPolicy,
        now_ms: i64,
    ) -> Result<Self, KafkaError> {
        let mut image = MetadataImage::default();
        for record in log.replay()? {
            image.apply(&record);
        }
        let producer_ids_handed = image.next_producer_id;
        let live = image
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| (b.node_id, Liveness { broker_epoch: -1, last_heartbeat_ms: now_ms }))
            .collect();
        let state =
            ControllerState { log, image, producer_ids_handed, live, policy, failure: None };
        Ok(Self { state: Mutex::new(state) })
    }

    /// The metadata log's batches from `offset` (brokers fetch them).
    pub fn read_batches(
        &self,
        offset: u64,
        bytes_max: u64,
    ) -> Result<(Vec<bytes::Bytes>, u64), KafkaError> {
        let state = self.lock()?;
        Ok((state.log.read_batches(offset, bytes_max)?, state.log.next_offset()))
    }

    /// A broker (re)registers: it is live again, with a new broker epoch (the offset of its
    /// registration record, so no two registrations share one).
    pub fn register(
        &self,
        node_id: i32,
        host: &str,
        port: i32,
        now_ms: i64,
    ) -> Result<i64, KafkaError> {
        let mut state = self.lock()?;
        let broker_epoch = i64::try_from(state.log.next_offset()).unwrap_or(i64::MAX);
        state.commit(MetadataRecord::RegisterBroker { node_id, host: host.to_owned(), port })?;
        state.live.insert(node_id, Liveness { broker_epoch, last_heartbeat_ms: now_ms });
        tracing::info!(node_id, broker_epoch, "broker registered");
        state.elect()?;
        Ok(broker_epoch)
    }

    /// How many brokers are live (registered and not fenced).
    pub fn live_brokers(&self) -> Result<usize, KafkaError> {
        Ok(self.lock()?.live.len())
    }

    /// A broker's heartbeat; a broker the controller fenced (or never saw) must register again.
    pub fn heartbeat(
        &self,
        node_id: i32,
        broker_epoch: i64,
        now_ms: i64,
    ) -> Result<(), KafkaError> {
        let mut state = self.lock()?;
        match state.live.get_mut(&node_id) {
            Some(live) if live.broker_epoch == broker_epoch || live.broker_epoch < 0 => {
                live.broker_epoch = broker_epoch;
                live.last_heartbeat_ms = now_ms;
                Ok(())
            }
            _ => Err(KafkaError::StaleBrokerEpoch(node_id)),
        }
    }

    /// Fences brokers whose session expired and moves their leadership; returns who was fenced.
    pub fn check_liveness(&self, now_ms: i64) -> Result<Vec<i32>, KafkaError> {
        let mut state = self.lock()?;
        let policy = state.policy;
        let expired: Vec<i32> = state
            .live
            .iter()
            .filter(|(id, l)| {
                **id != policy.node_id && now_ms - l.last_heartbeat_ms > policy.session_timeout_ms
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            state.live.remove(id);
            tracing::warn!(node_id = id, "broker session expired: fenced");
            state.commit(MetadataRecord::FenceBroker { node_id: *id })?;
        }
        if !expired.is_empty() {
            state.elect()?;
        }
        Ok(expired)
    }

    /// A leader's request to change its partition's ISR.
    pub fn alter_isr(
        &self,
        broker: i32,
        topic: &str,
        partition: i32,
        leader_epoch: i32,
        new_isr: &[i32],
    ) -> Result<PartitionImage, KafkaError> {
        let mut state = self.lock()?;
        let live: BTreeSet<i32> = state.live.keys().copied().collect();
        let change = election::alter_isr(
            &state.image,
            topic,
            partition,
            broker,
            leader_epoch,
            new_isr,
            &live,
        )?;
        state.commit(change)?;
        state
            .image
            .partition(topic, partition)
            .cloned()
            .ok_or_else(|| KafkaError::UnknownTopicOrPartition(format!("{topic}-{partition}")))
    }

    /// A copy of the current metadata.
    pub fn image(&self) -> Result<MetadataImage, KafkaError> {
        Ok(self.lock()?.image.clone())
    }

    /// How many replicas of a partition are in sync (0 for an unknown partition).
    pub fn isr_len(&self, topic: &str, partition: i32) -> Result<usize, KafkaError> {
        Ok(self.lock()?.image.partition(topic, partition).map_or(0, |p| p.isr.len()))
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
        let brokers: Vec<i32> = state.live.keys().copied().collect();
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

    /// Why the controller stopped answering, if it did (its node halts on it).
    pub fn failure(&self) -> Option<String> {
        match self.state.lock() {
            Ok(state) => state.failure.clone(),
            Err(_) => Some("controller lock poisoned".into()),
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, ControllerState<F>>, KafkaError> {
        let state = self
            .state
            .lock()
            .map_err(|_| KafkaError::InvalidRequest("controller lock poisoned".into()))?;
        match &state.failure {
            Some(reason) => Err(KafkaError::ControllerUnavailable(format!("halted: {reason}"))),
            None => Ok(state),
        }
    }
}

impl<F: Fs> ControllerState<F> {
    /// Appends `record` durably, then applies it. A failed append or sync fails the controller
    /// for good: the record may be in the log without being in the image.
    fn commit(&mut self, record: MetadataRecord) -> Result<(), KafkaError> {
        if let Err(error) = self.log.append(&record) {
            tracing::error!(%error, ?record, "metadata record not made durable; the controller halts");
            self.failure = Some(error.to_string());
            return Err(error);
        }
        self.image.apply(&record);
        Ok(())
    }

    /// Writes the leader and ISR changes the live set calls for.
    fn elect(&mut self) -> Result<(), KafkaError> {
        let live: BTreeSet<i32> = self.live.keys().copied().collect();
        for change in
            election::changes_for_liveness(&self.image, &live, self.policy.unclean_leader_election)
        {
            tracing::info!(?change, "partition change");
            self.commit(change)?;
        }
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
