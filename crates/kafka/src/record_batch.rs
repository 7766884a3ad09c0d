//! RecordBatch v2 headers: the broker validates a produced batch and stamps it, and never
//! decompresses it.
//!
//! ## Format (Kafka's message format, magic 2; all integers big-endian)
//!
//! ```text
//!  0 baseOffset i64            stamped by the leader (outside the CRC)
//!  8 batchLength i32           bytes after this field
//! 12 partitionLeaderEpoch i32  stamped by the leader (outside the CRC)
//! 16 magic i8 = 2
//! 17 crc u32                   CRC-32C of bytes 21..end
//! 21 attributes i16            bits 0-2 compression, 3 timestamp type, 4 transactional, 5 control
//! 23 lastOffsetDelta i32
//! 27 baseTimestamp i64
//! 35 maxTimestamp i64
//! 43 producerId i64
//! 51 producerEpoch i16
//! 53 baseSequence i32
//! 57 recordsCount i32
//! 61 records
//! ```

use crate::error::KafkaError;

/// Bytes of a RecordBatch v2 header.
pub const BATCH_HEADER_BYTES: usize = 61;
/// Bytes before `batchLength`'s payload: the base offset and the length itself.
pub const BATCH_LOG_OVERHEAD: usize = 12;
/// The only message format twinmq speaks.
pub const MAGIC_V2: i8 = 2;

/// The header fields of one RecordBatch v2 the broker acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// The offset of the first record, as written by the producer or the leader.
    pub base_offset: i64,
    /// The whole batch's size in bytes (`batchLength + 12`).
    pub size: usize,
    /// The leader epoch the batch was appended in.
    pub partition_leader_epoch: i32,
    /// The attributes (compression, timestamp type, transactional, control).
    pub attributes: i16,
    /// The offset of the last record relative to the first.
    pub last_offset_delta: i32,
    /// The timestamp of the first record.
    pub base_timestamp: i64,
    /// The greatest record timestamp.
    pub max_timestamp: i64,
    /// The idempotent producer's id, or -1.
    pub producer_id: i64,
    /// The idempotent producer's epoch, or -1.
    pub producer_epoch: i16,
    /// The sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// How many records the batch holds.
    pub records_count: i32,
}

impl BatchHeader {
    /// Offsets the batch spans (`lastOffsetDelta + 1`).
    pub fn offset_count(&self) -> u32 {
        u32::try_from(self.last_offset_delta).unwrap_or(0).saturating_add(1)
    }

    /// Whether the batch comes from an idempotent producer.
    pub fn is_idempotent(&self) -> bool {
        self.producer_id >= 0
    }

    /// Whether the batch is part of a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }

    /// Whether the batch is a control batch (transaction marker).
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }

    /// The sequence number of the last record.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        // Sequences wrap at i32::MAX (Kafka DefaultRecordBatch.incrementSequence).
        let last = i64::from(self.base_sequence) + i64::from(self.last_offset_delta);
        i32::try_from(last % (i64::from(i32::MAX) + 1)).unwrap_or(-1)
    }
}

/// Reads the header of the batch at the start of `bytes` without checking its CRC.
pub fn read_header(bytes: &[u8]) -> Result<BatchHeader, KafkaError> {
    if bytes.len() < BATCH_HEADER_BYTES {
        return Err(KafkaError::CorruptBatch(format!(
            "{} bytes left, a batch header needs {BATCH_HEADER_BYTES}",
            bytes.len()
        )));
    }
    let magic = bytes[16] as i8;
    if magic != MAGIC_V2 {
        return Err(KafkaError::UnsupportedMessageFormat(magic));
    }
    let batch_length = i32_at(bytes, 8);
    let size = usize::try_from(batch_length)
        .ok()
        .and_then(|length| length.checked_add(BATCH_LOG_OVERHEAD))
        .filter(|size| *size >= BATCH_HEADER_BYTES)
        .ok_or_else(|| KafkaError::CorruptBatch(format!("batch length {batch_length}")))?;
    let header = BatchHeader {
        base_offset: i64_at(bytes, 0),
        size,
        partition_leader_epoch: i32_at(bytes, 12),
        attributes: i16::from_be_bytes([bytes[21], bytes[22]]),
        last_offset_delta: i32_at(bytes, 23),
        base_timestamp: i64_at(bytes, 27),
        max_timestamp: i64_at(bytes, 35),
        producer_id: i64_at(bytes, 43),
        producer_epoch: i16::from_be_bytes([bytes[51], bytes[52]]),
        base_sequence: i32_at(bytes, 53),
        records_count: i32_at(bytes, 57),
    };
    if header.last_offset_delta < 0 || header.records_count < 0 {
        return Err(KafkaError::CorruptBatch(format!(
            "last offset delta {} with {} records",
            header.last_offset_delta, header.records_count
        )));
    }
    Ok(header)
}

/// Splits a produced record set into whole batches, checking each one's size and CRC-32C.
pub fn validate(records: &[u8]) -> Result<Vec<BatchHeader>, KafkaError> {
    let mut headers = Vec::new();
    let mut rest = records;
    while !rest.is_empty() {
        let header = read_header(rest)?;
        if header.size > rest.len() {
            return Err(KafkaError::CorruptBatch(format!(
                "batch of {} bytes, {} bytes left",
                header.size,
                rest.len()
            )));
        }
        let stored = u32::from_be_bytes([rest[17], rest[18], rest[19], rest[20]]);
        let computed = crc32c::crc32c(&rest[21..header.size]);
        if stored != computed {
            return Err(KafkaError::CorruptBatch(format!(
                "CRC-32C {stored:#010x} stored, {computed:#010x} computed"
            )));
        }
        headers.push(header);
        rest = &rest[header.size..];
    }
    if headers.is_empty() {
        return Err(KafkaError::CorruptBatch("no record batch".into()));
    }
    Ok(headers)
}

/// The key of a batch's only record, for compacted topics: `None` when the batch holds
/// several records, is compressed, or the record has no key.
pub fn single_record_key(batch: &[u8]) -> Option<&[u8]> {
    let header = read_header(batch).ok()?;
    if header.records_count != 1 || header.attributes & 0x07 != 0 {
        return None;
    }
    let mut rest = batch.get(BATCH_HEADER_BYTES..header.size)?;
    let _length = read_varint(&mut rest)?;
    let (_attributes, tail) = rest.split_first()?;
    rest = tail;
    let _timestamp_delta = read_varint(&mut rest)?;
    let _offset_delta = read_varint(&mut rest)?;
    let key_length = usize::try_from(read_varint(&mut rest)?).ok()?;
    rest.get(..key_length)
}

/// A zigzag varint (Kafka's `ByteUtils.readVarlong`).
fn read_varint(bytes: &mut &[u8]) -> Option<i64> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    None
}

/// Stamps the leader's base offset and leader epoch into a batch (both outside its CRC).
pub fn stamp(batch: &mut [u8], base_offset: u64, leader_epoch: i32) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
}

fn array_at<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

fn i32_at(bytes: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(array_at(bytes, at))
}

fn i64_at(bytes: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(array_at(bytes, at))
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };

    use super::*;

    fn batch(producer_id: i64, base_sequence: i32, count: i32) -> BytesMut {
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id,
                producer_epoch: if producer_id < 0 { -1 } else { 0 },
                timestamp_type: TimestampType::Creation,
                offset: i64::from(i),
                // Not idempotent: base sequence -1, same offset-sequence distance throughout.
                sequence: if base_sequence < 0 { i - 1 } else { base_sequence + i },
                timestamp: 1_000 + i64::from(i),
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(format!("value {i}"))),
                headers: Default::default(),
            })
            .collect();
        let mut out = BytesMut::new();
        let options = RecordEncodeOptions { version: 2, compression: Compression::None };
        RecordBatchEncoder::encode(&mut out, &records, &options).unwrap();
        out
    }

    #[test]
    fn reads_what_the_protocol_crate_encodes() {
        let bytes = batch(7, 40, 3);
        let headers = validate(&bytes).unwrap();
        assert_eq!(headers.len(), 1);
        let header = headers[0];
        assert_eq!(header.size, bytes.len());
        assert_eq!((header.offset_count(), header.records_count), (3, 3));
        assert_eq!((header.producer_id, header.base_sequence, header.last_sequence()), (7, 40, 42));
        assert_eq!((header.base_timestamp, header.max_timestamp), (1_000, 1_002));
    }

    #[test]
    fn a_stamped_batch_keeps_its_crc_and_decodes_with_the_new_offsets() {
        let mut bytes = batch(-1, -1, 2);
        stamp(&mut bytes, 500, 9);
        validate(&bytes).unwrap();
        let set = RecordBatchDecoder::decode(&mut bytes.freeze()).unwrap();
        let offsets: Vec<i64> = set.records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [500, 501]);
        assert_eq!(set.records[0].partition_leader_epoch, 9);
    }

    #[test]
    fn a_flipped_bit_or_a_short_batch_is_refused() {
        let bytes = batch(-1, -1, 2);
        for position in [21, 30, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[position] ^= 0x01;
            assert!(matches!(validate(&bad), Err(KafkaError::CorruptBatch(_))), "{position}");
        }
        assert!(validate(&bytes[..bytes.len() - 1]).is_err());
        assert!(validate(&bytes[..10]).is_err());
        assert!(validate(&[]).is_err());
        let mut v1 = bytes.clone();
        v1[16] = 1;
        assert!(matches!(validate(&v1), Err(KafkaError::UnsupportedMessageFormat(1))));
    }

    #[test]
    fn the_key_of_a_single_record_batch_is_found_and_others_have_none() {
        let one = batch(-1, -1, 1);
        assert_eq!(single_record_key(&one), Some(&b"k0"[..]));
        assert_eq!(single_record_key(&batch(-1, -1, 2)), None, "two records");
        assert_eq!(single_record_key(&one[..40]), None, "truncated");
    }

    #[test]
    fn several_batches_split_at_their_boundaries() {
        let mut bytes = batch(-1, -1, 2);
        bytes.extend_from_slice(&batch(-1, -1, 5));
        let headers = validate(&bytes).unwrap();
        let counts: Vec<u32> = headers.iter().map(BatchHeader::offset_count).collect();
        assert_eq!(counts, [2, 5]);
    }
}
