//! TransactionProducer (RocketMQ `TransactionMQProducer`): sends a half message, runs the local
//! transaction, then tells the broker to commit or roll back (END_TRANSACTION, oneway). When the
//! verdict is unknown — or the END_TRANSACTION is lost — the broker later asks a producer of the
//! group (CHECK_TRANSACTION_STATE, oneway down the producer's connection) and the listener's
//! check answers it, again with END_TRANSACTION, marked `fromTransactionCheck`.

use std::sync::Arc;

use twinmq_runtime::Env;

use super::instance::request_with;
use super::message::{ReceivedMessage, commit_log_offset, decode_records};
use super::producer::{Producer, SendResult};
use super::{ClientConfig, ClientError, Message, MessageQueue};
use crate::remoting::properties::PGROUP;
use crate::remoting::{RemotingCommand, request_code};

/// END_TRANSACTION's `commitOrRollback` for an unknown outcome.
const TRANSACTION_NOT_TYPE: i32 = 0;
/// … for commit.
const TRANSACTION_COMMIT_TYPE: i32 = 8;
/// … for rollback.
const TRANSACTION_ROLLBACK_TYPE: i32 = 12;

/// The outcome of a local transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalTransactionState {
    /// Make the message visible.
    CommitMessage,
    /// Drop the message.
    RollbackMessage,
    /// Not known yet: the broker will check back.
    Unknown,
}

impl LocalTransactionState {
    fn wire(self) -> i32 {
        match self {
            Self::CommitMessage => TRANSACTION_COMMIT_TYPE,
            Self::RollbackMessage => TRANSACTION_ROLLBACK_TYPE,
            Self::Unknown => TRANSACTION_NOT_TYPE,
        }
    }
}

/// The application's side of a transaction.
pub trait TransactionListener: Send + Sync + 'static {
    /// Runs the local transaction of a half message the broker has stored.
    fn execute_local_transaction(
        &self,
        message: &Message,
        sent: &SendResult,
    ) -> LocalTransactionState;

    /// Tells the broker how the transaction of a still unresolved half message ended.
    fn check_local_transaction(&self, message: &ReceivedMessage) -> LocalTransactionState;
}

/// What `send_in_transaction` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionSendResult {
    /// The half message's send.
    pub sent: SendResult,
    /// The local transaction's outcome, as reported to the broker.
    pub local_state: LocalTransactionState,
}

/// A producer of transactional messages.
pub struct TransactionProducer<E: Env> {
    producer: Producer<E>,
    listener: Arc<dyn TransactionListener>,
}

impl<E: Env> std::fmt::Debug for TransactionProducer<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionProducer").field("producer", &self.producer).finish()
    }
}

impl<E: Env> TransactionProducer<E> {
    /// Starts a producer of `group` whose transactions `listener` runs and checks.
    pub async fn start(
        env: E,
        config: ClientConfig,
        group: impl Into<String>,
        listener: Arc<dyn TransactionListener>,
    ) -> Self {
        let producer =
            Producer::start_with(env, config, group.into(), Some(Arc::clone(&listener))).await;
        Self { producer, listener }
    }

    /// The plain producer underneath (non-transactional sends share its connections).
    pub fn producer(&self) -> &Producer<E> {
        &self.producer
    }

    /// Sends `message` as a half message, runs the local transaction, reports its outcome.
    pub async fn send_in_transaction(
        &self,
        message: &Message,
    ) -> Result<TransactionSendResult, ClientError> {
        let sent = self.producer.send_half(message).await?;
        let local_state = self.listener.execute_local_transaction(message, &sent);
        if let Err(error) = self.end_transaction(&sent, local_state).await {
            // The broker will check back; the outcome is not lost.
            tracing::info!(%error, "END_TRANSACTION not delivered; the broker will check");
        }
        Ok(TransactionSendResult { sent, local_state })
    }

    /// Reports the local outcome of a half message (oneway END_TRANSACTION).
    async fn end_transaction(
        &self,
        sent: &SendResult,
        state: LocalTransactionState,
    ) -> Result<(), ClientError> {
        let commit_log_offset =
            commit_log_offset(&sent.offset_msg_id).ok_or_else(|| ClientError::Malformed {
                code: request_code::SEND_MESSAGE,
                reason: format!("broker message id {} holds no offset", sent.offset_msg_id),
            })?;
        let instance = self.producer.instance();
        let addr = instance
            .master_addr(&sent.queue.broker_name)
            .ok_or_else(|| ClientError::NoRoute(format!("broker {}", sent.queue.broker_name)))?;
        let transaction_id = sent.transaction_id.clone().unwrap_or_else(|| sent.msg_id.clone());
        let request = end_request(EndTransaction {
            group: self.producer.group(),
            half_queue_offset: sent.queue_offset,
            commit_log_offset,
            state,
            msg_id: &sent.msg_id,
            transaction_id: &transaction_id,
            from_check: false,
            queue: &sent.queue,
        });
        instance.oneway(&addr, request).await
    }

    /// Stops the producer (see [`Producer::shutdown`]).
    pub async fn shutdown(self) {
        self.producer.shutdown().await;
    }
}

/// The fields of one END_TRANSACTION.
struct EndTransaction<'a> {
    group: &'a str,
    half_queue_offset: i64,
    commit_log_offset: i64,
    state: LocalTransactionState,
    msg_id: &'a str,
    transaction_id: &'a str,
    from_check: bool,
    queue: &'a MessageQueue,
}

/// The END_TRANSACTION request, as the reference client sends it (remark "").
fn end_request(end: EndTransaction<'_>) -> RemotingCommand {
    let mut request = request_with(
        request_code::END_TRANSACTION,
        &[
            ("producerGroup", end.group.to_owned()),
            ("tranStateTableOffset", end.half_queue_offset.to_string()),
            ("commitLogOffset", end.commit_log_offset.to_string()),
            ("commitOrRollback", end.state.wire().to_string()),
            ("msgId", end.msg_id.to_owned()),
            ("transactionId", end.transaction_id.to_owned()),
            ("fromTransactionCheck", end.from_check.to_string()),
            ("topic", end.queue.topic.clone()),
            ("bname", end.queue.broker_name.clone()),
        ],
    );
    request.remark = Some(String::new());
    request
}

/// The END_TRANSACTION answering a CHECK_TRANSACTION_STATE, with the listener's verdict.
pub(super) fn answer_check(
    check: &RemotingCommand,
    listener: &dyn TransactionListener,
    group: &str,
) -> Result<RemotingCommand, ClientError> {
    let malformed = |reason: String| ClientError::Malformed {
        code: request_code::CHECK_TRANSACTION_STATE,
        reason,
    };
    let record = decode_records(&check.body)
        .map_err(|e| malformed(e.to_string()))?
        .into_iter()
        .next()
        .ok_or_else(|| malformed("no message in the check".into()))?;
    let number = |name: &str| -> Result<i64, ClientError> {
        check
            .field(name)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| malformed(format!("{name} missing")))
    };
    let commit_log_offset = number("commitLogOffset")?;
    let half_queue_offset = number("tranStateTableOffset")?;
    let broker_name = check.field("bname").unwrap_or_default().to_owned();
    let queue = MessageQueue {
        topic: record.topic.clone(),
        broker_name,
        queue_id: u32::try_from(record.queue_id).unwrap_or(0),
    };
    let message = ReceivedMessage::new(record, queue.clone());
    let state = listener.check_local_transaction(&message);
    let msg_id = check.field("msgId").map_or_else(|| message.msg_id(), str::to_owned);
    let transaction_id = check.field("transactionId").unwrap_or(&msg_id).to_owned();
    let group = message.property(PGROUP).unwrap_or(group).to_owned();
    Ok(end_request(EndTransaction {
        group: &group,
        half_queue_offset,
        commit_log_offset,
        state,
        msg_id: &msg_id,
        transaction_id: &transaction_id,
        from_check: true,
        queue: &queue,
    }))
}
