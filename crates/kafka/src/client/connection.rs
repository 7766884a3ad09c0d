//! ClientConnection — one connection to a Kafka broker: typed requests out, typed responses
//! back, one at a time, each with its correlation id checked.

use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use twinmq_runtime::Net;

use crate::wire::Connection;
use crate::wire::connection::ConnectionError;

/// Largest response a client accepts.
pub const RESPONSE_BYTES_MAX: usize = 256 * 1024 * 1024;
/// `request.timeout.ms` unless the caller says otherwise (Kafka's default).
pub const REQUEST_TIMEOUT_MS: u64 = 30_000;

/// Why a request failed on the client side.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting failed.
    #[error("connect to {addr}: {source}")]
    Connect {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The connection failed or closed.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// The broker closed the connection instead of answering.
    #[error("the broker closed the connection")]
    Closed,
    /// A message did not encode or decode.
    #[error("codec: {0}")]
    Codec(String),
    /// The cluster's metadata names no such broker.
    #[error("no broker {0} in the metadata")]
    UnknownNode(i32),
    /// The broker answered with an error code.
    #[error("the broker answered with error {0}")]
    Broker(i16),
    /// No answer (or no connection) within the request timeout; the connection is dropped.
    #[error("no answer from {addr} within {timeout_ms} ms")]
    TimedOut {
        /// The broker's address.
        addr: String,
        /// The timeout.
        timeout_ms: u64,
    },
    /// The response answers another request.
    #[error("correlation id {got}, expected {expected}")]
    Correlation {
        /// Expected.
        expected: i32,
        /// Received.
        got: i32,
    },
}

/// A connection to one broker. Connecting and every request are bounded by its timeout: a peer
/// that went silent (cut off, powered off) costs one timeout, never a hung caller.
pub struct ClientConnection<N: Net> {
    connection: Connection<N::Stream>,
    correlation_id: i32,
    client_id: String,
    addr: String,
    timeout: Duration,
    /// A request timed out half-way: what the broker sends next may answer it, so the
    /// connection takes no more requests.
    broken: bool,
}

impl<N: Net> std::fmt::Debug for ClientConnection<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConnection")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl<N: Net> ClientConnection<N> {
    /// Connects to `addr` (`host:port`) with the default request timeout.
    pub async fn connect(net: &N, addr: &str, client_id: &str) -> Result<Self, ClientError> {
        Self::connect_within(net, addr, client_id, Duration::from_millis(REQUEST_TIMEOUT_MS)).await
    }

    /// Connects to `addr`, giving up after `timeout`, which then bounds every request.
    pub async fn connect_within(
        net: &N,
        addr: &str,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let connect = async {
            net.connect(addr)
                .await
                .map_err(|source| ClientError::Connect { addr: addr.to_owned(), source })
        };
        let stream = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| timed_out(addr, timeout))??;
        Ok(Self {
            connection: Connection::new(stream, RESPONSE_BYTES_MAX),
            correlation_id: 0,
            client_id: client_id.to_owned(),
            addr: addr.to_owned(),
            timeout,
            broken: false,
        })
    }

    /// Sends `request` at `version` without waiting for a response (Produce with acks=0, which
    /// the broker never answers).
    pub async fn send_without_response<R: Request>(
        &mut self,
        version: i16,
        request: &R,
    ) -> Result<(), ClientError> {
        self.exchange(version, request, false).await.map(drop)
    }

    /// Sends `request` at `version` and waits for its response.
    pub async fn send<R: Request>(
        &mut self,
        version: i16,
        request: &R,
    ) -> Result<R::Response, ClientError> {
        let mut frame = self.exchange(version, request, true).await?.ok_or(ClientError::Closed)?;
        let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version))
            .map_err(|e| ClientError::Codec(e.to_string()))?;
        if header.correlation_id != self.correlation_id {
            return Err(ClientError::Correlation {
                expected: self.correlation_id,
                got: header.correlation_id,
            });
        }
        R::Response::decode(&mut frame, version).map_err(|e| ClientError::Codec(e.to_string()))
    }

    /// Writes `request` with the next correlation id and, when `answered`, reads the response
    /// frame — all within the timeout, after which the connection is broken.
    async fn exchange<R: Request>(
        &mut self,
        version: i16,
        request: &R,
        answered: bool,
    ) -> Result<Option<bytes::Bytes>, ClientError> {
        if self.broken {
            return Err(ClientError::Closed);
        }
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_string(self.client_id.clone())));
        let mut payload = BytesMut::new();
        header
            .encode(&mut payload, R::header_version(version))
            .and_then(|()| request.encode(&mut payload, version))
            .map_err(|e| ClientError::Codec(e.to_string()))?;
        self.connection.queue(&payload);
        let round_trip = async {
            self.connection.flush().await?;
            if !answered {
                return Ok(None);
            }
            Ok(Some(self.connection.read_frame().await?.ok_or(ClientError::Closed)?))
        };
        let answer = tokio::time::timeout(self.timeout, round_trip)
            .await
            .unwrap_or_else(|_| Err(timed_out(&self.addr, self.timeout)));
        self.broken = matches!(answer, Err(ClientError::TimedOut { .. }));
        answer
    }
}

/// The error of a connect or round trip with `addr` that took longer than `timeout`.
fn timed_out(addr: &str, timeout: Duration) -> ClientError {
    ClientError::TimedOut {
        addr: addr.to_owned(),
        timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
    }
}
