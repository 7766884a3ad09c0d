//! The remoting server loop shared by the nameserver and the broker: every connection reads
//! frames, hands each request to the processor on its own task (responses may leave out of
//! order, matched by `opaque`; a long-polled pull does not hold up the requests behind it),
//! and writes responses — and the server's own requests to that client — through one writer.
//! A frame or header that does not decode closes that connection only, with a log line.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use twinmq_runtime::{Env, Listener, Net, Shutdown};

use super::command::RemotingCommand;
use super::frame::try_frame;

/// Bytes read from a socket at a time, at least.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Serves one kind of request stream (nameserver or broker).
pub trait Processor: Send + Sync + 'static {
    /// Answers a request; `None` sends nothing (oneway requests are never answered anyway).
    fn process(
        &self,
        request: RemotingCommand,
        peer: &Peer,
    ) -> impl Future<Output = Option<RemotingCommand>> + Send;

    /// A connection closed (a broker forgets the client's channel).
    fn disconnected(&self, _peer: &Peer) {}
}

/// One connected client, as the processor sees it: its address and a way to send it requests
/// (broker callbacks such as NOTIFY_CONSUMER_IDS_CHANGED).
#[derive(Debug, Clone)]
pub struct Peer {
    /// The client's address.
    pub addr: SocketAddr,
    outbound: mpsc::UnboundedSender<BytesMut>,
    opaque: Arc<AtomicI32>,
}

impl Peer {
    /// Sends a oneway request to the client on its connection, with the server's own opaque.
    pub fn send_oneway(&self, request: RemotingCommand) -> bool {
        let mut request = request.oneway();
        request.opaque = self.opaque.fetch_add(1, Ordering::Relaxed);
        let mut out = BytesMut::new();
        request.encode_into(&mut out);
        self.outbound.send(out).is_ok()
    }

    /// Whether the connection is still open.
    pub fn is_connected(&self) -> bool {
        !self.outbound.is_closed()
    }
}

/// Accepts connections until `shutdown`, serving each with `processor`.
pub async fn serve<E: Env, P: Processor>(
    listener: <E::Net as Net>::Listener,
    processor: Arc<P>,
    frame_bytes_max: usize,
    shutdown: Shutdown,
) {
    let opaque = Arc::new(AtomicI32::new(0));
    loop {
        let accepted = tokio::select! {
            biased;
            () = shutdown.wait() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, addr)) => {
                let (processor, shutdown, opaque) =
                    (Arc::clone(&processor), shutdown.clone(), Arc::clone(&opaque));
                tokio::spawn(connection(
                    stream,
                    addr,
                    processor,
                    frame_bytes_max,
                    shutdown,
                    opaque,
                ));
            }
            Err(error) => tracing::warn!(%error, "accept failed"),
        }
    }
}

async fn connection<S, P>(
    stream: S,
    addr: SocketAddr,
    processor: Arc<P>,
    frame_bytes_max: usize,
    shutdown: Shutdown,
    opaque: Arc<AtomicI32>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    P: Processor,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (outbound, mut queue) = mpsc::unbounded_channel::<BytesMut>();
    let writing = tokio::spawn(async move {
        while let Some(mut frame) = queue.recv().await {
            while let Ok(more) = queue.try_recv() {
                frame.extend_from_slice(&more);
            }
            if writer.write_all(&frame).await.is_err() {
                return;
            }
        }
        let _ = writer.shutdown().await;
    });
    let peer = Peer { addr, outbound, opaque };
    let mut buffer = BytesMut::with_capacity(READ_CHUNK_BYTES);
    'read: loop {
        loop {
            let frame = match try_frame(&mut buffer, frame_bytes_max) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(%addr, %error, "closing connection");
                    break 'read;
                }
            };
            let request = match RemotingCommand::decode(frame) {
                Ok(request) => request,
                Err(error) => {
                    tracing::warn!(%addr, %error, "closing connection");
                    break 'read;
                }
            };
            if request.is_response() {
                continue;
            }
            let (processor, peer) = (Arc::clone(&processor), peer.clone());
            tokio::spawn(async move {
                let oneway = request.is_oneway();
                let opaque = request.opaque;
                if let Some(mut response) = processor.process(request, &peer).await
                    && !oneway
                {
                    response.opaque = opaque;
                    let mut out = BytesMut::new();
                    response.encode_into(&mut out);
                    let _ = peer.outbound.send(out);
                }
            });
        }
        if buffer.capacity() - buffer.len() < READ_CHUNK_BYTES / 4 {
            buffer.reserve(READ_CHUNK_BYTES);
        }
        let read = tokio::select! {
            biased;
            () = shutdown.wait() => break,
            read = reader.read_buf(&mut buffer) => read,
        };
        match read {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) => {
                tracing::debug!(%addr, %error, "read failed");
                break;
            }
        }
    }
    processor.disconnected(&peer);
    drop(peer);
    let _ = writing.await;
}
