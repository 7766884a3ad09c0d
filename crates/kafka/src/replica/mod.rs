//! Replicas on this broker: partitions, their producers' state, and the manager that opens,
//! flushes and deletes them.

pub mod fetcher;
pub mod leader_epoch;
pub mod manager;
pub mod partition;
pub mod producer_state;
pub mod replication;

pub use manager::ReplicaManager;
pub use partition::{Fetched, FollowerFetch, Partition, Produced, partition_name};
pub use producer_state::ProducerStateTable;
pub use replication::{IsrProposal, Role};
