//! DeleteTopics (20): the controller forgets the topic, then each replica's directory goes.

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use twinmq_runtime::Env;

use super::str_bytes;
use crate::server::BrokerContext;

/// Deletes each named topic.
pub async fn handle<E: Env>(
    context: &BrokerContext<E>,
    request: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let names: Vec<TopicName> = if version >= 6 {
        request.topics.into_iter().filter_map(|t| t.name).collect()
    } else {
        request.topic_names
    };
    let mut results = Vec::new();
    for name in names {
        let outcome = context.cluster.delete_topic(&name.0).await;
        let mut result = DeletableTopicResult::default().with_name(Some(name));
        if let Err(error) = &outcome {
            result = result.with_error_code(error.code());
            if version >= 5 {
                result = result.with_error_message(Some(str_bytes(&error.to_string())));
            }
        }
        results.push(result);
    }
    if let Err(error) = context.sync_replicas() {
        tracing::error!(%error, "removing deleted partitions failed");
    }
    DeleteTopicsResponse::default().with_responses(results)
}
