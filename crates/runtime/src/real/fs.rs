//! `std::fs` behind the [`Fs`] seam, with reads served from a memory map.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use memmap2::Mmap;

use crate::{File, Fs, OpenMode};

/// The operating system's file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

impl Fs for RealFs {
    type File = RealFile;

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<RealFile> {
        let mut options = OpenOptions::new();
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
        Ok(RealFile { file: options.open(path)?, map: RwLock::new(None) })
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        let mut paths = std::fs::read_dir(path)?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<io::Result<Vec<_>>>()?;
        paths.sort();
        Ok(paths)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::File::open(path)?.sync_all()
    }

    #[expect(clippy::manual_async_fn, reason = "the future must not borrow self: it is 'static")]
    fn sync_data_async(
        &self,
        file: Arc<RealFile>,
    ) -> impl Future<Output = io::Result<()>> + Send + 'static {
        async move {
            match tokio::task::spawn_blocking(move || file.sync_data()).await {
                Ok(result) => result,
                Err(join_error) => Err(io::Error::other(join_error)),
            }
        }
    }
}

/// A real file. Reads are slices of a shared read-only map of the file, remapped when a read
/// reaches past the mapped length and dropped when the file's length is changed through us.
#[derive(Debug)]
pub struct RealFile {
    file: std::fs::File,
    map: RwLock<Option<Bytes>>,
}

impl File for RealFile {
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        let end = offset
            .checked_add(len as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "read range overflows"))?;
        if len == 0 {
            return Ok(Bytes::new());
        }
        if let Some(bytes) = self.mapped_slice(offset, end) {
            return Ok(bytes);
        }
        let mut map = self.map.write().map_err(|_| io::Error::other("file map lock poisoned"))?;
        if let Some(current) = map.as_ref()
            && end <= current.len() as u64
        {
            return Ok(current.slice(offset as usize..end as usize));
        }
        let file_len = self.file.metadata()?.len();
        if end > file_len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("read of {len} bytes at {offset} passes the end of a {file_len}-byte file"),
            ));
        }
        let fresh = map_file(&self.file)?;
        let slice = fresh.slice(offset as usize..end as usize);
        *map = Some(fresh);
        Ok(slice)
    }

    fn write_all_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        // Slices already handed out keep their own mapping alive; only new reads remap.
        let mut map = self.map.write().map_err(|_| io::Error::other("file map lock poisoned"))?;
        *map = None;
        self.file.set_len(len)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}

impl RealFile {
    fn mapped_slice(&self, offset: u64, end: u64) -> Option<Bytes> {
        let map = self.map.read().ok()?;
        let current = map.as_ref()?;
        (end <= current.len() as u64).then(|| current.slice(offset as usize..end as usize))
    }
}

/// Maps the whole file read-only, owned by a `Bytes` so slices of it are zero-copy.
#[expect(unsafe_code, reason = "memory-mapping a file is unsafe by nature; see SAFETY below")]
fn map_file(file: &std::fs::File) -> io::Result<Bytes> {
    // SAFETY: twinmq's storage core only shrinks a file below bytes it has handed out when
    // those bytes are no longer part of the log (truncation of an unacknowledged tail happens
    // before the file is served, and a sealed segment is trimmed to its logical end, beyond
    // every slice). Other processes must not truncate twinmq's data files while it runs; that
    // is the same contract Kafka and RocketMQ have with their memory-mapped files.
    let map = unsafe { Mmap::map(file)? };
    Ok(Bytes::from_owner(map))
}
