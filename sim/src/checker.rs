//! Checkers over a [`History`]: what a user of either model is promised, judged the same way.
//!
//! - **lost**: a message acknowledged but never delivered, once the run healed every fault and
//!   drained every queue;
//! - **duplicates**: deliveries past the first of one message (at-least-once allows them; they
//!   are counted, not failed);
//! - **order**: for each key, its acknowledged messages must first arrive in the order they were
//!   sent (producers send a key's messages one at a time, each after the last was acknowledged);
//! - **commits**: a group's committed offset of a queue never moves backwards;
//! - **invariants**: what the harness saw of the brokers' own state ([`crate::invariants`]).
//!
//! Each violation names the messages and the records around them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::history::{Event, QueueName, Record};

/// How many records around a violation are shown.
const CONTEXT_RECORDS: usize = 3;

/// One broken promise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which check.
    pub kind: ViolationKind,
    /// The messages involved.
    pub ids: Vec<u64>,
    /// What went wrong, in words.
    pub detail: String,
    /// The records around it, rendered.
    pub context: Vec<String>,
}

/// The checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ViolationKind {
    /// Acknowledged, never delivered.
    Lost,
    /// A key's messages arrived out of their send order.
    Order,
    /// A committed offset moved backwards.
    CommitBackwards,
    /// The brokers' state broke one of the model's invariants.
    Invariant,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:?} {:?}: {}", self.kind, self.ids, self.detail)?;
        for line in &self.context {
            writeln!(f, "    {line}")?;
        }
        Ok(())
    }
}

/// What the checkers found in one history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Messages sent.
    pub sent: u64,
    /// Messages acknowledged.
    pub acknowledged: u64,
    /// Sends that failed or whose outcome is unknown.
    pub failed: u64,
    /// Distinct messages delivered.
    pub delivered: u64,
    /// Acknowledged messages never delivered.
    pub lost: u64,
    /// Deliveries past the first.
    pub duplicates: u64,
    /// Keys whose messages arrived out of order, counted per out-of-order message.
    pub order_violations: u64,
    /// Commits below an earlier commit of the same group and queue.
    pub commits_backwards: u64,
    /// Broker-state invariants seen broken (each distinct breach once).
    pub invariants_broken: u64,
    /// Every violation, with context.
    pub violations: Vec<Violation>,
}

impl Verdict {
    /// Whether nothing acknowledged was lost, nothing reordered, no commit went back.
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Runs every check over `records`.
pub fn check(records: &[Record]) -> Verdict {
    let mut verdict = Verdict::default();
    let mut send_order: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    let mut acked: BTreeMap<u64, usize> = BTreeMap::new();
    let mut first_delivery: BTreeMap<u64, usize> = BTreeMap::new();
    let mut deliveries: BTreeMap<u64, u64> = BTreeMap::new();
    let mut commits: BTreeMap<QueueName, (u64, usize)> = BTreeMap::new();
    for (at, record) in records.iter().enumerate() {
        match &record.event {
            Event::Send { id, key, .. } => {
                verdict.sent += 1;
                send_order.entry(*key).or_default().push(*id);
            }
            Event::Ack { id, .. } => {
                acked.entry(*id).or_insert(at);
            }
            Event::SendFailed { .. } => verdict.failed += 1,
            Event::Deliver { id, .. } => {
                first_delivery.entry(*id).or_insert(at);
                *deliveries.entry(*id).or_default() += 1;
            }
            Event::Commit { queue, offset, .. } => {
                if let Some((previous, previous_at)) = commits.get(queue)
                    && offset < previous
                {
                    verdict.commits_backwards += 1;
                    verdict.violations.push(Violation {
                        kind: ViolationKind::CommitBackwards,
                        ids: Vec::new(),
                        detail: format!("{queue}: committed {offset} after {previous}"),
                        context: around(records, &[*previous_at, at]),
                    });
                }
                commits.insert(queue.clone(), (*offset, at));
            }
            Event::InvariantBroken(what) => {
                verdict.invariants_broken += 1;
                verdict.violations.push(Violation {
                    kind: ViolationKind::Invariant,
                    ids: Vec::new(),
                    detail: what.clone(),
                    context: around(records, &[at]),
                });
            }
            Event::Note(_) | Event::Healed => {}
        }
    }
    verdict.acknowledged = acked.len() as u64;
    verdict.delivered = first_delivery.len() as u64;
    verdict.duplicates = deliveries.values().map(|n| n - 1).sum();
    for (id, ack_at) in &acked {
        if !first_delivery.contains_key(id) {
            verdict.lost += 1;
            verdict.violations.push(Violation {
                kind: ViolationKind::Lost,
                ids: vec![*id],
                detail: format!("m{id} was acknowledged and never delivered"),
                context: around(records, &[*ack_at]),
            });
        }
    }
    for (key, ids) in &send_order {
        // The acknowledged ones, in send order, must arrive in that order.
        let arrivals: Vec<(u64, usize)> = ids
            .iter()
            .filter(|id| acked.contains_key(id))
            .filter_map(|id| first_delivery.get(id).map(|at| (*id, *at)))
            .collect();
        let mut latest: Option<(u64, usize)> = None;
        for (id, at) in arrivals {
            match latest {
                Some((before, before_at)) if at < before_at => {
                    verdict.order_violations += 1;
                    verdict.violations.push(Violation {
                        kind: ViolationKind::Order,
                        ids: vec![before, id],
                        detail: format!(
                            "key {key}: m{id} was sent after m{before} but arrived first"
                        ),
                        context: around(records, &[at, before_at]),
                    });
                }
                _ => latest = Some((id, at)),
            }
        }
    }
    verdict.violations.sort_by_key(|v| (v.kind, v.ids.clone()));
    verdict
}

/// The records around the given positions, rendered, each position's neighbourhood once.
fn around(records: &[Record], positions: &[usize]) -> Vec<String> {
    let shown: BTreeSet<usize> = positions
        .iter()
        .flat_map(|at| at.saturating_sub(CONTEXT_RECORDS)..=(at + CONTEXT_RECORDS))
        .filter(|at| *at < records.len())
        .collect();
    shown.into_iter().map(|at| records[at].to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(at_ms: u64, event: Event) -> Record {
        Record { at_ms, event }
    }

    fn send(id: u64, key: u32) -> Event {
        Event::Send { producer: 0, id, key }
    }

    fn ack(id: u64, offset: u64) -> Event {
        Event::Ack { id, queue: "t/0".into(), offset }
    }

    fn deliver(id: u64, offset: u64) -> Event {
        Event::Deliver { consumer: 0, id, queue: "t/0".into(), offset }
    }

    #[test]
    fn a_clean_history_is_clean() {
        let records = [
            at(1, send(1, 7)),
            at(2, ack(1, 0)),
            at(3, send(2, 7)),
            at(4, ack(2, 1)),
            at(5, deliver(1, 0)),
            at(6, deliver(2, 1)),
            at(7, deliver(2, 1)),
            at(8, Event::Commit { consumer: 0, queue: "t/0".into(), offset: 2 }),
        ];
        let verdict = check(&records);
        assert!(verdict.is_clean(), "{:?}", verdict.violations);
        assert_eq!(
            (verdict.sent, verdict.acknowledged, verdict.delivered, verdict.duplicates),
            (2, 2, 2, 1)
        );
    }

    #[test]
    fn lost_reordered_and_backward_commits_are_each_caught() {
        let records = [
            at(1, send(1, 7)),
            at(2, ack(1, 0)),
            at(3, send(2, 7)),
            at(4, ack(2, 1)),
            at(5, send(3, 8)),
            at(6, ack(3, 2)),
            at(7, send(4, 9)),
            at(8, Event::SendFailed { id: 4, reason: "timeout".into() }),
            at(9, deliver(2, 1)),
            at(10, deliver(1, 0)),
            at(11, Event::Commit { consumer: 0, queue: "t/0".into(), offset: 2 }),
            at(12, Event::Commit { consumer: 1, queue: "t/0".into(), offset: 1 }),
            at(13, Event::InvariantBroken("t-0: two leaders in epoch 3".into())),
        ];
        let verdict = check(&records);
        assert_eq!(verdict.lost, 1, "m3 acknowledged, never delivered; m4 never acknowledged");
        assert_eq!(verdict.order_violations, 1);
        assert_eq!(verdict.commits_backwards, 1);
        assert_eq!(verdict.failed, 1);
        assert_eq!(verdict.invariants_broken, 1);
        let kinds: Vec<ViolationKind> = verdict.violations.iter().map(|v| v.kind).collect();
        assert_eq!(
            kinds,
            [
                ViolationKind::Lost,
                ViolationKind::Order,
                ViolationKind::CommitBackwards,
                ViolationKind::Invariant
            ]
        );
        assert_eq!(verdict.violations[0].ids, [3]);
        assert_eq!(verdict.violations[1].ids, [1, 2]);
        assert!(verdict.violations[0].to_string().contains("ack m3 t/0@2"));
    }
}
