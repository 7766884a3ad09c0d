//! OffsetIndex — Kafka's sparse map from offset to file position inside one segment.
//!
//! ## Format
//!
//! `<base_offset>.index`: 8-byte entries, big-endian: `relative_offset u32 | position u32`, where
//! `relative_offset = offset - base_offset`, strictly increasing, one entry per
//! `index_interval_bytes` of appended data. Rebuildable; see [`crate::sparse_index`].

use crate::sparse_index::{IndexEntry, SparseIndex};

/// One offset index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetPosition {
    /// Offset minus the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of the entry holding that offset.
    pub position: u32,
}

impl IndexEntry for OffsetPosition {
    const WIDTH: usize = 8;

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }

    fn decode(bytes: &[u8]) -> Self {
        let mut relative = [0; 4];
        let mut position = [0; 4];
        relative.copy_from_slice(&bytes[..4]);
        position.copy_from_slice(&bytes[4..8]);
        Self {
            relative_offset: u32::from_be_bytes(relative),
            position: u32::from_be_bytes(position),
        }
    }
}

/// The sparse offset index of one segment.
pub type OffsetIndex<F> = SparseIndex<F, OffsetPosition>;

/// The position to start scanning from for `relative_offset`: the last entry at or below it.
pub fn floor_position(entries: &[OffsetPosition], relative_offset: u32) -> u32 {
    let after = entries.partition_point(|e| e.relative_offset <= relative_offset);
    after.checked_sub(1).and_then(|i| entries.get(i)).map_or(0, |e| e.position)
}

/// Whether `entries` are strictly increasing in both fields and point below `data_bytes`.
pub fn is_consistent(entries: &[OffsetPosition], data_bytes: u64) -> bool {
    entries
        .windows(2)
        .all(|w| w[0].relative_offset < w[1].relative_offset && w[0].position < w[1].position)
        && entries.last().is_none_or(|e| u64::from(e.position) < data_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_finds_the_last_entry_at_or_below() {
        let entries = [
            OffsetPosition { relative_offset: 10, position: 400 },
            OffsetPosition { relative_offset: 20, position: 800 },
        ];
        assert_eq!(floor_position(&entries, 0), 0);
        assert_eq!(floor_position(&entries, 10), 400);
        assert_eq!(floor_position(&entries, 19), 400);
        assert_eq!(floor_position(&entries, 99), 800);
        assert!(is_consistent(&entries, 801));
        assert!(!is_consistent(&entries, 800));
    }
}
