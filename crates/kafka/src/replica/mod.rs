//! Replicas on this broker: partitions, their producers' state, and the manager that opens,
//! flushes and deletes them.

pub mod manager;
pub mod partition;
pub mod producer_state;

pub use manager::ReplicaManager;
pub use partition::{Fetched, Partition, Produced, partition_name};
pub use producer_state::ProducerStateTable;
