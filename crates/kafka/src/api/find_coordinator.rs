//! FindCoordinator (10): the broker coordinating a group (key type 0). Transaction
//! coordinators (key type 1) are refused: transactions are not built.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use twinmq_runtime::Env;

use crate::server::BrokerContext;

/// Names the coordinator of each key.
pub async fn handle<E: Env>(
    context: &BrokerContext<E>,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let (host, port) = context.advertised.clone();
    let node_id = context.config.node_id;
    let error = if request.key_type == 0 { 0 } else { ResponseError::InvalidRequest.code() };
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(BrokerId(node_id))
                    .with_host(StrBytes::from_string(host.clone()))
                    .with_port(port)
                    .with_error_code(error)
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    FindCoordinatorResponse::default()
        .with_error_code(error)
        .with_node_id(BrokerId(node_id))
        .with_host(StrBytes::from_string(host))
        .with_port(port)
}
