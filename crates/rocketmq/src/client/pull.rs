//! Pulling: one PULL_MESSAGE (11) for one queue from an offset, optionally long-polled (the
//! broker parks it until a message arrives or `suspendTimeoutMillis` passes), and the
//! [`PullConsumer`] (RocketMQ `DefaultMQPullConsumer`) that exposes it with the offset requests
//! around it: QUERY/UPDATE_CONSUMER_OFFSET, GET_MAX/MIN_OFFSET, SEARCH_OFFSET_BY_TIMESTAMP.

use std::collections::BTreeSet;
use std::sync::Arc;

use twinmq_runtime::Env;

use super::instance::{ClientInstance, number_field, refused, request_with};
use super::message::{ReceivedMessage, decode_records};
use super::{ClientConfig, ClientError, MessageQueue};
use crate::remoting::request_code;
use crate::remoting::response_code::*;

/// PullSysFlag: commit the piggybacked offset.
const FLAG_COMMIT_OFFSET: i32 = 1;
/// PullSysFlag: park the pull when nothing is there.
const FLAG_SUSPEND: i32 = 2;
/// PullSysFlag: the request carries its subscription.
const FLAG_SUBSCRIPTION: i32 = 4;
/// Most bytes one pull asks for (the reference push consumer's `maxMsgBytes`).
const PULL_BYTES_MAX: u32 = 256 * 1024;

/// What a pull found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullStatus {
    /// Messages.
    Found,
    /// Nothing past the offset (yet).
    NoNewMessage,
    /// Only messages the subscription filters out: go on from `next_begin_offset`.
    NoMatchedMessage,
    /// The offset is outside the queue: go on from `next_begin_offset`.
    OffsetIllegal,
}

/// A pull's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullResult {
    /// What it found.
    pub status: PullStatus,
    /// Where the next pull starts.
    pub next_begin_offset: i64,
    /// The queue's first offset.
    pub min_offset: i64,
    /// The queue's end offset.
    pub max_offset: i64,
    /// The messages (filtered again by tag on this side, as the reference client does).
    pub messages: Vec<ReceivedMessage>,
}

/// One pull's parameters.
#[derive(Debug, Clone)]
pub struct PullRequest<'a> {
    /// The consumer group.
    pub group: &'a str,
    /// The queue.
    pub queue: &'a MessageQueue,
    /// The tag expression sent with the pull (`None`: the broker uses the group's heartbeat).
    pub expression: Option<&'a str>,
    /// The tags kept on this side (`None`: all).
    pub tags: Option<&'a BTreeSet<String>>,
    /// The first offset wanted.
    pub offset: i64,
    /// Most messages returned.
    pub max_messages: u32,
    /// The group's progress to commit on the way (clustering push consumers).
    pub commit_offset: Option<i64>,
    /// How long the broker may park the pull (`None`: answer at once).
    pub suspend_ms: Option<u64>,
}

/// Sends one PULL_MESSAGE and decodes the answer.
pub async fn pull_message<E: Env>(
    instance: &ClientInstance<E>,
    pull: PullRequest<'_>,
) -> Result<PullResult, ClientError> {
    let queue = pull.queue;
    let addr = broker_addr(instance, queue).await?;
    let mut sys_flag = 0;
    if pull.commit_offset.is_some() {
        sys_flag |= FLAG_COMMIT_OFFSET;
    }
    if pull.suspend_ms.is_some() {
        sys_flag |= FLAG_SUSPEND;
    }
    if pull.expression.is_some() {
        sys_flag |= FLAG_SUBSCRIPTION;
    }
    let suspend_ms = pull.suspend_ms.unwrap_or(0);
    let request = request_with(
        request_code::PULL_MESSAGE,
        &[
            ("consumerGroup", pull.group.to_owned()),
            ("topic", queue.topic.clone()),
            ("queueId", queue.queue_id.to_string()),
            ("queueOffset", pull.offset.to_string()),
            ("maxMsgNums", pull.max_messages.to_string()),
            ("sysFlag", sys_flag.to_string()),
            ("commitOffset", pull.commit_offset.unwrap_or(-1).to_string()),
            ("suspendTimeoutMillis", suspend_ms.to_string()),
            ("subscription", pull.expression.unwrap_or_default().to_owned()),
            ("subVersion", "0".to_owned()),
            ("expressionType", "TAG".to_owned()),
            ("maxMsgBytes", PULL_BYTES_MAX.to_string()),
            ("bname", queue.broker_name.clone()),
        ],
    );
    let timeout_ms = suspend_ms + instance.config().request_timeout_ms;
    let response = instance.request(&addr, request, timeout_ms).await?;
    let status = match response.code {
        SUCCESS => PullStatus::Found,
        PULL_NOT_FOUND => PullStatus::NoNewMessage,
        PULL_RETRY_IMMEDIATELY => PullStatus::NoMatchedMessage,
        PULL_OFFSET_MOVED => PullStatus::OffsetIllegal,
        _ => return Err(refused(&addr, &response)),
    };
    let code = request_code::PULL_MESSAGE;
    let records = decode_records(&response.body)
        .map_err(|e| ClientError::Malformed { code, reason: e.to_string() })?;
    let messages = records
        .into_iter()
        .map(|record| ReceivedMessage::new(record, queue.clone()))
        .filter(|m| pull.tags.is_none_or(|tags| m.tags().is_some_and(|t| tags.contains(t))))
        .collect();
    Ok(PullResult {
        status,
        next_begin_offset: number_field(&response, code, "nextBeginOffset")?,
        min_offset: number_field(&response, code, "minOffset")?,
        max_offset: number_field(&response, code, "maxOffset")?,
        messages,
    })
}

/// The tags of a tag expression (`None` for `*` or an empty expression: everything).
pub fn expression_tags(expression: &str) -> Option<BTreeSet<String>> {
    let tags: BTreeSet<String> = expression
        .split("||")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    (!tags.is_empty() && !tags.contains("*")).then_some(tags)
}

/// Where a queue is read and its offsets kept: its broker group's master, or a slave while the
/// group has no master (the slave serves pulls and takes offset commits meanwhile).
pub async fn broker_addr<E: Env>(
    instance: &ClientInstance<E>,
    queue: &MessageQueue,
) -> Result<String, ClientError> {
    if let Some(addr) = instance.read_addr(&queue.broker_name) {
        return Ok(addr);
    }
    let route = instance.route(&queue.topic).await?;
    route
        .read_addr(&queue.broker_name)
        .map(str::to_owned)
        .ok_or_else(|| ClientError::NoRoute(queue.to_string()))
}

/// QUERY_CONSUMER_OFFSET: the group's committed offset, `None` when it has none.
pub async fn query_offset<E: Env>(
    instance: &ClientInstance<E>,
    group: &str,
    queue: &MessageQueue,
) -> Result<Option<i64>, ClientError> {
    let addr = broker_addr(instance, queue).await?;
    let request = request_with(
        request_code::QUERY_CONSUMER_OFFSET,
        &[
            ("topic", queue.topic.clone()),
            ("consumerGroup", group.to_owned()),
            ("queueId", queue.queue_id.to_string()),
            ("bname", queue.broker_name.clone()),
        ],
    );
    let response = instance.request(&addr, request, instance.config().request_timeout_ms).await?;
    match response.code {
        SUCCESS => {
            Ok(Some(number_field(&response, request_code::QUERY_CONSUMER_OFFSET, "offset")?))
        }
        QUERY_NOT_FOUND => Ok(None),
        _ => Err(refused(&addr, &response)),
    }
}

/// UPDATE_CONSUMER_OFFSET: oneway (as the reference client always sends it), or waiting for
/// the broker's answer so the commit is known to have landed.
pub async fn update_offset<E: Env>(
    instance: &ClientInstance<E>,
    group: &str,
    queue: &MessageQueue,
    offset: i64,
    oneway: bool,
) -> Result<(), ClientError> {
    let addr = broker_addr(instance, queue).await?;
    let request = request_with(
        request_code::UPDATE_CONSUMER_OFFSET,
        &[
            ("topic", queue.topic.clone()),
            ("consumerGroup", group.to_owned()),
            ("queueId", queue.queue_id.to_string()),
            ("commitOffset", offset.to_string()),
            ("bname", queue.broker_name.clone()),
        ],
    );
    if oneway {
        instance.oneway(&addr, request).await
    } else {
        instance.request_ok(&addr, request).await.map(|_| ())
    }
}

/// GET_MAX_OFFSET or GET_MIN_OFFSET of a queue.
pub async fn queue_bound<E: Env>(
    instance: &ClientInstance<E>,
    queue: &MessageQueue,
    code: i32,
) -> Result<i64, ClientError> {
    let addr = broker_addr(instance, queue).await?;
    let request = request_with(
        code,
        &[
            ("topic", queue.topic.clone()),
            ("queueId", queue.queue_id.to_string()),
            ("committed", "false".to_owned()),
            ("bname", queue.broker_name.clone()),
        ],
    );
    let response = instance.request_ok(&addr, request).await?;
    number_field(&response, code, "offset")
}

/// SEARCH_OFFSET_BY_TIMESTAMP: the first offset stored at or after `timestamp_ms`.
pub async fn search_offset<E: Env>(
    instance: &ClientInstance<E>,
    queue: &MessageQueue,
    timestamp_ms: i64,
) -> Result<i64, ClientError> {
    let addr = broker_addr(instance, queue).await?;
    let request = request_with(
        request_code::SEARCH_OFFSET_BY_TIMESTAMP,
        &[
            ("topic", queue.topic.clone()),
            ("queueId", queue.queue_id.to_string()),
            ("timestamp", timestamp_ms.to_string()),
            ("bname", queue.broker_name.clone()),
        ],
    );
    let response = instance.request_ok(&addr, request).await?;
    number_field(&response, request_code::SEARCH_OFFSET_BY_TIMESTAMP, "offset")
}

/// A consumer that pulls queues explicitly and keeps its own offsets (or commits them).
pub struct PullConsumer<E: Env> {
    instance: Arc<ClientInstance<E>>,
    group: String,
}

impl<E: Env> std::fmt::Debug for PullConsumer<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullConsumer").field("group", &self.group).finish_non_exhaustive()
    }
}

impl<E: Env> PullConsumer<E> {
    /// A pull consumer of `group`.
    pub fn new(env: E, config: ClientConfig, group: impl Into<String>) -> Self {
        let (instance, _callbacks) = ClientInstance::new(env, config);
        Self { instance, group: group.into() }
    }

    /// The queues consumers of `topic` read (fetched from the nameservers).
    pub async fn fetch_queues(&self, topic: &str) -> Result<Vec<MessageQueue>, ClientError> {
        Ok(self.instance.refresh_route(topic).await?.read_queues.clone())
    }

    /// Pulls up to `max_messages` from `offset` of messages matching `expression`, answered at
    /// once.
    pub async fn pull(
        &self,
        queue: &MessageQueue,
        expression: &str,
        offset: i64,
        max_messages: u32,
    ) -> Result<PullResult, ClientError> {
        self.pull_inner(queue, expression, offset, max_messages, None).await
    }

    /// As [`Self::pull`], but the broker holds the pull up to `suspend_ms` until a message
    /// arrives (long polling).
    pub async fn pull_blocking(
        &self,
        queue: &MessageQueue,
        expression: &str,
        offset: i64,
        max_messages: u32,
        suspend_ms: u64,
    ) -> Result<PullResult, ClientError> {
        self.pull_inner(queue, expression, offset, max_messages, Some(suspend_ms)).await
    }

    async fn pull_inner(
        &self,
        queue: &MessageQueue,
        expression: &str,
        offset: i64,
        max_messages: u32,
        suspend_ms: Option<u64>,
    ) -> Result<PullResult, ClientError> {
        let tags = expression_tags(expression);
        let pull = PullRequest {
            group: &self.group,
            queue,
            expression: Some(expression),
            tags: tags.as_ref(),
            offset,
            max_messages,
            commit_offset: None,
            suspend_ms,
        };
        pull_message(&self.instance, pull).await
    }

    /// The group's committed offset of a queue (`None`: never committed).
    pub async fn committed_offset(&self, queue: &MessageQueue) -> Result<Option<i64>, ClientError> {
        query_offset(&self.instance, &self.group, queue).await
    }

    /// Commits the group's offset of a queue (and waits for the broker to take it).
    pub async fn commit_offset(
        &self,
        queue: &MessageQueue,
        offset: i64,
    ) -> Result<(), ClientError> {
        update_offset(&self.instance, &self.group, queue, offset, false).await
    }

    /// The queue's end offset.
    pub async fn max_offset(&self, queue: &MessageQueue) -> Result<i64, ClientError> {
        queue_bound(&self.instance, queue, request_code::GET_MAX_OFFSET).await
    }

    /// The queue's first offset.
    pub async fn min_offset(&self, queue: &MessageQueue) -> Result<i64, ClientError> {
        queue_bound(&self.instance, queue, request_code::GET_MIN_OFFSET).await
    }

    /// The first offset of a queue stored at or after `timestamp_ms`.
    pub async fn search_offset(
        &self,
        queue: &MessageQueue,
        timestamp_ms: i64,
    ) -> Result<i64, ClientError> {
        search_offset(&self.instance, queue, timestamp_ms).await
    }

    /// Drops its connections.
    pub async fn shutdown(self) {
        self.instance.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_expressions_split_on_double_bars_and_star_means_all() {
        assert_eq!(expression_tags("*"), None);
        assert_eq!(expression_tags(""), None);
        let tags = expression_tags("TagA || TagB").unwrap();
        assert!(tags.contains("TagA") && tags.contains("TagB") && tags.len() == 2);
    }
}
