//! Output — a report directory written through the `Fs` seam: `results.json` first (the data),
//! then every chart as SVG and PNG, `index.md` and `index.html` drawn from it, and
//! `durability.csv` when the run had a durability table.

use std::path::{Path, PathBuf};

use twinmq_runtime::{File, Fs, OpenMode};

use crate::chart::ChartError;
use crate::durability::CSV_FILE;
use crate::figures::figures;
use crate::html::{self, HTML_FILE};
use crate::markdown::{self, MARKDOWN_FILE};
use crate::page::page;
use crate::results::{RESULTS_FILE, Results};

/// Why a report could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A file or directory could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// `results.json` does not parse.
    #[error("{path}: not a twinmq compare results file: {reason}")]
    Results {
        /// The path.
        path: PathBuf,
        /// The parser's complaint.
        reason: String,
    },
    /// A chart could not be drawn.
    #[error(transparent)]
    Chart(#[from] ChartError),
}

/// Writes the report of `results` into `dir` (created if missing); returns the files written.
pub fn write_report<F: Fs>(
    fs: &F,
    dir: &Path,
    results: &Results,
) -> Result<Vec<PathBuf>, OutputError> {
    fs.create_dir_all(dir).map_err(|source| OutputError::Io { path: dir.to_owned(), source })?;
    let mut written = Vec::new();
    let json = serde_json::to_vec_pretty(results).map_err(|error| OutputError::Results {
        path: dir.join(RESULTS_FILE),
        reason: error.to_string(),
    })?;
    written.push(write_file(fs, &dir.join(RESULTS_FILE), &json)?);
    let figures = figures(results);
    for figure in &figures {
        let rendered = figure.chart.render()?;
        written.push(write_file(
            fs,
            &dir.join(format!("{}.svg", figure.stem)),
            rendered.svg.as_bytes(),
        )?);
        written.push(write_file(fs, &dir.join(format!("{}.png", figure.stem)), &rendered.png)?);
    }
    let document = page(results, &figures);
    written.push(write_file(fs, &dir.join(MARKDOWN_FILE), markdown::render(&document).as_bytes())?);
    written.push(write_file(fs, &dir.join(HTML_FILE), html::render(&document).as_bytes())?);
    if let Some(table) = &results.durability {
        written.push(write_file(fs, &dir.join(CSV_FILE), table.to_csv().as_bytes())?);
    }
    fs.sync_dir(dir).map_err(|source| OutputError::Io { path: dir.to_owned(), source })?;
    Ok(written)
}

/// Reads `results.json` from `dir`, to draw a report again without measuring.
pub fn read_results<F: Fs>(fs: &F, dir: &Path) -> Result<Results, OutputError> {
    let path = dir.join(RESULTS_FILE);
    let bytes = read_file(fs, &path)?;
    serde_json::from_slice(&bytes)
        .map_err(|error| OutputError::Results { path, reason: error.to_string() })
}

/// Reads a whole file.
pub fn read_file<F: Fs>(fs: &F, path: &Path) -> Result<bytes::Bytes, OutputError> {
    let failed = |source| OutputError::Io { path: path.to_owned(), source };
    let file = fs.open(path, OpenMode::Read).map_err(failed)?;
    let len = usize::try_from(file.len().map_err(failed)?).unwrap_or(usize::MAX);
    file.read_at(0, len).map_err(failed)
}

fn write_file<F: Fs>(fs: &F, path: &Path, bytes: &[u8]) -> Result<PathBuf, OutputError> {
    let failed = |source| OutputError::Io { path: path.to_owned(), source };
    let file = fs.open(path, OpenMode::Create).map_err(failed)?;
    file.set_len(0).map_err(failed)?;
    file.write_all_at(0, bytes).map_err(failed)?;
    file.sync_data().map_err(failed)?;
    Ok(path.to_owned())
}
