//! The network seam: bind, accept and connect, returning plain async byte streams.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

/// A TCP network: tokio's on a real machine, turmoil's in a simulation.
pub trait Net: Clone + Send + Sync + 'static {
    /// A connected byte stream.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// A bound listener that accepts [`Net::Stream`]s.
    type Listener: Listener<Stream = Self::Stream>;

    /// Binds a listener to `addr` (port 0 picks a free port).
    fn bind(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Listener>> + Send;

    /// Connects to `addr`, given as `host:port` (a simulated host name or an IP address).
    fn connect(&self, addr: &str) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// A bound TCP listener.
pub trait Listener: Send + Sync + 'static {
    /// The stream type accepted connections arrive as.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Waits for the next connection.
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;

    /// The address this listener is bound to (with the port the system picked for port 0).
    fn local_addr(&self) -> io::Result<SocketAddr>;
}
