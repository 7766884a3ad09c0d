//! twinmq's own Kafka client pieces, over the `Net` seam so they run for real and in the
//! simulator: a request/response connection (used by brokers to reach the controller and their
//! leaders, and by the producer and consumer built on it).

mod accumulator;
pub mod assignor;
pub mod backoff;
pub mod cluster_client;
pub mod connection;
pub mod consumer;
mod consumer_protocol;
pub mod partitioner;
pub mod producer;

pub use backoff::ReconnectBackoff;
pub use cluster_client::{ClusterClient, PartitionInfo};
pub use connection::{ClientConnection, ClientError};
pub use consumer::{ConsumedRecord, Consumer, ConsumerConfig};
pub use producer::{Producer, ProducerConfig, RecordMetadata};
