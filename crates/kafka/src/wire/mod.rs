//! The Kafka wire: size-prefixed frames, the versions twinmq advertises, and a connection that
//! reads requests and writes responses in order.

pub mod connection;
pub mod frame;
pub mod versions;

pub use connection::Connection;
pub use frame::{FrameError, try_frame};
pub use versions::{SUPPORTED_APIS, supported_range};
