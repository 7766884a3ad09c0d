//! ApiVersions (18): the table of served versions (see `wire::versions`).

use bytes::BytesMut;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, ResponseHeader};
use kafka_protocol::protocol::Encodable;
use twinmq_runtime::Env;

use super::Reply;
use crate::server::BrokerContext;
use crate::wire::SUPPORTED_APIS;

/// Answers with every API and version range twinmq serves.
pub async fn handle<E: Env>(
    _context: &BrokerContext<E>,
    _request: ApiVersionsRequest,
    _version: i16,
) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(api_keys())
}

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|(key, min, max)| {
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect()
}

/// A client asked with an ApiVersions version twinmq does not know: answer in v0 with
/// UNSUPPORTED_VERSION and the table, so it retries with one it does (KIP-511).
pub fn unsupported_version(correlation_id: i32) -> Reply {
    let mut out = BytesMut::new();
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let body = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_keys());
    match header.encode(&mut out, 0).and_then(|()| body.encode(&mut out, 0)) {
        Ok(()) => Reply::Frame(out),
        Err(error) => Reply::Close(format!("ApiVersions v0 does not encode: {error}")),
    }
}
