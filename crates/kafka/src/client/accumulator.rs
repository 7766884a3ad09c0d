//! RecordAccumulator — the producer's batches per partition, as Kafka's accumulator keeps them:
//! a deque of batches per partition, each at most `batch.size`, and at most one batch of a
//! partition in flight, so a partition's batches are appended in the order they were made.
//!
//! A partition's oldest batch is ready to go when it is full, when a newer batch waits behind
//! it, when `linger.ms` has passed since its first record, or when the producer is flushed;
//! the sender sleeps until the earliest linger deadline of the batches that are not ready yet.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::producer::SendResult;

/// One partition of one topic.
pub type TopicPartition = (String, i32);

/// A batch being filled or waiting to be sent: its records and whom to answer.
#[derive(Debug)]
pub struct Batch {
    /// Key, value and timestamp (ms) of each record.
    pub records: Vec<(Option<Bytes>, Option<Bytes>, i64)>,
    /// Bytes the records take, roughly as encoded.
    pub bytes: usize,
    /// One waiter per record.
    pub waiters: Vec<oneshot::Sender<SendResult>>,
    /// When its first record came.
    created: Instant,
}

#[derive(Debug, Default)]
struct PartitionBatches {
    queued: VecDeque<Batch>,
    in_flight: bool,
}

/// Every partition's batches.
#[derive(Debug, Default)]
pub struct Accumulator {
    partitions: BTreeMap<TopicPartition, PartitionBatches>,
}

/// A batch [`Accumulator::take_ready`] took, with the leader it goes to.
#[derive(Debug)]
pub struct Taken {
    /// Its partition.
    pub partition: TopicPartition,
    /// Its partition's leader when it was taken (-1: unknown).
    pub leader: i32,
    /// The batch.
    pub batch: Batch,
}

/// What [`Accumulator::append`] did: whether the sender has something new to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The record joined a batch that was already there and is not full yet.
    Joined,
    /// The record started a batch or filled one: the sender should look again.
    Ready,
}

impl Accumulator {
    /// Adds one record to `partition`'s newest batch, or to a new one when it would pass
    /// `limit` bytes (a record larger than `limit` goes alone).
    pub fn append(
        &mut self,
        partition: TopicPartition,
        record: (Option<Bytes>, Option<Bytes>, i64),
        size: usize,
        waiter: oneshot::Sender<SendResult>,
        limit: usize,
    ) -> Appended {
        let queue = &mut self.partitions.entry(partition).or_default().queued;
        let mut started = false;
        if queue.back().is_none_or(|batch| batch.bytes + size > limit) {
            queue.push_back(Batch {
                records: Vec::new(),
                bytes: 0,
                waiters: Vec::new(),
                created: Instant::now(),
            });
            started = true;
        }
        let batch = queue.back_mut().expect("a batch was just ensured");
        batch.records.push(record);
        batch.bytes += size;
        batch.waiters.push(waiter);
        if started || batch.bytes >= limit { Appended::Ready } else { Appended::Joined }
    }

    /// What the sender sends now, as Kafka's sender drains: a leader is ready when one of its
    /// partitions without a batch in flight has a ready batch (full at `limit` bytes, followed
    /// by another, older than `linger`, or any when `flushing`), and then the oldest batch of
    /// every such partition it leads goes, lingered or not, in one request. `leader_of` gives
    /// a partition's leader, or `None` while that leader may not be sent to (a request to it
    /// is out); it is asked once per partition, and each batch taken carries the answer.
    /// Marks the partitions taken in flight; also returns the earliest moment a batch left
    /// waiting becomes ready by lingering.
    pub fn take_ready(
        &mut self,
        now: Instant,
        linger: Duration,
        limit: usize,
        flushing: bool,
        leader_of: impl Fn(&TopicPartition) -> Option<i32>,
    ) -> (Vec<Taken>, Option<Instant>) {
        let leaders: Vec<Option<i32>> = self
            .partitions
            .iter()
            .map(|(partition, batches)| {
                let sendable = !batches.in_flight && !batches.queued.is_empty();
                if sendable { leader_of(partition) } else { None }
            })
            .collect();
        let mut ready_leaders = BTreeSet::new();
        for (batches, leader) in self.partitions.values().zip(&leaders) {
            let (Some(leader), Some(front)) = (leader, batches.queued.front()) else { continue };
            let ripe = flushing
                || front.bytes >= limit
                || batches.queued.len() > 1
                || front.created + linger <= now;
            if ripe {
                ready_leaders.insert(*leader);
            }
        }
        let mut ready = Vec::new();
        let mut next_deadline: Option<Instant> = None;
        for ((partition, batches), leader) in self.partitions.iter_mut().zip(leaders) {
            let Some(leader) = leader else { continue };
            if ready_leaders.contains(&leader) {
                let batch = batches.queued.pop_front().expect("a sendable partition has a batch");
                batches.in_flight = true;
                ready.push(Taken { partition: partition.clone(), leader, batch });
            } else if let Some(front) = batches.queued.front() {
                let deadline = front.created + linger;
                next_deadline = Some(next_deadline.map_or(deadline, |d| d.min(deadline)));
            }
        }
        (ready, next_deadline)
    }

    /// `partition`'s batch in flight is done with (acknowledged or failed for good): its next
    /// batch may go.
    pub fn release(&mut self, partition: &TopicPartition) {
        let empty = match self.partitions.get_mut(partition) {
            Some(batches) => {
                batches.in_flight = false;
                batches.queued.is_empty()
            }
            None => false,
        };
        if empty {
            self.partitions.remove(partition);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 100;
    const LINGER: Duration = Duration::from_millis(5);

    fn append(accumulator: &mut Accumulator, partition: i32, size: usize) -> Appended {
        let (waiter, _answer) = oneshot::channel();
        accumulator.append(("t".into(), partition), (None, None, 0), size, waiter, LIMIT)
    }

    fn one_leader(_: &TopicPartition) -> Option<i32> {
        Some(1)
    }

    fn taken(ready: &[Taken]) -> Vec<(i32, usize)> {
        ready.iter().map(|t| (t.partition.1, t.batch.records.len())).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_lingers_until_its_deadline_then_goes() {
        let mut accumulator = Accumulator::default();
        assert_eq!(append(&mut accumulator, 0, 10), Appended::Ready);
        assert_eq!(append(&mut accumulator, 0, 10), Appended::Joined);
        let start = Instant::now();
        let (ready, deadline) = accumulator.take_ready(start, LINGER, LIMIT, false, one_leader);
        assert!(ready.is_empty());
        assert_eq!(deadline, Some(start + LINGER));
        let (ready, deadline) =
            accumulator.take_ready(start + LINGER, LINGER, LIMIT, false, one_leader);
        assert_eq!(taken(&ready), vec![(0, 2)]);
        assert_eq!(deadline, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_or_one_with_another_behind_it_goes_at_once() {
        let mut accumulator = Accumulator::default();
        append(&mut accumulator, 0, 60);
        assert_eq!(append(&mut accumulator, 0, 60), Appended::Ready, "starts a second batch");
        assert_eq!(append(&mut accumulator, 1, LIMIT), Appended::Ready, "full at once");
        let now = Instant::now();
        let (ready, _) = accumulator.take_ready(now, LINGER, LIMIT, false, one_leader);
        assert_eq!(taken(&ready), vec![(0, 1), (1, 1)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_ready_leader_takes_every_partition_it_leads_lingered_or_not() {
        let mut accumulator = Accumulator::default();
        append(&mut accumulator, 0, LIMIT);
        append(&mut accumulator, 1, 10);
        append(&mut accumulator, 2, 10);
        let leader = |(_, partition): &TopicPartition| Some(if *partition == 2 { 7 } else { 1 });
        let now = Instant::now();
        let (ready, deadline) = accumulator.take_ready(now, LINGER, LIMIT, false, leader);
        assert_eq!(taken(&ready), vec![(0, 1), (1, 1)], "partition 1 rides with full 0");
        assert_eq!(deadline, Some(now + LINGER), "partition 2's leader has nothing ready");
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_with_a_request_out_gets_nothing_and_sets_no_deadline() {
        let mut accumulator = Accumulator::default();
        append(&mut accumulator, 0, LIMIT);
        let (ready, deadline) =
            accumulator.take_ready(Instant::now(), LINGER, LIMIT, true, |_| None);
        assert!(ready.is_empty());
        assert_eq!(deadline, None);
    }

    #[tokio::test(start_paused = true)]
    async fn one_batch_per_partition_is_in_flight_and_release_lets_the_next_go() {
        let mut accumulator = Accumulator::default();
        for _ in 0..3 {
            append(&mut accumulator, 0, LIMIT);
        }
        let now = Instant::now();
        let (ready, _) = accumulator.take_ready(now, LINGER, LIMIT, true, one_leader);
        assert_eq!(taken(&ready), vec![(0, 1)]);
        let (ready, deadline) = accumulator.take_ready(now, LINGER, LIMIT, true, one_leader);
        assert!(ready.is_empty(), "the partition has a batch in flight");
        assert_eq!(deadline, None, "a partition in flight sets no deadline");
        accumulator.release(&("t".into(), 0));
        let (ready, _) = accumulator.take_ready(now, LINGER, LIMIT, false, one_leader);
        assert_eq!(taken(&ready), vec![(0, 1)], "the second of three: one still behind it");
        accumulator.release(&("t".into(), 0));
        let (ready, _) = accumulator.take_ready(now, LINGER, LIMIT, true, one_leader);
        assert_eq!(taken(&ready), vec![(0, 1)], "the last goes when flushing");
        accumulator.release(&("t".into(), 0));
        assert!(accumulator.partitions.is_empty());
    }
}
