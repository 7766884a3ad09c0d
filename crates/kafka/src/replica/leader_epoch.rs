//! LeaderEpochCache — for each leader epoch, the first offset written in it (KIP-101), kept in
//! the partition directory as Kafka's `leader-epoch-checkpoint`. It answers "where does my
//! history diverge from the leader's?", so a returning follower truncates exactly the records
//! the new leader never had, not more (truncating to the high watermark loses acknowledged data)
//! and not less (keeping them lets replicas diverge).
//!
//! ## Format
//!
//! Text, replaced atomically: `0\n<count>\n` then one `<epoch> <start offset>\n` per epoch.

use std::path::{Path, PathBuf};

use twinmq_runtime::Fs;
use twinmq_storage::StorageError;
use twinmq_storage::atomic_file::{read_whole, write_atomically};

use crate::error::KafkaError;

/// The file name, as Kafka names it.
pub const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";

/// Epoch start offsets of one partition replica.
#[derive(Debug)]
pub struct LeaderEpochCache<F: Fs> {
    fs: F,
    path: PathBuf,
    entries: Vec<(i32, u64)>,
}

impl<F: Fs> LeaderEpochCache<F> {
    /// Loads the cache of the partition in `dir` (empty when there is none).
    pub fn load(fs: F, dir: &Path) -> Result<Self, KafkaError> {
        let path = dir.join(LEADER_EPOCH_FILE);
        let entries = match read_whole(&fs, &path) {
            None => Vec::new(),
            Some(bytes) => parse(&bytes).ok_or_else(|| {
                KafkaError::Storage(StorageError::Corrupt {
                    path: path.clone(),
                    position: 0,
                    reason: "not a leader epoch checkpoint".into(),
                })
            })?,
        };
        Ok(Self { fs, path, entries })
    }

    /// The latest epoch and its start offset.
    pub fn latest(&self) -> Option<(i32, u64)> {
        self.entries.last().copied()
    }

    /// Every (epoch, start offset), oldest first.
    pub fn entries(&self) -> &[(i32, u64)] {
        &self.entries
    }

    /// Records that `epoch` starts at `start_offset` (a leader's first append in it, or a
    /// follower's first replicated batch of it); older epochs only.
    pub fn assign(&mut self, epoch: i32, start_offset: u64) -> Result<(), KafkaError> {
        if self.latest().is_some_and(|(latest, _)| latest >= epoch) {
            return Ok(());
        }
        self.entries.retain(|(_, start)| *start < start_offset);
        self.entries.push((epoch, start_offset));
        self.persist()
    }

    /// The largest epoch at or below `epoch` and the offset where it ends (the start of the next
    /// epoch, or `log_end_offset` for the latest); `None` when `epoch` predates every entry.
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: u64) -> Option<(i32, u64)> {
        let position = self.entries.iter().rposition(|(e, _)| *e <= epoch)?;
        let end = self.entries.get(position + 1).map_or(log_end_offset, |(_, start)| *start);
        Some((self.entries[position].0, end))
    }

    /// Forgets epochs that start at or after `end_offset` (the log was truncated there).
    pub fn truncate_from_end(&mut self, end_offset: u64) -> Result<(), KafkaError> {
        let before = self.entries.len();
        self.entries.retain(|(_, start)| *start < end_offset);
        if self.entries.len() != before { self.persist() } else { Ok(()) }
    }

    fn persist(&self) -> Result<(), KafkaError> {
        let mut text = format!("0\n{}\n", self.entries.len());
        for (epoch, start) in &self.entries {
            text.push_str(&format!("{epoch} {start}\n"));
        }
        Ok(write_atomically(&self.fs, &self.path, text.as_bytes())?)
    }
}

fn parse(bytes: &[u8]) -> Option<Vec<(i32, u64)>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.lines();
    if lines.next()? != "0" {
        return None;
    }
    let count: usize = lines.next()?.parse().ok()?;
    let entries: Vec<(i32, u64)> = lines
        .map(|line| {
            let (epoch, start) = line.split_once(' ')?;
            Some((epoch.parse().ok()?, start.parse().ok()?))
        })
        .collect::<Option<_>>()?;
    (entries.len() == count).then_some(entries)
}

#[cfg(test)]
mod tests {
    use twinmq_runtime::RealFs;

    use super::*;

    #[test]
    fn answers_epoch_end_offsets_like_kafka_and_survives_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = LeaderEpochCache::load(RealFs, dir.path()).unwrap();
        cache.assign(0, 0).unwrap();
        cache.assign(1, 10).unwrap();
        cache.assign(1, 12).unwrap();
        cache.assign(3, 20).unwrap();
        assert_eq!(cache.end_offset_for(0, 25), Some((0, 10)));
        assert_eq!(cache.end_offset_for(2, 25), Some((1, 20)), "epoch 2 never led: floor is 1");
        assert_eq!(cache.end_offset_for(3, 25), Some((3, 25)));
        assert_eq!(cache.end_offset_for(-1, 25), None);
        let reloaded = LeaderEpochCache::load(RealFs, dir.path()).unwrap();
        assert_eq!(reloaded.entries(), &[(0, 0), (1, 10), (3, 20)]);
        let text = read_whole(&RealFs, &dir.path().join(LEADER_EPOCH_FILE)).unwrap();
        assert_eq!(&text[..], b"0\n3\n0 0\n1 10\n3 20\n");
    }

    #[test]
    fn truncation_forgets_later_epochs_and_a_damaged_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = LeaderEpochCache::load(RealFs, dir.path()).unwrap();
        cache.assign(0, 0).unwrap();
        cache.assign(2, 7).unwrap();
        cache.truncate_from_end(7).unwrap();
        assert_eq!(cache.entries(), &[(0, 0)]);
        cache.assign(4, 5).unwrap();
        assert_eq!(cache.entries(), &[(0, 0), (4, 5)]);
        write_atomically(&RealFs, &dir.path().join(LEADER_EPOCH_FILE), b"0\n2\n0 0\n").unwrap();
        assert!(LeaderEpochCache::load(RealFs, dir.path()).is_err());
    }
}
