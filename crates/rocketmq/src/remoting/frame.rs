//! Frames: `u32 total length` (bytes after it), `u32` whose top byte is the header's serialize
//! type and whose low 24 bits its length, the header, the body.

use bytes::{Buf, Bytes, BytesMut};

/// One frame split into its parts, not yet decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    /// 0 = JSON, 1 = ROCKETMQ (binary).
    pub serialize_type: u8,
    /// The header bytes.
    pub header: Bytes,
    /// The body bytes (possibly empty).
    pub body: Bytes,
}

/// Why a frame cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The total length exceeds the limit.
    #[error("frame of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// The announced size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The total length cannot hold the header length field.
    #[error("frame of {0} bytes is too short for a header length")]
    TooShort(usize),
    /// The header length exceeds what the frame holds.
    #[error("header of {header} bytes in a frame of {frame}")]
    HeaderPastFrame {
        /// The announced header length.
        header: usize,
        /// The frame's length.
        frame: usize,
    },
}

/// Takes one whole frame off the front of `buffer`, or `None` until it has arrived.
pub fn try_frame(buffer: &mut BytesMut, limit: usize) -> Result<Option<RawFrame>, FrameError> {
    if buffer.len() < 4 {
        return Ok(None);
    }
    let total = u32::from_be_bytes([buffer[0], buffer[1], buffer[2], buffer[3]]) as usize;
    if total > limit {
        return Err(FrameError::TooLarge { size: total, limit });
    }
    if total < 4 {
        return Err(FrameError::TooShort(total));
    }
    if buffer.len() < 4 + total {
        buffer.reserve(4 + total - buffer.len());
        return Ok(None);
    }
    let mark = u32::from_be_bytes([buffer[4], buffer[5], buffer[6], buffer[7]]);
    let serialize_type = (mark >> 24) as u8;
    let header_len = (mark & 0x00ff_ffff) as usize;
    if header_len > total - 4 {
        return Err(FrameError::HeaderPastFrame { header: header_len, frame: total });
    }
    buffer.advance(8);
    let mut frame = buffer.split_to(total - 4).freeze();
    let header = frame.split_to(header_len);
    Ok(Some(RawFrame { serialize_type, header, body: frame }))
}

/// Appends one frame to `out`.
pub fn put_frame(out: &mut BytesMut, serialize_type: u8, header: &[u8], body: &[u8]) {
    let total = 4 + header.len() + body.len();
    out.reserve(4 + total);
    out.extend_from_slice(&u32::try_from(total).unwrap_or(u32::MAX).to_be_bytes());
    let mark = (u32::from(serialize_type) << 24)
        | (u32::try_from(header.len()).unwrap_or(0) & 0x00ff_ffff);
    out.extend_from_slice(&mark.to_be_bytes());
    out.extend_from_slice(header);
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn splits_header_and_body_and_waits_for_the_rest() {
        let mut wire = BytesMut::new();
        put_frame(&mut wire, 0, b"{\"code\":1}", b"body");
        let mut partial = BytesMut::from(&wire[..10]);
        assert_eq!(try_frame(&mut partial, 1 << 20), Ok(None));
        let frame = try_frame(&mut wire, 1 << 20).unwrap().unwrap();
        assert_eq!(
            (frame.serialize_type, &frame.header[..], &frame.body[..]),
            (0, &b"{\"code\":1}"[..], &b"body"[..])
        );
        assert!(wire.is_empty());
    }

    #[test]
    fn refuses_oversized_short_and_inconsistent_frames() {
        let mut large = BytesMut::from(&2_000u32.to_be_bytes()[..]);
        assert_eq!(
            try_frame(&mut large, 1_000),
            Err(FrameError::TooLarge { size: 2_000, limit: 1_000 })
        );
        let mut short = BytesMut::from(&[0, 0, 0, 2, 0, 0][..]);
        assert_eq!(try_frame(&mut short, 1_000), Err(FrameError::TooShort(2)));
        let mut past = BytesMut::from(&[0, 0, 0, 6, 0, 0, 0, 9, 1, 2][..]);
        assert_eq!(
            try_frame(&mut past, 1_000),
            Err(FrameError::HeaderPastFrame { header: 9, frame: 6 })
        );
    }

    proptest! {
        #[test]
        fn any_split_of_a_frame_stream_yields_the_same_frames(
            frames in proptest::collection::vec((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..40), proptest::collection::vec(any::<u8>(), 0..40)), 0..8),
            cut in 0usize..800,
        ) {
            let mut wire = BytesMut::new();
            for (kind, header, body) in &frames {
                put_frame(&mut wire, *kind, header, body);
            }
            let cut = cut.min(wire.len());
            let mut buffer = BytesMut::from(&wire[..cut]);
            let mut seen = Vec::new();
            while let Some(frame) = try_frame(&mut buffer, 1 << 20).unwrap() {
                seen.push((frame.serialize_type, frame.header.to_vec(), frame.body.to_vec()));
            }
            buffer.extend_from_slice(&wire[cut..]);
            while let Some(frame) = try_frame(&mut buffer, 1 << 20).unwrap() {
                seen.push((frame.serialize_type, frame.header.to_vec(), frame.body.to_vec()));
            }
            prop_assert_eq!(seen, frames);
        }
    }
}
