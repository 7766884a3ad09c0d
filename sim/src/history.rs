//! The history of a simulated workload: every send, acknowledgement, failure, delivery and
//! offset commit, stamped with simulated time, in the order they happened. The checkers
//! ([`crate::checker`]) read only this, so they judge both models by the same rules.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

/// Where a message lives: a Kafka partition (`topic/partition`) or a RocketMQ queue
/// (`topic/broker/queue`).
pub type QueueName = String;

/// One thing that happened to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A producer asked for message `id` (with ordering key `key`) to be sent.
    Send {
        /// The producer.
        producer: u32,
        /// The message's unique id.
        id: u64,
        /// Its ordering key.
        key: u32,
    },
    /// The broker acknowledged `id` as stored at `queue` / `offset`.
    Ack {
        /// The message.
        id: u64,
        /// Where it was stored.
        queue: QueueName,
        /// Its offset there.
        offset: u64,
    },
    /// The send of `id` failed or its outcome is unknown; it may or may not be stored.
    SendFailed {
        /// The message.
        id: u64,
        /// Why.
        reason: String,
    },
    /// A consumer received `id` from `queue` / `offset`.
    Deliver {
        /// The consumer.
        consumer: u32,
        /// The message.
        id: u64,
        /// Where it came from.
        queue: QueueName,
        /// Its offset there.
        offset: u64,
    },
    /// A consumer group committed `offset` (the next to read) for `queue`.
    Commit {
        /// The consumer that committed.
        consumer: u32,
        /// The queue.
        queue: QueueName,
        /// The committed offset.
        offset: u64,
    },
    /// Something the nemesis or the harness did (a fault, a heal, a phase), for the trace.
    Note(String),
    /// The harness healed every fault; the workload drains from here.
    Healed,
    /// The harness saw the brokers' own state break one of the model's invariants
    /// ([`crate::invariants`]).
    InvariantBroken(String),
}

/// An event with the simulated time it happened at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Simulated milliseconds since the run began.
    pub at_ms: u64,
    /// What happened.
    pub event: Event,
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>8} ", self.at_ms)?;
        match &self.event {
            Event::Send { producer, id, key } => write!(f, "send p{producer} m{id} k{key}"),
            Event::Ack { id, queue, offset } => write!(f, "ack m{id} {queue}@{offset}"),
            Event::SendFailed { id, reason } => write!(f, "fail m{id} {reason}"),
            Event::Deliver { consumer, id, queue, offset } => {
                write!(f, "deliver c{consumer} m{id} {queue}@{offset}")
            }
            Event::Commit { consumer, queue, offset } => {
                write!(f, "commit c{consumer} {queue}@{offset}")
            }
            Event::Note(note) => write!(f, "note {note}"),
            Event::Healed => write!(f, "note healed; draining"),
            Event::InvariantBroken(what) => write!(f, "invariant broken: {what}"),
        }
    }
}

/// The shared, append-only history of one run. The simulation runs on one thread; the lock
/// only lets consumer callbacks, which must be `Send`, record too.
#[derive(Debug, Clone, Default)]
pub struct History {
    records: Arc<Mutex<Vec<Record>>>,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `event` at the current simulated time.
    pub fn record(&self, event: Event) {
        let at_ms = turmoil::sim_elapsed().map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
        self.lock().push(Record { at_ms, event });
    }

    /// Records `event` at `at` (for the harness, which acts between simulation steps, outside
    /// every host).
    pub fn record_at(&self, at: std::time::Duration, event: Event) {
        let at_ms = u64::try_from(at.as_millis()).unwrap_or(u64::MAX);
        self.lock().push(Record { at_ms, event });
    }

    /// Every record so far.
    pub fn records(&self) -> Vec<Record> {
        self.lock().clone()
    }

    /// How many acknowledged messages have not been delivered (yet).
    pub fn undelivered_acks(&self) -> usize {
        let records = self.lock();
        let ids = |pick: fn(&Event) -> Option<u64>| -> std::collections::BTreeSet<u64> {
            records.iter().filter_map(|r| pick(&r.event)).collect()
        };
        let acked = ids(|e| if let Event::Ack { id, .. } = e { Some(*id) } else { None });
        let delivered = ids(|e| if let Event::Deliver { id, .. } = e { Some(*id) } else { None });
        acked.difference(&delivered).count()
    }

    /// How many records there are.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Record>> {
        self.records.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}
