//! turmoil's simulated file system (`unstable-fs`) behind the [`Fs`] seam.
//!
//! Unsynced writes are lost on `Sim::crash`, files whose directory was never synced vanish,
//! writes tear by the configured block size, and I/O can fail — all drawn from the seed. On
//! top, [`DiskFaults`] lets a nemesis fill a host's disk or make it fail, and heal it, while
//! the host runs.

use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use turmoil::fs::shim::std::fs as simfs;

use crate::{File, Fs, OpenMode};

/// Disk faults of one host, switched from outside the host (a nemesis) and kept across its
/// restarts, as a disk outlives the software on it.
#[derive(Debug, Clone, Default)]
pub struct DiskFaults(Arc<DiskFaultState>);

#[derive(Debug, Default)]
struct DiskFaultState {
    full: AtomicBool,
    failing: AtomicBool,
}

impl DiskFaults {
    /// A healthy disk.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fills the disk (every write and file creation fails with ENOSPC) or frees it.
    pub fn set_full(&self, full: bool) {
        self.0.full.store(full, Ordering::SeqCst);
    }

    /// Makes every write, sync and file creation fail with EIO, or stops it.
    pub fn set_failing(&self, failing: bool) {
        self.0.failing.store(failing, Ordering::SeqCst);
    }

    /// The error a write (or sync, when `sync`) meets now, if any.
    fn check(&self, sync: bool) -> io::Result<()> {
        if self.0.failing.load(Ordering::SeqCst) {
            return Err(io::Error::other("simulated disk failure (EIO)"));
        }
        if !sync && self.0.full.load(Ordering::SeqCst) {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "simulated full disk"));
        }
        Ok(())
    }
}

/// The current turmoil host's simulated file system.
#[derive(Debug, Clone, Default)]
pub struct SimFs {
    faults: DiskFaults,
}

impl SimFs {
    /// A file system on a disk whose faults `faults` switches.
    pub fn with_faults(faults: DiskFaults) -> Self {
        Self { faults }
    }
}

impl Fs for SimFs {
    type File = SimFile;

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<SimFile> {
        let mut options = simfs::OpenOptions::new();
        options.read(true);
        match mode {
            OpenMode::Read => {}
            OpenMode::ReadWrite => {
                options.write(true);
            }
            OpenMode::Create => {
                if !simfs::exists(path) {
                    self.faults.check(false)?;
                }
                options.write(true).create(true);
            }
            OpenMode::CreateNew => {
                self.faults.check(false)?;
                options.write(true).create_new(true);
            }
        }
        Ok(SimFile { file: options.open(path)?, faults: self.faults.clone() })
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        if !simfs::exists(path) {
            self.faults.check(false)?;
        }
        simfs::create_dir_all(path)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        simfs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        simfs::remove_dir_all(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.faults.check(false)?;
        simfs::rename(from, to)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        let mut paths = simfs::read_dir(path)?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<io::Result<Vec<_>>>()?;
        paths.sort();
        Ok(paths)
    }

    fn exists(&self, path: &Path) -> bool {
        simfs::exists(path)
    }

    fn is_dir(&self, path: &Path) -> bool {
        simfs::metadata(path).map(|m| m.is_dir()).unwrap_or(false)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.faults.check(true)?;
        simfs::sync_dir(path)
    }

    #[expect(clippy::manual_async_fn, reason = "the future must not borrow self: it is 'static")]
    fn sync_data_async(
        &self,
        file: Arc<SimFile>,
    ) -> impl Future<Output = io::Result<()>> + Send + 'static {
        // An fsync takes one simulated millisecond: appends made meanwhile are still unsynced
        // when a crash strikes, as on a real disk.
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            file.sync_data()
        }
    }
}

/// A simulated file; reads copy out of turmoil's in-memory file.
#[derive(Debug)]
pub struct SimFile {
    file: simfs::File,
    faults: DiskFaults,
}

impl File for SimFile {
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        let mut buffer = vec![0; len];
        self.file.read_exact_at(&mut buffer, offset)?;
        Ok(Bytes::from(buffer))
    }

    fn write_all_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.faults.check(false)?;
        self.file.write_all_at(data, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.faults.check(true)?;
        self.file.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let growing = len > self.file.metadata()?.len();
        self.faults.check(!growing)?;
        self.file.set_len(len)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}
