//! The machine's own ceiling: a plain `std::fs` loop writing the same bytes with the same fsync
//! policy as the storage layouts, so their figures can be quoted as a ratio to it.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;

/// How often the ceiling loop fsyncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeilingSync {
    /// Never during the loop (the page cache absorbs it, like an async flush between intervals).
    Never,
    /// After every `records` writes (a group commit of that many appends), and at the end.
    EveryRecords(u64),
}

/// Writes `record_count` records of `record_bytes` each to a new file in `dir`, sequentially,
/// with `sync` as the fsync policy; returns the bytes written.
pub fn sequential_write(
    dir: &Path,
    record_bytes: usize,
    record_count: u64,
    sync: CeilingSync,
) -> io::Result<u64> {
    let path = dir.join("ceiling.dat");
    let mut file = OpenOptions::new().create(true).write(true).truncate(true).open(&path)?;
    let record = vec![0x5a_u8; record_bytes];
    for written in 1..=record_count {
        file.write_all(&record)?;
        if let CeilingSync::EveryRecords(every) = sync
            && written % every.max(1) == 0
        {
            file.sync_data()?;
        }
    }
    if sync != CeilingSync::Never {
        file.sync_data()?;
    }
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(record_bytes as u64 * record_count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_exactly_the_bytes_asked_for_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let written = sequential_write(dir.path(), 100, 37, CeilingSync::EveryRecords(8)).unwrap();
        assert_eq!(written, 3_700);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
