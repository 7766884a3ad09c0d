//! InitProducerId (22): a producer id never handed out before, epoch 0, for idempotent
//! producers. Transactional ids are refused: transactions are not built.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use twinmq_runtime::Env;

use crate::server::BrokerContext;

/// Hands out a producer id.
pub async fn handle<E: Env>(
    context: &BrokerContext<E>,
    request: InitProducerIdRequest,
    _version: i16,
) -> InitProducerIdResponse {
    if request.transactional_id.is_some() {
        tracing::info!(
            "InitProducerId with a transactional id refused: transactions are not built"
        );
        return InitProducerIdResponse::default()
            .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    match context.cluster.allocate_producer_id().await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(error) => InitProducerIdResponse::default()
            .with_error_code(error.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}
