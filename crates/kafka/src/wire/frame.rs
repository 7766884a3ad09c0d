//! Frames: a big-endian i32 size, then that many bytes (request header and body).

use bytes::{Buf, Bytes, BytesMut};

/// Why a frame cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The size prefix is negative.
    #[error("negative frame size {0}")]
    NegativeSize(i32),
    /// The size prefix exceeds the broker's limit (`socket.request.max.bytes`).
    #[error("frame of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// The announced size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

/// Takes one whole frame's payload off the front of `buffer`, or `None` until it has arrived.
pub fn try_frame(buffer: &mut BytesMut, limit: usize) -> Result<Option<Bytes>, FrameError> {
    if buffer.len() < 4 {
        return Ok(None);
    }
    let announced = i32::from_be_bytes([buffer[0], buffer[1], buffer[2], buffer[3]]);
    let size = usize::try_from(announced).map_err(|_| FrameError::NegativeSize(announced))?;
    if size > limit {
        return Err(FrameError::TooLarge { size, limit });
    }
    if buffer.len() < 4 + size {
        buffer.reserve(4 + size - buffer.len());
        return Ok(None);
    }
    buffer.advance(4);
    Ok(Some(buffer.split_to(size).freeze()))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn waits_for_the_whole_frame_then_takes_exactly_it() {
        let mut buffer = BytesMut::from(&[0, 0, 0, 3, b'a', b'b'][..]);
        assert_eq!(try_frame(&mut buffer, 100), Ok(None));
        buffer.extend_from_slice(b"cd");
        assert_eq!(try_frame(&mut buffer, 100), Ok(Some(Bytes::from_static(b"abc"))));
        assert_eq!(&buffer[..], b"d");
    }

    #[test]
    fn refuses_negative_and_oversized_frames() {
        let mut negative = BytesMut::from(&(-5i32).to_be_bytes()[..]);
        assert_eq!(try_frame(&mut negative, 100), Err(FrameError::NegativeSize(-5)));
        let mut large = BytesMut::from(&101i32.to_be_bytes()[..]);
        assert_eq!(try_frame(&mut large, 100), Err(FrameError::TooLarge { size: 101, limit: 100 }));
    }

    proptest! {
        #[test]
        fn any_split_of_a_frame_stream_yields_the_same_frames(
            frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..50), 0..10),
            cut in 0usize..600,
        ) {
            let mut wire = Vec::new();
            for frame in &frames {
                wire.extend_from_slice(&(frame.len() as i32).to_be_bytes());
                wire.extend_from_slice(frame);
            }
            let cut = cut.min(wire.len());
            let mut buffer = BytesMut::from(&wire[..cut]);
            let mut seen = Vec::new();
            while let Some(frame) = try_frame(&mut buffer, 64).unwrap() {
                seen.push(frame.to_vec());
            }
            buffer.extend_from_slice(&wire[cut..]);
            while let Some(frame) = try_frame(&mut buffer, 64).unwrap() {
                seen.push(frame.to_vec());
            }
            prop_assert_eq!(seen, frames);
            prop_assert!(buffer.is_empty());
        }
    }
}
