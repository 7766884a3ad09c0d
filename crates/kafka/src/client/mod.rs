//! twinmq's own Kafka client pieces, over the `Net` seam so they run for real and in the
//! simulator: a request/response connection (used by brokers to reach the controller and their
//! leaders, and by the producer and consumer built on it).

pub mod connection;

pub use connection::{ClientConnection, ClientError};
