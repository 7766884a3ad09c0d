//! Messages as the client sees them: [`Message`] going out (topic, body, tags, keys, delay
//! level, user properties) and [`ReceivedMessage`] coming back from a pull or a transaction
//! check (the stored record, its properties parsed). Also the producer's unique message ids.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use rand::RngCore;
use twinmq_runtime::Rng;

use super::{ClientError, MessageQueue};
use crate::message::{MessageRecord, RecordError, offset_message_id};
use crate::remoting::properties::{self, DELAY, KEYS, RETRY_TOPIC, TAGS, UNIQ_KEY, WAIT};

/// Longest topic name (RocketMQ `TopicValidator.TOPIC_MAX_LENGTH`; the stored record's topic
/// length is one byte).
pub const TOPIC_BYTES_MAX: usize = 127;

/// Topics a producer may not send to directly (RocketMQ `TopicValidator.NOT_ALLOWED_SEND_TOPIC_SET`).
const SYSTEM_TOPICS: [&str; 5] = [
    "SCHEDULE_TOPIC_XXXX",
    "RMQ_SYS_TRANS_HALF_TOPIC",
    "RMQ_SYS_TRANS_OP_HALF_TOPIC",
    "TRANS_CHECK_MAX_TIME_TOPIC",
    super::DEFAULT_TOPIC,
];

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The topic.
    pub topic: String,
    /// The payload.
    pub body: Bytes,
    /// The tag consumers filter on.
    pub tags: Option<String>,
    /// Keys the broker indexes (sent joined by one space).
    pub keys: Vec<String>,
    /// Delay level (1-based; 0 delivers at once).
    pub delay_level: u32,
    /// The user's flag.
    pub flag: i32,
    /// The user's own properties.
    pub properties: BTreeMap<String, String>,
}

impl Message {
    /// A message with a body and nothing else.
    pub fn new(topic: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self {
            topic: topic.into(),
            body: body.into(),
            tags: None,
            keys: Vec::new(),
            delay_level: 0,
            flag: 0,
            properties: BTreeMap::new(),
        }
    }

    /// With a tag.
    pub fn with_tags(mut self, tags: impl Into<String>) -> Self {
        self.tags = Some(tags.into());
        self
    }

    /// With one more key.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.keys.push(key.into());
        self
    }

    /// With a delay level.
    pub fn with_delay_level(mut self, level: u32) -> Self {
        self.delay_level = level;
        self
    }

    /// With a user property.
    pub fn with_property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(name.into(), value.into());
        self
    }

    /// Checks what RocketMQ's `Validators.checkMessage` checks before anything is sent: a
    /// topic of at most 127 of `%|a-zA-Z0-9_-`, not a system topic; a body neither empty nor
    /// over `body_bytes_max`.
    pub fn validate(&self, body_bytes_max: usize) -> Result<(), ClientError> {
        let topic_ok = !self.topic.is_empty()
            && self.topic.len() <= TOPIC_BYTES_MAX
            && self.topic.bytes().all(|b| b.is_ascii_alphanumeric() || b"%|_-".contains(&b));
        if !topic_ok {
            return Err(ClientError::Invalid(format!(
                "topic {:?} is not a valid topic name",
                self.topic
            )));
        }
        if SYSTEM_TOPICS.contains(&self.topic.as_str()) {
            return Err(ClientError::Invalid(format!("topic {} is a system topic", self.topic)));
        }
        if self.body.is_empty() {
            return Err(ClientError::Invalid("the message body is empty".into()));
        }
        if self.body.len() > body_bytes_max {
            return Err(ClientError::Invalid(format!(
                "the message body is {} bytes, over the limit of {body_bytes_max}",
                self.body.len()
            )));
        }
        Ok(())
    }

    /// The properties as sent: the user's, then TAGS, KEYS, DELAY, UNIQ_KEY and WAIT.
    pub fn wire_properties(&self, unique_id: &str) -> BTreeMap<String, String> {
        let mut properties = self.properties.clone();
        if let Some(tags) = &self.tags {
            properties.insert(TAGS.into(), tags.clone());
        }
        if !self.keys.is_empty() {
            properties.insert(KEYS.into(), self.keys.join(" "));
        }
        if self.delay_level > 0 {
            properties.insert(DELAY.into(), self.delay_level.to_string());
        }
        properties.insert(UNIQ_KEY.into(), unique_id.to_owned());
        properties.insert(WAIT.into(), "true".into());
        properties
    }
}

/// A message as pulled (or sent back in a transaction check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The stored record (its topic is the stored one: `%RETRY%group` for a retried message).
    pub record: MessageRecord,
    /// Its properties.
    pub properties: BTreeMap<String, String>,
    /// The queue it was pulled from.
    pub queue: MessageQueue,
}

impl ReceivedMessage {
    /// Wraps a decoded record pulled from `queue`.
    pub fn new(record: MessageRecord, queue: MessageQueue) -> Self {
        let properties = properties::decode(&record.properties);
        Self { record, properties, queue }
    }

    /// The topic the producer sent it to (a retried message names its original topic).
    pub fn topic(&self) -> &str {
        self.properties.get(RETRY_TOPIC).map_or(&self.record.topic, String::as_str)
    }

    /// The payload.
    pub fn body(&self) -> &Bytes {
        &self.record.body
    }

    /// The tag, if any.
    pub fn tags(&self) -> Option<&str> {
        self.properties.get(TAGS).map(String::as_str)
    }

    /// The keys.
    pub fn keys(&self) -> Vec<&str> {
        self.properties.get(KEYS).map(|k| k.split(' ').collect()).unwrap_or_default()
    }

    /// The producer's id for it (UNIQ_KEY), or the broker's when there is none.
    pub fn msg_id(&self) -> String {
        self.properties.get(UNIQ_KEY).cloned().unwrap_or_else(|| self.offset_msg_id())
    }

    /// The broker's id for it: store host and CommitLog offset.
    pub fn offset_msg_id(&self) -> String {
        offset_message_id(
            self.record.store_host,
            u64::try_from(self.record.physical_offset).unwrap_or(0),
        )
    }

    /// Its index in the queue it was pulled from.
    pub fn queue_offset(&self) -> i64 {
        self.record.queue_offset
    }

    /// How often it was consumed and handed back before.
    pub fn reconsume_times(&self) -> i32 {
        self.record.reconsume_times
    }

    /// A property.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.get(name).map(String::as_str)
    }
}

/// Splits a pull (or check) body into records: they lie back to back, each `TOTALSIZE` long.
pub fn decode_records(mut body: &[u8]) -> Result<Vec<MessageRecord>, RecordError> {
    let mut records = Vec::new();
    while !body.is_empty() {
        let record = MessageRecord::decode(body)?;
        body = &body[record.encoded_len()..];
        records.push(record);
    }
    Ok(records)
}

/// The CommitLog offset inside a broker message id (its last 16 hex digits).
pub fn commit_log_offset(offset_msg_id: &str) -> Option<i64> {
    let hex = offset_msg_id.get(offset_msg_id.len().checked_sub(16)?..)?;
    i64::from_str_radix(hex, 16).ok()
}

/// One message of a SEND_BATCH_MESSAGE body: `i32 total | i32 magic (0) | i32 body crc (0) |
/// i32 flag | i32 body length | body | i16 properties length | properties`.
pub fn encode_batch_entry(out: &mut BytesMut, flag: i32, body: &[u8], properties: &str) -> bool {
    let (Ok(body_len), Ok(properties_len)) =
        (i32::try_from(body.len()), i16::try_from(properties.len()))
    else {
        return false;
    };
    let Ok(total) = i32::try_from(20 + body.len() + 2 + properties.len()) else { return false };
    out.put_i32(total);
    out.put_i32(0);
    out.put_i32(0);
    out.put_i32(flag);
    out.put_i32(body_len);
    out.put_slice(body);
    out.put_i16(properties_len);
    out.put_slice(properties.as_bytes());
    true
}

/// Makes producer message ids (UNIQ_KEY, 32 hex digits, as RocketMQ's `MessageClientIDSetter`):
/// client IPv4, a 2-byte process tag and 4 random bytes drawn once, milliseconds since the
/// generator started, a 2-byte counter.
#[derive(Debug)]
pub struct MessageIdGenerator {
    prefix: String,
    start_ms: i64,
    counter: u16,
}

impl MessageIdGenerator {
    /// A generator whose fixed part comes from `rng`.
    pub fn new(mut rng: Rng, start_ms: i64) -> Self {
        let tag = rng.next_u32();
        let random = rng.next_u32();
        Self { prefix: format!("7F000001{:04X}{random:08X}", tag & 0xFFFF), start_ms, counter: 0 }
    }

    /// The next id at time `now_ms`.
    pub fn next(&mut self, now_ms: i64) -> String {
        let elapsed = u32::try_from((now_ms - self.start_ms).max(0)).unwrap_or(u32::MAX);
        let id = format!("{}{elapsed:08X}{:04X}", self.prefix, self.counter);
        self.counter = self.counter.wrapping_add(1);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_32_hex_digits_and_distinct() {
        let mut ids = MessageIdGenerator::new(Rng::from_seed_and_stream(1, "ids"), 1_000);
        let (a, b) = (ids.next(1_000), ids.next(1_005));
        assert_eq!((a.len(), b.len()), (32, 32));
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn the_commit_log_offset_is_the_tail_of_the_broker_id() {
        assert_eq!(commit_log_offset("7F000001000051AF00000000000002D6"), Some(726));
        assert_eq!(commit_log_offset("short"), None);
        assert_eq!(commit_log_offset("7F000001000051AF0000000000000XYZ"), None);
    }

    #[test]
    fn validation_refuses_bad_topics_system_topics_and_bad_bodies() {
        assert!(Message::new("orders_2%x|y-z", "b").validate(10).is_ok());
        for topic in ["", "has space", "TBW102", "SCHEDULE_TOPIC_XXXX", &"t".repeat(128)] {
            assert!(Message::new(topic, "b").validate(10).is_err(), "{topic:?}");
        }
        assert!(Message::new("t", "").validate(10).is_err());
        assert!(Message::new("t", "eleven char").validate(10).is_err());
    }

    #[test]
    fn wire_properties_carry_tags_keys_delay_and_the_id() {
        let message = Message::new("t", "b").with_tags("TagA").with_key("k1").with_key("k2");
        let properties = message.with_delay_level(3).wire_properties("ID");
        assert_eq!(properties[TAGS], "TagA");
        assert_eq!(properties[KEYS], "k1 k2");
        assert_eq!(properties[DELAY], "3");
        assert_eq!(properties[UNIQ_KEY], "ID");
    }
}
