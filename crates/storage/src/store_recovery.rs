//! Opening a RocketMQ-layout store: recover the CommitLog, trim the consume queues to it, and
//! re-dispatch from the checkpoint.
//!
//! 1. CommitLog files are listed and their names checked: they must follow one another by
//!    `file_bytes`. Files before the last two are trusted (each was synced whole before the next
//!    began); the last two are scanned. A scanned file that is not the last must end full
//!    (padding or exact fill): otherwise its tail is a hole, and it is cut there and every later
//!    file removed. The last file keeps its valid prefix (every message's recorded physical
//!    offset must be where it lies, and its dispatch header must parse).
//! 2. Consume queues keep the entries that point below the CommitLog's valid end.
//! 3. The index drops its newest file after an unclean shutdown (see [`crate::IndexFile`]).
//! 4. Messages from the checkpoint (or from the start, without one) are dispatched again;
//!    dispatch is idempotent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use twinmq_runtime::{Clock, File, Fs, OpenMode};

use crate::checkpoint::StoreCheckpoint;
use crate::commit_log::CommitLog;
use crate::config::CommitLogConfig;
use crate::consume_queue::ConsumeQueue;
use crate::dispatcher::{DispatchRequest, Dispatcher};
use crate::error::{IoContext, Result, StorageError};
use crate::index_file::IndexFile;
use crate::message::StoredMessage;
use crate::message_store::{MessageStore, StoreRecovery};
use crate::queue_map::QueueMap;
use crate::segment::{ScanEnd, Segment, parse_file_name, sync_parent};

/// Files at the end of the CommitLog that recovery scans (RocketMQ starts at the third last).
const SCANNED_FILES: usize = 2;

pub(crate) fn open<F: Fs>(
    fs: F,
    clock: Clock,
    dir: PathBuf,
    config: CommitLogConfig,
) -> Result<(MessageStore<F>, StoreRecovery)> {
    validate(&config)?;
    let mut recovery = StoreRecovery::default();
    let commitlog_dir = dir.join("commitlog");
    for path in [&dir, &commitlog_dir] {
        if !fs.exists(path) {
            fs.create_dir_all(path).at(path)?;
            sync_parent(&fs, path)?;
        }
    }
    recovery.clean_shutdown = !fs.exists(&dir.join("abort"));
    let files = recover_commitlog(&fs, &commitlog_dir, &config, &mut recovery)?;
    let mut commit_log =
        CommitLog::from_files(fs.clone(), clock.clone(), commitlog_dir, config.clone(), files)?;
    let commitlog_end = commit_log.max_physical_offset();

    let queue_root = dir.join("consumequeue");
    let consume_queues =
        open_consume_queues(&fs, &queue_root, &config, commitlog_end, &mut recovery)?;
    let (index, reindex_from) = IndexFile::open(
        fs.clone(),
        dir.join("index"),
        config.index_slots,
        config.index_entries_max,
        recovery.clean_shutdown,
        commitlog_end,
    )?;
    let checkpoint = StoreCheckpoint::read(&fs, &dir);
    let mut dispatch_from =
        checkpoint.map_or(0, |c| c.dispatched_physical_offset).min(commitlog_end);
    if let Some(from) = reindex_from {
        dispatch_from = dispatch_from.min(from);
    }
    let mut dispatcher = Dispatcher {
        fs: fs.clone(),
        consume_queues,
        index,
        queue_root,
        entries_per_file: config.consume_queue_entries_per_file,
    };
    let dispatch_from = message_boundary_at_or_after(&commit_log, dispatch_from)?;
    recovery.redispatched = commit_log.messages_from(dispatch_from, |message: StoredMessage| {
        let request = DispatchRequest::of(&message);
        dispatcher.dispatch(&request, commitlog_end)
    })?;
    for (topic, queue_id, queue) in dispatcher.consume_queues.iter() {
        commit_log.topic_queue_table.insert(topic, queue_id, queue.max_offset());
    }
    MessageStore::mark_open(&fs, &dir)?;
    let mut store = MessageStore { fs, clock, dir, commit_log, dispatcher };
    if recovery.redispatched > 0 || !recovery.clean_shutdown {
        store.checkpoint()?;
    }
    Ok((store, recovery))
}

fn recover_commitlog<F: Fs>(
    fs: &F,
    dir: &Path,
    config: &CommitLogConfig,
    recovery: &mut StoreRecovery,
) -> Result<BTreeMap<u64, Segment<F>>> {
    let mut bases = Vec::new();
    for path in fs.read_dir(dir).at(dir)? {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        match parse_file_name(name, "") {
            Some(base) => bases.push((base, path)),
            None => {
                tracing::warn!(file = %path.display(), "not a commitlog file; left alone");
                recovery.unknown.push(path);
            }
        }
    }
    bases.sort();
    for (index, (base, path)) in bases.iter().enumerate() {
        let expected = bases.first().map_or(0, |first| first.0) + index as u64 * config.file_bytes;
        if *base != expected || base % config.file_bytes != 0 {
            return Err(StorageError::Corrupt {
                path: path.clone(),
                position: 0,
                reason: format!(
                    "commitlog file names must follow one another by {} bytes: expected {expected}",
                    config.file_bytes
                ),
            });
        }
        let len = fs.open(path, OpenMode::Read).at(path)?.len().at(path)?;
        if len == 0 && index + 1 < bases.len() {
            return Err(StorageError::Corrupt {
                path: path.clone(),
                position: 0,
                reason: "an empty commitlog file with later files after it: refusing to guess what is lost".into(),
            });
        }
    }
    let mut files = BTreeMap::new();
    let scan_from = bases.len().saturating_sub(SCANNED_FILES);
    let mut cut_at: Option<usize> = None;
    for (index, (base, path)) in bases.iter().enumerate() {
        let mut file = Segment::open(fs, path.clone(), *base, config.file_bytes, true)?;
        if index < scan_from {
            file.assume_whole()?;
            files.insert(*base, file);
            continue;
        }
        let is_last = index + 1 == bases.len();
        let scan = file.recover(|position, entry| {
            if entry.offset != base + position {
                return Err(format!(
                    "message records physical offset {} but lies at {}",
                    entry.offset,
                    base + position
                ));
            }
            StoredMessage::from_entry(entry).map(|_| ())
        })?;
        if let ScanEnd::Cut { reason } = &scan.end {
            tracing::warn!(file = %path.display(), position = scan.position_end, %reason, "cut a torn or damaged tail");
            recovery.truncations.push((path.clone(), scan.position_end, reason.clone()));
        }
        files.insert(*base, file);
        if !is_last && scan.end != ScanEnd::Full {
            if !matches!(scan.end, ScanEnd::Cut { .. }) {
                recovery.truncations.push((
                    path.clone(),
                    scan.position_end,
                    "file ends before it is full: a hole".into(),
                ));
            }
            cut_at = Some(index + 1);
            break;
        }
    }
    if let Some(first_removed) = cut_at {
        for (_, path) in &bases[first_removed..] {
            tracing::warn!(file = %path.display(), "removing a commitlog file after a hole");
            fs.remove_file(path).at(path)?;
            recovery.removed.push(path.clone());
        }
        fs.sync_dir(dir).at(dir)?;
    }
    Ok(files)
}

fn open_consume_queues<F: Fs>(
    fs: &F,
    root: &Path,
    config: &CommitLogConfig,
    commitlog_end: u64,
    recovery: &mut StoreRecovery,
) -> Result<QueueMap<ConsumeQueue<F>>> {
    let mut queues = QueueMap::default();
    if !fs.exists(root) {
        fs.create_dir_all(root).at(root)?;
        sync_parent(fs, root)?;
        return Ok(queues);
    }
    for topic_dir in fs.read_dir(root).at(root)? {
        if !fs.is_dir(&topic_dir) {
            recovery.unknown.push(topic_dir);
            continue;
        }
        let topic = topic_dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        for queue_dir in fs.read_dir(&topic_dir).at(&topic_dir)? {
            let queue_id =
                queue_dir.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<u32>().ok());
            let Some(queue_id) = queue_id.filter(|_| fs.is_dir(&queue_dir)) else {
                recovery.unknown.push(queue_dir);
                continue;
            };
            let (queue, cut) = ConsumeQueue::open(
                fs.clone(),
                queue_dir,
                config.consume_queue_entries_per_file,
                commitlog_end,
            )?;
            recovery.consume_queue_entries_cut += cut;
            queues.insert(&topic, queue_id, queue);
        }
    }
    Ok(queues)
}

/// The first message boundary at or after `physical_offset`: the checkpoint is one, and so is
/// the start of a file; anything else is scanned forward from the start of its file.
fn message_boundary_at_or_after<F: Fs>(
    commit_log: &CommitLog<F>,
    physical_offset: u64,
) -> Result<u64> {
    let Some((base, file)) = commit_log.files.range(..=physical_offset).next_back() else {
        return Ok(commit_log.min_physical_offset());
    };
    let mut boundary = *base;
    if boundary == physical_offset {
        return Ok(boundary);
    }
    for (position, entry) in file.read_entries(0, u64::MAX)? {
        boundary = base + position;
        if boundary >= physical_offset {
            return Ok(boundary);
        }
        boundary += entry.size;
    }
    Ok(boundary.max(physical_offset.min(commit_log.max_physical_offset())))
}

fn validate(config: &CommitLogConfig) -> Result<()> {
    if config.file_bytes < 4096
        || config.consume_queue_entries_per_file == 0
        || config.index_slots == 0
        || config.index_entries_max < 2
    {
        return Err(StorageError::InvalidConfig(
            "file_bytes ≥ 4 KiB, consume_queue_entries_per_file ≥ 1, index_slots ≥ 1, index_entries_max ≥ 2".into(),
        ));
    }
    Ok(())
}
