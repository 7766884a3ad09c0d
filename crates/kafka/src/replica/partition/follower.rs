//! A partition as a follower: batches replicated from its leader appended with the leader's
//! offsets, and its log cut where it diverged from the leader's — each only while the replica
//! still follows the leader, in the epoch, that the answer came from (a fetch answer that
//! arrives after a leadership change is dropped, as Kafka's fetcher drops it).

use twinmq_runtime::Fs;
use twinmq_storage::NewEntry;

use super::{Partition, PartitionState, partition_name};
use crate::error::KafkaError;
use crate::record_batch;
use crate::replica::replication::Role;

impl<F: Fs> PartitionState<F> {
    /// Whether this replica follows `leader` in `epoch`.
    fn follows(&self, (leader, epoch): (i32, i32)) -> bool {
        self.role == (Role::Follower { leader }) && self.leader_epoch == epoch
    }
}

impl<F: Fs> Partition<F> {
    /// Appends batches replicated from the leader, offsets as the leader assigned them, and
    /// takes the leader's high watermark (never beyond this log's end), if this replica still
    /// follows the leader and epoch `fetched_in`; returns the log end offset.
    pub fn append_as_follower(
        &self,
        records: &[u8],
        leader_high_watermark: u64,
        fetched_in: (i32, i32),
    ) -> Result<u64, KafkaError> {
        let mut state = self.lock()?;
        let state = &mut *state;
        if !state.follows(fetched_in) {
            return Ok(state.log.log_end_offset());
        }
        if !records.is_empty() {
            let headers = record_batch::validate(records)?;
            let mut position = 0;
            for header in &headers {
                let batch = &records[position..position + header.size];
                position += header.size;
                let offset = state.log.log_end_offset();
                let base = u64::try_from(header.base_offset).unwrap_or(u64::MAX);
                if base.saturating_add(u64::from(header.offset_count())) <= offset {
                    continue;
                }
                if base != offset {
                    return Err(KafkaError::CorruptBatch(format!(
                        "replicated batch at {base}, log ends at {offset}"
                    )));
                }
                state.epochs.assign(header.partition_leader_epoch, base)?;
                let key =
                    if self.compacted { record_batch::single_record_key(batch) } else { None };
                let entry = NewEntry {
                    record_count: header.offset_count(),
                    timestamp_ms: header.max_timestamp,
                    key,
                    payload: batch,
                };
                state.log.append(entry)?;
                state.producers.record(header, base);
            }
        }
        let leo = state.log.log_end_offset();
        state.high_watermark = state.high_watermark.max(leader_high_watermark.min(leo));
        if state.sync_flush && !records.is_empty() {
            self.flush_signal.request();
        }
        Ok(leo)
    }

    /// The leader said this replica diverged after `epoch`, which ends at `leader_end` in the
    /// leader's log: cuts the log at the lower of that and where the same epoch (or, when this
    /// replica never had it, the largest earlier one) ends here, as Kafka's fetcher does — so
    /// the cut also drops this replica's later epochs and the next fetch agrees with the
    /// leader. Only while it still follows the leader and epoch `fetched_in`; returns the log
    /// end offset.
    pub fn truncate_diverged(
        &self,
        epoch: i32,
        leader_end: u64,
        fetched_in: (i32, i32),
    ) -> Result<u64, KafkaError> {
        let mut state = self.lock()?;
        let log_end = state.log.log_end_offset();
        if !state.follows(fetched_in) {
            return Ok(log_end);
        }
        let own_end = state.epochs.end_offset_for(epoch, log_end).map_or(log_end, |(_, e)| e);
        let offset = leader_end.min(own_end).min(log_end);
        state.truncate_to(offset)?;
        let partition = partition_name(&self.topic, self.index);
        tracing::info!(%partition, offset, "truncated to the leader's history");
        Ok(state.log.log_end_offset())
    }
}
