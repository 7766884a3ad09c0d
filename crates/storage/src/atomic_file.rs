//! Small files replaced whole: written to `<name>.tmp`, synced, renamed over `<name>`, directory
//! synced — a crash leaves the old or the new contents, never a mix. Checkpoints use it.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use twinmq_runtime::{File, Fs, OpenMode};

use crate::error::{IoContext, Result};

/// Replaces `path`'s contents with `bytes`, atomically and durably.
pub fn write_atomically<F: Fs>(fs: &F, path: &Path, bytes: &[u8]) -> Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let file = fs.open(&temporary, OpenMode::Create).at(&temporary)?;
    file.set_len(0).at(&temporary)?;
    file.write_all_at(0, bytes).at(&temporary)?;
    file.sync_data().at(&temporary)?;
    drop(file);
    fs.rename(&temporary, path).at(path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs.sync_dir(dir).at(dir)
}

/// The whole contents of `path`, or `None` when it does not exist or cannot be read.
pub fn read_whole<F: Fs>(fs: &F, path: &Path) -> Option<Bytes> {
    let file = fs.open(path, OpenMode::Read).ok()?;
    let len = usize::try_from(file.len().ok()?).ok()?;
    file.read_at(0, len).ok()
}
