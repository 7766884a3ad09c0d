//! Availability over a [`History`](crate::history::History), in simulated time:
//!
//! - **unavailable**: while the workload was sending (before the harness healed everything),
//!   the stretches of at least [`UNAVAILABLE_MIN`] in which no send was acknowledged, summed —
//!   how long the cluster took no writes;
//! - **recovery**: from the heal to the first delivery of the last acknowledged message to
//!   arrive — how long, once every fault was repaired, the consumers took to catch up on all
//!   that survived (0 when they had caught up before it).

use std::collections::BTreeSet;
use std::time::Duration;

use crate::history::{Event, Record};

/// The shortest stretch without an acknowledgement that counts as unavailability (shorter ones
/// are a producer's retry backoff or a slow round trip, not an outage).
pub const UNAVAILABLE_MIN: Duration = Duration::from_secs(1);

/// What one run's history says about availability.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Availability {
    /// Milliseconds of the sending phase in stretches of at least [`UNAVAILABLE_MIN`] without
    /// an acknowledgement.
    pub unavailable_ms: u64,
    /// Milliseconds from the heal to the last first delivery of an acknowledged message (0 when
    /// it came before); `None` when the run never healed or nothing acknowledged arrived.
    pub recovery_ms: Option<u64>,
}

/// Measures `records`.
pub fn measure(records: &[Record]) -> Availability {
    let healed_at = records.iter().find(|r| r.event == Event::Healed).map(|r| r.at_ms);
    let sending_end = healed_at.unwrap_or_else(|| records.last().map_or(0, |r| r.at_ms));
    let first_send = records.iter().find(|r| matches!(r.event, Event::Send { .. }));
    let mut unavailable_ms = 0;
    if let Some(first_send) = first_send {
        let acks = records
            .iter()
            .filter(|r| r.at_ms <= sending_end && matches!(r.event, Event::Ack { .. }))
            .map(|r| r.at_ms);
        let mut last = first_send.at_ms;
        for at in acks.chain([sending_end]) {
            let gap = at.saturating_sub(last);
            if gap >= UNAVAILABLE_MIN.as_millis() as u64 {
                unavailable_ms += gap;
            }
            last = last.max(at);
        }
    }
    let acked: BTreeSet<u64> = records
        .iter()
        .filter_map(|r| if let Event::Ack { id, .. } = r.event { Some(id) } else { None })
        .collect();
    let mut delivered = BTreeSet::new();
    let last_arrival = records
        .iter()
        .filter(|r| {
            matches!(&r.event, Event::Deliver { id, .. } if acked.contains(id) && delivered.insert(*id))
        })
        .map(|r| r.at_ms)
        .max();
    let recovery_ms =
        healed_at.zip(last_arrival).map(|(healed, arrived)| arrived.saturating_sub(healed));
    Availability { unavailable_ms, recovery_ms }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(at_ms: u64, event: Event) -> Record {
        Record { at_ms, event }
    }

    fn ack(id: u64) -> Event {
        Event::Ack { id, queue: "t/0".into(), offset: id }
    }

    fn deliver(id: u64) -> Event {
        Event::Deliver { consumer: 0, id, queue: "t/0".into(), offset: id }
    }

    #[test]
    fn stretches_without_acks_of_a_second_or_more_count_until_the_heal() {
        let records = [
            at(100, Event::Send { producer: 0, id: 1, key: 0 }),
            at(300, ack(1)),
            at(900, ack(2)),
            at(2_900, ack(3)),
            at(3_000, ack(4)),
            at(4_500, Event::Healed),
            at(4_600, deliver(1)),
            at(4_700, deliver(3)),
            at(5_000, deliver(4)),
            at(6_000, deliver(3)),
            at(7_000, deliver(9)),
        ];
        let measured = measure(&records);
        assert_eq!(measured.unavailable_ms, 2_000 + 1_500, "900→2900 and 3000→heal");
        assert_eq!(measured.recovery_ms, Some(500), "m4 arrived last, 500 ms after the heal");
    }

    #[test]
    fn a_run_that_never_healed_has_no_recovery_and_one_caught_up_before_the_heal_has_none_to_do() {
        let records = [at(0, Event::Send { producer: 0, id: 1, key: 0 }), at(10, ack(1))];
        assert_eq!(measure(&records), Availability { unavailable_ms: 0, recovery_ms: None });
        let caught_up_before = [at(0, ack(1)), at(5, deliver(1)), at(9, Event::Healed)];
        assert_eq!(measure(&caught_up_before).recovery_ms, Some(0));
    }
}
