//! twinmq's Kafka model: brokers that real Kafka clients talk to, on the shared storage core.
//!
//! - [`wire`]: frames, advertised versions, connections; [`api`]: one module per Kafka API.
//! - [`replica`]: partitions on a broker (a storage-core `Log` each), producer state, the
//!   replica manager; [`controller`]: the metadata log and its image; [`group`]: consumer
//!   groups and committed offsets (in `__consumer_offsets`, as Kafka keeps them).
//! - [`server::Broker`]: bind, then run until shut down; generic over the `Env` seam, so the
//!   same broker runs on real sockets and disks and inside the simulator.

pub mod api;
pub mod client;
pub mod cluster;
pub mod config;
pub mod controller;
pub mod controller_link;
pub mod error;
pub mod group;
pub mod halt;
pub mod record_batch;
pub mod replica;
pub mod server;
pub mod wire;

pub use config::{BrokerConfig, ControllerLocation, GroupConfig};
pub use error::KafkaError;
pub use halt::Halt;
pub use server::{Broker, BrokerContext};
