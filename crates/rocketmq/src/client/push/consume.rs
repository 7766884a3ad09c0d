//! A push consumer's loop for one owned queue: long-polling pulls from its offset, messages
//! handed to the handler (in batches, or one at a time in order), failures handed back to the
//! broker (CONSUMER_SEND_MSG_BACK) or retried in place, the offset advanced behind them.

use std::sync::Arc;

use twinmq_runtime::{Env, Shutdown};

use super::{ConsumeResult, Inner, MessageModel, pause};
use crate::client::instance::request_with;
use crate::client::message::ReceivedMessage;
use crate::client::pull::{PullRequest, PullStatus, broker_addr, expression_tags, pull_message};
use crate::client::{ClientError, MessageQueue};
use crate::remoting::properties::ORIGIN_MESSAGE_ID;
use crate::remoting::request_code;

impl<E: Env> Inner<E> {
    /// One owned queue: pull (long polling), consume, advance the offset, until stopped.
    pub(super) async fn consume_queue(
        self: Arc<Self>,
        queue: MessageQueue,
        start: i64,
        stop: Shutdown,
    ) {
        let tags = self.subscriptions.get(&queue.topic).and_then(|e| expression_tags(e));
        let mut offset = start;
        loop {
            let pull = PullRequest {
                group: &self.config.group,
                queue: &queue,
                expression: None,
                tags: tags.as_ref(),
                offset,
                max_messages: self.config.pull_batch_size,
                commit_offset: None,
                suspend_ms: Some(self.config.long_poll_suspend_ms),
            };
            let pulled = tokio::select! {
                biased;
                () = stop.wait() => return,
                pulled = pull_message(&self.instance, pull) => pulled,
            };
            let result = match pulled {
                Ok(result) => result,
                Err(error) => {
                    tracing::debug!(%queue, %error, "pull failed");
                    if !pause(&stop, self.config.pull_backoff_ms).await {
                        return;
                    }
                    continue;
                }
            };
            if result.status == PullStatus::Found && !result.messages.is_empty() {
                let consumed = if self.config.orderly {
                    self.consume_orderly(&queue, &result.messages, &stop).await
                } else {
                    self.consume_concurrently(&queue, &result.messages, &stop).await
                };
                if !consumed {
                    return;
                }
            }
            if result.status == PullStatus::OffsetIllegal {
                tracing::info!(%queue, offset, next = result.next_begin_offset, "offset moved");
            }
            offset = result.next_begin_offset;
            self.offsets.update(&queue, offset);
        }
    }

    /// Hands the messages to the handler in batches; failed ones go back to the broker.
    /// False when stopped before they were all dealt with.
    async fn consume_concurrently(
        &self,
        queue: &MessageQueue,
        messages: &[ReceivedMessage],
        stop: &Shutdown,
    ) -> bool {
        for batch in messages.chunks(self.config.consume_batch_max.max(1)) {
            if self.handle(queue, batch) == ConsumeResult::Success {
                continue;
            }
            if self.config.model == MessageModel::Broadcasting {
                tracing::info!(%queue, "broadcast message not consumed; dropped as RocketMQ does");
                continue;
            }
            for message in batch {
                while let Err(error) = self.send_back(message, 0).await {
                    tracing::info!(%queue, %error, "send back failed; retrying");
                    if !pause(stop, self.config.pull_backoff_ms).await {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// One message at a time; a failure retries in place, past the limit dead-letters it.
    async fn consume_orderly(
        &self,
        queue: &MessageQueue,
        messages: &[ReceivedMessage],
        stop: &Shutdown,
    ) -> bool {
        for message in messages {
            let mut message = message.clone();
            loop {
                if stop.is_triggered() {
                    return false;
                }
                if self.handle(queue, std::slice::from_ref(&message)) == ConsumeResult::Success {
                    break;
                }
                if message.record.reconsume_times >= self.config.max_reconsume_times {
                    // A negative delay level sends it straight to the dead-letter topic.
                    match self.send_back(&message, -1).await {
                        Ok(()) => break,
                        Err(error) => tracing::info!(%queue, %error, "dead-lettering failed"),
                    }
                } else {
                    message.record.reconsume_times += 1;
                }
                if !pause(stop, self.config.orderly_suspend_ms).await {
                    return false;
                }
            }
            self.offsets.update(queue, message.queue_offset() + 1);
        }
        true
    }

    /// Calls the handler; a panic counts as `ReconsumeLater` (as a listener's exception does in
    /// RocketMQ) instead of silently killing the queue's task.
    fn handle(&self, queue: &MessageQueue, messages: &[ReceivedMessage]) -> ConsumeResult {
        let called = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.handler.consume(queue, messages)
        }));
        called.unwrap_or_else(|_| {
            tracing::error!(%queue, "message handler panicked; the messages will be consumed again");
            ConsumeResult::ReconsumeLater
        })
    }

    /// CONSUMER_SEND_MSG_BACK: the broker stores it again in the retry (or dead-letter) topic.
    async fn send_back(
        &self,
        message: &ReceivedMessage,
        delay_level: i32,
    ) -> Result<(), ClientError> {
        let addr = broker_addr(&self.instance, &message.queue).await?;
        let origin = message
            .property(ORIGIN_MESSAGE_ID)
            .map_or_else(|| message.offset_msg_id(), str::to_owned);
        let request = request_with(
            request_code::CONSUMER_SEND_MSG_BACK,
            &[
                ("offset", message.record.physical_offset.to_string()),
                ("group", self.config.group.clone()),
                ("delayLevel", delay_level.to_string()),
                ("originMsgId", origin),
                ("originTopic", message.topic().to_owned()),
                ("unitMode", "false".to_owned()),
                ("maxReconsumeTimes", self.config.max_reconsume_times.to_string()),
                ("bname", message.queue.broker_name.clone()),
            ],
        );
        self.instance.request_ok(&addr, request).await.map(|_| ())
    }
}
