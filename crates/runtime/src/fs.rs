//! The file-system seam: files with positioned I/O, and the directory operations whose
//! durability needs an explicit `sync_dir`.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

/// How [`Fs::open`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write; create the file if it does not exist (never truncates).
    Create,
    /// Read and write; fail with `AlreadyExists` if the file exists.
    CreateNew,
}

/// A file system. Created, renamed and removed files are durable only after [`Fs::sync_dir`]
/// on their parent directory; written bytes only after [`File::sync_data`].
pub trait Fs: Clone + Send + Sync + 'static {
    /// An open file.
    type File: File;

    /// Opens `path` as `mode` says.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Self::File>;

    /// Creates `path` and all missing parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;

    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Removes a directory and everything in it (durable once its parent is synced).
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;

    /// Renames a file, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Lists a directory's entries, sorted by path, so real and simulated runs walk it alike.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>>;

    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> bool;

    /// Whether `path` is a directory.
    fn is_dir(&self, path: &Path) -> bool;

    /// Makes the directory's entries (created, renamed, removed files) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;

    /// `sync_data` without blocking the calling task: the real file system hands the fsync to a
    /// blocking thread; the simulated one completes it at once.
    fn sync_data_async(
        &self,
        file: Arc<Self::File>,
    ) -> impl Future<Output = io::Result<()>> + Send + 'static;
}

/// An open file with positioned reads and writes. Shared between tasks behind an `Arc`.
pub trait File: std::fmt::Debug + Send + Sync + 'static {
    /// Reads exactly `len` bytes at `offset`; `UnexpectedEof` if the file is shorter.
    ///
    /// The real file system serves this from a memory map without copying.
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Bytes>;

    /// Writes all of `data` at `offset`, extending the file if needed.
    fn write_all_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;

    /// Makes every byte written so far, and the file's length, durable.
    fn sync_data(&self) -> io::Result<()>;

    /// Truncates or extends (with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// The file's current length in bytes.
    fn len(&self) -> io::Result<u64>;

    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}
