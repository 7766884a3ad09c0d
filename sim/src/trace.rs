//! The event trace of a simulated run and its running hash.

/// A running FNV-1a hash of every event line a run records, plus the lines themselves when
/// asked for. Two runs of one seed must produce the same hash.
#[derive(Debug, Clone)]
pub struct TraceHash {
    hash: u64,
    event_count: u64,
    lines: Option<Vec<String>>,
}

impl TraceHash {
    /// An empty trace; `keep_lines` keeps every line for printing (`--trace`).
    pub fn new(keep_lines: bool) -> Self {
        Self { hash: 0xcbf2_9ce4_8422_2325, event_count: 0, lines: keep_lines.then(Vec::new) }
    }

    /// Records one event line.
    pub fn record(&mut self, line: String) {
        for byte in line.as_bytes().iter().chain(b"\n") {
            self.hash = (self.hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
        self.event_count += 1;
        if let Some(lines) = &mut self.lines {
            lines.push(line);
        }
    }

    /// The hash of every line so far.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// How many events were recorded.
    pub fn event_count(&self) -> u64 {
        self.event_count
    }

    /// The recorded lines, if kept.
    pub fn lines(&self) -> &[String] {
        self.lines.as_deref().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_every_line_and_its_order() {
        let mut a = TraceHash::new(false);
        let mut b = TraceHash::new(true);
        let mut c = TraceHash::new(false);
        for line in ["append 0", "durable 1"] {
            a.record(line.into());
            b.record(line.into());
        }
        c.record("durable 1".into());
        c.record("append 0".into());
        assert_eq!(a.hash(), b.hash());
        assert_ne!(a.hash(), c.hash());
        assert_eq!(b.lines().len(), 2);
    }
}
