//! Delayed messages (RocketMQ's `ScheduleMessageService`): a message sent with `DELAY=n`
//! (1 ≤ n ≤ 18) is stored in `SCHEDULE_TOPIC_XXXX`, queue n−1, its consume-queue tag slot holding
//! the time it is due (as RocketMQ does); a delivery task per broker moves each level's due
//! messages, in order, to their real topic and queue, and remembers its progress per level.

use std::sync::Arc;
use std::time::Duration;

use twinmq_runtime::{Env, Shutdown};

use super::processor::{BrokerProcessor, lock};
use super::transaction::HALF_TOPIC;
use crate::message::MessageRecord;
use crate::remoting::properties::{self, DELAY, REAL_QID, REAL_TOPIC, TAGS, WAIT};

/// The topic delayed messages wait in.
pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";
/// The pseudo group whose offsets record each level's delivery progress.
pub const SCHEDULE_GROUP: &str = "DELAY_OFFSET";
/// RocketMQ's default `messageDelayLevel`.
pub const DEFAULT_DELAY_LEVELS: &str = "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h";
/// Most delay levels a broker accepts (the consume-queue ids of the schedule topic).
pub const DELAY_LEVELS_MAX: usize = 64;
/// How often due messages are looked for.
const DELIVERY_TICK_MS: u64 = 100;
/// Messages moved per level per tick, at most.
const DELIVERY_BATCH: u32 = 64;

/// Parses a `messageDelayLevel` setting — durations such as `100ms 1s 5m 2h 1d`, separated by
/// spaces — into milliseconds per level.
pub fn parse_delay_levels(text: &str) -> Result<Vec<i64>, String> {
    let levels = text
        .split_whitespace()
        .map(|word| {
            let split = word.find(|c: char| !c.is_ascii_digit()).unwrap_or(word.len());
            let (digits, unit) = word.split_at(split);
            let value: i64 =
                digits.parse().map_err(|_| format!("delay level {word:?}: no number"))?;
            let scale = match unit {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => return Err(format!("delay level {word:?}: unit must be ms, s, m, h or d")),
            };
            value.checked_mul(scale).ok_or_else(|| format!("delay level {word:?} is too long"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if levels.is_empty() || levels.len() > DELAY_LEVELS_MAX {
        return Err(format!("between 1 and {DELAY_LEVELS_MAX} delay levels, not {}", levels.len()));
    }
    Ok(levels)
}

/// The delay of a message's `DELAY` property under `levels`, as (level, milliseconds); `None`
/// when it has none or an out-of-range one.
pub fn delay_of(
    levels: &[i64],
    properties: &std::collections::BTreeMap<String, String>,
) -> Option<(usize, i64)> {
    let level: usize = properties.get(DELAY)?.parse().ok()?;
    let delay = *levels.get(level.checked_sub(1)?)?;
    Some((level, delay))
}

/// Where a message is stored: its own topic and queue, or — delayed — the schedule topic's
/// queue of its level, with the due time in the tag slot and its real place in its properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The topic it is stored under.
    pub topic: String,
    /// The queue it is stored in.
    pub queue_id: u32,
    /// The consume queue's tag slot: the tag's hash, or the due time of a delayed message.
    pub tag_slot: u64,
    /// Its properties string as stored.
    pub properties: String,
}

/// Where a message may wait before it reaches its own queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// It goes straight to its queue.
    Nothing,
    /// It waits in the schedule topic if its `DELAY` property names a level.
    DelayIfAsked,
    /// It is a transaction's half message: it waits in the half topic for END_TRANSACTION.
    Half,
}

/// Places a message bound for (`topic`, `queue_id`) under `hold`; delays are `levels`.
pub fn placement(
    levels: &[i64],
    now_ms: i64,
    topic: &str,
    queue_id: u32,
    props: &std::collections::BTreeMap<String, String>,
    text: String,
    hold: Hold,
) -> Placement {
    let delay = delay_of(levels, props).filter(|_| hold == Hold::DelayIfAsked);
    let tag_hash = props.get(TAGS).map_or(0, |tag| properties::tag_hash(tag) as u64);
    if hold == Hold::Half {
        let mut waiting = props.clone();
        waiting.insert(REAL_TOPIC.into(), topic.to_owned());
        waiting.insert(REAL_QID.into(), queue_id.to_string());
        return Placement {
            topic: HALF_TOPIC.into(),
            queue_id: 0,
            tag_slot: tag_hash,
            properties: properties::encode(&waiting),
        };
    }
    match delay {
        Some((level, delay_ms)) => {
            let mut waiting = props.clone();
            waiting.insert(REAL_TOPIC.into(), topic.to_owned());
            waiting.insert(REAL_QID.into(), queue_id.to_string());
            Placement {
                topic: SCHEDULE_TOPIC.into(),
                queue_id: u32::try_from(level - 1).unwrap_or(0),
                tag_slot: u64::try_from(now_ms.saturating_add(delay_ms)).unwrap_or(0),
                properties: properties::encode(&waiting),
            }
        }
        None => {
            Placement { topic: topic.to_owned(), queue_id, tag_slot: tag_hash, properties: text }
        }
    }
}

/// Moves due messages until shutdown.
pub async fn run<E: Env>(processor: Arc<BrokerProcessor<E>>, shutdown: Shutdown) {
    loop {
        tokio::select! {
            biased;
            () = shutdown.wait() => return,
            () = tokio::time::sleep(Duration::from_millis(DELIVERY_TICK_MS)) => {}
        }
        processor.deliver_due();
    }
}

impl<E: Env> BrokerProcessor<E> {
    /// Delivers every due delayed message; returns how many moved.
    pub(super) fn deliver_due(&self) -> usize {
        let now_ms = self.env.clock().now_ms();
        let mut moved = 0;
        for level in 0..self.config.delay_levels_ms.len() {
            let queue = u32::try_from(level).unwrap_or(0);
            let offset =
                lock(&self.offsets).get(SCHEDULE_TOPIC, SCHEDULE_GROUP, queue).unwrap_or(0);
            let found = lock(&self.store).get_message(
                SCHEDULE_TOPIC,
                queue,
                offset,
                DELIVERY_BATCH,
                4 << 20,
                None,
            );
            let Ok(found) = found else { continue };
            let mut next = offset;
            for waiting in &found.messages {
                if i64::try_from(waiting.tag_hash).unwrap_or(i64::MAX) > now_ms {
                    break;
                }
                if let Err(error) = self.deliver(&waiting.body) {
                    tracing::error!(%error, level = level + 1, "a delayed message could not be delivered; it stays");
                    break;
                }
                next = waiting.queue_offset + 1;
                moved += 1;
            }
            if next != offset {
                lock(&self.offsets).set(SCHEDULE_TOPIC, SCHEDULE_GROUP, queue, next);
            }
        }
        moved
    }

    fn deliver(&self, stored: &[u8]) -> Result<(), String> {
        let record = MessageRecord::decode(stored).map_err(|e| e.to_string())?;
        let mut props = properties::decode(&record.properties);
        props.remove(DELAY);
        props.insert(WAIT.into(), "false".into());
        self.put_in_real_queue(record, &props)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn levels_map_to_rocketmqs_default_delays() {
        let levels = parse_delay_levels(DEFAULT_DELAY_LEVELS).unwrap();
        assert_eq!(levels.len(), 18);
        let with = |level: &str| BTreeMap::from([(DELAY.to_string(), level.to_string())]);
        assert_eq!(delay_of(&levels, &with("3")), Some((3, 10_000)));
        assert_eq!(delay_of(&levels, &with("18")), Some((18, 7_200_000)));
        assert_eq!(delay_of(&levels, &with("0")), None);
        assert_eq!(delay_of(&levels, &with("19")), None);
        assert_eq!(delay_of(&levels, &BTreeMap::new()), None);
    }

    #[test]
    fn delay_levels_parse_with_units_and_refuse_nonsense() {
        assert_eq!(
            parse_delay_levels("100ms 2s 1m 1h 1d"),
            Ok(vec![100, 2_000, 60_000, 3_600_000, 86_400_000])
        );
        assert!(parse_delay_levels("").is_err());
        assert!(parse_delay_levels("5x").is_err());
        assert!(parse_delay_levels("s").is_err());
        assert!(parse_delay_levels(&"1s ".repeat(DELAY_LEVELS_MAX + 1)).is_err());
    }
}
