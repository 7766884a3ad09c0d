//! The storage core's one error type.

use std::io;
use std::path::PathBuf;

/// What can go wrong in the storage core. Every variant names the file or value at fault.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An I/O call on `path` failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory the call was about.
        path: PathBuf,
        /// The operating system's (or the simulation's) error.
        source: io::Error,
    },
    /// A file's contents are not what twinmq writes, and recovery cannot repair them.
    #[error("{path} is corrupt at byte {position}: {reason}")]
    Corrupt {
        /// The file at fault.
        path: PathBuf,
        /// The byte position of the damage.
        position: u64,
        /// What is wrong there.
        reason: String,
    },
    /// A read asked for an offset outside the log.
    #[error("offset {offset} is out of range [{start}, {end})")]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: u64,
        /// The first offset the log holds.
        start: u64,
        /// The offset the next append will get.
        end: u64,
    },
    /// An entry is larger than the configured limit.
    #[error("entry of {size} bytes exceeds the limit of {limit} bytes")]
    EntryTooLarge {
        /// The entry's encoded size.
        size: u64,
        /// The configured `entry_bytes_max`.
        limit: u64,
    },
    /// A configuration value is unusable.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The store cannot take a request in its current state (for example after an I/O failure).
    #[error("storage refused the request: {0}")]
    Refused(String),
}

/// The storage core's result type.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Attaches the path an I/O error happened on.
pub(crate) trait IoContext<T> {
    /// Wraps the error as [`StorageError::Io`] on `path`.
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|source| StorageError::Io { path: path.to_owned(), source })
    }
}
