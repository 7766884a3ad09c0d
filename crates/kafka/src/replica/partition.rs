//! Partition — one replica of a topic partition on this broker: its Log, its high watermark,
//! its leader epoch and its producers' state, behind one lock that the produce path, the fetch
//! path and the partition's flusher share.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use twinmq_runtime::{Clock, Fs};
use twinmq_storage::{
    DurableWatermark, FlushPlan, FlushPolicy, FlushSignal, Flushable, Log, LogConfig, NewEntry,
    StorageError,
};

use crate::error::KafkaError;
use crate::record_batch;
use crate::replica::leader_epoch::LeaderEpochCache;
use crate::replica::producer_state::{ProducerStateTable, SequenceCheck};
use crate::replica::replication::{IsrProposal, Role};

mod follower;

/// A partition's name, as Kafka prints it: `topic-index`.
pub fn partition_name(topic: &str, index: i32) -> String {
    format!("{topic}-{index}")
}

/// The state a partition's lock guards.
#[derive(Debug)]
pub struct PartitionState<F: Fs> {
    /// The replica's log.
    pub log: Log<F>,
    /// Idempotent producers' sequence state.
    pub producers: ProducerStateTable,
    /// The epoch of the current leader.
    pub leader_epoch: i32,
    /// Offsets below it are committed: replicated to the whole ISR, visible to consumers.
    pub high_watermark: u64,
    /// Where each leader epoch starts in this replica's log.
    pub epochs: LeaderEpochCache<F>,
    /// Leader (with its followers and ISR) or follower.
    pub role: Role,
    /// The high watermark as this replica's current leadership committed it, for acks=all
    /// produces to wait on. Each leadership gets its own, and it fails when the leadership
    /// ends: a record appended in one epoch is acknowledged only by the leader of that epoch,
    /// never by a later replication of someone else's record to the same offset.
    committed: DurableWatermark,
    scratch: Vec<u8>,
    node_id: i32,
    /// Under flush=sync the leader's own copy counts toward the high watermark only once it
    /// is on disk, as Kafka's `flush.messages=1` syncs inside the append.
    sync_flush: bool,
}

impl<F: Fs> PartitionState<F> {
    /// Cuts the log at `offset` (a follower diverged from its leader), with the producer state
    /// and epoch cache that described the cut records.
    pub fn truncate_to(&mut self, offset: u64) -> Result<(), KafkaError> {
        self.log.truncate_to(offset)?;
        let end = self.log.log_end_offset();
        self.producers.truncate_to(end);
        self.epochs.truncate_from_end(end)?;
        self.high_watermark = self.high_watermark.min(end);
        Ok(())
    }

    /// Moves the high watermark to what the ISR holds (the leader's copy as durable as the
    /// flush policy asks); wakes acks=all produces waiting on it.
    fn advance_high_watermark(&mut self) {
        let leo = self.log.log_end_offset();
        let own = if self.sync_flush { self.log.flushed_offset().min(leo) } else { leo };
        if let Some(claim) = self.role.high_watermark(self.node_id, own) {
            self.high_watermark = self.high_watermark.max(claim).min(leo);
            self.committed.advance(self.high_watermark);
        }
    }

    /// Ends the current leadership, if any: produces waiting on it fail.
    fn end_leadership(&mut self, why: &str) {
        if matches!(self.role, Role::Leader { .. }) {
            self.committed.fail(format!("leadership of epoch {} ended: {why}", self.leader_epoch));
        }
    }
}

impl<F: Fs> Flushable for PartitionState<F> {
    type File = F::File;

    fn flush_plan(&mut self) -> Option<FlushPlan<F::File>> {
        self.log.flush_plan()
    }

    fn flush_done(&mut self, up_to: u64) {
        self.log.flush_done(up_to);
        if self.sync_flush {
            self.advance_high_watermark();
        }
    }

    fn flush_failed(&mut self, error: &StorageError) {
        self.log.flush_failed(error);
    }

    fn unflushed_bytes(&self) -> u64 {
        self.log.unflushed_bytes()
    }
}

/// What a produce to one partition did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    /// Offset of the first record of the request's first batch.
    pub base_offset: u64,
    /// The log end offset after the append: durable and replicated once these are at it.
    pub log_end_offset: u64,
    /// The log start offset.
    pub log_start_offset: u64,
    /// The leader epoch the records were appended in (acks=all waits on that leadership).
    pub leader_epoch: i32,
}

/// Batches read for a fetch.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    /// Whole RecordBatches, in offset order, zero-copy from the log where the Fs allows.
    pub batches: Vec<Bytes>,
    /// Their total size.
    pub bytes: u64,
    /// The high watermark when read.
    pub high_watermark: u64,
    /// The log start offset when read.
    pub log_start_offset: u64,
    /// The log end offset when read.
    pub log_end_offset: u64,
}

/// What a follower's fetch gets from its leader.
#[derive(Debug, Clone, Default)]
pub struct FollowerFetch {
    /// The follower's log diverges: truncate to this (epoch, end offset) and fetch again.
    pub diverging: Option<(i32, u64)>,
    /// Batches from the fetch offset up to the leader's log end offset.
    pub fetched: Fetched,
    /// An ISR expansion the leader should ask the controller for.
    pub isr_proposal: Option<IsrProposal>,
    /// Whether this fetch moved the high watermark (consumers waiting on it can proceed).
    pub high_watermark_advanced: bool,
}

/// One partition replica.
#[derive(Debug)]
pub struct Partition<F: Fs> {
    /// The topic.
    pub topic: String,
    /// The partition index.
    pub index: i32,
    /// This broker's node id.
    pub node_id: i32,
    state: Arc<Mutex<PartitionState<F>>>,
    flush_signal: FlushSignal,
    durable: DurableWatermark,
    flush_policy: FlushPolicy,
    /// `cleanup.policy=compact`: entries carry their record's key, so compaction can keep the
    /// newest per key.
    compacted: bool,
}

impl<F: Fs> Partition<F> {
    /// Opens (or creates) the replica's log in `dir` and rebuilds its producers' state from it.
    pub fn open(
        fs: F,
        clock: Clock,
        dir: PathBuf,
        config: LogConfig,
        (topic, index, node_id): (&str, i32, i32),
    ) -> Result<Self, KafkaError> {
        let flush_policy = config.flush;
        let epochs = LeaderEpochCache::load(fs.clone(), &dir)?;
        let (log, recovery) = Log::open(fs, clock, dir, config)?;
        if !recovery.is_clean() {
            tracing::warn!(partition = %partition_name(topic, index), ?recovery, "log recovered");
        }
        let producers = ProducerStateTable::rebuild(&log)?;
        let durable = log.durable_watermark();
        // A restarted replica knows nothing committed beyond what it had: its leader tells it.
        let high_watermark = 0;
        let leader_epoch = epochs.latest().map_or(0, |(epoch, _)| epoch);
        let state = PartitionState {
            log,
            producers,
            leader_epoch,
            high_watermark,
            epochs,
            role: Role::Follower { leader: -1 },
            committed: DurableWatermark::new(0),
            scratch: Vec::new(),
            node_id,
            sync_flush: flush_policy == FlushPolicy::Sync,
        };
        Ok(Self {
            topic: topic.to_owned(),
            index,
            node_id,
            state: Arc::new(Mutex::new(state)),
            flush_signal: FlushSignal::new(),
            durable,
            flush_policy,
            compacted: false,
        })
    }

    /// Marks the partition compacted (`cleanup.policy=compact`).
    pub fn compacted(mut self) -> Self {
        self.compacted = true;
        self
    }

    /// Runs one compaction pass if the partition is compacted; returns the entries removed.
    pub fn compact(&self) -> Result<u64, KafkaError> {
        if !self.compacted {
            return Ok(0);
        }
        Ok(self.lock()?.log.compact()?.entries_removed)
    }

    /// The state shared with the flusher task.
    pub fn shared_state(&self) -> Arc<Mutex<PartitionState<F>>> {
        Arc::clone(&self.state)
    }

    /// The signal that wakes this partition's flusher.
    pub fn flush_signal(&self) -> FlushSignal {
        self.flush_signal.clone()
    }

    /// The partition's flush policy.
    pub fn flush_policy(&self) -> FlushPolicy {
        self.flush_policy
    }

    /// Locks the partition's state.
    pub fn lock(&self) -> Result<MutexGuard<'_, PartitionState<F>>, KafkaError> {
        self.state.lock().map_err(|_| {
            KafkaError::Storage(StorageError::Refused("a task panicked holding a partition".into()))
        })
    }

    /// Validates, stamps and appends a produced record set as the leader; a retried idempotent
    /// batch is acknowledged with its first offset and not appended again.
    pub fn append_as_leader(
        &self,
        records: &[u8],
        batch_bytes_max: u64,
    ) -> Result<Produced, KafkaError> {
        let headers = record_batch::validate(records)?;
        if !matches!(self.lock()?.role, Role::Leader { .. }) {
            return Err(KafkaError::NotLeader(partition_name(&self.topic, self.index)));
        }
        if let Some(large) = headers.iter().find(|h| h.size as u64 > batch_bytes_max) {
            return Err(KafkaError::RecordSetTooLarge {
                size: large.size as u64,
                limit: batch_bytes_max,
            });
        }
        let mut state = self.lock()?;
        let state = &mut *state;
        let mut base_offset = None;
        let mut position = 0;
        for header in &headers {
            let batch = &records[position..position + header.size];
            position += header.size;
            match state.producers.check(header)? {
                SequenceCheck::Duplicate { first_offset } => {
                    base_offset.get_or_insert(first_offset);
                }
                SequenceCheck::Append => {
                    let offset = state.log.log_end_offset();
                    state.scratch.clear();
                    state.scratch.extend_from_slice(batch);
                    record_batch::stamp(&mut state.scratch, offset, state.leader_epoch);
                    let key =
                        if self.compacted { record_batch::single_record_key(batch) } else { None };
                    let entry = NewEntry {
                        record_count: header.offset_count(),
                        timestamp_ms: header.max_timestamp,
                        key,
                        payload: &state.scratch,
                    };
                    state.log.append(entry)?;
                    state.producers.record(header, offset);
                    base_offset.get_or_insert(offset);
                }
            }
        }
        let log_end_offset = state.log.log_end_offset();
        state.advance_high_watermark();
        if state.sync_flush {
            self.flush_signal.request();
        }
        Ok(Produced {
            base_offset: base_offset.unwrap_or(log_end_offset),
            log_end_offset,
            log_start_offset: state.log.log_start_offset(),
            leader_epoch: state.leader_epoch,
        })
    }

    /// Makes this replica the leader of `epoch`: its log end offset starts the epoch, every
    /// follower starts unknown and caught up.
    pub fn become_leader(
        &self,
        epoch: i32,
        replicas: &[i32],
        isr: &[i32],
        now_ms: i64,
    ) -> Result<(), KafkaError> {
        let mut state = self.lock()?;
        let state = &mut *state;
        let leo = state.log.log_end_offset();
        state.epochs.assign(epoch, leo)?;
        state.end_leadership("a new epoch began");
        state.leader_epoch = epoch;
        state.role = Role::leader(self.node_id, replicas, isr, now_ms);
        state.committed = DurableWatermark::new(state.high_watermark);
        state.advance_high_watermark();
        tracing::info!(partition = %partition_name(&self.topic, self.index), epoch, leo, "leader");
        Ok(())
    }

    /// Makes this replica a follower of `leader` in `epoch`.
    pub fn become_follower(&self, epoch: i32, leader: i32) -> Result<(), KafkaError> {
        let mut state = self.lock()?;
        state.end_leadership("now a follower");
        state.leader_epoch = epoch;
        state.role = Role::Follower { leader };
        Ok(())
    }

    /// Applies the ISR the controller committed (as leader).
    pub fn set_isr(&self, isr: &[i32]) -> Result<(), KafkaError> {
        let mut state = self.lock()?;
        let state = &mut *state;
        state.role.set_isr(isr);
        state.advance_high_watermark();
        Ok(())
    }

    /// The role, the leader epoch and the log end offset.
    pub fn role(&self) -> Result<(Role, i32, u64), KafkaError> {
        let state = self.lock()?;
        Ok((state.role.clone(), state.leader_epoch, state.log.log_end_offset()))
    }

    /// The latest epoch in this replica's log (what a follower sends as `last_fetched_epoch`).
    pub fn last_epoch(&self) -> Result<Option<i32>, KafkaError> {
        Ok(self.lock()?.epochs.latest().map(|(epoch, _)| epoch))
    }

    /// Serves a follower's fetch as leader: checks that the follower's log has not diverged
    /// (KIP-101/595 via `last_fetched_epoch`), records its progress and returns batches up to
    /// the log end offset.
    pub fn fetch_for_follower(
        &self,
        replica: i32,
        fetch_offset: u64,
        last_fetched_epoch: Option<i32>,
        bytes_max: u64,
        now_ms: i64,
    ) -> Result<FollowerFetch, KafkaError> {
        let mut state = self.lock()?;
        let state = &mut *state;
        if !matches!(state.role, Role::Leader { .. }) {
            return Err(KafkaError::NotLeader(partition_name(&self.topic, self.index)));
        }
        let leo = state.log.log_end_offset();
        let mut answer = FollowerFetch::default();
        if let Some(epoch) = last_fetched_epoch {
            match state.epochs.end_offset_for(epoch, leo) {
                Some((found, end_offset)) if found == epoch && fetch_offset <= end_offset => {}
                Some((found, end_offset)) => {
                    answer.diverging = Some((found, end_offset.min(fetch_offset)));
                }
                None => answer.diverging = Some((-1, state.log.log_start_offset())),
            }
        }
        if answer.diverging.is_none() && fetch_offset > leo {
            return Err(KafkaError::OffsetOutOfRange {
                offset: i64::try_from(fetch_offset).unwrap_or(i64::MAX),
                start: state.log.log_start_offset(),
                end: leo,
            });
        }
        if answer.diverging.is_none() {
            let high_watermark = state.high_watermark;
            answer.isr_proposal =
                state.role.follower_fetched(replica, fetch_offset, leo, high_watermark, now_ms);
            state.advance_high_watermark();
            answer.high_watermark_advanced = state.high_watermark > high_watermark;
            if fetch_offset < leo {
                for entry in state.log.read(fetch_offset, bytes_max)? {
                    answer.fetched.bytes += entry.payload.len() as u64;
                    answer.fetched.batches.push(entry.payload);
                }
            }
        }
        answer.fetched.high_watermark = state.high_watermark;
        answer.fetched.log_start_offset = state.log.log_start_offset();
        answer.fetched.log_end_offset = leo;
        Ok(answer)
    }

    /// An ISR shrink the leader should ask for when followers lag.
    pub fn lagging(&self, now_ms: i64, lag_max_ms: i64) -> Result<Option<IsrProposal>, KafkaError> {
        Ok(self.lock()?.role.lagging(self.node_id, now_ms, lag_max_ms))
    }

    /// Deletes segments past the retention limits; returns how many went.
    pub fn apply_retention(&self, now_ms: i64) -> Result<usize, KafkaError> {
        let mut state = self.lock()?;
        let outcome = state.log.apply_retention(now_ms)?;
        let start = state.log.log_start_offset();
        state.high_watermark = state.high_watermark.max(start);
        Ok(outcome.deleted_segments.len())
    }

    /// The controller refused `replica`'s ISR expansion: it stops holding the high watermark.
    pub fn join_refused(&self, replica: i32) -> Result<(), KafkaError> {
        let mut state = self.lock()?;
        let state = &mut *state;
        state.role.join_refused(replica);
        state.advance_high_watermark();
        Ok(())
    }

    /// The proposal to let `replica` join got no answer (see [`Role::join_unanswered`]).
    pub fn join_unanswered(&self, replica: i32) -> Result<(), KafkaError> {
        self.lock()?.role.join_unanswered(replica);
        Ok(())
    }

    /// Waits until the leadership of `epoch` has committed up to `end_offset` (acks=all);
    /// fails with NOT_LEADER_OR_FOLLOWER if that leadership is over, or ends first.
    pub async fn wait_committed(&self, end_offset: u64, epoch: i32) -> Result<(), KafkaError> {
        let committed = {
            let state = self.lock()?;
            if !matches!(state.role, Role::Leader { .. }) || state.leader_epoch != epoch {
                return Err(KafkaError::NotLeader(partition_name(&self.topic, self.index)));
            }
            state.committed.clone()
        };
        committed.wait_for(end_offset).await.map_err(|error| {
            let partition = partition_name(&self.topic, self.index);
            tracing::info!(%partition, end_offset, %error, "acks=all produce not acknowledged");
            KafkaError::NotLeader(partition)
        })
    }

    /// Waits for what a produce was promised: with `all_replicas` (acks=all) that its records'
    /// leadership committed them, then that they are durable under the flush policy.
    pub async fn wait_promised(
        &self,
        produced: &Produced,
        all_replicas: bool,
    ) -> Result<(), KafkaError> {
        if all_replicas {
            self.wait_committed(produced.log_end_offset, produced.leader_epoch).await?;
        }
        self.wait_durable(produced.log_end_offset).await
    }

    /// Waits until the log is durable up to `end_offset` under the partition's flush policy
    /// (at once under an async policy).
    pub async fn wait_durable(&self, end_offset: u64) -> Result<(), KafkaError> {
        if self.flush_policy == FlushPolicy::Sync {
            self.flush_signal.request();
            self.durable.wait_for(end_offset).await?;
        }
        Ok(())
    }

    /// Whole batches from the one holding `offset` up to the high watermark, at most `bytes_max`
    /// bytes of them but at least one when one is committed.
    pub fn read_committed(&self, offset: u64, bytes_max: u64) -> Result<Fetched, KafkaError> {
        self.read_below(offset, bytes_max, |state| state.high_watermark)
    }

    /// Whole batches from the one holding `offset` up to the log end offset. A leader's whole log
    /// is (or will be) committed — a leader never truncates — so a coordinator taking over an
    /// offsets partition reads it all, not only what its high watermark, which lags until the
    /// followers fetch again, already covers.
    pub fn read_to_end(&self, offset: u64, bytes_max: u64) -> Result<Fetched, KafkaError> {
        self.read_below(offset, bytes_max, |state| state.log.log_end_offset())
    }

    fn read_below(
        &self,
        offset: u64,
        bytes_max: u64,
        limit: impl Fn(&PartitionState<F>) -> u64,
    ) -> Result<Fetched, KafkaError> {
        let state = self.lock()?;
        let limit = limit(&state);
        let (start, end, high_watermark) =
            (state.log.log_start_offset(), state.log.log_end_offset(), state.high_watermark);
        if offset < start || offset > end {
            return Err(KafkaError::OffsetOutOfRange {
                offset: i64::try_from(offset).unwrap_or(i64::MAX),
                start,
                end,
            });
        }
        let mut fetched = Fetched {
            high_watermark,
            log_start_offset: start,
            log_end_offset: end,
            ..Fetched::default()
        };
        if offset >= limit {
            return Ok(fetched);
        }
        for entry in state.log.read(offset, bytes_max)? {
            if entry.offset >= limit {
                break;
            }
            fetched.bytes += entry.payload.len() as u64;
            fetched.batches.push(entry.payload);
        }
        Ok(fetched)
    }

    /// The offset of the first record at or after `timestamp_ms`, or the log end offset.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<u64, KafkaError> {
        let state = self.lock()?;
        Ok(state.log.offset_for_timestamp(timestamp_ms)?.unwrap_or(state.high_watermark))
    }

    /// (log start offset, high watermark, log end offset).
    pub fn offsets(&self) -> Result<(u64, u64, u64), KafkaError> {
        let state = self.lock()?;
        Ok((state.log.log_start_offset(), state.high_watermark, state.log.log_end_offset()))
    }

    /// Syncs the log now (shutdown).
    pub fn flush(&self) -> Result<(), KafkaError> {
        Ok(self.lock()?.log.flush()?)
    }
}
