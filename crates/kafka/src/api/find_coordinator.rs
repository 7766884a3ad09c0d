//! FindCoordinator (10): a group's coordinator is the leader of its `__consumer_offsets`
//! partition (key type 0). Transaction coordinators (key type 1) are refused: transactions are
//! not built.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use twinmq_runtime::Env;

use crate::group::{OFFSETS_TOPIC, OffsetStore};
use crate::server::BrokerContext;

/// The coordinator of `group_id`: (node id, host, port), or an error code.
pub fn coordinator_of<E: Env>(
    context: &BrokerContext<E>,
    group_id: &str,
) -> Result<(i32, String, i32), i16> {
    let partition = OffsetStore::partition_for(group_id, context.config.group.offsets_partitions);
    context.cluster.with_image(|image| {
        let leader = image.partition(OFFSETS_TOPIC, partition).map_or(-1, |p| p.leader);
        image
            .brokers
            .get(&leader)
            .map(|b| (b.node_id, b.host.clone(), b.port))
            .ok_or(ResponseError::CoordinatorNotAvailable.code())
    })
}

/// Names the coordinator of each key.
pub async fn handle<E: Env>(
    context: &BrokerContext<E>,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let find = |key: &str| {
        if request.key_type != 0 {
            return Err(ResponseError::InvalidRequest.code());
        }
        coordinator_of(context, key)
    };
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                let coordinator = Coordinator::default().with_key(key.clone());
                match find(key) {
                    Ok((node_id, host, port)) => coordinator
                        .with_node_id(BrokerId(node_id))
                        .with_host(StrBytes::from_string(host))
                        .with_port(port),
                    Err(code) => coordinator.with_error_code(code).with_node_id(BrokerId(-1)),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match find(&request.key) {
        Ok((node_id, host, port)) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(node_id))
            .with_host(StrBytes::from_string(host))
            .with_port(port),
        Err(code) => {
            FindCoordinatorResponse::default().with_error_code(code).with_node_id(BrokerId(-1))
        }
    }
}
