//! KafkaError — what can go wrong serving a request, and the one mapping from it to Kafka's
//! error codes.

use kafka_protocol::error::ResponseError;
use twinmq_storage::StorageError;

/// An error answering one partition, group or request.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The topic or partition does not exist here.
    #[error("unknown topic or partition {0}")]
    UnknownTopicOrPartition(String),
    /// The topic name is not a legal Kafka topic name.
    #[error("invalid topic name {0:?}: {1}")]
    InvalidTopic(String, &'static str),
    /// The topic exists already.
    #[error("topic {0} already exists")]
    TopicAlreadyExists(String),
    /// A partition count below 1 or above the limit.
    #[error("invalid partition count {0}")]
    InvalidPartitions(i32),
    /// A replication factor the cluster cannot place.
    #[error("invalid replication factor {0}")]
    InvalidReplicationFactor(i32),
    /// This broker does not lead the partition.
    #[error("not the leader of {0}")]
    NotLeader(String),
    /// A produced record set is malformed or fails its CRC.
    #[error("corrupt record batch: {0}")]
    CorruptBatch(String),
    /// A batch of a message format older than v2.
    #[error("message format {0} is not supported (v2 only)")]
    UnsupportedMessageFormat(i8),
    /// A record set larger than the broker accepts.
    #[error("record set of {size} bytes exceeds {limit}")]
    RecordSetTooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// `acks` other than -1, 0 or 1.
    #[error("invalid acks {0}")]
    InvalidRequiredAcks(i16),
    /// Fewer in-sync replicas than `min.insync.replicas`.
    #[error("{isr} in-sync replicas, {required} required")]
    NotEnoughReplicas {
        /// In-sync replicas now.
        isr: usize,
        /// `min.insync.replicas`.
        required: usize,
    },
    /// A fetch or list offset outside the log.
    #[error("offset {offset} is outside [{start}, {end}]")]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: i64,
        /// The log start offset.
        start: u64,
        /// The log end offset.
        end: u64,
    },
    /// An idempotent producer skipped sequence numbers.
    #[error("out of order sequence: expected {expected}, got {got}")]
    OutOfOrderSequence {
        /// The next sequence the partition expects.
        expected: i32,
        /// The sequence the batch starts with.
        got: i32,
    },
    /// An idempotent producer's epoch is older than the partition has seen.
    #[error("producer epoch {got} is older than {current}")]
    InvalidProducerEpoch {
        /// The current epoch.
        current: i16,
        /// The epoch the batch carries.
        got: i16,
    },
    /// The partition knows no state for the producer id and the batch does not start it.
    #[error("unknown producer id {0}")]
    UnknownProducerId(i64),
    /// Waiting for replicas or durability took longer than the request allowed.
    #[error("timed out after {0} ms")]
    RequestTimedOut(i32),
    /// The log failed underneath.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The group coordinator for a group is another broker.
    #[error("not the coordinator of group {0}")]
    NotCoordinator(String),
    /// An empty or otherwise unusable group id.
    #[error("invalid group id {0:?}")]
    InvalidGroupId(String),
    /// A member the group does not know.
    #[error("unknown member {0}")]
    UnknownMemberId(String),
    /// A generation that is not the group's current one.
    #[error("generation {got} is not the group's {current}")]
    IllegalGeneration {
        /// The group's generation.
        current: i32,
        /// The generation the request carries.
        got: i32,
    },
    /// The group is rebalancing: the member must rejoin.
    #[error("group {0} is rebalancing")]
    RebalanceInProgress(String),
    /// A joining member shares no protocol with the group.
    #[error("inconsistent group protocol")]
    InconsistentGroupProtocol,
    /// A session timeout outside the broker's bounds.
    #[error("session timeout {0} ms is outside the broker's bounds")]
    InvalidSessionTimeout(i32),
    /// First join without a member id (KIP-394): retry with this one.
    #[error("member id required")]
    MemberIdRequired,
    /// A broker heartbeat or request from a registration the controller no longer knows.
    #[error("broker {0} must register again")]
    StaleBrokerEpoch(i32),
    /// The controller could not be reached.
    #[error("controller unavailable: {0}")]
    ControllerUnavailable(String),
    /// The controller answered a forwarded request with this error code.
    #[error("the controller answered with error {0}")]
    Forwarded(i16),
    /// A request the broker understands but refuses as malformed.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The broker halted on a storage failure (see [`crate::Halt`]).
    #[error("halted: {0}")]
    Halted(String),
}

impl KafkaError {
    /// The Kafka error this maps to on the wire.
    pub fn response_error(&self) -> ResponseError {
        match self {
            Self::UnknownTopicOrPartition(_) => ResponseError::UnknownTopicOrPartition,
            Self::InvalidTopic(..) => ResponseError::InvalidTopicException,
            Self::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
            Self::InvalidPartitions(_) => ResponseError::InvalidPartitions,
            Self::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
            Self::NotLeader(_) => ResponseError::NotLeaderOrFollower,
            Self::CorruptBatch(_) => ResponseError::CorruptMessage,
            Self::UnsupportedMessageFormat(_) => ResponseError::UnsupportedForMessageFormat,
            Self::RecordSetTooLarge { .. } => ResponseError::MessageTooLarge,
            Self::InvalidRequiredAcks(_) => ResponseError::InvalidRequiredAcks,
            Self::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
            Self::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
            Self::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
            Self::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
            Self::UnknownProducerId(_) => ResponseError::UnknownProducerId,
            Self::RequestTimedOut(_) => ResponseError::RequestTimedOut,
            Self::Storage(StorageError::EntryTooLarge { .. }) => ResponseError::MessageTooLarge,
            Self::Storage(StorageError::OffsetOutOfRange { .. }) => ResponseError::OffsetOutOfRange,
            Self::Storage(_) => ResponseError::KafkaStorageError,
            Self::NotCoordinator(_) => ResponseError::NotCoordinator,
            Self::InvalidGroupId(_) => ResponseError::InvalidGroupId,
            Self::UnknownMemberId(_) => ResponseError::UnknownMemberId,
            Self::IllegalGeneration { .. } => ResponseError::IllegalGeneration,
            Self::RebalanceInProgress(_) => ResponseError::RebalanceInProgress,
            Self::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
            Self::InvalidSessionTimeout(_) => ResponseError::InvalidSessionTimeout,
            Self::MemberIdRequired => ResponseError::MemberIdRequired,
            Self::StaleBrokerEpoch(_) => ResponseError::StaleBrokerEpoch,
            Self::ControllerUnavailable(_) => ResponseError::CoordinatorNotAvailable,
            Self::Forwarded(code) => {
                ResponseError::try_from_code(*code).unwrap_or(ResponseError::UnknownServerError)
            }
            Self::InvalidRequest(_) => ResponseError::InvalidRequest,
            Self::Halted(_) => ResponseError::KafkaStorageError,
        }
    }

    /// The error code this maps to on the wire.
    pub fn code(&self) -> i16 {
        self.response_error().code()
    }
}

/// The wire code of a result: 0 for success.
pub fn code_of<T>(result: &Result<T, KafkaError>) -> i16 {
    result.as_ref().err().map_or(0, KafkaError::code)
}
