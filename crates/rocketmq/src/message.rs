//! The message record as RocketMQ stores and serves it (apache/rocketmq `MessageDecoder`): the
//! broker keeps exactly these bytes as the storage core's opaque message body, and a pull
//! returns them back to back after stamping what only the store knows (queue offset, physical
//! offset, store timestamp).
//!
//! ## Format (big-endian; IPv4 hosts, magic v1)
//!
//! ```text
//!   0 TOTALSIZE i32          4 MAGICCODE 0xDAA320A7    8 BODYCRC (CRC-32 & 0x7FFFFFFF)
//!  12 QUEUEID i32           16 FLAG i32               20 QUEUEOFFSET i64
//!  28 PHYSICALOFFSET i64    36 SYSFLAG i32            40 BORNTIMESTAMP i64
//!  48 BORNHOST ip4 + port   56 STORETIMESTAMP i64     64 STOREHOST ip4 + port
//!  72 RECONSUMETIMES i32    76 PREPARED TX OFFSET i64 84 BODY (i32 length + bytes)
//!     TOPIC (i8 length + bytes)   PROPERTIES (i16 length + bytes)
//! ```

use std::net::SocketAddrV4;

use bytes::{BufMut, Bytes, BytesMut};

/// Magic code of the v1 record layout (1-byte topic length).
pub const MAGIC_V1: u32 = 0xDAA3_20A7;
/// Where QUEUEOFFSET sits.
const QUEUE_OFFSET_AT: usize = 20;
/// Where PHYSICALOFFSET sits.
const PHYSICAL_OFFSET_AT: usize = 28;
/// Where STORETIMESTAMP sits.
const STORE_TIMESTAMP_AT: usize = 56;
/// Bytes before the body.
const FIXED_BYTES: usize = 84;

/// SYSFLAG: the body is compressed.
pub const SYSFLAG_COMPRESSED: i32 = 0x1;
/// SYSFLAG: a half (prepared) transactional message.
pub const SYSFLAG_TRANSACTION_PREPARED: i32 = 0x4;
/// SYSFLAG: a committed transactional message.
pub const SYSFLAG_TRANSACTION_COMMIT: i32 = 0x8;

/// The fields of one message record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    /// The queue.
    pub queue_id: i32,
    /// The user's flag.
    pub flag: i32,
    /// The message's index in its queue.
    pub queue_offset: i64,
    /// Where it starts in the CommitLog.
    pub physical_offset: i64,
    /// System flags (transaction state, compression).
    pub sys_flag: i32,
    /// When the producer made it.
    pub born_timestamp: i64,
    /// The producer's address.
    pub born_host: SocketAddrV4,
    /// When the broker stored it.
    pub store_timestamp: i64,
    /// The broker's address.
    pub store_host: SocketAddrV4,
    /// How often it was consumed and handed back.
    pub reconsume_times: i32,
    /// For a committed transactional message, the half message's physical offset.
    pub prepared_transaction_offset: i64,
    /// The body.
    pub body: Bytes,
    /// The topic.
    pub topic: String,
    /// The properties string (see `remoting::properties`).
    pub properties: String,
}

/// Why bytes are not a message record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a message record: {0}")]
pub struct RecordError(pub &'static str);

/// RocketMQ's body checksum: CRC-32 (IEEE) masked to a positive i32.
pub fn body_crc(body: &[u8]) -> u32 {
    crc32fast::hash(body) & 0x7FFF_FFFF
}

impl MessageRecord {
    /// A record with no body, topic or properties, stored by `store_host` (a base to fill).
    pub fn empty(store_host: SocketAddrV4) -> Self {
        Self {
            queue_id: 0,
            flag: 0,
            queue_offset: 0,
            physical_offset: 0,
            sys_flag: 0,
            born_timestamp: 0,
            born_host: store_host,
            store_timestamp: 0,
            store_host,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body: Bytes::new(),
            topic: String::new(),
            properties: String::new(),
        }
    }

    /// The record's size.
    pub fn encoded_len(&self) -> usize {
        FIXED_BYTES + 4 + self.body.len() + 1 + self.topic.len() + 2 + self.properties.len()
    }

    /// Encodes the record; fails when the topic (≤ 127 bytes) or properties (≤ 32767 bytes) do
    /// not fit their length fields.
    pub fn encode(&self) -> Result<Bytes, RecordError> {
        let topic_len = i8::try_from(self.topic.len())
            .map_err(|_| RecordError("topic longer than 127 bytes"))?;
        let properties_len = i16::try_from(self.properties.len())
            .map_err(|_| RecordError("properties longer than 32767 bytes"))?;
        let total =
            i32::try_from(self.encoded_len()).map_err(|_| RecordError("record too large"))?;
        let mut out = BytesMut::with_capacity(self.encoded_len());
        out.put_i32(total);
        out.put_u32(MAGIC_V1);
        out.put_u32(body_crc(&self.body));
        out.put_i32(self.queue_id);
        out.put_i32(self.flag);
        out.put_i64(self.queue_offset);
        out.put_i64(self.physical_offset);
        out.put_i32(self.sys_flag);
        out.put_i64(self.born_timestamp);
        put_host(&mut out, self.born_host);
        out.put_i64(self.store_timestamp);
        put_host(&mut out, self.store_host);
        out.put_i32(self.reconsume_times);
        out.put_i64(self.prepared_transaction_offset);
        out.put_i32(i32::try_from(self.body.len()).unwrap_or(i32::MAX));
        out.put_slice(&self.body);
        out.put_i8(topic_len);
        out.put_slice(self.topic.as_bytes());
        out.put_i16(properties_len);
        out.put_slice(self.properties.as_bytes());
        Ok(out.freeze())
    }

    /// Decodes one record from the front of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let i32_at = |at: usize| -> Result<i32, RecordError> {
            bytes
                .get(at..at + 4)
                .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or(RecordError("cut short"))
        };
        let i64_at = |at: usize| -> Result<i64, RecordError> {
            let b = bytes.get(at..at + 8).ok_or(RecordError("cut short"))?;
            Ok(i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
        };
        let host_at = |at: usize| -> Result<SocketAddrV4, RecordError> {
            let ip = bytes.get(at..at + 4).ok_or(RecordError("cut short"))?;
            let port =
                u16::try_from(i32_at(at + 4)?).map_err(|_| RecordError("port out of range"))?;
            Ok(SocketAddrV4::new([ip[0], ip[1], ip[2], ip[3]].into(), port))
        };
        let total = usize::try_from(i32_at(0)?).map_err(|_| RecordError("negative size"))?;
        if total > bytes.len() || total < FIXED_BYTES + 4 {
            return Err(RecordError("size outside the buffer"));
        }
        if i32_at(4)? as u32 != MAGIC_V1 {
            return Err(RecordError("unknown magic code"));
        }
        let sys_flag = i32_at(36)?;
        if sys_flag & 0x30 != 0 {
            return Err(RecordError("IPv6 hosts are not supported"));
        }
        let body_len = usize::try_from(i32_at(FIXED_BYTES)?)
            .map_err(|_| RecordError("negative body length"))?;
        let body_at = FIXED_BYTES + 4;
        let body =
            bytes.get(body_at..body_at + body_len).ok_or(RecordError("body past the record"))?;
        let topic_at = body_at + body_len;
        let topic_len = usize::from(*bytes.get(topic_at).ok_or(RecordError("cut short"))?);
        let topic = bytes
            .get(topic_at + 1..topic_at + 1 + topic_len)
            .ok_or(RecordError("topic past the record"))?;
        let properties_at = topic_at + 1 + topic_len;
        let properties_len = bytes
            .get(properties_at..properties_at + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            .ok_or(RecordError("cut short"))?;
        let properties = bytes
            .get(properties_at + 2..properties_at + 2 + properties_len)
            .ok_or(RecordError("properties past the record"))?;
        if properties_at + 2 + properties_len != total {
            return Err(RecordError("fields do not add up to the size"));
        }
        Ok(Self {
            queue_id: i32_at(12)?,
            flag: i32_at(16)?,
            queue_offset: i64_at(QUEUE_OFFSET_AT)?,
            physical_offset: i64_at(PHYSICAL_OFFSET_AT)?,
            sys_flag,
            born_timestamp: i64_at(40)?,
            born_host: host_at(48)?,
            store_timestamp: i64_at(STORE_TIMESTAMP_AT)?,
            store_host: host_at(64)?,
            reconsume_times: i32_at(72)?,
            prepared_transaction_offset: i64_at(76)?,
            body: Bytes::copy_from_slice(body),
            topic: String::from_utf8(topic.to_vec())
                .map_err(|_| RecordError("topic is not UTF-8"))?,
            properties: String::from_utf8(properties.to_vec())
                .map_err(|_| RecordError("properties are not UTF-8"))?,
        })
    }
}

/// Writes what only the store knows into a stored record (before it is served).
pub fn stamp(record: &mut [u8], queue_offset: u64, physical_offset: u64, store_timestamp_ms: i64) {
    if record.len() >= FIXED_BYTES {
        record[QUEUE_OFFSET_AT..QUEUE_OFFSET_AT + 8].copy_from_slice(&queue_offset.to_be_bytes());
        record[PHYSICAL_OFFSET_AT..PHYSICAL_OFFSET_AT + 8]
            .copy_from_slice(&physical_offset.to_be_bytes());
        record[STORE_TIMESTAMP_AT..STORE_TIMESTAMP_AT + 8]
            .copy_from_slice(&store_timestamp_ms.to_be_bytes());
    }
}

/// The broker's message id for a record (`offsetMsgId`): store host IPv4, port as 4 bytes,
/// physical offset, 32 upper-case hex digits.
pub fn offset_message_id(store_host: SocketAddrV4, physical_offset: u64) -> String {
    let ip = store_host.ip().octets();
    format!(
        "{:02X}{:02X}{:02X}{:02X}{:08X}{:016X}",
        ip[0],
        ip[1],
        ip[2],
        ip[3],
        u32::from(store_host.port()),
        physical_offset
    )
}

fn put_host(out: &mut BytesMut, host: SocketAddrV4) {
    out.put_slice(&host.ip().octets());
    out.put_i32(i32::from(host.port()));
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn captured() -> MessageRecord {
        let mut properties = String::from("MSG_REGION\u{1}DefaultRegion\u{2}");
        while properties.len() < 136 {
            properties.push('x');
        }
        MessageRecord {
            queue_id: 0,
            flag: 0,
            queue_offset: 0,
            physical_offset: 2540,
            sys_flag: 0,
            born_timestamp: 1_795_507_738_710,
            born_host: "127.0.0.1:47714".parse().unwrap(),
            store_timestamp: 1_795_507_738_715,
            store_host: "127.0.0.1:20911".parse().unwrap(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body: Bytes::from_static(b"ordered-0-0"),
            topic: "CapS4".into(),
            properties,
        }
    }

    #[test]
    fn encodes_byte_for_byte_what_the_reference_broker_served() {
        // The first 105 bytes of a pulled record captured from the reference broker.
        let hex = "000000f3 daa320a7 7c2f8e96 00000000 00000000 0000000000000000 00000000000009ec 00000000 000001a20c99d856 7f000001 0000ba62 000001a20c99d85b 7f000001 000051af 00000000 0000000000000000 0000000b 6f7264657265642d302d30 05 4361705334".replace(' ', "");
        let expected: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let encoded = captured().encode().unwrap();
        assert_eq!(encoded.len(), 243);
        assert_eq!(&encoded[..expected.len()], &expected[..]);
        assert_eq!(&encoded[105..107], &[0x00, 0x88], "properties length 136");
        assert_eq!(MessageRecord::decode(&encoded).unwrap(), captured());
    }

    #[test]
    fn stamping_and_the_offset_message_id_match_the_reference() {
        let mut bytes = captured().encode().unwrap().to_vec();
        stamp(&mut bytes, 7, 726, 42);
        let record = MessageRecord::decode(&bytes).unwrap();
        assert_eq!(
            (record.queue_offset, record.physical_offset, record.store_timestamp),
            (7, 726, 42)
        );
        assert_eq!(
            offset_message_id("127.0.0.1:20911".parse().unwrap(), 726),
            "7F000001000051AF00000000000002D6"
        );
    }

    proptest! {
        #[test]
        fn records_round_trip_and_no_prefix_decodes(body in proptest::collection::vec(any::<u8>(), 0..200), topic in "[a-zA-Z%_]{1,60}", cut in 0usize..400) {
            let record = MessageRecord { body: Bytes::from(body), topic, ..captured() };
            let bytes = record.encode().unwrap();
            prop_assert_eq!(MessageRecord::decode(&bytes).unwrap(), record);
            let cut = cut.min(bytes.len() - 1);
            prop_assert!(MessageRecord::decode(&bytes[..cut]).is_err());
        }
    }
}
