//! Sending: SEND_MESSAGE (10, long header names), SEND_MESSAGE_V2 (310, one-letter names) and
//! SEND_BATCH_MESSAGE (320: the body is the messages back to back, all for one queue).

use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;

use bytes::Bytes;
use twinmq_runtime::Env;
use twinmq_storage::{AppendedMessage, FlushPolicy, NewMessage};

use super::ha::BrokerRole;
use super::processor::{BrokerProcessor, lock, number};
use super::schedule::{Hold, SCHEDULE_TOPIC, placement};
use super::tables::TopicConfigEntry;
use super::transaction::{GIVEN_UP_TOPIC, HALF_TOPIC, OP_TOPIC};
use crate::message::{MessageRecord, offset_message_id};
use crate::remoting::properties::{self, KEYS, UNIQ_KEY};
use crate::remoting::response_code::*;
use crate::remoting::{Peer, RemotingCommand};

/// Topics only the broker writes to.
const BROKER_OWN_TOPICS: [&str; 4] = [SCHEDULE_TOPIC, HALF_TOPIC, OP_TOPIC, GIVEN_UP_TOPIC];

/// A header field by its long name, or its one-letter SEND_MESSAGE_V2 name.
fn send_field<'a>(request: &'a RemotingCommand, long: &str, short: &str) -> Option<&'a str> {
    request.field(long).or_else(|| request.field(short))
}

/// One message of a batch body: `i32 total | i32 magic (0) | i32 body crc (0) | i32 flag |
/// i32 body length | body | i16 properties length | properties`.
fn split_batch(mut body: &[u8]) -> Result<Vec<(i32, Bytes, String)>, &'static str> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let read_i32 = |b: &[u8], at: usize| {
            b.get(at..at + 4).map(|x| i32::from_be_bytes([x[0], x[1], x[2], x[3]]))
        };
        let total =
            read_i32(body, 0).and_then(|t| usize::try_from(t).ok()).ok_or("batch record size")?;
        let record = body.get(..total).ok_or("batch record past the body")?;
        let flag = read_i32(record, 12).ok_or("batch record cut short")?;
        let length = read_i32(record, 16)
            .and_then(|l| usize::try_from(l).ok())
            .ok_or("batch body length")?;
        let message = record.get(20..20 + length).ok_or("batch body past the record")?;
        let at = 20 + length;
        let properties_length = record
            .get(at..at + 2)
            .map(|x| usize::from(u16::from_be_bytes([x[0], x[1]])))
            .ok_or("properties length")?;
        let properties =
            record.get(at + 2..at + 2 + properties_length).ok_or("properties past the record")?;
        let properties = std::str::from_utf8(properties).map_err(|_| "properties are not UTF-8")?;
        out.push((flag, Bytes::copy_from_slice(message), properties.to_owned()));
        body = &body[total..];
    }
    Ok(out)
}

impl<E: Env> BrokerProcessor<E> {
    /// SEND_MESSAGE and SEND_MESSAGE_V2.
    pub(super) async fn send(&self, request: &RemotingCommand, peer: &Peer) -> RemotingCommand {
        let properties = send_field(request, "properties", "i").unwrap_or_default().to_owned();
        let flag = number(send_field(request, "flag", "h")).unwrap_or(0);
        self.store_messages(request, peer, vec![(flag, request.body.clone(), properties)]).await
    }

    /// SEND_BATCH_MESSAGE.
    pub(super) async fn send_batch(
        &self,
        request: &RemotingCommand,
        peer: &Peer,
    ) -> RemotingCommand {
        match split_batch(&request.body) {
            Ok(messages) if !messages.is_empty() => {
                self.store_messages(request, peer, messages).await
            }
            Ok(_) => {
                RemotingCommand::response_to(request, MESSAGE_ILLEGAL, Some("empty batch".into()))
            }
            Err(reason) => {
                tracing::warn!(peer = %peer.addr, reason, "malformed batch");
                RemotingCommand::response_to(request, MESSAGE_ILLEGAL, Some(reason.into()))
            }
        }
    }

    fn topic_for_send(&self, topic: &str) -> Result<TopicConfigEntry, (i32, String)> {
        let mut topics = lock(&self.topics);
        if !self.config.auto_create_topic {
            return topics.topics.get(topic).cloned().ok_or_else(|| {
                (TOPIC_NOT_EXIST, format!("topic {topic} does not exist and auto-creation is off"))
            });
        }
        let (entry, created) = topics
            .get_or_create(topic, self.config.default_queues)
            .map_err(|e| (SYSTEM_ERROR, e.to_string()))?;
        if created {
            self.registered.notify_one();
        }
        Ok(entry)
    }

    /// Waits until the CommitLog up to `end` is as safe as the broker promises: on disk with
    /// SYNC_FLUSH, on a slave with SYNC_MASTER. Returns the answer's code.
    async fn wait_until_safe(&self, end: u64) -> i32 {
        let timeout = Duration::from_millis(self.config.sync_timeout_ms);
        if self.config.store.flush == FlushPolicy::Sync {
            self.flush_signal.request();
            let waited = tokio::time::timeout(timeout, self.durable.wait_for(end)).await;
            if !matches!(waited, Ok(Ok(()))) {
                return FLUSH_DISK_TIMEOUT;
            }
        }
        if self.config.ha.role == BrokerRole::SyncMaster
            && let Err(code) =
                self.ha.wait_for_slave(end, self.config.ha.max_gap_bytes, timeout).await
        {
            return code;
        }
        SUCCESS
    }

    /// Stores messages (one or a batch) for one queue and answers as RocketMQ does.
    async fn store_messages(
        &self,
        request: &RemotingCommand,
        peer: &Peer,
        messages: Vec<(i32, Bytes, String)>,
    ) -> RemotingCommand {
        let refuse = |code, remark: &str| {
            RemotingCommand::response_to(request, code, Some(remark.to_owned()))
        };
        let Some(topic) = send_field(request, "topic", "b") else {
            return refuse(MESSAGE_ILLEGAL, "topic missing");
        };
        if BROKER_OWN_TOPICS.contains(&topic) {
            // A client's message there would be taken for the broker's own: a delayed or half
            // message without REAL_TOPIC stalls its queue forever (RocketMQ `isNotAllowedSendTopic`).
            return refuse(NO_PERMISSION, &format!("sending to system topic {topic} is forbidden"));
        }
        if messages.iter().any(|(_, body, _)| body.len() > self.config.message_bytes_max) {
            return refuse(MESSAGE_ILLEGAL, "message body too large");
        }
        let config = match self.topic_for_send(topic) {
            Ok(config) => config,
            Err((code, remark)) => return refuse(code, &remark),
        };
        let queue_id: u32 = number(send_field(request, "queueId", "e")).unwrap_or(0)
            % config.write_queue_nums.max(1);
        let born_host = match peer.addr {
            SocketAddr::V4(v4) => v4,
            SocketAddr::V6(_) => SocketAddrV4::new([127, 0, 0, 1].into(), peer.addr.port()),
        };
        let mut encoded = Vec::with_capacity(messages.len());
        let mut tags = Vec::with_capacity(messages.len());
        let mut keys = Vec::with_capacity(messages.len());
        // A single message with a delay level waits in the schedule topic (see `schedule`); a
        // half message waits in the half topic (see `transaction`).
        let sys_flag: i32 = number(send_field(request, "sysFlag", "f")).unwrap_or(0);
        let prepared = super::transaction::is_half(sys_flag);
        let hold = match (messages.len(), prepared) {
            (1, true) => Hold::Half,
            (1, false) => Hold::DelayIfAsked,
            (_, true) => return refuse(MESSAGE_ILLEGAL, "a batch cannot be transactional"),
            (_, false) => Hold::Nothing,
        };
        let now_ms = self.env.clock().now_ms();
        let mut stored = (topic.to_owned(), queue_id);
        for (flag, body, properties_text) in messages {
            let properties = properties::decode(&properties_text);
            let placed = placement(
                &self.config.delay_levels_ms,
                now_ms,
                topic,
                queue_id,
                &properties,
                properties_text,
                hold,
            );
            stored = (placed.topic.clone(), placed.queue_id);
            tags.push(placed.tag_slot);
            keys.push(properties.get(KEYS).cloned());
            let record = MessageRecord {
                queue_id: i32::try_from(placed.queue_id).unwrap_or(0),
                flag,
                queue_offset: 0,
                physical_offset: 0,
                sys_flag,
                born_timestamp: number(send_field(request, "bornTimestamp", "g")).unwrap_or(0),
                born_host,
                store_timestamp: 0,
                store_host: self.store_host,
                reconsume_times: number(send_field(request, "reconsumeTimes", "j")).unwrap_or(0),
                prepared_transaction_offset: 0,
                body,
                topic: placed.topic,
                properties: placed.properties,
            };
            match record.encode() {
                Ok(bytes) => encoded.push(bytes),
                Err(error) => return refuse(MESSAGE_ILLEGAL, &error.to_string()),
            }
        }
        let batch: Vec<NewMessage<'_>> = encoded
            .iter()
            .zip(&tags)
            .zip(&keys)
            .map(|((body, tag_hash), keys)| NewMessage {
                topic: &stored.0,
                queue_id: stored.1,
                tag_hash: *tag_hash,
                keys: keys.as_deref().map(str::as_bytes),
                body,
            })
            .collect();
        let appended: Vec<AppendedMessage> = match self.put_messages(&batch) {
            Ok(appended) => appended,
            Err(error) => {
                tracing::error!(%error, "put failed");
                return refuse(SYSTEM_ERROR, &error.to_string());
            }
        };
        let Some(first) = appended.first() else { return refuse(SYSTEM_ERROR, "nothing stored") };
        let end = appended.last().map_or(first.position_end, |a| a.position_end);
        // Stored either way: a timeout changes the answer's code, not what it says.
        let code = self.wait_until_safe(end).await;
        let ids: Vec<String> = appended
            .iter()
            .map(|a| offset_message_id(self.store_host, a.physical_offset))
            .collect();
        let mut response = RemotingCommand::response_to(request, code, None)
            .with_field("msgId", ids.join(","))
            .with_field("queueId", queue_id)
            .with_field("queueOffset", first.queue_offset)
            .with_field("MSG_REGION", "DefaultRegion")
            .with_field("TRACE_ON", "true");
        let header_properties =
            properties::decode(send_field(request, "properties", "i").unwrap_or_default());
        if let Some(uniq) = header_properties.get(UNIQ_KEY) {
            response = response.with_field("transactionId", uniq);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_captured_batch_record() {
        // The first record of a captured batch body (99 bytes): body "batch-0", four properties.
        let properties = "TAGS\u{1}TagA\u{2}WAIT\u{1}true\u{2}UNIQ_KEY\u{1}C000020215C2AC4C820C7831E8680000\u{2}KEYS\u{1}B0\u{2}";
        let mut record = Vec::new();
        let total = 20 + 7 + 2 + properties.len();
        assert_eq!(total, 99);
        record.extend_from_slice(&(total as i32).to_be_bytes());
        record.extend_from_slice(&[0; 8]);
        record.extend_from_slice(&0i32.to_be_bytes());
        record.extend_from_slice(&7i32.to_be_bytes());
        record.extend_from_slice(b"batch-0");
        record.extend_from_slice(&(properties.len() as u16).to_be_bytes());
        record.extend_from_slice(properties.as_bytes());
        let mut body = record.clone();
        body.extend_from_slice(&record);
        let split = split_batch(&body).unwrap();
        assert_eq!(split.len(), 2);
        assert_eq!(split[0].1, Bytes::from_static(b"batch-0"));
        assert!(split[0].2.contains("KEYS\u{1}B0"));
        assert!(split_batch(&body[..50]).is_err());
        assert!(split_batch(&[0, 0, 0, 3]).is_err());
    }
}
