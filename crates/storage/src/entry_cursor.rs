//! EntryCursor — walks the whole entries of a [`Segment`] from a position, reading the file a
//! window at a time rather than twice per entry (once for the length, once for the rest).
//!
//! On a mapped file a window is a slice of the map, so its size costs nothing; on any other
//! file it bounds both the bytes copied for one call and the number of reads.

use bytes::Bytes;
use twinmq_runtime::Fs;

use crate::entry::{self, Decoded, ENTRY_HEADER_BYTES, Entry};
use crate::error::{Result, StorageError};
use crate::segment::Segment;

/// The least a cursor reads at once: a few typical entries.
pub const READ_WINDOW_MIN_BYTES: u64 = 4 << 10;

/// The most a cursor reads at once, unless one entry is larger.
pub const READ_WINDOW_MAX_BYTES: u64 = 1 << 20;

/// Reads entries one after another from a segment.
#[derive(Debug)]
pub struct EntryCursor {
    position: u64,
    window_start: u64,
    window: Bytes,
    window_bytes: u64,
}

impl EntryCursor {
    /// A cursor at `position` (an entry boundary) that reads about `window_bytes` at a time,
    /// clamped to [`READ_WINDOW_MIN_BYTES`, `READ_WINDOW_MAX_BYTES`]. It holds no borrow of
    /// the segment, which each step is given, so its owner may change between steps.
    pub fn new(position: u64, window_bytes: u64) -> Self {
        Self {
            position,
            window_start: position,
            window: Bytes::new(),
            window_bytes: window_bytes.clamp(READ_WINDOW_MIN_BYTES, READ_WINDOW_MAX_BYTES),
        }
    }

    /// The position of the next entry.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The next whole entry (padding included) and its position; `None` at the written end.
    /// Anything below the written end that is not a whole entry is [`StorageError::Corrupt`].
    pub fn next_entry<F: Fs>(&mut self, segment: &Segment<F>) -> Result<Option<(u64, Entry)>> {
        let written = segment.position_written();
        if self.position >= written {
            return Ok(None);
        }
        let mut wanted = self.window_bytes;
        let mut last = None;
        for _ in 0..3 {
            if let Some(rest) = self.rest() {
                let window_end = self.window_start + self.window.len() as u64;
                match entry::decode(&rest) {
                    Decoded::Entry(found) => {
                        let at = self.position;
                        self.position += found.size;
                        return Ok(Some((at, found)));
                    }
                    // The window may end inside this entry; read again from it.
                    Decoded::Incomplete { claimed } if window_end < written => {
                        wanted = wanted.max(claimed);
                    }
                    other if window_end < written && self.window_start != self.position => {
                        last = Some(other);
                    }
                    other => return Err(self.corrupt(segment, &other)),
                }
            }
            let len = (written - self.position).min(wanted.max(ENTRY_HEADER_BYTES as u64));
            self.window = segment.read(self.position, len)?;
            self.window_start = self.position;
        }
        Err(self.corrupt(segment, &last.unwrap_or(Decoded::Incomplete { claimed: wanted })))
    }

    /// The bytes in `[from, to)` of `segment`: a slice of the last window read when it holds
    /// them, else read.
    pub fn bytes<F: Fs>(&self, segment: &Segment<F>, from: u64, to: u64) -> Result<Bytes> {
        let start = from.checked_sub(self.window_start).and_then(|s| usize::try_from(s).ok());
        let end = to.checked_sub(self.window_start).and_then(|e| usize::try_from(e).ok());
        match (start, end) {
            (Some(start), Some(end)) if start <= end && end <= self.window.len() => {
                Ok(self.window.slice(start..end))
            }
            _ => segment.read(from, to.saturating_sub(from)),
        }
    }

    /// The window from the cursor's position on, if the window covers it.
    fn rest(&self) -> Option<Bytes> {
        let offset = usize::try_from(self.position.checked_sub(self.window_start)?).ok()?;
        (offset < self.window.len()).then(|| self.window.slice(offset..))
    }

    fn corrupt<F: Fs>(&self, segment: &Segment<F>, decoded: &Decoded) -> StorageError {
        StorageError::Corrupt {
            path: segment.path().to_owned(),
            position: self.position,
            reason: format!("no whole entry below the written end: {decoded:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::NewEntry;
    use crate::segment::file_name;
    use proptest::prelude::*;
    use twinmq_runtime::{File, OpenMode, RealFs};

    fn segment_of(dir: &std::path::Path, sizes: &[usize]) -> (Segment<RealFs>, Vec<u64>) {
        let path = dir.join(file_name(0, "log"));
        let mut segment = Segment::create(&RealFs, path, 0, 1 << 24, true).unwrap();
        let mut positions = Vec::new();
        for (offset, size) in sizes.iter().enumerate() {
            let payload = vec![offset as u8; *size];
            let mut buffer = Vec::new();
            NewEntry { record_count: 1, timestamp_ms: 7, key: None, payload: &payload }
                .encode_into(offset as u64, &mut buffer);
            positions.push(segment.append(&buffer).unwrap());
        }
        (segment, positions)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the entry sizes and the window, the cursor yields every entry once, in
        /// order, at its position, and the bytes it hands out are the file's.
        #[test]
        fn yields_every_entry_whatever_the_window(
            sizes in prop::collection::vec(0usize..12_000, 1..40),
            window in 0u64..20_000,
            start in 0usize..40,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let (segment, positions) = segment_of(dir.path(), &sizes);
            let start = start % sizes.len();
            let mut cursor = EntryCursor::new(positions[start], window);
            let mut seen = Vec::new();
            while let Some((position, entry)) = cursor.next_entry(&segment).unwrap() {
                prop_assert_eq!(entry.payload.len(), sizes[entry.offset as usize]);
                seen.push((position, entry.offset));
            }
            let expected: Vec<(u64, u64)> =
                positions.iter().copied().zip(0u64..).skip(start).collect();
            prop_assert_eq!(seen, expected);
            let whole = segment.read(positions[start], segment.position_written() - positions[start]);
            prop_assert_eq!(
                cursor.bytes(&segment, positions[start], segment.position_written()).unwrap(),
                whole.unwrap()
            );
        }
    }

    #[test]
    fn garbage_below_the_written_end_is_corrupt_not_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let (segment, positions) = segment_of(dir.path(), &[100, 5_000, 100]);
        let file = RealFs.open(segment.path(), OpenMode::ReadWrite).unwrap();
        file.write_all_at(positions[1], &[0; 12]).unwrap();
        let mut cursor = EntryCursor::new(0, 0);
        assert_eq!(cursor.next_entry(&segment).unwrap().map(|(p, _)| p), Some(0));
        let error = cursor.next_entry(&segment).unwrap_err();
        assert!(
            matches!(error, StorageError::Corrupt { position, .. } if position == positions[1])
        );
    }
}
