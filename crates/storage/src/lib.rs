//! twinmq's shared storage core: one way to write, flush and recover a file of entries, and the
//! two layouts the broker models put on top of it.
//!
//! - The **Kafka layout** ([`Log`]): one segmented log per partition, each segment a data file
//!   with a sparse offset index and time index, rolled by size and age, trimmed by retention,
//!   truncated for follower divergence and compacted by key.
//! - The **RocketMQ layout** ([`CommitLog`]): one log of fixed-size preallocated files shared by
//!   every topic-queue of a broker; a dispatcher builds each queue's [`ConsumeQueue`] and the
//!   key [`IndexFile`] from it.
//!
//! ## Durability protocol (both layouts)
//!
//! 1. A new file is created, preallocated if the layout wants it, synced, and its directory
//!    synced, before anything is appended to it.
//! 2. An append writes one or more framed entries ([`entry`]) at the written position.
//! 3. The flush policy syncs the active file: at once for the waiting appenders (group commit)
//!    or in the background. An append is durable when a sync covering it returns.
//! 4. Before appending to a new file, the previous one is sealed and synced, so the data never
//!    has a hole: everything before a durable byte is durable.
//! 5. Indexes, consume queues and checkpoints are derived data: rebuilt on open from the log
//!    past the last point known to be durable.

pub mod atomic_file;
pub mod checkpoint;
pub mod cleaner;
pub mod commit_log;
pub mod config;
pub mod consume_queue;
pub mod dispatcher;
pub mod dump;
pub mod entry;
pub mod entry_cursor;
pub mod error;
pub mod flush;
pub mod index_file;
pub mod log;
mod log_recovery;
pub mod log_segment;
pub mod message;
pub mod message_store;
pub mod offset_index;
pub mod queue_map;
pub mod retention;
pub mod segment;
pub mod sparse_index;
mod store_recovery;
pub mod sync_steps;
pub mod time_index;

pub use checkpoint::StoreCheckpoint;
pub use commit_log::{AppendedMessage, CommitLog};
pub use config::{CommitLogConfig, FlushPolicy, LogConfig};
pub use consume_queue::ConsumeQueue;
pub use dispatcher::Dispatcher;
pub use entry::{Entry, NewEntry};
pub use error::{Result, StorageError};
pub use flush::{DurableWatermark, FlushPlan, FlushSignal, Flushable, run_flusher};
pub use index_file::IndexFile;
pub use log::{Appended, Log, LogRecovery};
pub use log_segment::LogSegment;
pub use message::{NewMessage, StoredMessage};
pub use message_store::{GetMessageResult, GetMessageStatus, MessageStore, StoreRecovery};
pub use offset_index::OffsetIndex;
pub use queue_map::QueueMap;
pub use segment::Segment;
pub use time_index::TimeIndex;
