//! Metadata (3): brokers, the controller, and topics with their partitions' leaders, replicas
//! and ISRs; an unknown topic is created when auto-creation is on and the client allows it.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use twinmq_runtime::Env;

use super::str_bytes;
use crate::controller::{MetadataImage, TopicImage};
use crate::error::KafkaError;
use crate::server::BrokerContext;

/// The cluster id every twinmq Kafka cluster reports.
pub const CLUSTER_ID: &str = "twinmq";

/// Answers a Metadata request.
pub async fn handle<E: Env>(
    context: &BrokerContext<E>,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let auto_create =
        context.config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
    let mut created = false;
    let names: Option<Vec<String>> = request
        .topics
        .map(|topics| topics.into_iter().filter_map(|t| t.name.map(|n| n.0.to_string())).collect());
    let mut errors = Vec::new();
    if let Some(names) = &names {
        let image = context.cluster.image();
        for name in names.iter().filter(|n| !image.topics.contains_key(*n)) {
            if !auto_create {
                errors.push((name.clone(), ResponseError::UnknownTopicOrPartition.code()));
                continue;
            }
            let partitions = context.config.num_partitions;
            let factor = context.config.default_replication_factor;
            match context.cluster.create_topic(name, partitions, factor).await {
                Ok(()) | Err(KafkaError::TopicAlreadyExists(_)) => created = true,
                Err(error) => {
                    tracing::info!(topic = %name, %error, "auto-create refused");
                    errors.push((name.clone(), error.code()));
                }
            }
        }
    }
    if created && let Err(error) = context.sync_replicas() {
        tracing::error!(%error, "opening auto-created partitions failed");
    }
    let image = context.cluster.image();
    let mut topics: Vec<MetadataResponseTopic> = match &names {
        None => image.topics.iter().map(|(n, t)| topic_response(n, t, version)).collect(),
        Some(names) => names
            .iter()
            .filter_map(|n| image.topics.get(n).map(|t| topic_response(n, t, version)))
            .collect(),
    };
    for (name, code) in errors {
        topics.push(
            MetadataResponseTopic::default()
                .with_name(Some(TopicName(str_bytes(&name))))
                .with_error_code(code),
        );
    }
    let response = MetadataResponse::default().with_brokers(brokers(&image)).with_topics(topics);
    let response = if version >= 1 {
        response.with_controller_id(BrokerId(admin_node(context, &image)))
    } else {
        response
    };
    if version >= 2 { response.with_cluster_id(Some(str_bytes(CLUSTER_ID))) } else { response }
}

/// The node clients send admin requests to: this broker, which forwards them to the controller
/// (KRaft brokers report a broker, never the controller quorum, as `controller_id`).
fn admin_node<E: Env>(context: &BrokerContext<E>, image: &MetadataImage) -> i32 {
    if context.config.broker_role {
        return context.config.node_id;
    }
    image.brokers.values().find(|b| !b.fenced).map_or(context.config.node_id, |b| b.node_id)
}

fn brokers(image: &MetadataImage) -> Vec<MetadataResponseBroker> {
    image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.node_id))
                .with_host(str_bytes(&b.host))
                .with_port(b.port)
        })
        .collect()
}

fn topic_response(name: &str, topic: &TopicImage, version: i16) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let partition = MetadataResponsePartition::default()
                .with_partition_index(i32::try_from(index).unwrap_or(i32::MAX))
                .with_error_code(if p.leader < 0 {
                    ResponseError::LeaderNotAvailable.code()
                } else {
                    0
                })
                .with_leader_id(BrokerId(p.leader))
                .with_replica_nodes(p.replicas.iter().copied().map(BrokerId).collect())
                .with_isr_nodes(p.isr.iter().copied().map(BrokerId).collect());
            if version >= 7 { partition.with_leader_epoch(p.leader_epoch) } else { partition }
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(name))))
        .with_partitions(partitions)
}
