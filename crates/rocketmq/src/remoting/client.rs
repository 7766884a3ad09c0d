//! RemotingClient — one connection to a nameserver or broker: requests out with fresh opaques,
//! responses matched back by opaque (they may arrive out of order), oneway requests unanswered.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, WriteHalf};
use tokio::sync::{Mutex, oneshot};
use twinmq_runtime::Net;

use super::command::RemotingCommand;
use super::frame::try_frame;

/// Largest frame a client accepts.
pub const CLIENT_FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Requests awaiting their response, by opaque; `None` once the connection is closed, so that a
/// request made after that fails at once instead of waiting for ever.
type Waiters = Arc<std::sync::Mutex<Option<BTreeMap<i32, oneshot::Sender<RemotingCommand>>>>>;

/// A connection with requests in flight.
pub struct RemotingClient<N: Net> {
    writer: Mutex<WriteHalf<N::Stream>>,
    waiters: Waiters,
    opaque: AtomicI32,
    reader: tokio::task::JoinHandle<()>,
}

impl<N: Net> std::fmt::Debug for RemotingClient<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemotingClient").finish_non_exhaustive()
    }
}

impl<N: Net> Drop for RemotingClient<N> {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl<N: Net> RemotingClient<N> {
    /// Connects to `addr`; requests the server sends down this connection go to `callbacks`.
    pub async fn connect(
        net: &N,
        addr: &str,
        callbacks: Option<tokio::sync::mpsc::UnboundedSender<RemotingCommand>>,
    ) -> std::io::Result<Self> {
        let stream = net.connect(addr).await?;
        let (mut reader, writer) = tokio::io::split(stream);
        let waiters: Waiters = Arc::new(std::sync::Mutex::new(Some(BTreeMap::new())));
        let pending = Arc::clone(&waiters);
        let reading = tokio::spawn(async move {
            let mut buffer = BytesMut::with_capacity(64 * 1024);
            'reading: loop {
                match reader.read_buf(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                loop {
                    let command = match try_frame(&mut buffer, CLIENT_FRAME_BYTES_MAX) {
                        Ok(Some(frame)) => RemotingCommand::decode(frame).ok(),
                        Ok(None) => break,
                        Err(_) => None,
                    };
                    let Some(command) = command else {
                        tracing::warn!("unreadable frame from the server; closing the connection");
                        break 'reading;
                    };
                    if command.is_response() {
                        let waiter = pending
                            .lock()
                            .ok()
                            .and_then(|mut w| w.as_mut()?.remove(&command.opaque));
                        if let Some(waiter) = waiter {
                            let _ = waiter.send(command);
                        }
                    } else if let Some(callbacks) = &callbacks {
                        let _ = callbacks.send(command);
                    }
                }
            }
            if let Ok(mut waiting) = pending.lock() {
                *waiting = None;
            }
        });
        Ok(Self { writer: Mutex::new(writer), waiters, opaque: AtomicI32::new(0), reader: reading })
    }

    /// Sends a request and waits for its response (`None` if the connection closed first).
    pub async fn request(&self, mut request: RemotingCommand) -> Option<RemotingCommand> {
        request.opaque = self.opaque.fetch_add(1, Ordering::Relaxed);
        let (waiter, answer) = oneshot::channel();
        self.waiters.lock().ok()?.as_mut()?.insert(request.opaque, waiter);
        self.write(&request).await.ok()?;
        answer.await.ok()
    }

    /// Sends a oneway request.
    pub async fn oneway(&self, request: RemotingCommand) -> std::io::Result<()> {
        let mut request = request.oneway();
        request.opaque = self.opaque.fetch_add(1, Ordering::Relaxed);
        self.write(&request).await
    }

    /// Writes raw bytes (tests of bad input).
    pub async fn write_raw(&self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.lock().await.write_all(bytes).await
    }

    /// Whether the server closed the connection.
    pub fn is_closed(&self) -> bool {
        self.reader.is_finished()
    }

    /// Waits until the server closes the connection.
    pub async fn closed(&mut self) {
        let _ = (&mut self.reader).await;
    }

    async fn write(&self, request: &RemotingCommand) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        request.encode_into(&mut out);
        self.writer.lock().await.write_all(&out).await
    }
}
