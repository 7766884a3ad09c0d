//! The controller's side of KRaft's broker APIs: BrokerRegistration (62), BrokerHeartbeat (63)
//! and AlterPartition (56). A broker that is not the controller answers NOT_CONTROLLER.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_response::{PartitionData, TopicData};
use kafka_protocol::messages::*;
use twinmq_runtime::Env;

use crate::controller::Controller;
use crate::error::KafkaError;
use crate::server::BrokerContext;

fn controller<E: Env>(context: &BrokerContext<E>) -> Result<&Controller<E::Fs>, i16> {
    context.cluster.controller.as_ref().ok_or(ResponseError::NotController.code())
}

/// A broker registers with its listener; it gets a broker epoch for its heartbeats.
pub async fn broker_registration<E: Env>(
    context: &BrokerContext<E>,
    request: BrokerRegistrationRequest,
    _version: i16,
) -> BrokerRegistrationResponse {
    let controller = match controller(context) {
        Ok(controller) => controller,
        Err(code) => return BrokerRegistrationResponse::default().with_error_code(code),
    };
    let Some(listener) = request.listeners.first() else {
        return BrokerRegistrationResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code());
    };
    let now_ms = context.env.clock().now_ms();
    let registered =
        controller.register(request.broker_id.0, &listener.host, i32::from(listener.port), now_ms);
    context.metadata_changed();
    match registered {
        Ok(epoch) => BrokerRegistrationResponse::default().with_broker_epoch(epoch),
        Err(error) => BrokerRegistrationResponse::default().with_error_code(error.code()),
    }
}

/// A broker's heartbeat: alive, or fenced and told to register again.
pub async fn broker_heartbeat<E: Env>(
    context: &BrokerContext<E>,
    request: BrokerHeartbeatRequest,
    _version: i16,
) -> BrokerHeartbeatResponse {
    let controller = match controller(context) {
        Ok(controller) => controller,
        Err(code) => return BrokerHeartbeatResponse::default().with_error_code(code),
    };
    let now_ms = context.env.clock().now_ms();
    match controller.heartbeat(request.broker_id.0, request.broker_epoch, now_ms) {
        Ok(()) => BrokerHeartbeatResponse::default().with_is_caught_up(true).with_is_fenced(false),
        Err(error) => {
            BrokerHeartbeatResponse::default().with_error_code(error.code()).with_is_fenced(true)
        }
    }
}

/// A leader changes its partitions' ISR.
pub async fn alter_partition<E: Env>(
    context: &BrokerContext<E>,
    request: AlterPartitionRequest,
    _version: i16,
) -> AlterPartitionResponse {
    let controller = match controller(context) {
        Ok(controller) => controller,
        Err(code) => return AlterPartitionResponse::default().with_error_code(code),
    };
    let image = context.cluster.image();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = image.topic_name(topic.topic_id.as_u128()).map(str::to_owned);
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let isr: Vec<i32> = p.new_isr.iter().map(|b| b.0).collect();
                    let changed = match &name {
                        Some(name) => controller.alter_isr(request.broker_id.0, name, p.partition_index, p.leader_epoch, &isr),
                        None => Err(KafkaError::UnknownTopicOrPartition(format!("{}", topic.topic_id))),
                    };
                    match changed {
                        Ok(image) => PartitionData::default()
                            .with_partition_index(p.partition_index)
                            .with_leader_id(BrokerId(image.leader))
                            .with_leader_epoch(image.leader_epoch)
                            .with_isr(image.isr.into_iter().map(BrokerId).collect()),
                        Err(error) => {
                            tracing::info!(%error, partition = p.partition_index, "ISR change refused");
                            PartitionData::default().with_partition_index(p.partition_index).with_error_code(error.code())
                        }
                    }
                })
                .collect();
            TopicData::default().with_topic_id(topic.topic_id).with_partitions(partitions)
        })
        .collect();
    context.metadata_changed();
    AlterPartitionResponse::default().with_topics(topics)
}
