//! The entry framing both layouts write: a fixed header, an optional key, a payload, and a
//! CRC-32C over all of it, so that recovery can tell a whole entry from a torn or damaged one.
//!
//! ## Format (integers big-endian)
//!
//! ```text
//! 0   offset        u64  Log: offset of the entry's first record; CommitLog: physical offset
//! 8   length        u32  bytes after this field (an entry occupies length + 12 bytes)
//! 12  crc           u32  CRC-32C of bytes [0, 12) and [16, end); a padding entry's end is 34
//! 16  attributes    u16  bit 0: padding (fills the unused end of a fixed-size file)
//! 18  record_count  u32  records the entry holds: offsets offset .. offset + record_count
//! 22  timestamp_ms  i64  the largest record timestamp, milliseconds since the Unix epoch
//! 30  key_length    i32  -1: no key
//! 34  key           key_length bytes
//! ..  payload       the rest
//! ```
//!
//! An all-zero header (offset 0, length 0) marks the clean end of the written data in a
//! preallocated file. Decoding never panics on any input.

use bytes::{BufMut, Bytes};

/// Bytes of the fixed header, before the key.
pub const ENTRY_HEADER_BYTES: usize = 34;
/// Bytes before the `length` field ends: `length` counts what follows.
pub const ENTRY_LENGTH_PREFIX_BYTES: usize = 12;
/// Attribute bit marking a padding entry.
pub const ATTRIBUTE_PADDING: u16 = 1;

/// An entry to append. The `offset` is filled in by the log that appends it.
#[derive(Debug, Clone, Copy)]
pub struct NewEntry<'a> {
    /// Records the payload holds (at least 1).
    pub record_count: u32,
    /// The largest record timestamp, ms since the Unix epoch.
    pub timestamp_ms: i64,
    /// The compaction key, if any.
    pub key: Option<&'a [u8]>,
    /// Opaque bytes: a Kafka RecordBatch, a RocketMQ message body, ...
    pub payload: &'a [u8],
}

impl NewEntry<'_> {
    /// The encoded size of this entry.
    pub fn encoded_len(&self) -> usize {
        ENTRY_HEADER_BYTES + self.key.map_or(0, <[u8]>::len) + self.payload.len()
    }

    /// Appends the encoded entry, stamped with `offset`, to `buffer`.
    pub fn encode_into(&self, offset: u64, buffer: &mut Vec<u8>) {
        let start = buffer.len();
        let length = u32::try_from(self.encoded_len() - ENTRY_LENGTH_PREFIX_BYTES)
            .expect("callers bound entries by entry_bytes_max, far below 4 GiB");
        buffer.reserve(self.encoded_len());
        buffer.put_u64(offset);
        buffer.put_u32(length);
        buffer.put_u32(0);
        buffer.put_u16(0);
        buffer.put_u32(self.record_count);
        buffer.put_i64(self.timestamp_ms);
        match self.key {
            Some(key) => {
                buffer.put_i32(i32::try_from(key.len()).expect("key bounded by entry_bytes_max"));
                buffer.put_slice(key);
            }
            None => buffer.put_i32(-1),
        }
        buffer.put_slice(self.payload);
        let crc = crc_of(&buffer[start..]);
        buffer[start + 12..start + 16].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Encodes a padding entry at `offset` that claims `total_bytes` (≥ [`ENTRY_HEADER_BYTES`]);
/// only its header is written, the rest of the claimed bytes are left as they are.
pub fn encode_padding(offset: u64, total_bytes: u64) -> Vec<u8> {
    debug_assert!(total_bytes >= ENTRY_HEADER_BYTES as u64);
    let length = u32::try_from(total_bytes - ENTRY_LENGTH_PREFIX_BYTES as u64).unwrap_or(u32::MAX);
    let mut buffer = Vec::with_capacity(ENTRY_HEADER_BYTES);
    buffer.put_u64(offset);
    buffer.put_u32(length);
    buffer.put_u32(0);
    buffer.put_u16(ATTRIBUTE_PADDING);
    buffer.put_u32(0);
    buffer.put_i64(0);
    buffer.put_i32(-1);
    let crc = crc_of(&buffer);
    buffer[12..16].copy_from_slice(&crc.to_be_bytes());
    buffer
}

/// A whole, checksummed entry read back. `key` and `payload` share the read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Log: offset of the first record; CommitLog: physical offset.
    pub offset: u64,
    /// Records in the entry.
    pub record_count: u32,
    /// The largest record timestamp, ms.
    pub timestamp_ms: i64,
    /// The compaction key, if any.
    pub key: Option<Bytes>,
    /// The entry's payload.
    pub payload: Bytes,
    /// Bytes the entry occupies on disk.
    pub size: u64,
    /// Whether this is a padding entry.
    pub padding: bool,
}

impl Entry {
    /// The offset after this entry's last record.
    pub fn next_offset(&self) -> u64 {
        self.offset + u64::from(self.record_count)
    }
}

/// What [`decode`] found at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A whole entry with a valid checksum.
    Entry(Entry),
    /// An all-zero header: the clean end of the written data.
    End,
    /// The entry runs past the bytes available: a torn tail, or the end of a file.
    Incomplete {
        /// Bytes the header claims the entry occupies.
        claimed: u64,
    },
    /// The bytes are not a valid entry.
    Corrupt(String),
}

/// Decodes the entry at the start of `buffer`. Never panics, whatever the bytes.
pub fn decode(buffer: &Bytes) -> Decoded {
    let Some(prefix) = buffer.get(..ENTRY_LENGTH_PREFIX_BYTES) else {
        return if buffer.iter().all(|b| *b == 0) {
            Decoded::End
        } else {
            Decoded::Incomplete { claimed: ENTRY_HEADER_BYTES as u64 }
        };
    };
    let offset = be_u64(prefix, 0);
    let length = be_u32(prefix, 8);
    if length == 0 {
        return if offset == 0 { Decoded::End } else { Decoded::Corrupt("zero length".into()) };
    }
    let claimed = u64::from(length) + ENTRY_LENGTH_PREFIX_BYTES as u64;
    if claimed < ENTRY_HEADER_BYTES as u64 {
        return Decoded::Corrupt(format!("length {length} is shorter than a header"));
    }
    let Some(header) = buffer.get(..ENTRY_HEADER_BYTES) else {
        return Decoded::Incomplete { claimed };
    };
    let stored_crc = be_u32(header, 12);
    let attributes = u16::from_be_bytes([header[16], header[17]]);
    let padding = attributes & ATTRIBUTE_PADDING != 0;
    if padding {
        return if crc_of(header) == stored_crc {
            Decoded::Entry(Entry {
                offset,
                record_count: 0,
                timestamp_ms: 0,
                key: None,
                payload: Bytes::new(),
                size: claimed,
                padding: true,
            })
        } else {
            Decoded::Corrupt("padding header checksum mismatch".into())
        };
    }
    let Ok(claimed_usize) = usize::try_from(claimed) else {
        return Decoded::Corrupt(format!("length {length} does not fit in memory"));
    };
    let Some(whole) = buffer.get(..claimed_usize) else {
        return Decoded::Incomplete { claimed };
    };
    let computed = crc_of(whole);
    if computed != stored_crc {
        return Decoded::Corrupt(format!(
            "checksum mismatch: stored {stored_crc:#010x}, computed {computed:#010x}"
        ));
    }
    let record_count = be_u32(header, 18);
    let timestamp_ms = be_u64(header, 22) as i64;
    let key_length = be_u32(header, 30) as i32;
    let (key, payload_start) = match usize::try_from(key_length) {
        Err(_) if key_length == -1 => (None, ENTRY_HEADER_BYTES),
        Err(_) => return Decoded::Corrupt(format!("key length {key_length}")),
        Ok(key_length) if ENTRY_HEADER_BYTES + key_length > claimed_usize => {
            return Decoded::Corrupt(format!("key length {key_length} passes the entry's end"));
        }
        Ok(key_length) => (
            Some(buffer.slice(ENTRY_HEADER_BYTES..ENTRY_HEADER_BYTES + key_length)),
            ENTRY_HEADER_BYTES + key_length,
        ),
    };
    Decoded::Entry(Entry {
        offset,
        record_count,
        timestamp_ms,
        key,
        payload: buffer.slice(payload_start..claimed_usize),
        size: claimed,
        padding: false,
    })
}

/// CRC-32C of an encoded entry (or padding header), skipping the crc field itself.
fn crc_of(encoded: &[u8]) -> u32 {
    let head = encoded.get(..12).unwrap_or(encoded);
    let tail = encoded.get(16..).unwrap_or(&[]);
    crc32c::crc32c_append(crc32c::crc32c(head), tail)
}

fn be_u64(bytes: &[u8], at: usize) -> u64 {
    let mut raw = [0; 8];
    raw.copy_from_slice(&bytes[at..at + 8]);
    u64::from_be_bytes(raw)
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    let mut raw = [0; 4];
    raw.copy_from_slice(&bytes[at..at + 4]);
    u32::from_be_bytes(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encoded(offset: u64, key: Option<&[u8]>, payload: &[u8]) -> Vec<u8> {
        let mut buffer = Vec::new();
        NewEntry { record_count: 3, timestamp_ms: 1_700_000_000_000, key, payload }
            .encode_into(offset, &mut buffer);
        buffer
    }

    #[test]
    fn round_trips_an_entry_with_and_without_key() {
        for key in [None, Some(&b"k1"[..]), Some(&b""[..])] {
            let bytes = Bytes::from(encoded(42, key, b"hello"));
            let Decoded::Entry(entry) = decode(&bytes) else { panic!("not decoded") };
            assert_eq!(entry.offset, 42);
            assert_eq!(entry.record_count, 3);
            assert_eq!(entry.next_offset(), 45);
            assert_eq!(entry.key.as_deref(), key);
            assert_eq!(&entry.payload[..], b"hello");
            assert_eq!(entry.size, bytes.len() as u64);
        }
    }

    #[test]
    fn zeros_are_the_clean_end_and_padding_round_trips() {
        assert_eq!(decode(&Bytes::from(vec![0; 100])), Decoded::End);
        assert_eq!(decode(&Bytes::new()), Decoded::End);
        let padding = encode_padding(4096, 1000);
        let Decoded::Entry(entry) = decode(&Bytes::from(padding)) else { panic!() };
        assert!(entry.padding);
        assert_eq!(entry.size, 1000);
    }

    proptest! {
        #[test]
        fn every_prefix_is_incomplete_and_every_bit_flip_is_caught(
            payload in proptest::collection::vec(any::<u8>(), 0..200),
            cut_seed in any::<usize>(),
            flip_seed in any::<usize>(),
        ) {
            let whole = encoded(7, Some(b"key"), &payload);
            let cut = cut_seed % whole.len();
            let decoded = decode(&Bytes::copy_from_slice(&whole[..cut]));
            prop_assert!(
                matches!(decoded, Decoded::Incomplete { .. } | Decoded::End),
                "prefix of {} bytes decoded as {:?}", cut, decoded
            );
            let mut flipped = whole.clone();
            let bit = flip_seed % (flipped.len() * 8);
            flipped[bit / 8] ^= 1 << (bit % 8);
            let decoded = decode(&Bytes::from(flipped));
            prop_assert!(!matches!(decoded, Decoded::Entry(_)), "flipped bit {} still decoded", bit);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&Bytes::from(bytes));
        }
    }
}
