//! The RocketMQ-layout message as the CommitLog stores it: one framed entry whose payload
//! starts with the dispatch header the consume queues and the key index are built from.
//!
//! ## Format (the entry's payload, integers big-endian)
//!
//! ```text
//! topic_length  u16
//! topic         topic_length bytes (UTF-8)
//! queue_id      u32
//! queue_offset  u64   the message's index in its consume queue
//! tag_hash      u64   the hash RocketMQ filters by (consume queue entry field)
//! body          the rest: opaque to the storage core (the broker's own message fields)
//! ```
//!
//! The entry's `offset` is the message's physical offset in the CommitLog, its `timestamp_ms`
//! the store timestamp and its `key` the message's keys (space-separated, as RocketMQ writes
//! them).

use bytes::{BufMut, Bytes};

use crate::entry::{Entry, NewEntry};

/// Bytes of the dispatch header besides the topic.
const DISPATCH_FIXED_BYTES: usize = 2 + 4 + 8 + 8;

/// A message to put into the store.
#[derive(Debug, Clone, Copy)]
pub struct NewMessage<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The queue within the topic.
    pub queue_id: u32,
    /// The hash of the message's tag (0: no tag).
    pub tag_hash: u64,
    /// The message's keys, space-separated.
    pub keys: Option<&'a [u8]>,
    /// Opaque bytes: the broker's message fields and body.
    pub body: &'a [u8],
}

impl NewMessage<'_> {
    /// The size of the stored entry.
    pub fn encoded_len(&self) -> usize {
        crate::entry::ENTRY_HEADER_BYTES
            + self.keys.map_or(0, <[u8]>::len)
            + DISPATCH_FIXED_BYTES
            + self.topic.len()
            + self.body.len()
    }

    /// Encodes the message as an entry at `physical_offset` with its assigned `queue_offset`.
    pub(crate) fn encode_into(
        &self,
        physical_offset: u64,
        queue_offset: u64,
        store_timestamp_ms: i64,
        scratch: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) {
        scratch.clear();
        scratch.put_u16(u16::try_from(self.topic.len()).unwrap_or(u16::MAX));
        scratch.put_slice(self.topic.as_bytes());
        scratch.put_u32(self.queue_id);
        scratch.put_u64(queue_offset);
        scratch.put_u64(self.tag_hash);
        scratch.put_slice(self.body);
        NewEntry {
            record_count: 1,
            timestamp_ms: store_timestamp_ms,
            key: self.keys,
            payload: scratch,
        }
        .encode_into(physical_offset, out);
    }
}

/// A message read back from the store; `body` and `keys` are zero-copy slices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Where the message starts in the CommitLog.
    pub physical_offset: u64,
    /// Bytes the message occupies in the CommitLog.
    pub size: u32,
    /// The topic.
    pub topic: String,
    /// The queue within the topic.
    pub queue_id: u32,
    /// The message's index in its consume queue.
    pub queue_offset: u64,
    /// The tag hash.
    pub tag_hash: u64,
    /// The keys, space-separated.
    pub keys: Option<Bytes>,
    /// When the store accepted the message, ms since the Unix epoch.
    pub store_timestamp_ms: i64,
    /// The opaque body.
    pub body: Bytes,
}

impl StoredMessage {
    /// Parses a CommitLog entry; `Err` says why it is not a message.
    pub fn from_entry(entry: &Entry) -> Result<Self, String> {
        let payload = &entry.payload;
        let topic_length = usize::from(u16::from_be_bytes(field(payload, 0)?));
        let topic_end = 2 + topic_length;
        let topic = payload.get(2..topic_end).ok_or("topic passes the entry's end")?;
        let topic = std::str::from_utf8(topic).map_err(|_| "topic is not UTF-8")?.to_owned();
        let queue_id = u32::from_be_bytes(field(payload, topic_end)?);
        let queue_offset = u64::from_be_bytes(field(payload, topic_end + 4)?);
        let tag_hash = u64::from_be_bytes(field(payload, topic_end + 12)?);
        Ok(Self {
            physical_offset: entry.offset,
            size: u32::try_from(entry.size).map_err(|_| "entry too large")?,
            topic,
            queue_id,
            queue_offset,
            tag_hash,
            keys: entry.key.clone(),
            store_timestamp_ms: entry.timestamp_ms,
            body: payload.slice(topic_end + 20..),
        })
    }

    /// Whether the space-separated keys contain `key`.
    pub fn has_key(&self, key: &[u8]) -> bool {
        self.keys.as_ref().is_some_and(|keys| keys.split(|b| *b == b' ').any(|k| k == key))
    }
}

fn field<const N: usize>(payload: &[u8], at: usize) -> Result<[u8; N], String> {
    payload
        .get(at..at + N)
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| format!("dispatch header field at {at} passes the entry's end"))
}
