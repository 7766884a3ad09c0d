//! ReplicaFetcher — a follower's side of replication: one task per leader broker fetching every
//! partition this broker follows on it (Fetch with `replica_id`), truncating where the leader
//! reports divergence, appending the rest with the leader's offsets. A sibling task asks the
//! controller to shrink the ISR of led partitions whose followers lag.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::task::JoinHandle;
use twinmq_runtime::Env;

use super::{Partition, Role, partition_name};
use crate::client::ClientConnection;
use crate::client::backoff::{RECONNECT_BACKOFF_MAX_MS, ReconnectBackoff};
use crate::server::BrokerContext;

/// How often the set of leaders to fetch from is revised.
const SUPERVISE_MS: u64 = 100;
/// Pause before reconnecting to a leader.
const RECONNECT_MS: u64 = 200;
/// Bytes fetched per partition per request.
const PARTITION_FETCH_BYTES: i32 = 1 << 20;
/// How often led partitions are checked for lagging followers.
const ISR_CHECK_MS: u64 = 500;

/// Keeps one fetcher running per leader this broker follows, until shutdown.
pub async fn run<E: Env>(context: Arc<BrokerContext<E>>) {
    let mut fetchers: BTreeMap<i32, JoinHandle<()>> = BTreeMap::new();
    loop {
        tokio::select! {
            biased;
            () = context.shutdown.wait() => break,
            () = tokio::time::sleep(Duration::from_millis(SUPERVISE_MS)) => {}
        }
        let leaders: BTreeSet<i32> = context
            .replicas
            .all()
            .iter()
            .filter_map(|p| match p.role() {
                Ok((Role::Follower { leader }, _, _))
                    if leader >= 0 && leader != context.config.node_id =>
                {
                    Some(leader)
                }
                _ => None,
            })
            .collect();
        fetchers.retain(|leader, task| !task.is_finished() || leaders.contains(leader));
        fetchers.retain(|_, task| !task.is_finished());
        for leader in leaders {
            fetchers
                .entry(leader)
                .or_insert_with(|| tokio::spawn(fetch_from(Arc::clone(&context), leader)));
        }
    }
    for task in fetchers.into_values() {
        task.abort();
    }
}

fn followed<E: Env>(context: &BrokerContext<E>, leader: i32) -> Vec<Arc<Partition<E::Fs>>> {
    context
        .replicas
        .all()
        .into_iter()
        .filter(|p| matches!(p.role(), Ok((Role::Follower { leader: l }, _, _)) if l == leader))
        .collect()
}

/// Fetches from one leader while this broker follows any of its partitions.
async fn fetch_from<E: Env>(context: Arc<BrokerContext<E>>, leader: i32) {
    let node_id = context.config.node_id;
    let client_id = format!("replica-fetcher-{node_id}-{leader}");
    let mut backoff = ReconnectBackoff::new(
        Duration::from_millis(RECONNECT_MS),
        Duration::from_millis(RECONNECT_BACKOFF_MAX_MS),
    );
    loop {
        if context.shutdown.is_triggered() || followed(&context, leader).is_empty() {
            return;
        }
        let addr = context.cluster.with_image(|image| {
            image.brokers.get(&leader).map(|b| format!("{}:{}", b.host, b.port))
        });
        let connection = match addr {
            Some(addr) => {
                let wait_ms = u64::try_from(context.config.replica_fetch_wait_max_ms).unwrap_or(0);
                let timeout =
                    Duration::from_millis(wait_ms + context.config.replica_socket_timeout_ms);
                ClientConnection::connect_within(context.env.net(), &addr, &client_id, timeout)
                    .await
                    .ok()
            }
            None => None,
        };
        let Some(mut connection) = connection else {
            tokio::time::sleep(backoff.failed()).await;
            continue;
        };
        backoff.succeeded();
        loop {
            let partitions = followed(&context, leader);
            if partitions.is_empty() || context.shutdown.is_triggered() {
                return;
            }
            let request = fetch_request(&context, &partitions);
            let response = tokio::select! {
                biased;
                () = context.shutdown.wait() => return,
                response = connection.send(12, &request) => response,
            };
            match response {
                Ok(response) => {
                    // A follower reports an offset as fetched only once it is as durable as the
                    // flush policy promises (Kafka's flush.messages applies to followers too);
                    // each append already asked its partition's flusher, so they sync at once.
                    for (partition, leo) in apply(&context, leader, &request, &partitions, response)
                    {
                        tokio::select! {
                            biased;
                            () = context.shutdown.wait() => return,
                            durable = partition.wait_durable(leo) => if let Err(error) = durable {
                                tracing::warn!(partition = %partition_name(&partition.topic, partition.index), %error, "follower flush failed");
                            },
                        }
                    }
                }
                Err(error) => {
                    tracing::debug!(leader, %error, "replica fetch failed");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(RECONNECT_MS)).await;
    }
}

/// The leader epoch `request` fetched `topic`-`index` in (-1 when it did not fetch it).
fn epoch_of(request: &FetchRequest, topic: &str, index: i32) -> i32 {
    request
        .topics
        .iter()
        .filter(|t| t.topic.0.as_str() == topic)
        .flat_map(|t| &t.partitions)
        .find(|p| p.partition == index)
        .map_or(-1, |p| p.current_leader_epoch)
}

fn fetch_request<E: Env>(
    context: &BrokerContext<E>,
    partitions: &[Arc<Partition<E::Fs>>],
) -> FetchRequest {
    let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
    for partition in partitions {
        let (_, epoch, leo) = partition.role().unwrap_or((Role::Follower { leader: -1 }, 0, 0));
        let last_epoch = partition.last_epoch().ok().flatten().unwrap_or(-1);
        topics.entry(&partition.topic).or_default().push(
            FetchPartition::default()
                .with_partition(partition.index)
                .with_current_leader_epoch(epoch)
                .with_fetch_offset(i64::try_from(leo).unwrap_or(i64::MAX))
                .with_last_fetched_epoch(last_epoch)
                .with_partition_max_bytes(PARTITION_FETCH_BYTES),
        );
    }
    FetchRequest::default()
        .with_replica_id(BrokerId(context.config.node_id))
        .with_max_wait_ms(context.config.replica_fetch_wait_max_ms)
        .with_min_bytes(1)
        .with_max_bytes(64 << 20)
        .with_topics(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

/// Applies a fetch response; returns the partitions that appended, with their new log end.
fn apply<E: Env>(
    context: &BrokerContext<E>,
    leader: i32,
    request: &FetchRequest,
    partitions: &[Arc<Partition<E::Fs>>],
    response: FetchResponse,
) -> Vec<(Arc<Partition<E::Fs>>, u64)> {
    let mut appended = Vec::new();
    for topic in response.responses {
        for data in topic.partitions {
            let Some(partition) = partitions
                .iter()
                .find(|p| p.topic == topic.topic.0.as_str() && p.index == data.partition_index)
            else {
                continue;
            };
            if data.error_code != 0 {
                tracing::debug!(topic = %topic.topic.0, partition = data.partition_index, code = data.error_code, "replica fetch error");
                continue;
            }
            let fetched_in = (leader, epoch_of(request, &topic.topic.0, data.partition_index));
            let outcome = if data.diverging_epoch.end_offset >= 0 {
                let diverging = &data.diverging_epoch;
                let leader_end = u64::try_from(diverging.end_offset).unwrap_or(0);
                partition.truncate_diverged(diverging.epoch, leader_end, fetched_in)
            } else {
                let high_watermark = u64::try_from(data.high_watermark.max(0)).unwrap_or(0);
                let records = data.records.as_deref().unwrap_or_default();
                let outcome = partition.append_as_follower(records, high_watermark, fetched_in);
                if let Ok(leo) = outcome
                    && !records.is_empty()
                {
                    appended.push((Arc::clone(partition), leo));
                }
                outcome
            };
            if let Err(error) = outcome {
                tracing::warn!(topic = %topic.topic.0, partition = data.partition_index, %error, "replication failed");
                context.halt_on_io_error("replicating", &error);
            }
        }
    }
    context.records_visible.notify_waiters();
    appended
}

/// Applies each partition's retention every `retention_check_interval_ms`, until shutdown.
pub async fn apply_retention<E: Env>(context: Arc<BrokerContext<E>>) {
    let interval = Duration::from_millis(context.config.retention_check_interval_ms.max(1));
    loop {
        tokio::select! {
            biased;
            () = context.shutdown.wait() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let now_ms = context.env.clock().now_ms();
        for partition in context.replicas.all() {
            match partition.apply_retention(now_ms) {
                Ok(0) => {}
                Ok(deleted) => {
                    tracing::info!(partition = %super::partition_name(&partition.topic, partition.index), deleted, "retention deleted segments")
                }
                Err(error) => tracing::warn!(%error, "retention failed"),
            }
        }
    }
}

/// Compacts the compacted partitions every `cleaner_backoff_ms`, until shutdown.
pub async fn compact<E: Env>(context: Arc<BrokerContext<E>>) {
    let interval = Duration::from_millis(context.config.cleaner_backoff_ms.max(1));
    loop {
        tokio::select! {
            biased;
            () = context.shutdown.wait() => return,
            () = tokio::time::sleep(interval) => {}
        }
        for partition in context.replicas.all() {
            match partition.compact() {
                Ok(0) => {}
                Ok(removed) => {
                    tracing::debug!(partition = %super::partition_name(&partition.topic, partition.index), removed, "compacted")
                }
                Err(error) => tracing::warn!(%error, "compaction failed"),
            }
        }
    }
}

/// Asks the controller to drop lagging followers from the ISR of partitions this broker leads.
pub async fn shrink_isrs<E: Env>(context: Arc<BrokerContext<E>>) {
    loop {
        tokio::select! {
            biased;
            () = context.shutdown.wait() => return,
            () = tokio::time::sleep(Duration::from_millis(ISR_CHECK_MS)) => {}
        }
        let now_ms = context.env.clock().now_ms();
        for partition in context.replicas.all() {
            let Ok(Some(proposal)) =
                partition.lagging(now_ms, context.config.replica_lag_time_max_ms)
            else {
                continue;
            };
            let Ok((_, epoch, _)) = partition.role() else { continue };
            tracing::info!(partition = %super::partition_name(&partition.topic, partition.index), isr = ?proposal.isr, reason = %proposal.reason, "ISR shrink");
            match context
                .cluster
                .alter_isr(&partition.topic, partition.index, epoch, &proposal.isr)
                .await
            {
                Ok(()) if context.cluster.controller.is_some() => context.metadata_changed(),
                Ok(()) => {}
                Err(error) => tracing::info!(%error, "ISR shrink not committed"),
            }
        }
    }
}
