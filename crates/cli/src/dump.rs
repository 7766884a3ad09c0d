//! `twinmq dump <dir>`: the storage core's entry-by-entry listing of a data directory.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use twinmq_runtime::{Fs, RealFs};

/// Dumps `dir` to stdout; fails if nothing in it is a twinmq data file, exits 1 on damage.
pub fn run(dir: &Path) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(RealFs.is_dir(dir), "{} is not a directory", dir.display());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let summary = twinmq_storage::dump::dump_dir(&RealFs, dir, &mut out)
        .with_context(|| format!("dumping {}", dir.display()))?;
    out.flush().context("writing to stdout")?;
    anyhow::ensure!(summary.file_count > 0, "no twinmq data files under {}", dir.display());
    Ok(if summary.damaged_count > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
