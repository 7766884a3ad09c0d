//! `twinmq dump`: an entry-by-entry listing of a data directory, like `kafka-dump-log`.
//!
//! Walks `dir` recursively (sorted), recognises the files the storage core writes by their
//! names, and prints every entry with its position, offset, size, timestamp and checksum
//! status. Damage is printed, never fatal: a dump is what one runs on a broken directory.

use std::io::Write;
use std::path::Path;

use bytes::Bytes;
use twinmq_runtime::{File, Fs, OpenMode};

use crate::entry::{self, Decoded};
use crate::error::{IoContext, Result};
use crate::segment::parse_file_name;

/// Totals of a dump.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DumpSummary {
    /// Files listed.
    pub file_count: u64,
    /// Whole entries with a valid checksum.
    pub entry_count: u64,
    /// Places where the data stopped being valid before its clean end.
    pub damaged_count: u64,
}

/// Prints every file of `dir` the storage core knows, entry by entry, to `out`.
pub fn dump_dir<F: Fs>(fs: &F, dir: &Path, out: &mut dyn Write) -> Result<DumpSummary> {
    let mut summary = DumpSummary::default();
    dump_tree(fs, dir, out, &mut summary)?;
    writeln!(
        out,
        "summary: {} files, {} entries, {} damaged",
        summary.file_count, summary.entry_count, summary.damaged_count
    )
    .at(dir)?;
    Ok(summary)
}

fn dump_tree<F: Fs>(
    fs: &F,
    dir: &Path,
    out: &mut dyn Write,
    summary: &mut DumpSummary,
) -> Result<()> {
    for path in fs.read_dir(dir).at(dir)? {
        if fs.is_dir(&path) {
            dump_tree(fs, &path, out, summary)?;
            continue;
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let in_commitlog =
            path.parent().and_then(Path::file_name).is_some_and(|n| n == "commitlog");
        if parse_file_name(name, "log").is_some()
            || (in_commitlog && parse_file_name(name, "").is_some())
        {
            summary.file_count += 1;
            dump_entries(fs, &path, out, summary)?;
        } else if let Some(kind) = fixed_entry_kind(&path, name) {
            summary.file_count += 1;
            dump_fixed(fs, &path, kind, out)?;
        }
    }
    Ok(())
}

/// Files of fixed-size binary entries.
#[derive(Debug, Clone, Copy)]
enum FixedKind {
    OffsetIndex,
    TimeIndex,
    ConsumeQueue,
}

fn fixed_entry_kind(path: &Path, name: &str) -> Option<FixedKind> {
    if parse_file_name(name, "index").is_some() {
        Some(FixedKind::OffsetIndex)
    } else if parse_file_name(name, "timeindex").is_some() {
        Some(FixedKind::TimeIndex)
    } else if parse_file_name(name, "").is_some()
        && path.ancestors().any(|a| a.file_name().is_some_and(|n| n == "consumequeue"))
    {
        Some(FixedKind::ConsumeQueue)
    } else {
        None
    }
}

fn read_whole<F: Fs>(fs: &F, path: &Path) -> Result<Bytes> {
    let file = fs.open(path, OpenMode::Read).at(path)?;
    let len = file.len().at(path)?;
    file.read_at(0, usize::try_from(len).unwrap_or(usize::MAX)).at(path)
}

fn dump_entries<F: Fs>(
    fs: &F,
    path: &Path,
    out: &mut dyn Write,
    summary: &mut DumpSummary,
) -> Result<()> {
    let data = read_whole(fs, path)?;
    writeln!(out, "file: {} ({} bytes)", path.display(), data.len()).at(path)?;
    let mut position = 0usize;
    while position < data.len() {
        match entry::decode(&data.slice(position..)) {
            Decoded::End => break,
            Decoded::Entry(entry) if entry.padding => {
                writeln!(out, "position: {position} padding: {} bytes crc: valid", entry.size)
                    .at(path)?;
                break;
            }
            Decoded::Entry(entry) => {
                summary.entry_count += 1;
                let key = entry.key.as_ref().map_or_else(|| "-".to_owned(), |k| printable(k));
                writeln!(
                    out,
                    "position: {position} offset: {} records: {} size: {} timestamp_ms: {} key: {key} payload_bytes: {} crc: valid",
                    entry.offset,
                    entry.record_count,
                    entry.size,
                    entry.timestamp_ms,
                    entry.payload.len()
                )
                .at(path)?;
                position += usize::try_from(entry.size).unwrap_or(usize::MAX);
            }
            Decoded::Incomplete { claimed } => {
                summary.damaged_count += 1;
                writeln!(
                    out,
                    "position: {position} TORN: entry claims {claimed} bytes, {} remain",
                    data.len() - position
                )
                .at(path)?;
                break;
            }
            Decoded::Corrupt(reason) => {
                summary.damaged_count += 1;
                writeln!(out, "position: {position} CORRUPT: {reason}").at(path)?;
                break;
            }
        }
    }
    Ok(())
}

fn dump_fixed<F: Fs>(fs: &F, path: &Path, kind: FixedKind, out: &mut dyn Write) -> Result<()> {
    let data = read_whole(fs, path)?;
    let width = match kind {
        FixedKind::OffsetIndex => 8,
        FixedKind::TimeIndex => 12,
        FixedKind::ConsumeQueue => 20,
    };
    writeln!(out, "file: {} ({} bytes, {kind:?})", path.display(), data.len()).at(path)?;
    for (index, chunk) in data.chunks_exact(width).enumerate() {
        if chunk.iter().all(|b| *b == 0) && index > 0 {
            break;
        }
        let line = match kind {
            FixedKind::OffsetIndex => {
                format!("relative_offset: {} position: {}", be(&chunk[..4]), be(&chunk[4..8]))
            }
            FixedKind::TimeIndex => {
                format!(
                    "timestamp_ms: {} relative_offset: {}",
                    be(&chunk[..8]) as i64,
                    be(&chunk[8..12])
                )
            }
            FixedKind::ConsumeQueue => format!(
                "queue_offset: {index} commitlog_offset: {} size: {} tag_hash: {}",
                be(&chunk[..8]),
                be(&chunk[8..12]),
                be(&chunk[12..20])
            ),
        };
        writeln!(out, "{line}").at(path)?;
    }
    Ok(())
}

fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |value, byte| (value << 8) | u64::from(*byte))
}

fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).chars().map(|c| if c.is_control() { '.' } else { c }).collect()
}
