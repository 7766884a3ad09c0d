//! Opening a Kafka-layout log directory: classify its files, repair what recovery may repair,
//! refuse clearly what it may not, and hand back the segments.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use twinmq_runtime::Fs;

use crate::config::LogConfig;
use crate::error::{IoContext, Result, StorageError};
use crate::log::LogRecovery;
use crate::log_segment::LogSegment;
use crate::segment::{ScanEnd, Segment, file_name, parse_file_name, sync_parent};
use crate::sparse_index::SparseIndex;

/// Files a broker keeps in a partition directory beside the log (Kafka's names).
pub const PARTITION_SIDECARS: &[&str] = &["leader-epoch-checkpoint", "partition.metadata"];

/// Lists `dir` and returns its segments by base offset, recovered.
pub(crate) fn load_segments<F: Fs>(
    fs: &F,
    dir: &Path,
    config: &LogConfig,
    recovery: &mut LogRecovery,
) -> Result<BTreeMap<u64, LogSegment<F>>> {
    if !fs.exists(dir) {
        fs.create_dir_all(dir).at(dir)?;
        sync_parent(fs, dir)?;
    }
    let mut bases = Vec::new();
    let mut index_files = Vec::new();
    let mut removed_any = false;
    for path in fs.read_dir(dir).at(dir)? {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if let Some(base) = parse_file_name(&name, "log") {
            bases.push(base);
        } else if let Some(base) =
            parse_file_name(&name, "index").or_else(|| parse_file_name(&name, "timeindex"))
        {
            index_files.push((base, path));
        } else if name.ends_with(".cleaned") || name.ends_with(".swap") {
            tracing::warn!(file = %path.display(), "removing unfinished compaction output");
            fs.remove_file(&path).at(&path)?;
            recovery.removed.push(path);
            removed_any = true;
        } else if PARTITION_SIDECARS.iter().any(|sidecar| name.starts_with(sidecar)) {
            // The broker's own files beside the log (leader epochs); not the log's business.
        } else {
            tracing::warn!(file = %path.display(), "not a log file; left alone");
            recovery.unknown.push(path);
        }
    }
    for (base, path) in index_files {
        if !bases.contains(&base) {
            tracing::warn!(file = %path.display(), "removing an index without its segment");
            fs.remove_file(&path).at(&path)?;
            recovery.removed.push(path);
            removed_any = true;
        }
    }
    bases.sort_unstable();
    let mut segments = BTreeMap::new();
    let last = bases.last().copied();
    let mut next_expected: Option<u64> = None;
    for base in bases {
        let is_last = Some(base) == last;
        let path = dir.join(file_name(base, "log"));
        if let Some(expected) = next_expected
            && base < expected
        {
            return Err(StorageError::Corrupt {
                path,
                position: 0,
                reason: format!(
                    "segment base offset {base} is below the previous segment's end {expected}"
                ),
            });
        }
        let segment = if is_last {
            recover_active(fs, dir, base, config, recovery)?
        } else {
            match load_sealed(fs, dir, base, config, recovery)? {
                Some(segment) => segment,
                None => {
                    removed_any = true;
                    continue;
                }
            }
        };
        next_expected = Some(segment.next_offset());
        segments.insert(base, segment);
    }
    if removed_any {
        fs.sync_dir(dir).at(dir)?;
    }
    Ok(segments)
}

/// Scans and repairs the last segment, rebuilding its indexes.
fn recover_active<F: Fs>(
    fs: &F,
    dir: &Path,
    base: u64,
    config: &LogConfig,
    recovery: &mut LogRecovery,
) -> Result<LogSegment<F>> {
    let path = dir.join(file_name(base, "log"));
    let file_len = {
        use twinmq_runtime::File;
        fs.open(&path, twinmq_runtime::OpenMode::Read).at(&path)?.len().at(&path)?
    };
    let capacity = config.segment_bytes_max.max(file_len);
    let mut data = Segment::open(fs, path.clone(), base, capacity, true)?;
    let mut expected = base;
    let scan = data.recover(|_, entry| {
        if entry.offset < expected {
            return Err(format!("entry offset {} is below the expected {expected}", entry.offset));
        }
        if entry.record_count == 0 {
            return Err(format!("entry at offset {} holds no records", entry.offset));
        }
        expected = entry.next_offset();
        Ok(())
    })?;
    if let ScanEnd::Cut { reason } = &scan.end {
        tracing::warn!(file = %path.display(), position = scan.position_end, %reason, "cut a torn or damaged tail");
        recovery.truncations.push((path.clone(), scan.position_end, reason.clone()));
    }
    let offset_index = open_index(fs, dir.join(file_name(base, "index")))?;
    let time_index = open_index(fs, dir.join(file_name(base, "timeindex")))?;
    let mut segment = LogSegment::assemble(data, offset_index, time_index);
    segment.rebuild_indexes(config.index_interval_bytes)?;
    Ok(segment)
}

/// Opens a sealed segment, trusting its data and checking its indexes. `None` when it was
/// empty and has been removed.
fn load_sealed<F: Fs>(
    fs: &F,
    dir: &Path,
    base: u64,
    config: &LogConfig,
    recovery: &mut LogRecovery,
) -> Result<Option<LogSegment<F>>> {
    let path = dir.join(file_name(base, "log"));
    let mut data = Segment::open(fs, path.clone(), base, 0, false)?;
    data.assume_whole()?;
    if data.position_written() == 0 {
        tracing::warn!(file = %path.display(), "removing an empty sealed segment");
        let mut segment = LogSegment::assemble(
            data,
            open_index(fs, dir.join(file_name(base, "index")))?,
            open_index(fs, dir.join(file_name(base, "timeindex")))?,
        );
        segment.next_offset = base;
        segment.delete(fs)?;
        recovery.removed.push(path);
        return Ok(None);
    }
    let index_path = dir.join(file_name(base, "index"));
    let time_path = dir.join(file_name(base, "timeindex"));
    let loaded_offsets = SparseIndex::load(fs, index_path.clone())?;
    let loaded_times = SparseIndex::load(fs, time_path.clone())?;
    let had_both = loaded_offsets.is_some() && loaded_times.is_some();
    let offset_index = match loaded_offsets {
        Some(index) => index,
        None => SparseIndex::create(fs, index_path.clone())?,
    };
    let time_index = match loaded_times {
        Some(index) => index,
        None => SparseIndex::create(fs, time_path)?,
    };
    let mut segment = LogSegment::assemble(data, offset_index, time_index);
    let first = segment.entry_at(0).map_err(|error| refuse_sealed(&path, &error))?;
    if let Some(first) = first
        && first.offset < base
    {
        return Err(StorageError::Corrupt {
            path,
            position: 0,
            reason: format!(
                "first entry has offset {} below the segment's base offset {base}",
                first.offset
            ),
        });
    }
    if had_both {
        let before =
            (segment.offset_index.entries().to_vec(), segment.time_index.entries().to_vec());
        segment
            .load_sealed(config.index_interval_bytes)
            .map_err(|error| refuse_sealed(&path, &error))?;
        if before
            != (segment.offset_index.entries().to_vec(), segment.time_index.entries().to_vec())
        {
            recovery.rebuilt_indexes.push(index_path);
        }
    } else {
        segment
            .rebuild_indexes(config.index_interval_bytes)
            .map_err(|error| refuse_sealed(&path, &error))?;
        recovery.rebuilt_indexes.push(index_path);
    }
    segment.offset_index.sync()?;
    segment.time_index.sync()?;
    Ok(Some(segment))
}

fn open_index<F: Fs, E: crate::sparse_index::IndexEntry>(
    fs: &F,
    path: PathBuf,
) -> Result<SparseIndex<F, E>> {
    SparseIndex::create(fs, path)
}

/// A sealed segment was synced before the next one began: damage inside it is not a torn write
/// but lost or corrupted durable data, which recovery must not paper over.
fn refuse_sealed(path: &Path, error: &StorageError) -> StorageError {
    StorageError::Corrupt {
        path: path.to_owned(),
        position: 0,
        reason: format!("sealed segment is damaged ({error}); refusing to open the log"),
    }
}
