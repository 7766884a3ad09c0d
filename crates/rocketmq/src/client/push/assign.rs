//! One rebalance round of a push consumer (RocketMQ `RebalanceImpl`): which queues it should
//! own now (every queue in broadcasting mode, an averaged share of the group's in clustering
//! mode), releasing the others — offsets committed, orderly locks given back — and starting
//! the new ones from their committed offset or the configured starting point.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use twinmq_runtime::{Env, Shutdown};

use super::{ConsumeFrom, Inner, MessageModel, RETRY_PREFIX, Worker, lock};
use crate::client::instance::request_with;
use crate::client::offset::OffsetKeeping;
use crate::client::pull::{query_offset, queue_bound, search_offset};
use crate::client::rebalance::allocate_averagely;
use crate::client::route::TopicRoute;
use crate::client::{ClientError, MessageQueue};
use crate::remoting::{RemotingCommand, request_code};

/// What a broker says about the group.
enum Membership {
    /// Its members, this client among them.
    Members(Vec<String>),
    /// Members without this client: its heartbeat has not arrived (or was forgotten).
    NotListed,
    /// No answer.
    Unknown,
}

impl<E: Env> Inner<E> {
    /// One rebalance round; false when some part must be tried again soon.
    pub(super) async fn rebalance(
        self: &Arc<Self>,
        routes: &BTreeMap<String, Arc<TopicRoute>>,
    ) -> bool {
        let mut complete = true;
        let mut decided_topics = BTreeSet::new();
        let mut desired = BTreeSet::new();
        for (topic, route) in routes {
            let all = route.read_queues.clone();
            let mine = match self.config.model {
                MessageModel::Broadcasting => all,
                MessageModel::Clustering => match self.members(route).await {
                    Membership::Members(members) => {
                        allocate_averagely(&self.instance.config().client_id, &all, &members)
                    }
                    Membership::NotListed => {
                        // The broker forgot this client (restarted, or a dropped connection):
                        // heartbeat again before the next round.
                        lock(&self.heartbeated).clear();
                        complete = false;
                        continue;
                    }
                    Membership::Unknown => {
                        complete = false;
                        continue;
                    }
                },
            };
            decided_topics.insert(topic.clone());
            desired.extend(mine);
        }
        if self.shutdown.is_triggered() {
            return true;
        }
        let mut workers = self.workers.lock().await;
        let released: Vec<MessageQueue> = workers
            .keys()
            .filter(|q| decided_topics.contains(&q.topic) && !desired.contains(*q))
            .cloned()
            .collect();
        for queue in released {
            if let Some(worker) = workers.remove(&queue) {
                worker.stop.trigger();
                let _ = worker.task.await;
            }
            self.release(&queue).await;
        }
        let mut startable: BTreeSet<MessageQueue> = desired.clone();
        if self.config.orderly {
            let mut wanted: BTreeSet<MessageQueue> = workers.keys().cloned().collect();
            wanted.extend(desired.iter().cloned());
            let granted = self.lock_queues(&wanted).await;
            let lost: Vec<MessageQueue> =
                workers.keys().filter(|q| !granted.contains(*q)).cloned().collect();
            for queue in lost {
                tracing::info!(%queue, "orderly lock lost; queue paused");
                if let Some(worker) = workers.remove(&queue) {
                    worker.stop.trigger();
                    let _ = worker.task.await;
                }
                let _ = self
                    .offsets
                    .persist_and_remove(&self.instance, &self.config.group, &queue)
                    .await;
                complete = false;
            }
            if desired.iter().any(|q| !granted.contains(q)) {
                complete = false;
            }
            startable.retain(|q| granted.contains(q));
        }
        for queue in startable {
            if workers.contains_key(&queue) {
                continue;
            }
            match self.start_offset(&queue).await {
                Ok(offset) => {
                    tracing::debug!(%queue, offset, client = %self.instance.config().client_id, "queue taken");
                    let stop = Shutdown::new();
                    let task = tokio::spawn(Arc::clone(self).consume_queue(
                        queue.clone(),
                        offset,
                        stop.clone(),
                    ));
                    workers.insert(queue, Worker { stop, task });
                }
                Err(error) => {
                    tracing::debug!(%queue, %error, "no start offset yet");
                    complete = false;
                }
            }
        }
        self.set_assignment(workers.keys().cloned().collect());
        complete
    }

    /// The group's members as a broker of `route` knows them.
    async fn members(&self, route: &TopicRoute) -> Membership {
        let Some(addr) = route.read_addrs.values().next() else { return Membership::Unknown };
        let request = request_with(
            request_code::GET_CONSUMER_LIST_BY_GROUP,
            &[("consumerGroup", self.config.group.clone())],
        );
        let Ok(response) = self.instance.request_ok(addr, request).await else {
            return Membership::Unknown;
        };
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
        let Some(ids) = body["consumerIdList"].as_array() else { return Membership::Unknown };
        let members: Vec<String> =
            ids.iter().filter_map(|id| id.as_str().map(str::to_owned)).collect();
        if members.contains(&self.instance.config().client_id) {
            Membership::Members(members)
        } else {
            Membership::NotListed
        }
    }

    /// Commits a released queue's offset (waiting for the broker) and unlocks it if orderly.
    pub(super) async fn release(&self, queue: &MessageQueue) {
        let committed =
            self.offsets.persist_and_remove(&self.instance, &self.config.group, queue).await;
        if let Err(error) = committed {
            tracing::warn!(%queue, %error, "offset of a released queue not committed");
        }
        if self.config.orderly {
            self.lock_request(request_code::UNLOCK_BATCH_MQ, std::slice::from_ref(queue)).await;
        }
        tracing::debug!(%queue, client = %self.instance.config().client_id, "queue released");
    }

    /// LOCK_BATCH_MQ per broker; the queues granted.
    async fn lock_queues(&self, queues: &BTreeSet<MessageQueue>) -> BTreeSet<MessageQueue> {
        let mut by_broker: BTreeMap<&str, Vec<MessageQueue>> = BTreeMap::new();
        for queue in queues {
            by_broker.entry(&queue.broker_name).or_default().push(queue.clone());
        }
        let mut granted = BTreeSet::new();
        for batch in by_broker.values() {
            let Some(response) = self.lock_request(request_code::LOCK_BATCH_MQ, batch).await else {
                continue;
            };
            let body: serde_json::Value =
                serde_json::from_slice(&response.body).unwrap_or_default();
            let ok = body["lockOKMQSet"].as_array().cloned().unwrap_or_default();
            granted.extend(
                ok.into_iter().filter_map(|q| serde_json::from_value::<MessageQueue>(q).ok()),
            );
        }
        granted
    }

    /// LOCK_BATCH_MQ or UNLOCK_BATCH_MQ for queues of one broker; `None` when it failed.
    async fn lock_request(&self, code: i32, queues: &[MessageQueue]) -> Option<RemotingCommand> {
        let first = queues.first()?;
        let addr = self.instance.master_addr(&first.broker_name)?;
        let body = serde_json::json!({
            "consumerGroup": self.config.group,
            "clientId": self.instance.config().client_id,
            "onlyThisBroker": false,
            "mqSet": queues,
        });
        let request = RemotingCommand::request(
            code,
            BTreeMap::new(),
            Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
        );
        match self.instance.request_ok(&addr, request).await {
            Ok(response) => Some(response),
            Err(error) => {
                tracing::debug!(%addr, code, %error, "queue lock request failed");
                None
            }
        }
    }

    /// Where consumption of a newly owned queue starts.
    async fn start_offset(&self, queue: &MessageQueue) -> Result<i64, ClientError> {
        if let Some(offset) = self.offsets.read(queue) {
            return Ok(offset);
        }
        if *self.offsets.keeping() == OffsetKeeping::Broker
            && let Some(offset) = query_offset(&self.instance, &self.config.group, queue).await?
        {
            self.offsets.start_at(queue, offset);
            return Ok(offset);
        }
        let offset = if queue.topic.starts_with(RETRY_PREFIX) {
            0
        } else {
            match self.config.consume_from {
                ConsumeFrom::FirstOffset => {
                    queue_bound(&self.instance, queue, request_code::GET_MIN_OFFSET).await?
                }
                ConsumeFrom::LastOffset => {
                    queue_bound(&self.instance, queue, request_code::GET_MAX_OFFSET).await?
                }
                ConsumeFrom::Timestamp(at_ms) => {
                    search_offset(&self.instance, queue, at_ms).await?
                }
            }
        };
        self.offsets.start_at(queue, offset);
        Ok(offset)
    }
}
