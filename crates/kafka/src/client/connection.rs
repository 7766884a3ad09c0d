//! ClientConnection — one connection to a Kafka broker: typed requests out, typed responses
//! back, one at a time, each with its correlation id checked.

use bytes::BytesMut;
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use twinmq_runtime::Net;

use crate::wire::Connection;
use crate::wire::connection::ConnectionError;

/// Largest response a client accepts.
pub const RESPONSE_BYTES_MAX: usize = 256 * 1024 * 1024;

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
    /// The response answers another request.
    #[error("correlation id {got}, expected {expected}")]
    Correlation {
        /// Expected.
        expected: i32,
        /// Received.
        got: i32,
    },
}

/// A connection to one broker.
pub struct ClientConnection<N: Net> {
    connection: Connection<N::Stream>,
    correlation_id: i32,
    client_id: String,
}

impl<N: Net> std::fmt::Debug for ClientConnection<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConnection")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl<N: Net> ClientConnection<N> {
    /// Connects to `addr` (`host:port`).
    pub async fn connect(net: &N, addr: &str, client_id: &str) -> Result<Self, ClientError> {
        let stream = net
            .connect(addr)
            .await
            .map_err(|source| ClientError::Connect { addr: addr.to_owned(), source })?;
        Ok(Self {
            connection: Connection::new(stream, RESPONSE_BYTES_MAX),
            correlation_id: 0,
            client_id: client_id.to_owned(),
        })
    }

    /// Sends `request` at `version` without waiting for a response (Produce with acks=0, which
    /// the broker never answers).
    pub async fn send_without_response<R: Request>(
        &mut self,
        version: i16,
        request: &R,
    ) -> Result<(), ClientError> {
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
        self.connection.flush().await?;
        Ok(())
    }

    /// Sends `request` at `version` and waits for its response.
    pub async fn send<R: Request>(
        &mut self,
        version: i16,
        request: &R,
    ) -> Result<R::Response, ClientError> {
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
        self.connection.flush().await?;
        let mut frame = self.connection.read_frame().await?.ok_or(ClientError::Closed)?;
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
}
