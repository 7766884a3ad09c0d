//! Requests in, responses out: one module per Kafka API, each `decode → handle → encode`.
//!
//! A request that cannot be served — an unknown API key, a version outside the advertised range,
//! a header or body that does not decode — closes that one connection with a log line (as Kafka
//! does); ApiVersions at an unknown version gets Kafka's v0 UNSUPPORTED_VERSION answer instead.

mod api_versions;
mod controller_apis;
mod create_topics;
mod delete_topics;
mod fetch;
mod find_coordinator;
pub use find_coordinator::coordinator_of;
mod groups;
mod init_producer_id;
mod list_offsets;
mod metadata;
pub use metadata::CLUSTER_ID;
mod offsets;
mod produce;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{
    Decodable, Encodable, HeaderVersion, StrBytes, decode_request_header_from_buffer,
};
use twinmq_runtime::Env;

use crate::server::BrokerContext;
use crate::wire::versions::is_served;

/// What a connection does with a request.
#[derive(Debug)]
pub enum Reply {
    /// Send this frame payload (header and body).
    Frame(BytesMut),
    /// Send nothing (Produce with acks=0).
    Nothing,
    /// Close the connection, logging why.
    Close(String),
}

/// Serves one request frame.
pub async fn handle<E: Env>(context: &BrokerContext<E>, mut frame: Bytes) -> Reply {
    if frame.len() < 8 {
        return Reply::Close(format!("a {}-byte request has no header", frame.len()));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Ok(api) = ApiKey::try_from(key) else {
        return Reply::Close(format!("unknown API key {key}"));
    };
    if !is_served(api, version) {
        if api == ApiKey::ApiVersions {
            return api_versions::unsupported_version(correlation_id);
        }
        return Reply::Close(format!("{api:?} v{version} is not supported"));
    }
    let header = match decode_request_header_from_buffer(&mut frame) {
        Ok(header) => header,
        Err(error) => return Reply::Close(format!("{api:?} v{version}: bad header: {error}")),
    };
    macro_rules! serve {
        ($request:ty, $handler:path) => {
            match <$request>::decode(&mut frame, version) {
                Ok(request) => respond(&header, version, $handler(context, request, version).await),
                Err(error) => Reply::Close(format!("{api:?} v{version}: malformed: {error}")),
            }
        };
    }
    match api {
        ApiKey::ApiVersions => serve!(ApiVersionsRequest, api_versions::handle),
        ApiKey::Metadata => serve!(MetadataRequest, metadata::handle),
        ApiKey::CreateTopics => serve!(CreateTopicsRequest, create_topics::handle),
        ApiKey::DeleteTopics => serve!(DeleteTopicsRequest, delete_topics::handle),
        ApiKey::Produce => match ProduceRequest::decode(&mut frame, version) {
            Ok(request) => match produce::handle(context, request, version).await {
                Some(response) => respond(&header, version, response),
                None => Reply::Nothing,
            },
            Err(error) => Reply::Close(format!("Produce v{version}: malformed: {error}")),
        },
        ApiKey::Fetch => serve!(FetchRequest, fetch::handle),
        ApiKey::ListOffsets => serve!(ListOffsetsRequest, list_offsets::handle),
        ApiKey::InitProducerId => serve!(InitProducerIdRequest, init_producer_id::handle),
        ApiKey::FindCoordinator => serve!(FindCoordinatorRequest, find_coordinator::handle),
        ApiKey::JoinGroup => serve!(JoinGroupRequest, groups::join_group),
        ApiKey::SyncGroup => serve!(SyncGroupRequest, groups::sync_group),
        ApiKey::Heartbeat => serve!(HeartbeatRequest, groups::heartbeat),
        ApiKey::LeaveGroup => serve!(LeaveGroupRequest, groups::leave_group),
        ApiKey::DescribeGroups => serve!(DescribeGroupsRequest, groups::describe_groups),
        ApiKey::ListGroups => serve!(ListGroupsRequest, groups::list_groups),
        ApiKey::OffsetCommit => serve!(OffsetCommitRequest, offsets::offset_commit),
        ApiKey::OffsetFetch => serve!(OffsetFetchRequest, offsets::offset_fetch),
        ApiKey::BrokerRegistration => {
            serve!(BrokerRegistrationRequest, controller_apis::broker_registration)
        }
        ApiKey::BrokerHeartbeat => {
            serve!(BrokerHeartbeatRequest, controller_apis::broker_heartbeat)
        }
        ApiKey::AlterPartition => serve!(AlterPartitionRequest, controller_apis::alter_partition),
        other => Reply::Close(format!("{other:?} is advertised but has no handler")),
    }
}

/// Encodes a response after its header; a response that does not encode at the negotiated
/// version is a bug in twinmq, logged, and closes the connection.
fn respond<R: Encodable + HeaderVersion>(
    header: &RequestHeader,
    version: i16,
    response: R,
) -> Reply {
    let mut out = BytesMut::with_capacity(response.compute_size(version).unwrap_or(64) + 8);
    let response_header = ResponseHeader::default().with_correlation_id(header.correlation_id);
    if let Err(error) = response_header.encode(&mut out, R::header_version(version)) {
        return Reply::Close(format!("response header does not encode: {error}"));
    }
    match response.encode(&mut out, version) {
        Ok(()) => Reply::Frame(out),
        Err(error) => {
            tracing::error!(api_key = header.request_api_key, version, %error, "response does not encode");
            Reply::Close(format!("response does not encode: {error}"))
        }
    }
}

/// A string field from a Rust string.
fn str_bytes(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}
