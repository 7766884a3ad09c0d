//! Connection — one client socket: frames in, responses out, in order.
//!
//! Responses are buffered and written when no further request is already waiting in the read
//! buffer, so a pipelining client gets many responses per write.

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::frame::{FrameError, try_frame};

/// Bytes read from the socket at a time, at least.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Why a connection ends badly.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The peer sent a frame the broker refuses.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The socket failed.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed in the middle of a frame.
    #[error("peer closed the connection mid-frame ({0} bytes unread)")]
    TruncatedFrame(usize),
}

/// A framed Kafka connection over any byte stream.
#[derive(Debug)]
pub struct Connection<S> {
    stream: S,
    read: BytesMut,
    write: BytesMut,
    frame_bytes_max: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Wraps a stream; frames above `frame_bytes_max` end the connection.
    pub fn new(stream: S, frame_bytes_max: usize) -> Self {
        Self {
            stream,
            read: BytesMut::with_capacity(READ_CHUNK_BYTES),
            write: BytesMut::new(),
            frame_bytes_max,
        }
    }

    /// The next frame's payload, or `None` when the peer closed cleanly between frames.
    pub async fn read_frame(&mut self) -> Result<Option<Bytes>, ConnectionError> {
        loop {
            if let Some(frame) = try_frame(&mut self.read, self.frame_bytes_max)? {
                return Ok(Some(frame));
            }
            if self.read.capacity() - self.read.len() < READ_CHUNK_BYTES / 4 {
                self.read.reserve(READ_CHUNK_BYTES);
            }
            if self.stream.read_buf(&mut self.read).await? == 0 {
                if self.read.is_empty() {
                    return Ok(None);
                }
                return Err(ConnectionError::TruncatedFrame(self.read.len()));
            }
        }
    }

    /// Whether a whole frame is already buffered (so a write can wait for its response too).
    pub fn frame_buffered(&self) -> bool {
        self.read.len() >= 4 && {
            let size = i32::from_be_bytes([self.read[0], self.read[1], self.read[2], self.read[3]]);
            usize::try_from(size).is_ok_and(|size| self.read.len() >= 4 + size)
        }
    }

    /// Queues one frame (the size prefix is added here).
    pub fn queue(&mut self, payload: &[u8]) {
        self.write.reserve(4 + payload.len());
        self.write.put_i32(i32::try_from(payload.len()).unwrap_or(i32::MAX));
        self.write.extend_from_slice(payload);
    }

    /// Queues one frame whose payload comes in parts.
    pub fn queue_parts(&mut self, parts: &[&[u8]]) {
        let size: usize = parts.iter().map(|p| p.len()).sum();
        self.write.reserve(4 + size);
        self.write.put_i32(i32::try_from(size).unwrap_or(i32::MAX));
        for part in parts {
            self.write.extend_from_slice(part);
        }
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), ConnectionError> {
        if !self.write.is_empty() {
            self.stream.write_all(&self.write).await?;
            self.write.clear();
            self.stream.flush().await?;
        }
        Ok(())
    }

    /// Closes the write side after writing what is queued.
    pub async fn shutdown(&mut self) -> Result<(), ConnectionError> {
        self.flush().await?;
        self.stream.shutdown().await?;
        Ok(())
    }
}
