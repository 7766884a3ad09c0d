//! CommitLog — the RocketMQ layout's one log for every topic-queue of a broker.
//!
//! Fixed-size files (`file_bytes`, 1 GiB by default), preallocated, named by the physical offset
//! of their first byte (20 digits, no extension), each a sequence of framed messages
//! ([`crate::message`]). A message never spans files: when it does not fit, the rest of the file
//! is claimed by a padding entry (RocketMQ's BLANK), the file is sealed and synced, and the
//! message goes first into the next file, whose base is the previous base plus `file_bytes`.
//!
//! ## Crash contract
//!
//! A file is synced whole before anything is written to the next, so durable data never has a
//! hole. Recovery (in [`crate::MessageStore::open`]) scans the last files, keeps every whole
//! message whose recorded physical offset is where it lies, and cuts the rest.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use twinmq_runtime::{Clock, Fs};

use crate::config::CommitLogConfig;
use crate::entry::{self, Decoded, ENTRY_HEADER_BYTES};
use crate::entry_cursor::EntryCursor;
use crate::error::{Result, StorageError};
use crate::flush::{DurableWatermark, FlushPlan, Flushable};
use crate::message::{NewMessage, StoredMessage};
use crate::queue_map::QueueMap;
use crate::segment::{Segment, file_name};

/// Where a message landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendedMessage {
    /// The message's physical offset.
    pub physical_offset: u64,
    /// The message's index in its consume queue.
    pub queue_offset: u64,
    /// Bytes the message occupies.
    pub size: u32,
    /// The CommitLog's end after the append: wait for the durable watermark to reach it.
    pub position_end: u64,
    /// The store timestamp the message was given.
    pub store_timestamp_ms: i64,
}

/// The CommitLog of one broker.
#[derive(Debug)]
pub struct CommitLog<F: Fs> {
    fs: F,
    clock: Clock,
    pub(crate) dir: PathBuf,
    pub(crate) config: CommitLogConfig,
    pub(crate) files: BTreeMap<u64, Segment<F>>,
    pub(crate) topic_queue_table: QueueMap<u64>,
    flushed: u64,
    unflushed_bytes: u64,
    watermark: DurableWatermark,
    failure: Option<String>,
    buffer: Vec<u8>,
    scratch: Vec<u8>,
}

impl<F: Fs> CommitLog<F> {
    /// Assembles a CommitLog from recovered files (the last one active).
    pub(crate) fn from_files(
        fs: F,
        clock: Clock,
        dir: PathBuf,
        config: CommitLogConfig,
        files: BTreeMap<u64, Segment<F>>,
    ) -> Result<Self> {
        let mut log = Self {
            fs,
            clock,
            dir,
            config,
            files,
            topic_queue_table: QueueMap::default(),
            flushed: 0,
            unflushed_bytes: 0,
            watermark: DurableWatermark::new(0),
            failure: None,
            buffer: Vec::new(),
            scratch: Vec::new(),
        };
        if log.files.is_empty() {
            let file = Segment::create(
                &log.fs,
                log.dir.join(file_name(0, "")),
                0,
                log.config.file_bytes,
                true,
            )?;
            log.files.insert(0, file);
        }
        log.flushed = log.max_physical_offset();
        log.watermark = DurableWatermark::new(log.flushed);
        Ok(log)
    }

    /// Appends one message.
    pub fn append(&mut self, message: NewMessage<'_>) -> Result<AppendedMessage> {
        Ok(self.append_batch(&[message])?.remove(0))
    }

    /// Appends messages in order with one write per file they land in.
    pub fn append_batch(&mut self, messages: &[NewMessage<'_>]) -> Result<Vec<AppendedMessage>> {
        if let Some(reason) = &self.failure {
            return Err(StorageError::Refused(format!(
                "commitlog {} failed: {reason}",
                self.dir.display()
            )));
        }
        for message in messages {
            validate(message, &self.config)?;
        }
        let now_ms = self.clock.now_ms();
        let mut appended = Vec::with_capacity(messages.len());
        self.buffer.clear();
        let mut batch_start = self.active_end();
        for message in messages {
            let size = message.encoded_len() as u64;
            let position = batch_start + self.buffer.len() as u64;
            let remaining = self.active_base() + self.config.file_bytes - position;
            if remaining == 0 {
                // The last message filled the file exactly: nothing to pad, start the next.
                self.write_buffer()?;
                self.roll()?;
                batch_start = self.active_end();
            } else if size != remaining && size + ENTRY_HEADER_BYTES as u64 > remaining {
                self.buffer.extend_from_slice(&entry::encode_padding(position, remaining));
                self.write_buffer()?;
                self.roll()?;
                batch_start = self.active_end();
            }
            let physical_offset = batch_start + self.buffer.len() as u64;
            let queue_offset =
                self.topic_queue_table.get(message.topic, message.queue_id).copied().unwrap_or(0);
            let mut scratch = std::mem::take(&mut self.scratch);
            message.encode_into(
                physical_offset,
                queue_offset,
                now_ms,
                &mut scratch,
                &mut self.buffer,
            );
            self.scratch = scratch;
            match self.topic_queue_table.get_mut(message.topic, message.queue_id) {
                Some(next) => *next = queue_offset + 1,
                None => self.topic_queue_table.insert(message.topic, message.queue_id, 1),
            }
            appended.push(AppendedMessage {
                physical_offset,
                queue_offset,
                size: u32::try_from(size).unwrap_or(u32::MAX),
                position_end: physical_offset + size,
                store_timestamp_ms: now_ms,
            });
        }
        self.write_buffer()?;
        Ok(appended)
    }

    /// Reads the message at `physical_offset`.
    pub fn read_message(&self, physical_offset: u64) -> Result<StoredMessage> {
        let (base, file) = self
            .files
            .range(..=physical_offset)
            .next_back()
            .ok_or_else(|| self.out_of_range(physical_offset))?;
        let entries = file.read_entries(physical_offset - base, 1)?;
        let Some((_, entry)) = entries.into_iter().next() else {
            return Err(self.out_of_range(physical_offset));
        };
        StoredMessage::from_entry(&entry).map_err(|reason| StorageError::Corrupt {
            path: file.path().to_owned(),
            position: physical_offset - base,
            reason,
        })
    }

    /// Every message from `physical_offset` (a message boundary) to the end, file by file, in
    /// order; padding skipped. Used by recovery's re-dispatch.
    pub(crate) fn messages_from(
        &self,
        physical_offset: u64,
        mut visit: impl FnMut(StoredMessage) -> Result<()>,
    ) -> Result<u64> {
        let mut count = 0;
        let first = self
            .files
            .range(..=physical_offset)
            .next_back()
            .map_or(physical_offset, |(base, _)| *base);
        for (base, file) in self.files.range(first..) {
            let start = physical_offset.saturating_sub(*base);
            if start >= file.position_written() {
                continue;
            }
            for (position, entry) in file.read_entries(start, u64::MAX)? {
                let message = StoredMessage::from_entry(&entry).map_err(|reason| {
                    StorageError::Corrupt { path: file.path().to_owned(), position, reason }
                })?;
                visit(message)?;
                count += 1;
            }
        }
        Ok(count)
    }

    /// Whole entries from `from` for a slave to append (see [`CommitLog::append_replica`]):
    /// about `bytes_max` bytes but at least one entry, never past the end of `from`'s file; a
    /// file closed by padding ends with the padding's header. Returns the bytes and the offset
    /// after them, or `None` when `from` is the end of the log.
    pub fn read_replica(&self, from: u64, bytes_max: u64) -> Result<Option<(Bytes, u64)>> {
        let end = self.max_physical_offset();
        if from == end {
            return Ok(None);
        }
        if from > end {
            return Err(self.out_of_range(from));
        }
        let (base, file) =
            self.files.range(..=from).next_back().ok_or_else(|| self.out_of_range(from))?;
        let position = from - base;
        if position >= file.position_written() {
            return Err(self.out_of_range(from));
        }
        let mut cursor = EntryCursor::new(position, bytes_max);
        let mut next = from;
        while let Some((before, found)) = cursor.next_entry(file)? {
            if found.padding {
                // The padding's header is all a slave needs to close its file the same way.
                let bytes = cursor.bytes(file, position, before + ENTRY_HEADER_BYTES as u64)?;
                return Ok(Some((bytes, base + self.config.file_bytes)));
            }
            if before > position && cursor.position() - position > bytes_max {
                break;
            }
            next = base + cursor.position();
        }
        Ok(Some((cursor.bytes(file, position, next - base)?, next)))
    }

    /// Appends what a master's [`CommitLog::read_replica`] returned for `from`, which must be
    /// this log's end: every entry must be whole, checksummed, a message, and placed where the
    /// master placed it (so both logs need the same `file_bytes`). Nothing is written unless
    /// all of it is valid. Returns the messages appended, for dispatch.
    pub fn append_replica(&mut self, from: u64, bytes: &Bytes) -> Result<Vec<StoredMessage>> {
        if let Some(reason) = &self.failure {
            return Err(StorageError::Refused(format!(
                "commitlog {} failed: {reason}",
                self.dir.display()
            )));
        }
        let end = self.max_physical_offset();
        if from != end {
            return Err(StorageError::Refused(format!(
                "a replica chunk for {from} cannot go at this log's end {end}"
            )));
        }
        if self.active_base() + self.config.file_bytes == end && !bytes.is_empty() {
            self.roll()?;
        }
        let file_end = self.active_base() + self.config.file_bytes;
        let refuse = |at: u64, why: String| {
            StorageError::Refused(format!("replica chunk at {from}: entry at {at}: {why}"))
        };
        let (mut messages, mut cursor, mut padded) = (Vec::new(), 0u64, false);
        // Each queue's next offset as this log knows it: a message must continue its queue, or
        // the two logs have diverged (a master that lost an unsynced tail and wrote anew).
        let mut queue_ends: BTreeMap<(String, u32), u64> = BTreeMap::new();
        while cursor < bytes.len() as u64 {
            let at = from + cursor;
            if padded {
                return Err(refuse(at, "bytes after the padding that closes a file".into()));
            }
            let rest = bytes.slice(usize::try_from(cursor).unwrap_or(usize::MAX)..);
            match entry::decode(&rest) {
                Decoded::Entry(found) if found.offset != at => {
                    return Err(refuse(at, format!("it says it belongs at {}", found.offset)));
                }
                Decoded::Entry(found) if found.padding => {
                    if at + found.size != file_end {
                        return Err(refuse(at, "padding that does not close the file".into()));
                    }
                    padded = true;
                    cursor += ENTRY_HEADER_BYTES as u64;
                }
                Decoded::Entry(found) => {
                    if at + found.size + ENTRY_HEADER_BYTES as u64 > file_end
                        && at + found.size != file_end
                    {
                        return Err(refuse(at, "it does not fit this log's file size".into()));
                    }
                    let message =
                        StoredMessage::from_entry(&found).map_err(|why| refuse(at, why))?;
                    let key = (message.topic.clone(), message.queue_id);
                    let next = *queue_ends.entry(key.clone()).or_insert_with(|| {
                        self.topic_queue_table.get(&key.0, key.1).copied().unwrap_or(0)
                    });
                    if message.queue_offset != next {
                        return Err(refuse(
                            at,
                            format!(
                                "{}/{} offset {} where this log's queue goes on at {next}: \
                                 the master's log and this one have diverged",
                                message.topic, message.queue_id, message.queue_offset
                            ),
                        ));
                    }
                    queue_ends.insert(key, next + 1);
                    cursor += found.size;
                    messages.push(message);
                }
                other => return Err(refuse(at, format!("{other:?}"))),
            }
        }
        self.buffer.clear();
        self.buffer.extend_from_slice(bytes);
        self.write_buffer()?;
        for message in &messages {
            let next = message.queue_offset + 1;
            match self.topic_queue_table.get_mut(&message.topic, message.queue_id) {
                Some(queue_end) => *queue_end = (*queue_end).max(next),
                None => self.topic_queue_table.insert(&message.topic, message.queue_id, next),
            }
        }
        if padded {
            self.roll()?;
        }
        Ok(messages)
    }

    /// The physical offset the next message gets (where the active file's data ends).
    pub fn max_physical_offset(&self) -> u64 {
        self.active_end()
    }

    /// The first physical offset the CommitLog holds.
    pub fn min_physical_offset(&self) -> u64 {
        self.files.keys().next().copied().unwrap_or(0)
    }

    /// The watermark appenders wait on for durability (a physical offset).
    pub fn durable_watermark(&self) -> DurableWatermark {
        self.watermark.clone()
    }

    /// Syncs everything appended, now, on this thread.
    pub fn flush(&mut self) -> Result<()> {
        let end = self.max_physical_offset();
        if let Some(Err(error)) = self.files.values_mut().next_back().map(|file| file.sync()) {
            self.flush_failed(&error);
            return Err(error);
        }
        self.flush_done(end);
        Ok(())
    }

    fn write_buffer(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let written = self.buffer.len() as u64;
        let buffer = std::mem::take(&mut self.buffer);
        let result = self.files.values_mut().next_back().map(|file| file.append(&buffer));
        self.buffer = buffer;
        self.buffer.clear();
        match result {
            Some(Ok(_)) => {
                self.unflushed_bytes += written;
                Ok(())
            }
            Some(Err(error)) => {
                self.failure = Some(error.to_string());
                Err(error)
            }
            None => Err(StorageError::Refused("the commitlog has no file".into())),
        }
    }

    fn roll(&mut self) -> Result<()> {
        let next_base = self.active_base() + self.config.file_bytes;
        if let Some(file) = self.files.values_mut().next_back() {
            file.seal(false)?;
        }
        let file = Segment::create(
            &self.fs,
            self.dir.join(file_name(next_base, "")),
            next_base,
            self.config.file_bytes,
            true,
        )?;
        self.files.insert(next_base, file);
        Ok(())
    }

    fn active_base(&self) -> u64 {
        self.files.keys().next_back().copied().unwrap_or(0)
    }

    fn active_end(&self) -> u64 {
        self.files.iter().next_back().map_or(0, |(base, file)| base + file.position_written())
    }

    fn out_of_range(&self, physical_offset: u64) -> StorageError {
        StorageError::OffsetOutOfRange {
            offset: physical_offset,
            start: self.min_physical_offset(),
            end: self.max_physical_offset(),
        }
    }
}

impl<F: Fs> Flushable for CommitLog<F> {
    type File = F::File;

    fn flush_plan(&mut self) -> Option<FlushPlan<F::File>> {
        let end = self.max_physical_offset();
        if self.flushed >= end {
            return None;
        }
        self.unflushed_bytes = 0;
        let file = self.files.values().next_back()?;
        Some(FlushPlan { files: vec![Arc::clone(&file.file())], up_to: end })
    }

    fn flush_done(&mut self, up_to: u64) {
        self.flushed = self.flushed.max(up_to);
        self.watermark.advance(self.flushed);
    }

    fn flush_failed(&mut self, error: &StorageError) {
        tracing::error!(dir = %self.dir.display(), %error, "flush failed; the commitlog refuses further appends");
        self.failure = Some(error.to_string());
        self.watermark.fail(error.to_string());
    }

    fn unflushed_bytes(&self) -> u64 {
        self.unflushed_bytes
    }
}

fn validate(message: &NewMessage<'_>, config: &CommitLogConfig) -> Result<()> {
    let size = message.encoded_len() as u64;
    if size > config.entry_bytes_max || size + ENTRY_HEADER_BYTES as u64 > config.file_bytes {
        return Err(StorageError::EntryTooLarge {
            size,
            limit: config.entry_bytes_max.min(config.file_bytes - ENTRY_HEADER_BYTES as u64),
        });
    }
    let topic_ok = !message.topic.is_empty()
        && message.topic.len() <= 127
        && message.topic.bytes().all(|b| b.is_ascii_alphanumeric() || b"%|-_#".contains(&b));
    if !topic_ok {
        return Err(StorageError::Refused(format!(
            "topic {:?}: 1 to 127 characters of [A-Za-z0-9%|_#-]",
            message.topic
        )));
    }
    Ok(())
}
