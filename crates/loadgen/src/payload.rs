//! Payload — the body of a generated message. Its first bytes say which run and producer sent
//! it, its sequence number and when it was sent, so a consumer (in this process) can measure
//! produce→consume latency, ignore messages of other runs, and count each message once.
//!
//! ## Format
//! `run_id u64 | sent_us u64 | producer u32 | sequence u32 | filler`, big-endian, filler `x`
//! bytes up to the configured size. `sent_us` counts from the run's start (the
//! [`crate::schedule::Schedule`]), so it needs no clock shared with the broker.

use bytes::{BufMut, Bytes, BytesMut};

/// The stamp's size: the smallest message a run can send.
pub const HEADER_BYTES: usize = 24;

/// What a body's stamp says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The run that sent it.
    pub run_id: u64,
    /// Microseconds from the run's start to the send.
    pub sent_us: u64,
    /// The producer's index.
    pub producer: u32,
    /// The producer's sequence number, from 0.
    pub sequence: u32,
}

/// Makes one producer's bodies.
#[derive(Debug, Clone)]
pub struct PayloadWriter {
    run_id: u64,
    producer: u32,
    filler: Bytes,
}

impl PayloadWriter {
    /// Bodies of `message_bytes` (at least [`HEADER_BYTES`]) for `producer` of run `run_id`.
    pub fn new(run_id: u64, producer: u32, message_bytes: usize) -> Self {
        let filler = Bytes::from(vec![b'x'; message_bytes.saturating_sub(HEADER_BYTES)]);
        Self { run_id, producer, filler }
    }

    /// The body of message `sequence`, sent at `sent_us`.
    pub fn body(&self, sequence: u32, sent_us: u64) -> Bytes {
        let mut body = BytesMut::with_capacity(HEADER_BYTES + self.filler.len());
        body.put_u64(self.run_id);
        body.put_u64(sent_us);
        body.put_u32(self.producer);
        body.put_u32(sequence);
        body.extend_from_slice(&self.filler);
        body.freeze()
    }

    /// The key of message `sequence`: unique per producer, so keyed messages spread evenly.
    pub fn key(&self, sequence: u32) -> String {
        format!("{}-{sequence}", self.producer)
    }
}

/// The stamp of `body`, if it is long enough to carry one.
pub fn read_stamp(body: &[u8]) -> Option<Stamp> {
    let word = |at: usize| -> Option<u64> {
        Some(u64::from_be_bytes(body.get(at..at + 8)?.try_into().ok()?))
    };
    let half = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(body.get(at..at + 4)?.try_into().ok()?))
    };
    Some(Stamp { run_id: word(0)?, sent_us: word(8)?, producer: half(16)?, sequence: half(20)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_has_the_size_asked_and_its_stamp_reads_back() {
        let writer = PayloadWriter::new(0xfeed, 3, 100);
        let body = writer.body(41, 1_234_567);
        assert_eq!(body.len(), 100);
        assert_eq!(
            read_stamp(&body),
            Some(Stamp { run_id: 0xfeed, sent_us: 1_234_567, producer: 3, sequence: 41 })
        );
        assert_eq!(PayloadWriter::new(1, 0, HEADER_BYTES).body(0, 0).len(), HEADER_BYTES);
        assert_eq!(read_stamp(&body[..HEADER_BYTES - 1]), None);
    }
}
