//! A consumer hands back a message it failed to consume (CONSUMER_SEND_MSG_BACK, 36): it goes to
//! the group's retry topic `%RETRY%<group>` after a delay that grows with each attempt (level
//! 3 + reconsume times, as RocketMQ chooses when the client leaves it to the broker), or — past
//! `maxReconsumeTimes` (16 by default) — to the dead-letter topic `%DLQ%<group>`.

use twinmq_runtime::Env;

use super::processor::{BrokerProcessor, lock, number};
use super::schedule::{Hold, placement};
use crate::message::MessageRecord;
use crate::remoting::RemotingCommand;
use crate::remoting::properties::{self, DELAY, KEYS, ORIGIN_MESSAGE_ID, RETRY_TOPIC};
use crate::remoting::response_code::*;

/// Attempts before a message goes to the dead-letter topic, unless the client says otherwise.
pub const MAX_RECONSUME_TIMES: i32 = 16;

/// The retry topic of a group.
pub fn retry_topic(group: &str) -> String {
    format!("%RETRY%{group}")
}

/// The dead-letter topic of a group.
pub fn dlq_topic(group: &str) -> String {
    format!("%DLQ%{group}")
}

impl<E: Env> BrokerProcessor<E> {
    /// CONSUMER_SEND_MSG_BACK.
    pub(super) fn send_back(&self, request: &RemotingCommand) -> RemotingCommand {
        match self.try_send_back(request) {
            Ok(()) => RemotingCommand::response_to(request, SUCCESS, None),
            Err((code, remark)) => {
                tracing::info!(%remark, "send-back refused");
                RemotingCommand::response_to(request, code, Some(remark))
            }
        }
    }

    fn try_send_back(&self, request: &RemotingCommand) -> Result<(), (i32, String)> {
        let group = request.field("group").ok_or((SYSTEM_ERROR, "group missing".to_owned()))?;
        let offset: u64 =
            number(request.field("offset")).ok_or((SYSTEM_ERROR, "offset missing".to_owned()))?;
        let requested_level: i32 = number(request.field("delayLevel")).unwrap_or(0);
        let max_times: i32 =
            number(request.field("maxReconsumeTimes")).unwrap_or(MAX_RECONSUME_TIMES);
        let stored =
            lock(&self.store).read_message(offset).map_err(|e| (SYSTEM_ERROR, e.to_string()))?;
        let original =
            MessageRecord::decode(&stored.body).map_err(|e| (SYSTEM_ERROR, e.to_string()))?;
        let mut props = properties::decode(&original.properties);
        props.entry(RETRY_TOPIC.into()).or_insert_with(|| original.topic.clone());
        if let Some(origin) = request.field("originMsgId") {
            props.entry(ORIGIN_MESSAGE_ID.into()).or_insert_with(|| origin.to_owned());
        }
        let reconsume_times = original.reconsume_times + 1;
        let dead = reconsume_times > max_times || requested_level < 0;
        let topic = if dead { dlq_topic(group) } else { retry_topic(group) };
        if dead {
            props.remove(DELAY);
            tracing::info!(%group, reconsume_times, "message moved to the dead-letter topic");
        } else {
            let level = if requested_level == 0 { 3 + reconsume_times } else { requested_level };
            let deepest = self.config.delay_levels_ms.len().max(1);
            let level = usize::try_from(level).unwrap_or(1).max(1).min(deepest);
            props.insert(DELAY.into(), level.to_string());
        }
        lock(&self.topics).get_or_create(&topic, 1).map_err(|e| (SYSTEM_ERROR, e.to_string()))?;
        self.registered.notify_one();
        let text = properties::encode(&props);
        let levels = &self.config.delay_levels_ms;
        let placed = placement(
            levels,
            self.env.clock().now_ms(),
            &topic,
            0,
            &props,
            text,
            Hold::DelayIfAsked,
        );
        let record = MessageRecord {
            topic: placed.topic.clone(),
            queue_id: i32::try_from(placed.queue_id).unwrap_or(0),
            reconsume_times,
            properties: placed.properties,
            ..original
        };
        self.put_record(&record, placed.tag_slot, props.get(KEYS).map(String::as_str))
            .map_err(|e| (SYSTEM_ERROR, e))
    }
}
