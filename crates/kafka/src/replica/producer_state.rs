//! ProducerStateTable — the idempotent producer's per-partition state (KIP-98): each producer
//! id's epoch and its last five batches, so a retried batch is acknowledged with its first
//! offset instead of being appended twice, and a gap in sequence numbers is refused.

use std::collections::{BTreeMap, VecDeque};

use crate::error::KafkaError;
use crate::record_batch::BatchHeader;

/// Batches remembered per producer: a producer has at most this many in flight.
pub const BATCHES_REMEMBERED: usize = 5;

/// One appended batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    /// Sequence of its first record.
    pub first_sequence: i32,
    /// Sequence of its last record.
    pub last_sequence: i32,
    /// Offset of its first record.
    pub first_offset: u64,
}

/// A producer's state in one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    /// The producer epoch of its batches.
    pub epoch: i16,
    /// Its last batches, oldest first.
    pub batches: VecDeque<BatchMetadata>,
}

/// What to do with an idempotent batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Append,
    /// It was appended before at this first offset: acknowledge without appending.
    Duplicate {
        /// Where it was appended.
        first_offset: u64,
    },
}

/// Every producer's state in one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStateTable {
    producers: BTreeMap<i64, ProducerEntry>,
}

impl ProducerStateTable {
    /// The state a log's idempotent batches leave, read back from the log (a replica opening).
    pub fn rebuild<F: twinmq_runtime::Fs>(
        log: &twinmq_storage::Log<F>,
    ) -> Result<Self, KafkaError> {
        let mut producers = Self::new();
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            let entries = log.read(offset, 1 << 20)?;
            let Some(last) = entries.last() else { break };
            offset = last.next_offset();
            for entry in entries {
                if let Ok(header) = crate::record_batch::read_header(&entry.payload)
                    && header.is_idempotent()
                {
                    producers.record(&header, entry.offset);
                }
            }
        }
        Ok(producers)
    }

    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks an idempotent batch against the producer's state (non-idempotent: always Append).
    pub fn check(&self, batch: &BatchHeader) -> Result<SequenceCheck, KafkaError> {
        if !batch.is_idempotent() {
            return Ok(SequenceCheck::Append);
        }
        let Some(entry) = self.producers.get(&batch.producer_id) else {
            return if batch.base_sequence == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(KafkaError::OutOfOrderSequence { expected: 0, got: batch.base_sequence })
            };
        };
        if batch.producer_epoch < entry.epoch {
            return Err(KafkaError::InvalidProducerEpoch {
                current: entry.epoch,
                got: batch.producer_epoch,
            });
        }
        if batch.producer_epoch > entry.epoch {
            return if batch.base_sequence == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(KafkaError::OutOfOrderSequence { expected: 0, got: batch.base_sequence })
            };
        }
        if let Some(previous) = entry.batches.iter().find(|b| {
            b.first_sequence == batch.base_sequence && b.last_sequence == batch.last_sequence()
        }) {
            return Ok(SequenceCheck::Duplicate { first_offset: previous.first_offset });
        }
        let expected = entry.batches.back().map_or(0, |last| next_sequence(last.last_sequence));
        if batch.base_sequence != expected {
            return Err(KafkaError::OutOfOrderSequence { expected, got: batch.base_sequence });
        }
        Ok(SequenceCheck::Append)
    }

    /// Records an appended batch (also used to rebuild the table from the log on open).
    pub fn record(&mut self, batch: &BatchHeader, first_offset: u64) {
        if !batch.is_idempotent() {
            return;
        }
        let entry = self.producers.entry(batch.producer_id).or_insert_with(|| ProducerEntry {
            epoch: batch.producer_epoch,
            batches: VecDeque::new(),
        });
        if batch.producer_epoch != entry.epoch {
            entry.epoch = batch.producer_epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(BatchMetadata {
            first_sequence: batch.base_sequence,
            last_sequence: batch.last_sequence(),
            first_offset,
        });
        while entry.batches.len() > BATCHES_REMEMBERED {
            entry.batches.pop_front();
        }
    }

    /// Forgets every batch at or after `offset` (the log was truncated there).
    pub fn truncate_to(&mut self, offset: u64) {
        for entry in self.producers.values_mut() {
            entry.batches.retain(|b| b.first_offset < offset);
        }
        self.producers.retain(|_, entry| !entry.batches.is_empty());
    }

    /// The state of one producer.
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }
}

fn next_sequence(sequence: i32) -> i32 {
    if sequence == i32::MAX { 0 } else { sequence + 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(producer_id: i64, epoch: i16, base_sequence: i32, count: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            size: 61,
            partition_leader_epoch: -1,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id,
            producer_epoch: epoch,
            base_sequence,
            records_count: count,
        }
    }

    #[test]
    fn in_order_batches_append_and_a_retry_is_a_duplicate_at_its_first_offset() {
        let mut table = ProducerStateTable::new();
        let first = batch(1, 0, 0, 3);
        assert_eq!(table.check(&first).unwrap(), SequenceCheck::Append);
        table.record(&first, 100);
        let second = batch(1, 0, 3, 2);
        assert_eq!(table.check(&second).unwrap(), SequenceCheck::Append);
        table.record(&second, 103);
        assert_eq!(table.check(&first).unwrap(), SequenceCheck::Duplicate { first_offset: 100 });
        assert_eq!(table.check(&second).unwrap(), SequenceCheck::Duplicate { first_offset: 103 });
    }

    #[test]
    fn a_gap_an_old_epoch_and_an_unknown_producer_mid_stream_are_refused() {
        let mut table = ProducerStateTable::new();
        table.record(&batch(1, 2, 0, 3), 0);
        assert!(matches!(
            table.check(&batch(1, 2, 4, 1)),
            Err(KafkaError::OutOfOrderSequence { expected: 3, got: 4 })
        ));
        assert!(matches!(
            table.check(&batch(1, 1, 3, 1)),
            Err(KafkaError::InvalidProducerEpoch { current: 2, got: 1 })
        ));
        assert!(table.check(&batch(9, 0, 7, 1)).is_err());
        assert_eq!(table.check(&batch(1, 3, 0, 1)).unwrap(), SequenceCheck::Append);
        assert_eq!(table.check(&batch(-1, -1, -1, 1)).unwrap(), SequenceCheck::Append);
    }

    #[test]
    fn only_the_last_five_batches_are_remembered_and_truncation_forgets_later_ones() {
        let mut table = ProducerStateTable::new();
        for i in 0..7 {
            table.record(&batch(1, 0, i, 1), u64::try_from(i).unwrap());
        }
        assert_eq!(table.get(1).unwrap().batches.len(), BATCHES_REMEMBERED);
        assert_eq!(table.check(&batch(1, 0, 0, 1)).map_err(|e| e.code()), Err(45));
        table.truncate_to(5);
        assert_eq!(table.get(1).unwrap().batches.back().unwrap().first_offset, 4);
        assert_eq!(table.check(&batch(1, 0, 5, 1)).unwrap(), SequenceCheck::Append);
    }
}
