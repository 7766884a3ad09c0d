//! Consumer — twinmq's own Kafka consumer: assigned partitions or a group subscription (the
//! classic protocol with the range or round-robin assignor, interoperable with other clients'
//! members), fetches from each partition's leader, offset commits, seeks by offset or time.
//!
//! Heartbeats are sent from `poll`, so an application must poll within the session timeout.
//! Fetched batches must be uncompressed (the client decodes without codecs).

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use twinmq_runtime::{Clock, Net};

use super::assignor::Assignor;
use super::cluster_client::ClusterClient;
use super::connection::ClientError;

mod group;

/// Where a partition without a committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    /// The log start.
    Earliest,
    /// The high watermark.
    Latest,
}

/// Consumer settings (Kafka's names).
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// `group.id`; `None` for assigned partitions only.
    pub group_id: Option<String>,
    /// `partition.assignment.strategy`.
    pub assignor: Assignor,
    /// `session.timeout.ms`.
    pub session_timeout_ms: i32,
    /// `max.poll.interval.ms` (the rebalance timeout).
    pub rebalance_timeout_ms: i32,
    /// `heartbeat.interval.ms`.
    pub heartbeat_interval_ms: i64,
    /// `auto.offset.reset`.
    pub offset_reset: OffsetReset,
    /// `fetch.max.wait.ms`.
    pub fetch_max_wait_ms: i32,
    /// `max.partition.fetch.bytes`.
    pub partition_fetch_bytes: i32,
    /// `request.timeout.ms`: a request unanswered this long fails and its connection closes
    /// (keep it above `fetch_max_wait_ms`).
    pub request_timeout_ms: u64,
    /// `metadata.max.age.ms`: metadata older than this is refreshed, so the group leader sees
    /// a subscribed topic appear or grow partitions and rebalances.
    pub metadata_max_age_ms: i64,
    /// `retry.backoff.ms`: the least time between metadata refreshes while a subscribed topic
    /// is still unknown.
    pub retry_backoff_ms: i64,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            group_id: None,
            assignor: Assignor::Range,
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            heartbeat_interval_ms: 1_000,
            offset_reset: OffsetReset::Earliest,
            fetch_max_wait_ms: 500,
            partition_fetch_bytes: 1 << 20,
            request_timeout_ms: super::connection::REQUEST_TIMEOUT_MS,
            metadata_max_age_ms: 300_000,
            retry_backoff_ms: 100,
        }
    }
}

/// One consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// Its topic.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its timestamp.
    pub timestamp: i64,
    /// Its key.
    pub key: Option<Bytes>,
    /// Its value.
    pub value: Option<Bytes>,
}

#[derive(Debug)]
struct Membership {
    /// The group's coordinator; `None` once it stopped answering or said it no longer is.
    coordinator: Option<i32>,
    member_id: String,
    generation_id: i32,
    last_heartbeat_ms: i64,
}

/// A consumer.
pub struct Consumer<N: Net> {
    client: ClusterClient<N>,
    clock: Clock,
    config: ConsumerConfig,
    subscription: Vec<String>,
    positions: BTreeMap<(String, i32), Option<i64>>,
    membership: Option<Membership>,
    rejoin: bool,
    /// The group's committed offsets for the assignment are not fetched yet: no position may
    /// fall back to the reset policy until they are.
    committed_pending: bool,
    /// As group leader: the partition count of each subscribed topic the last assignment was
    /// made with (a change in the metadata means a rebalance).
    assigned_with: Option<BTreeMap<String, usize>>,
    metadata_refreshed_ms: i64,
    /// A leader was unknown or refused a request: refresh the metadata before the next fetch.
    metadata_stale: bool,
}

impl<N: Net> std::fmt::Debug for Consumer<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").field("positions", &self.positions).finish_non_exhaustive()
    }
}

impl<N: Net> Consumer<N> {
    /// A consumer of the cluster at `bootstrap`.
    pub fn new(
        net: N,
        clock: Clock,
        bootstrap: &str,
        client_id: &str,
        config: ConsumerConfig,
    ) -> Self {
        Self {
            client: ClusterClient::new(net, bootstrap, client_id)
                .with_request_timeout(config.request_timeout_ms),
            clock,
            config,
            subscription: Vec::new(),
            positions: BTreeMap::new(),
            membership: None,
            rejoin: false,
            committed_pending: false,
            assigned_with: None,
            metadata_refreshed_ms: i64::MIN / 2,
            metadata_stale: false,
        }
    }

    /// Subscribes to topics through the group (`group_id` must be set).
    pub fn subscribe(&mut self, topics: &[&str]) {
        self.subscription = topics.iter().map(|t| (*t).to_owned()).collect();
        self.rejoin = true;
    }

    /// Assigns partitions directly (no group); they start per `offset_reset`.
    pub fn assign(&mut self, partitions: &[(&str, i32)]) {
        self.positions = partitions.iter().map(|(t, p)| (((*t).to_owned(), *p), None)).collect();
    }

    /// The assigned partitions.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.positions.keys().cloned().collect()
    }

    /// The next offset to consume of an assigned partition.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.positions.get(&(topic.to_owned(), partition)).copied().flatten()
    }

    /// Moves an assigned partition's position.
    pub fn seek(&mut self, topic: &str, partition: i32, offset: i64) {
        self.positions.insert((topic.to_owned(), partition), Some(offset));
    }

    /// Moves every assigned partition to the first offset at or after `timestamp_ms`.
    pub async fn seek_to_timestamp(&mut self, timestamp_ms: i64) -> Result<(), ClientError> {
        let mut topics: Vec<String> = self.assignment().into_iter().map(|(t, _)| t).collect();
        topics.dedup();
        self.client.refresh(&topics).await?;
        for (topic, partition) in self.assignment() {
            let offset = self.list_offset(&topic, partition, timestamp_ms).await?;
            self.seek(&topic, partition, offset);
        }
        Ok(())
    }

    /// Fetches the next records, joining or rejoining the group first when needed.
    pub async fn poll(&mut self) -> Result<Vec<ConsumedRecord>, ClientError> {
        self.watch_metadata().await;
        if self.config.group_id.is_some() && !self.subscription.is_empty() {
            if self.rejoin || self.membership.is_none() {
                self.join().await?;
            } else {
                // As Kafka's background heartbeat: a failed beat never fails the poll; what it
                // answered (coordinator gone, member fenced) is handled before the next one.
                let beat = self.heartbeat().await;
                if let Err(error) = self.check_coordinator(beat) {
                    tracing::debug!(%error, "heartbeat failed");
                }
            }
            if self.committed_pending {
                self.fetch_committed().await?;
            }
        }
        self.resolve_positions().await;
        let mut by_leader: BTreeMap<i32, Vec<(String, i32, i64)>> = BTreeMap::new();
        for ((topic, partition), position) in &self.positions {
            let Some(position) = position else { continue };
            match self.leader_of(topic, *partition) {
                Some(leader) => by_leader.entry(leader).or_default().push((
                    topic.clone(),
                    *partition,
                    *position,
                )),
                None => self.metadata_stale = true,
            }
        }
        let mut records = Vec::new();
        for (leader, partitions) in by_leader {
            match self.fetch(leader, &partitions).await {
                Ok((fetched, refused)) => {
                    records.extend(fetched);
                    for (topic, partition, code) in refused {
                        tracing::debug!(%topic, partition, code, "fetch refused");
                        if code == ResponseError::OffsetOutOfRange.code() {
                            self.positions.insert((topic, partition), None);
                        } else {
                            self.metadata_stale = true;
                        }
                    }
                }
                Err(error) => {
                    tracing::debug!(leader, %error, "fetch failed; refreshing metadata");
                    self.metadata_stale = true;
                }
            }
        }
        for record in &records {
            self.positions
                .insert((record.topic.clone(), record.partition), Some(record.offset + 1));
        }
        Ok(records)
    }

    /// The partition's leader as the metadata names it, if it names one.
    fn leader_of(&self, topic: &str, partition: i32) -> Option<i32> {
        self.client.leader(topic, partition)
    }

    /// Gives each partition without a position one from the reset policy; a partition whose
    /// leader cannot answer now keeps none (and the metadata is refreshed before the next try).
    async fn resolve_positions(&mut self) {
        let unresolved: Vec<(String, i32)> =
            self.positions.iter().filter(|(_, p)| p.is_none()).map(|(k, _)| k.clone()).collect();
        let timestamp = match self.config.offset_reset {
            OffsetReset::Earliest => -2,
            OffsetReset::Latest => -1,
        };
        for (topic, partition) in unresolved {
            match self.list_offset(&topic, partition, timestamp).await {
                Ok(offset) => {
                    self.positions.insert((topic, partition), Some(offset));
                }
                Err(error) => {
                    tracing::debug!(%topic, partition, %error, "no reset offset yet");
                    self.metadata_stale = true;
                }
            }
        }
    }

    async fn list_offset(
        &self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> Result<i64, ClientError> {
        let leader = self
            .leader_of(topic, partition)
            .ok_or(ClientError::Broker(ResponseError::LeaderNotAvailable.code()))?;
        let request =
            ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
                ListOffsetsTopic::default().with_name(topic_name(topic)).with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(partition)
                        .with_timestamp(timestamp),
                ]),
            ]);
        let response = self.client.send_to(leader, 2, &request).await?;
        let answer = response
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or(ClientError::Closed)?;
        match answer.error_code {
            0 => Ok(answer.offset),
            code => Err(ClientError::Broker(code)),
        }
    }

    /// Fetches from one leader: the records, and the partitions it refused with their codes.
    async fn fetch(
        &self,
        leader: i32,
        partitions: &[(String, i32, i64)],
    ) -> Result<(Vec<ConsumedRecord>, Vec<(String, i32, i16)>), ClientError> {
        let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
        for (topic, partition, offset) in partitions {
            topics.entry(topic).or_default().push(
                FetchPartition::default()
                    .with_partition(*partition)
                    .with_fetch_offset(*offset)
                    .with_partition_max_bytes(self.config.partition_fetch_bytes),
            );
        }
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(self.config.fetch_max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(52_428_800)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        FetchTopic::default().with_topic(topic_name(t)).with_partitions(ps)
                    })
                    .collect(),
            );
        let response = self.client.send_to(leader, 11, &request).await?;
        let mut records = Vec::new();
        let mut refused = Vec::new();
        for topic in response.responses {
            for data in topic.partitions {
                if data.error_code != 0 {
                    refused.push((topic.topic.to_string(), data.partition_index, data.error_code));
                    continue;
                }
                let Some(mut bytes) = data.records.filter(|r| !r.is_empty()) else { continue };
                let from = partitions
                    .iter()
                    .find(|(t, p, _)| *t == topic.topic.0.as_str() && *p == data.partition_index)
                    .map_or(0, |(_, _, o)| *o);
                let sets = RecordBatchDecoder::decode_all(&mut bytes)
                    .map_err(|e| ClientError::Codec(e.to_string()))?;
                for record in sets.into_iter().flat_map(|s| s.records) {
                    if record.offset < from || record.control {
                        continue;
                    }
                    records.push(ConsumedRecord {
                        topic: topic.topic.to_string(),
                        partition: data.partition_index,
                        offset: record.offset,
                        timestamp: record.timestamp,
                        key: record.key,
                        value: record.value,
                    });
                }
            }
        }
        Ok((records, refused))
    }
}

pub(super) fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}
