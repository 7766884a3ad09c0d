//! The broker's request handling: send (10, 310), pull with long polling (11, 361), offsets
//! (14, 15, 29, 30, 31), heartbeats and group membership (34, 35, 38). Everything else gets
//! REQUEST_CODE_NOT_SUPPORTED.

use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;
use twinmq_runtime::Env;
use twinmq_storage::{DurableWatermark, FlushSignal, GetMessageStatus, MessageStore};

use super::BrokerConfig;
use super::tables::{ConsumerGroup, ConsumerOffsets, TopicTable, parse_tags};
use crate::message::{MessageRecord, stamp};
use crate::remoting::properties::{self, KEYS, REAL_QID, REAL_TOPIC, TAGS};
use crate::remoting::response_code::*;
use crate::remoting::{Peer, Processor, RemotingCommand, request_code};

/// PullSysFlag: commit the piggybacked offset.
const PULL_COMMIT_OFFSET: i32 = 1;
/// PullSysFlag: suspend (long poll) when nothing is there.
const PULL_SUSPEND: i32 = 2;
/// Most messages one pull returns.
const PULL_MESSAGES_MAX: u32 = 1024;
/// Most bytes one pull returns.
const PULL_BYTES_MAX: u64 = 8 * 1024 * 1024;

/// (group, topic, queue) → (client id holding the lock, when it locked or renewed).
pub type QueueLocks = BTreeMap<(String, String, u32), (String, i64)>;

/// Producer group → client id → its connection and last heartbeat (for transaction checks).
pub type ProducerTable = BTreeMap<String, BTreeMap<String, (Peer, i64)>>;

/// Everything the broker's handlers share.
pub struct BrokerProcessor<E: Env> {
    pub(super) env: E,
    pub(super) config: BrokerConfig,
    pub(super) store_host: SocketAddrV4,
    pub(super) store: Arc<Mutex<MessageStore<E::Fs>>>,
    pub(super) durable: DurableWatermark,
    pub(super) topics: Mutex<TopicTable<E::Fs>>,
    pub(super) offsets: Mutex<ConsumerOffsets<E::Fs>>,
    pub(super) groups: Mutex<BTreeMap<String, ConsumerGroup>>,
    pub(super) arrived: Notify,
    pub(super) flush_signal: FlushSignal,
    pub(super) registered: Notify,
    /// Registration rounds asked for (see [`BrokerProcessor::register_now`]).
    pub(super) registrations_asked: std::sync::atomic::AtomicU64,
    /// The last round asked for that a completed registration covered.
    pub(super) registrations_done: twinmq_storage::DurableWatermark,
    /// Orderly consumers' queue locks.
    pub(super) queue_locks: Mutex<QueueLocks>,
    /// Live producers, by group.
    pub(super) producers: Mutex<ProducerTable>,
    /// Half messages and their resolution.
    pub(super) transactions: Mutex<super::transaction::TransactionState>,
    /// Replication partners.
    pub ha: super::ha::HaState,
}

impl<E: Env> BrokerProcessor<E> {
    /// Registers with every nameserver now (a running broker) and returns once a registration
    /// that started after this call has finished.
    pub async fn register_now(&self) {
        let asked = self.registrations_asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        self.registered.notify_one();
        let _ = self.registrations_done.wait_for(asked).await;
    }

    /// Stores messages and wakes the pulls parked on their queues: every write of the broker's
    /// own (sends, retries, delayed deliveries, transaction records) goes through here.
    pub(super) fn put_messages(
        &self,
        messages: &[twinmq_storage::NewMessage<'_>],
    ) -> Result<Vec<twinmq_storage::AppendedMessage>, twinmq_storage::StorageError> {
        let appended = lock(&self.store).put_messages(messages)?;
        self.arrived.notify_waiters();
        Ok(appended)
    }

    /// Stores one record the broker writes itself (a retry, a delayed message come due, a
    /// transaction's committed copy, op record or given-up half) in the record's topic and
    /// queue, under `tag_hash` in the ConsumeQueue and `keys` in the IndexFile.
    pub(super) fn put_record(
        &self,
        record: &MessageRecord,
        tag_hash: u64,
        keys: Option<&str>,
    ) -> Result<(), String> {
        let body = record.encode().map_err(|e| e.to_string())?;
        self.put_messages(&[twinmq_storage::NewMessage {
            topic: &record.topic,
            queue_id: u32::try_from(record.queue_id).unwrap_or(0),
            tag_hash,
            keys: keys.map(str::as_bytes),
            body: &body,
        }])
        .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Stores `record`, held until now under a system topic (a delay level, the half topic), in
    /// the topic and queue its REAL_TOPIC and REAL_QID name, with `props` as its properties.
    pub(super) fn put_in_real_queue(
        &self,
        record: MessageRecord,
        props: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        let topic = props.get(REAL_TOPIC).cloned().ok_or("no REAL_TOPIC")?;
        let queue_id: u32 =
            props.get(REAL_QID).and_then(|q| q.parse().ok()).ok_or("no REAL_QID")?;
        let queue_id = i32::try_from(queue_id).map_err(|_| "REAL_QID out of range")?;
        let tag_hash = props.get(TAGS).map_or(0, |tag| properties::tag_hash(tag) as u64);
        let real =
            MessageRecord { topic, queue_id, properties: properties::encode(props), ..record };
        self.put_record(&real, tag_hash, props.get(KEYS).map(String::as_str))
    }

    /// Where the CommitLog ends: the physical offset the next message gets.
    pub fn commit_log_end(&self) -> u64 {
        lock(&self.store).commit_log().max_physical_offset()
    }
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(super) fn number<T: std::str::FromStr>(value: Option<&str>) -> Option<T> {
    value?.parse().ok()
}

impl<E: Env> Processor for BrokerProcessor<E> {
    async fn process(&self, request: RemotingCommand, peer: &Peer) -> Option<RemotingCommand> {
        let writes = matches!(
            request.code,
            request_code::SEND_MESSAGE
                | request_code::SEND_MESSAGE_V2
                | request_code::SEND_BATCH_MESSAGE
                | request_code::CONSUMER_SEND_MSG_BACK
                | request_code::END_TRANSACTION
        );
        if writes && !self.config.ha.role.is_master() {
            // A slave's CommitLog is its master's copy: nothing else may write to it.
            return Some(RemotingCommand::response_to(
                &request,
                SERVICE_NOT_AVAILABLE,
                Some(format!("broker {} is a slave: it takes no writes", self.config.broker_name)),
            ));
        }
        let response = match request.code {
            request_code::SEND_MESSAGE | request_code::SEND_MESSAGE_V2 => {
                self.send(&request, peer).await
            }
            request_code::SEND_BATCH_MESSAGE => self.send_batch(&request, peer).await,
            request_code::CONSUMER_SEND_MSG_BACK => self.send_back(&request),
            request_code::END_TRANSACTION => self.end_transaction(&request),
            request_code::UPDATE_AND_CREATE_TOPIC => self.create_topic(&request),
            request_code::GET_ALL_TOPIC_CONFIG => self.all_topics(&request),
            request_code::GET_ALL_CONSUMER_OFFSET => self.all_offsets(&request),
            request_code::LOCK_BATCH_MQ => self.lock_queues(&request),
            request_code::UNLOCK_BATCH_MQ => self.unlock_queues(&request),
            request_code::PULL_MESSAGE | request_code::LITE_PULL_MESSAGE => {
                self.pull(&request).await
            }
            request_code::QUERY_CONSUMER_OFFSET => self.query_offset(&request),
            request_code::UPDATE_CONSUMER_OFFSET => self.update_offset(&request),
            request_code::GET_MAX_OFFSET | request_code::GET_MIN_OFFSET => {
                self.queue_bound(&request)
            }
            request_code::SEARCH_OFFSET_BY_TIMESTAMP => self.offset_by_time(&request),
            request_code::HEART_BEAT => self.heartbeat(&request, peer),
            request_code::UNREGISTER_CLIENT => self.unregister(&request),
            request_code::GET_CONSUMER_LIST_BY_GROUP => self.consumer_list(&request),
            other => {
                tracing::info!(peer = %peer.addr, code = other, "request code not supported");
                RemotingCommand::response_to(
                    &request,
                    REQUEST_CODE_NOT_SUPPORTED,
                    Some("Protocol request is unsupported".into()),
                )
            }
        };
        Some(response)
    }

    fn disconnected(&self, peer: &Peer) {
        let mut groups = lock(&self.groups);
        let mut changed_groups = Vec::new();
        for (name, group) in groups.iter_mut() {
            let members_before = group.clients.len();
            group.clients.retain(|_, (client, _)| client.addr != peer.addr);
            if group.clients.len() != members_before {
                changed_groups.push(name.clone());
            }
        }
        drop(groups);
        // As RocketMQ's ClientHousekeepingService does: the remaining members rebalance now,
        // not at their next periodic rebalance.
        for name in changed_groups {
            self.notify_group_changed(&name);
        }
        for clients in lock(&self.producers).values_mut() {
            clients.retain(|_, (client, _)| client.addr != peer.addr);
        }
    }
}

impl<E: Env> BrokerProcessor<E> {
    async fn pull(&self, request: &RemotingCommand) -> RemotingCommand {
        let (Some(topic), Some(group), Some(queue_id), Some(offset)) = (
            request.field("topic"),
            request.field("consumerGroup"),
            number::<u32>(request.field("queueId")),
            number::<u64>(request.field("queueOffset")),
        ) else {
            return RemotingCommand::response_to(
                request,
                SYSTEM_ERROR,
                Some("pull header incomplete".into()),
            );
        };
        let sys_flag: i32 = number(request.field("sysFlag")).unwrap_or(0);
        let max_messages =
            number(request.field("maxMsgNums")).unwrap_or(32u32).min(PULL_MESSAGES_MAX);
        let max_bytes =
            number(request.field("maxMsgBytes")).unwrap_or(PULL_BYTES_MAX).min(PULL_BYTES_MAX);
        if sys_flag & PULL_COMMIT_OFFSET != 0
            && let Some(commit) = number::<i64>(request.field("commitOffset")).filter(|o| *o >= 0)
        {
            lock(&self.offsets).set(topic, group, queue_id, u64::try_from(commit).unwrap_or(0));
        }
        let tags = match request.field("subscription").filter(|s| !s.is_empty()) {
            Some(expression) => parse_tags(expression),
            None => lock(&self.groups).get(group).and_then(|g| g.tag_filter(topic)),
        };
        let suspend = sys_flag & PULL_SUSPEND != 0;
        let timeout_ms = number(request.field("suspendTimeoutMillis")).unwrap_or(15_000u64);
        let deadline =
            tokio::time::sleep(Duration::from_millis(if suspend { timeout_ms } else { 0 }));
        tokio::pin!(deadline);
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let result = lock(&self.store).get_message(
                topic,
                queue_id,
                offset,
                max_messages,
                max_bytes,
                tags.as_ref(),
            );
            let result = match result {
                Ok(result) => result,
                Err(error) => {
                    return RemotingCommand::response_to(
                        request,
                        SYSTEM_ERROR,
                        Some(error.to_string()),
                    );
                }
            };
            let (code, body) = match result.status {
                GetMessageStatus::Found => {
                    let mut body = BytesMut::new();
                    for message in &result.messages {
                        let start = body.len();
                        body.extend_from_slice(&message.body);
                        stamp(
                            &mut body[start..],
                            message.queue_offset,
                            message.physical_offset,
                            message.store_timestamp_ms,
                        );
                    }
                    (SUCCESS, body.freeze())
                }
                GetMessageStatus::NoMatchedMessage => (PULL_RETRY_IMMEDIATELY, Bytes::new()),
                GetMessageStatus::OffsetTooSmall | GetMessageStatus::OffsetOverflowBadly => {
                    (PULL_OFFSET_MOVED, Bytes::new())
                }
                GetMessageStatus::NoMessageInQueue | GetMessageStatus::OffsetOverflowOne => {
                    (PULL_NOT_FOUND, Bytes::new())
                }
            };
            if code == PULL_NOT_FOUND && suspend {
                tokio::select! {
                    biased;
                    () = &mut arrived => continue,
                    () = &mut deadline => {}
                }
            }
            let next = if code == PULL_NOT_FOUND {
                offset.max(result.next_begin_offset.min(offset))
            } else {
                result.next_begin_offset
            };
            return RemotingCommand::response_to(request, code, None)
                .with_field("suggestWhichBrokerId", 0)
                .with_field("nextBeginOffset", next)
                .with_field("minOffset", result.min_offset)
                .with_field("maxOffset", result.max_offset)
                .with_body(body);
        }
    }

    fn query_offset(&self, request: &RemotingCommand) -> RemotingCommand {
        let (Some(topic), Some(group), Some(queue_id)) = (
            request.field("topic"),
            request.field("consumerGroup"),
            number::<u32>(request.field("queueId")),
        ) else {
            return RemotingCommand::response_to(
                request,
                SYSTEM_ERROR,
                Some("query header incomplete".into()),
            );
        };
        match lock(&self.offsets).get(topic, group, queue_id) {
            Some(offset) => {
                RemotingCommand::response_to(request, SUCCESS, None).with_field("offset", offset)
            }
            None if lock(&self.store).min_offset_in_queue(topic, queue_id) == 0 => {
                // A new group on a queue that still starts at 0 starts at 0 (RocketMQ's rule).
                RemotingCommand::response_to(request, SUCCESS, None).with_field("offset", 0)
            }
            None => {
                RemotingCommand::response_to(request, QUERY_NOT_FOUND, Some("Not found".into()))
            }
        }
    }

    fn update_offset(&self, request: &RemotingCommand) -> RemotingCommand {
        if let (Some(topic), Some(group), Some(queue_id), Some(offset)) = (
            request.field("topic"),
            request.field("consumerGroup"),
            number::<u32>(request.field("queueId")),
            number::<u64>(request.field("commitOffset")),
        ) {
            lock(&self.offsets).set(topic, group, queue_id, offset);
        }
        RemotingCommand::response_to(request, SUCCESS, None)
    }

    fn queue_bound(&self, request: &RemotingCommand) -> RemotingCommand {
        let (Some(topic), Some(queue_id)) =
            (request.field("topic"), number::<u32>(request.field("queueId")))
        else {
            return RemotingCommand::response_to(
                request,
                SYSTEM_ERROR,
                Some("topic or queueId missing".into()),
            );
        };
        let store = lock(&self.store);
        let offset = if request.code == request_code::GET_MAX_OFFSET {
            store.max_offset_in_queue(topic, queue_id)
        } else {
            store.min_offset_in_queue(topic, queue_id)
        };
        RemotingCommand::response_to(request, SUCCESS, None).with_field("offset", offset)
    }

    fn offset_by_time(&self, request: &RemotingCommand) -> RemotingCommand {
        let (Some(topic), Some(queue_id), Some(timestamp)) = (
            request.field("topic"),
            number::<u32>(request.field("queueId")),
            number::<i64>(request.field("timestamp")),
        ) else {
            return RemotingCommand::response_to(
                request,
                SYSTEM_ERROR,
                Some("topic, queueId or timestamp missing".into()),
            );
        };
        match lock(&self.store).offset_by_time(topic, queue_id, timestamp) {
            Ok(offset) => {
                RemotingCommand::response_to(request, SUCCESS, None).with_field("offset", offset)
            }
            Err(error) => {
                RemotingCommand::response_to(request, SYSTEM_ERROR, Some(error.to_string()))
            }
        }
    }

    fn heartbeat(&self, request: &RemotingCommand, peer: &Peer) -> RemotingCommand {
        let Ok(body) = serde_json::from_slice::<serde_json::Value>(&request.body) else {
            return RemotingCommand::response_to(
                request,
                SYSTEM_ERROR,
                Some("heartbeat body is not JSON".into()),
            );
        };
        let client_id = body["clientID"].as_str().unwrap_or_default().to_owned();
        let now_ms = self.env.clock().now_ms();
        let mut changed_groups = Vec::new();
        if let Some(producers) = body["producerDataSet"].as_array() {
            let mut table = lock(&self.producers);
            for name in producers.iter().filter_map(|p| p["groupName"].as_str()) {
                table
                    .entry(name.to_owned())
                    .or_default()
                    .insert(client_id.clone(), (peer.clone(), now_ms));
            }
        }
        if let Some(consumers) = body["consumerDataSet"].as_array() {
            let mut groups = lock(&self.groups);
            for consumer in consumers {
                let Some(name) = consumer["groupName"].as_str() else { continue };
                let group = groups.entry(name.to_owned()).or_default();
                if group.clients.insert(client_id.clone(), (peer.clone(), now_ms)).is_none() {
                    changed_groups.push(name.to_owned());
                }
                for subscription in consumer["subscriptionDataSet"].as_array().into_iter().flatten()
                {
                    if let (Some(topic), Some(expression)) =
                        (subscription["topic"].as_str(), subscription["subString"].as_str())
                    {
                        group.subscriptions.insert(topic.to_owned(), expression.to_owned());
                    }
                }
                let retry = format!("%RETRY%{name}");
                if let Ok((_, true)) = lock(&self.topics).get_or_create(&retry, 1) {
                    self.registered.notify_one();
                }
            }
        }
        for name in changed_groups {
            self.notify_group_changed(&name);
        }
        RemotingCommand::response_to(request, SUCCESS, None)
            .with_field("IS_SUB_CHANGE", "true")
            .with_field("IS_SUPPORT_HEART_BEAT_V2", "true")
    }

    /// Tells every member of a group to rebalance (oneway NOTIFY_CONSUMER_IDS_CHANGED).
    pub(super) fn notify_group_changed(&self, name: &str) {
        let groups = lock(&self.groups);
        let Some(group) = groups.get(name) else { return };
        for (peer, _) in group.clients.values() {
            let notice = RemotingCommand::request(
                request_code::NOTIFY_CONSUMER_IDS_CHANGED,
                BTreeMap::new(),
                Bytes::new(),
            )
            .with_field("consumerGroup", name);
            peer.send_oneway(notice);
        }
    }

    fn unregister(&self, request: &RemotingCommand) -> RemotingCommand {
        if let (Some(client), Some(group)) =
            (request.field("clientID"), request.field("producerGroup"))
            && let Some(clients) = lock(&self.producers).get_mut(group)
        {
            clients.remove(client);
        }
        if let (Some(client), Some(group)) =
            (request.field("clientID"), request.field("consumerGroup"))
        {
            let removed = lock(&self.groups)
                .get_mut(group)
                .is_some_and(|g| g.clients.remove(client).is_some());
            if removed {
                self.notify_group_changed(group);
            }
        }
        RemotingCommand::response_to(request, SUCCESS, None)
    }

    fn consumer_list(&self, request: &RemotingCommand) -> RemotingCommand {
        let ids: Vec<String> = request
            .field("consumerGroup")
            .and_then(|name| {
                lock(&self.groups).get(name).map(|g| g.clients.keys().cloned().collect())
            })
            .unwrap_or_default();
        RemotingCommand::response_to(request, SUCCESS, None).with_body(
            serde_json::to_vec(&serde_json::json!({"consumerIdList": ids})).unwrap_or_default(),
        )
    }
}
