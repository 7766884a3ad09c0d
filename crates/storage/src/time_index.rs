//! TimeIndex — Kafka's sparse map from timestamp to offset inside one segment.
//!
//! ## Format
//!
//! `<base_offset>.timeindex`: 12-byte entries, big-endian: `timestamp_ms i64 | relative_offset
//! u32`: the largest timestamp seen so far in the segment and the relative offset of the entry
//! that carried it, appended alongside offset index entries whenever that largest timestamp
//! grew. Timestamps never decrease along the file. Rebuildable; see [`crate::sparse_index`].

use crate::sparse_index::{IndexEntry, SparseIndex};

/// One time index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    /// The largest timestamp in the segment up to `relative_offset`.
    pub timestamp_ms: i64,
    /// Offset minus the segment's base offset.
    pub relative_offset: u32,
}

impl IndexEntry for TimestampOffset {
    const WIDTH: usize = 12;

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
    }

    fn decode(bytes: &[u8]) -> Self {
        let mut timestamp = [0; 8];
        let mut relative = [0; 4];
        timestamp.copy_from_slice(&bytes[..8]);
        relative.copy_from_slice(&bytes[8..12]);
        Self {
            timestamp_ms: i64::from_be_bytes(timestamp),
            relative_offset: u32::from_be_bytes(relative),
        }
    }
}

/// The sparse time index of one segment.
pub type TimeIndex<F> = SparseIndex<F, TimestampOffset>;

/// The relative offset after which an entry with timestamp ≥ `timestamp_ms` may first appear:
/// every entry up to the returned one has a smaller timestamp. `None`: scan from the start.
pub fn scan_after(entries: &[TimestampOffset], timestamp_ms: i64) -> Option<u32> {
    let below = entries.partition_point(|e| e.timestamp_ms < timestamp_ms);
    below.checked_sub(1).and_then(|i| entries.get(i)).map(|e| e.relative_offset)
}

/// Whether `entries` never decrease in timestamp and increase in offset.
pub fn is_consistent(entries: &[TimestampOffset]) -> bool {
    entries.windows(2).all(|w| {
        w[0].timestamp_ms <= w[1].timestamp_ms && w[0].relative_offset < w[1].relative_offset
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_after_skips_only_entries_known_to_be_older() {
        let entries = [
            TimestampOffset { timestamp_ms: 100, relative_offset: 5 },
            TimestampOffset { timestamp_ms: 200, relative_offset: 9 },
        ];
        assert_eq!(scan_after(&entries, 50), None);
        assert_eq!(scan_after(&entries, 100), None);
        assert_eq!(scan_after(&entries, 150), Some(5));
        assert_eq!(scan_after(&entries, 201), Some(9));
        assert!(is_consistent(&entries));
    }
}
