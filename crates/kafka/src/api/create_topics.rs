//! CreateTopics (19) and its rules: name, partition count, replication factor (-1: the
//! broker's defaults).

use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use twinmq_runtime::Env;

use super::str_bytes;
use crate::controller::validate_topic_name;
use crate::error::KafkaError;
use crate::server::BrokerContext;

/// Creates each topic (or only validates, when asked).
pub async fn handle<E: Env>(
    context: &BrokerContext<E>,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut results = Vec::new();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let partitions = if topic.num_partitions < 0 {
            context.config.num_partitions
        } else {
            topic.num_partitions
        };
        let factor = if topic.replication_factor < 0 {
            context.config.default_replication_factor
        } else {
            topic.replication_factor
        };
        let outcome = if !topic.assignments.is_empty() {
            Err(KafkaError::InvalidRequest("manual replica assignment is not supported".into()))
        } else if request.validate_only {
            validate_topic_name(&name)
        } else {
            context.cluster.create_topic(&name, partitions, factor).await
        };
        let mut result = CreatableTopicResult::default().with_name(topic.name);
        match &outcome {
            Ok(()) => {
                if version >= 5 {
                    result = result.with_num_partitions(partitions).with_replication_factor(factor);
                }
            }
            Err(error) => {
                tracing::info!(topic = %name, %error, "create topic refused");
                result = result.with_error_code(error.code());
                if version >= 1 {
                    result = result.with_error_message(Some(str_bytes(&error.to_string())));
                }
            }
        }
        results.push(result);
    }
    if let Err(error) = context.sync_replicas() {
        tracing::error!(%error, "opening created partitions failed");
    }
    CreateTopicsResponse::default().with_topics(results)
}
