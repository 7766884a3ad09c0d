//! Topic creation (UPDATE_AND_CREATE_TOPIC, 17) and the orderly consumer's queue locks
//! (LOCK_BATCH_MQ 41 / UNLOCK_BATCH_MQ 42): a queue is held by one client of a group at a time,
//! until it unlocks, or its lock is older than [`LOCK_LIFETIME_MS`] without renewal.

use serde::{Deserialize, Serialize};
use twinmq_runtime::Env;

use super::processor::{BrokerProcessor, lock, number};
use crate::remoting::RemotingCommand;
use crate::remoting::response_code::*;

/// How long a queue lock lives without renewal (RocketMQ `rocketmq.broker.rebalance.lockMaxLiveTime`).
pub const LOCK_LIFETIME_MS: i64 = 60_000;

/// A message queue as lock requests name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageQueue {
    /// The topic.
    pub topic: String,
    /// The broker group.
    pub broker_name: String,
    /// The queue.
    pub queue_id: u32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LockRequest {
    consumer_group: String,
    client_id: String,
    mq_set: Vec<MessageQueue>,
}

/// RocketMQ's topic name rule (`TopicValidator`), the one the CommitLog enforces on append.
fn valid_topic_name(topic: &str) -> bool {
    (1..=127).contains(&topic.len())
        && topic.bytes().all(|b| b.is_ascii_alphanumeric() || b"%|-_#".contains(&b))
}

impl<E: Env> BrokerProcessor<E> {
    /// UPDATE_AND_CREATE_TOPIC: creates the topic (or keeps the existing one).
    pub(super) fn create_topic(&self, request: &RemotingCommand) -> RemotingCommand {
        let Some(topic) = request.field("topic") else {
            return RemotingCommand::response_to(
                request,
                SYSTEM_ERROR,
                Some("topic missing".into()),
            );
        };
        if !valid_topic_name(topic) {
            // The CommitLog would refuse every message for it; do not advertise it either.
            return RemotingCommand::response_to(
                request,
                SYSTEM_ERROR,
                Some(format!("topic {topic:?}: 1 to 127 characters of [A-Za-z0-9%|_#-]")),
            );
        }
        let queues = number(request.field("writeQueueNums")).unwrap_or(self.config.default_queues);
        match lock(&self.topics).get_or_create(topic, queues) {
            Ok(_) => {
                self.registered.notify_one();
                RemotingCommand::response_to(request, SUCCESS, None)
            }
            Err(error) => {
                RemotingCommand::response_to(request, SYSTEM_ERROR, Some(error.to_string()))
            }
        }
    }

    /// LOCK_BATCH_MQ: grants the queues free, expired or already this client's.
    pub(super) fn lock_queues(&self, request: &RemotingCommand) -> RemotingCommand {
        let Ok(wanted) = serde_json::from_slice::<LockRequest>(&request.body) else {
            return RemotingCommand::response_to(
                request,
                SYSTEM_ERROR,
                Some("lock body is not a lock request".into()),
            );
        };
        let now_ms = self.env.clock().now_ms();
        let mut locks = lock(&self.queue_locks);
        let mut granted = Vec::new();
        for queue in wanted.mq_set {
            let key = (wanted.consumer_group.clone(), queue.topic.clone(), queue.queue_id);
            let free = locks.get(&key).is_none_or(|(owner, at)| {
                *owner == wanted.client_id || now_ms - at > LOCK_LIFETIME_MS
            });
            if free {
                locks.insert(key, (wanted.client_id.clone(), now_ms));
                granted.push(queue);
            }
        }
        let body = serde_json::json!({ "lockOKMQSet": granted });
        RemotingCommand::response_to(request, SUCCESS, None)
            .with_body(serde_json::to_vec(&body).unwrap_or_default())
    }

    /// UNLOCK_BATCH_MQ: releases this client's locks on the queues.
    pub(super) fn unlock_queues(&self, request: &RemotingCommand) -> RemotingCommand {
        if let Ok(wanted) = serde_json::from_slice::<LockRequest>(&request.body) {
            let mut locks = lock(&self.queue_locks);
            for queue in wanted.mq_set {
                let key = (wanted.consumer_group.clone(), queue.topic, queue.queue_id);
                if locks.get(&key).is_some_and(|(owner, _)| *owner == wanted.client_id) {
                    locks.remove(&key);
                }
            }
        }
        RemotingCommand::response_to(request, SUCCESS, None)
    }
}
