//! turmoil's simulated file system (`unstable-fs`) behind the [`Fs`] seam.
//!
//! Unsynced writes are lost on `Sim::crash`, files whose directory was never synced vanish,
//! writes tear by the configured block size, and I/O can fail — all drawn from the seed.

use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use turmoil::fs::shim::std::fs as simfs;

use crate::{File, Fs, OpenMode};

/// The current turmoil host's simulated file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimFs;

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
                options.write(true).create(true);
            }
            OpenMode::CreateNew => {
                options.write(true).create_new(true);
            }
        }
        Ok(SimFile { file: options.open(path)? })
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        simfs::create_dir_all(path)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        simfs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        simfs::remove_dir_all(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
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
}

impl File for SimFile {
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        let mut buffer = vec![0; len];
        self.file.read_exact_at(&mut buffer, offset)?;
        Ok(Bytes::from(buffer))
    }

    fn write_all_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}
