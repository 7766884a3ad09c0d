//! The consumer's group membership: joining and syncing (the leader assigns), heartbeats,
//! finding the coordinator again when it moves, fetching and committing offsets, and watching
//! the metadata for changes that call for a rebalance.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use twinmq_runtime::Net;

use super::super::connection::ClientError;
use super::super::consumer_protocol::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription,
};
use super::{Consumer, Membership, topic_name};

impl<N: Net> Consumer<N> {
    /// Commits the current positions to the group.
    pub async fn commit(&mut self) -> Result<(), ClientError> {
        let (Some(group), Some(membership)) = (self.config.group_id.clone(), &self.membership)
        else {
            return Err(ClientError::Codec("commit needs a group membership".into()));
        };
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for ((topic, partition), position) in &self.positions {
            if let Some(offset) = position {
                topics.entry(topic).or_default().push(
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(*partition)
                        .with_committed_offset(*offset),
                );
            }
        }
        if topics.is_empty() {
            return Ok(());
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group)))
            .with_generation_id_or_member_epoch(membership.generation_id)
            .with_member_id(StrBytes::from_string(membership.member_id.clone()))
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(topic_name(t))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let coordinator = self.coordinator_node().await?;
        let answer =
            self.client.send_to(coordinator, 8, &request).await.and_then(|response| match response
                .topics
                .iter()
                .flat_map(|t| &t.partitions)
                .find(|p| p.error_code != 0)
            {
                None => Ok(()),
                Some(p) => Err(ClientError::Broker(p.error_code)),
            });
        self.check_coordinator(answer)
    }

    /// Keeps the subscription's metadata fresh and, as group leader, asks for a rebalance when
    /// it no longer matches the last assignment (Kafka's metadata snapshot check).
    pub(super) async fn watch_metadata(&mut self) {
        let now_ms = self.clock.now_ms();
        let age = now_ms - self.metadata_refreshed_ms;
        if age < self.config.retry_backoff_ms {
            return;
        }
        let mut topics: Vec<String> = self.subscription.clone();
        topics.extend(self.positions.keys().map(|(topic, _)| topic.clone()));
        topics.sort();
        topics.dedup();
        let unknown = topics.iter().any(|t| self.client.partitions(t).is_none());
        if topics.is_empty()
            || (age < self.config.metadata_max_age_ms && !unknown && !self.metadata_stale)
        {
            return;
        }
        self.metadata_refreshed_ms = now_ms;
        match self.client.refresh(&topics).await {
            Ok(()) => self.metadata_stale = false,
            Err(error) => tracing::debug!(%error, "metadata refresh failed"),
        }
        if let Some(assigned_with) = &self.assigned_with
            && *assigned_with != self.partition_counts()
        {
            tracing::debug!("subscribed topics changed; rejoining");
            self.rejoin = true;
        }
    }

    /// The partition count of each subscribed topic the metadata knows.
    fn partition_counts(&self) -> BTreeMap<String, usize> {
        self.subscription
            .iter()
            .filter_map(|t| Some((t.clone(), self.client.partitions(t)?.len())))
            .collect()
    }

    /// Looks at the outcome of a request to the coordinator: a coordinator that stopped
    /// answering or is no longer one is forgotten (found again before the next request), and a
    /// fenced membership rejoins; the outcome passes through.
    pub(super) fn check_coordinator<T>(
        &mut self,
        outcome: Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        if let Err(error) = &outcome {
            let code = match error {
                ClientError::Broker(code) => Some(*code),
                _ => None,
            };
            let lost = code.is_none_or(|code| {
                code == ResponseError::NotCoordinator.code()
                    || code == ResponseError::CoordinatorNotAvailable.code()
                    || code == ResponseError::CoordinatorLoadInProgress.code()
            });
            let fenced = code.is_some_and(|code| {
                code == ResponseError::RebalanceInProgress.code()
                    || code == ResponseError::IllegalGeneration.code()
                    || code == ResponseError::UnknownMemberId.code()
            });
            if lost && let Some(membership) = &mut self.membership {
                membership.coordinator = None;
            }
            if fenced {
                self.rejoin = true;
            }
            if code == Some(ResponseError::UnknownMemberId.code()) {
                self.membership = None;
            }
        }
        outcome
    }

    /// The current coordinator of this consumer's group, found again if it was forgotten.
    async fn coordinator_node(&mut self) -> Result<i32, ClientError> {
        if let Some(Some(node)) = self.membership.as_ref().map(|m| m.coordinator) {
            return Ok(node);
        }
        let group = self.config.group_id.clone().unwrap_or_default();
        let node = self.coordinator(&group).await?;
        if let Some(membership) = &mut self.membership {
            membership.coordinator = Some(node);
        }
        Ok(node)
    }

    /// Leaves the group.
    pub async fn close(mut self) -> Result<(), ClientError> {
        if let (Some(group), Some(membership)) =
            (self.config.group_id.clone(), self.membership.take())
        {
            let request = LeaveGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.clone())))
                .with_member_id(StrBytes::from_string(membership.member_id));
            let coordinator = match membership.coordinator {
                Some(node) => node,
                None => self.coordinator(&group).await?,
            };
            self.client.send_to(coordinator, 0, &request).await?;
        }
        Ok(())
    }

    /// Asks any broker which one coordinates `group`, and learns its address.
    async fn coordinator(&self, group: &str) -> Result<i32, ClientError> {
        let request =
            FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.to_owned()));
        let response = self.client.send_to_any(2, &request).await?;
        match response.error_code {
            0 => {
                let node = response.node_id.0;
                self.client.learn_broker(node, format!("{}:{}", response.host, response.port));
                Ok(node)
            }
            code => Err(ClientError::Broker(code)),
        }
    }

    pub(super) async fn join(&mut self) -> Result<(), ClientError> {
        let group = self.config.group_id.clone().unwrap_or_default();
        self.client.refresh(&self.subscription).await?;
        self.metadata_refreshed_ms = self.clock.now_ms();
        let coordinator = self.coordinator(&group).await?;
        let metadata = encode_subscription(&self.subscription);
        let request = JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.clone())))
            .with_session_timeout_ms(self.config.session_timeout_ms)
            .with_rebalance_timeout_ms(self.config.rebalance_timeout_ms)
            .with_member_id(StrBytes::from_string(
                self.membership.as_ref().map(|m| m.member_id.clone()).unwrap_or_default(),
            ))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str(self.config.assignor.name()))
                    .with_metadata(metadata),
            ]);
        let joined = self.client.send_to(coordinator, 5, &request).await?;
        if joined.error_code != 0 {
            if joined.error_code == ResponseError::UnknownMemberId.code() {
                self.membership = None;
            }
            return Err(ClientError::Broker(joined.error_code));
        }
        let member_id = joined.member_id.to_string();
        let leader = joined.leader == joined.member_id;
        let assignments = if leader { self.assign_as_leader(&joined.members)? } else { Vec::new() };
        self.assigned_with = leader.then(|| self.partition_counts());
        let request = SyncGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group)))
            .with_generation_id(joined.generation_id)
            .with_member_id(joined.member_id.clone())
            .with_assignments(assignments);
        let synced = self.client.send_to(coordinator, 3, &request).await?;
        if synced.error_code != 0 {
            return Err(ClientError::Broker(synced.error_code));
        }
        let assigned = decode_assignment(synced.assignment);
        self.membership = Some(Membership {
            coordinator: Some(coordinator),
            member_id,
            generation_id: joined.generation_id,
            last_heartbeat_ms: self.clock.now_ms(),
        });
        self.rejoin = false;
        self.positions = assigned.into_iter().map(|tp| (tp, None)).collect();
        self.committed_pending = true;
        self.fetch_committed().await
    }

    fn assign_as_leader(
        &self,
        members: &[join_group_response::JoinGroupResponseMember],
    ) -> Result<Vec<SyncGroupRequestAssignment>, ClientError> {
        let subscriptions: BTreeMap<String, Vec<String>> = members
            .iter()
            .map(|m| (m.member_id.to_string(), decode_subscription(m.metadata.clone())))
            .collect();
        let mut partitions = BTreeMap::new();
        for topic in subscriptions.values().flatten() {
            if let Some(infos) = self.client.partitions(topic) {
                partitions.insert(topic.clone(), i32::try_from(infos.len()).unwrap_or(0));
            }
        }
        let plan = self.config.assignor.assign(&subscriptions, &partitions);
        Ok(plan
            .into_iter()
            .map(|(member, topics)| {
                SyncGroupRequestAssignment::default()
                    .with_member_id(StrBytes::from_string(member))
                    .with_assignment(encode_assignment(&topics))
            })
            .collect())
    }

    pub(super) async fn heartbeat(&mut self) -> Result<(), ClientError> {
        let now_ms = self.clock.now_ms();
        let Some(membership) = &self.membership else { return Ok(()) };
        if now_ms - membership.last_heartbeat_ms < self.config.heartbeat_interval_ms {
            return Ok(());
        }
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(
                self.config.group_id.clone().unwrap_or_default(),
            )))
            .with_generation_id(membership.generation_id)
            .with_member_id(StrBytes::from_string(membership.member_id.clone()));
        let coordinator = self.coordinator_node().await?;
        let response = self.client.send_to(coordinator, 3, &request).await?;
        if let Some(membership) = &mut self.membership {
            membership.last_heartbeat_ms = now_ms;
        }
        match response.error_code {
            0 => Ok(()),
            code => Err(ClientError::Broker(code)),
        }
    }

    /// Takes the group's committed offsets as the assigned partitions' positions; a partition
    /// with none committed is left to the reset policy.
    pub(super) async fn fetch_committed(&mut self) -> Result<(), ClientError> {
        let (Some(group), Some(_)) = (self.config.group_id.clone(), &self.membership) else {
            return Ok(());
        };
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in self.positions.keys() {
            topics.entry(topic).or_default().push(*partition);
        }
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group)))
            .with_topics(Some(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetFetchRequestTopic::default()
                            .with_name(topic_name(t))
                            .with_partition_indexes(ps)
                    })
                    .collect(),
            ));
        let coordinator = self.coordinator_node().await?;
        let answer = self.client.send_to(coordinator, 7, &request).await.and_then(|response| {
            let failed = std::iter::once(response.error_code)
                .chain(
                    response.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
                )
                .find(|code| *code != 0);
            match failed {
                Some(code) => Err(ClientError::Broker(code)),
                None => Ok(response),
            }
        });
        let response = self.check_coordinator(answer)?;
        for topic in response.topics {
            for p in topic.partitions {
                if p.committed_offset >= 0 {
                    self.positions.insert(
                        (topic.name.to_string(), p.partition_index),
                        Some(p.committed_offset),
                    );
                }
            }
        }
        self.committed_pending = false;
        Ok(())
    }
}
