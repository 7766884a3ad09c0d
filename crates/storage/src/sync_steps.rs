//! SyncSteps — the fsyncs a store owes, gathered while its lock is held and carried out after
//! it is released, so appends do not wait behind a checkpoint's fsyncs (RocketMQ's
//! `FlushConsumeQueueService` likewise syncs consume queues on its own thread, outside the
//! CommitLog's put lock). Gathering writes out whatever was buffered, so the steps cover every
//! entry written before they were gathered; entries written meanwhile may be covered too.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use twinmq_runtime::{File, Fs};

use crate::error::{IoContext, Result};

/// Files and directories to sync, in the order they were gathered.
#[derive(Debug)]
pub struct SyncSteps<F: Fs> {
    files: Vec<(PathBuf, Arc<F::File>)>,
    dirs: Vec<PathBuf>,
}

impl<F: Fs> Default for SyncSteps<F> {
    fn default() -> Self {
        Self { files: Vec::new(), dirs: Vec::new() }
    }
}

impl<F: Fs> SyncSteps<F> {
    /// Owes a `sync_data` of `file` (at `path`, for errors).
    pub fn file(&mut self, path: &Path, file: &Arc<F::File>) {
        self.files.push((path.to_owned(), Arc::clone(file)));
    }

    /// Owes a sync of the directory `path` (its entries: files created or removed in it).
    pub fn dir(&mut self, path: &Path) {
        if !self.dirs.iter().any(|d| d == path) {
            self.dirs.push(path.to_owned());
        }
    }

    /// Owes a sync of the directory holding `path`.
    pub fn parent_of(&mut self, path: &Path) {
        self.dir(path.parent().unwrap_or(Path::new(".")));
    }

    /// Carries the steps out now, on this thread (a store closing, or under its lock).
    pub fn run_now(self, fs: &F) -> Result<()> {
        for (path, file) in &self.files {
            file.sync_data().at(path)?;
        }
        sync_dirs(fs, &self.dirs)
    }

    /// Carries the steps out with the file system's asynchronous sync, holding no lock.
    pub async fn run(self, fs: &F) -> Result<()> {
        for (path, file) in self.files {
            fs.sync_data_async(file).await.at(&path)?;
        }
        sync_dirs(fs, &self.dirs)
    }
}

/// Syncs `dirs`; one removed since it was gathered (a topic deleted) owes nothing.
fn sync_dirs<F: Fs>(fs: &F, dirs: &[PathBuf]) -> Result<()> {
    for dir in dirs {
        match fs.sync_dir(dir) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            other => other.at(dir)?,
        }
    }
    Ok(())
}
