//! Group — the classic consumer group protocol's state machine (Kafka's `GroupMetadata` with
//! the transitions of `GroupCoordinator`): members join, the coordinator picks a leader and a
//! protocol, the leader's assignment is handed out in SyncGroup, heartbeats keep members alive.
//!
//! ```text
//! Empty ──join──▶ PreparingRebalance ──all joined / timeout──▶ CompletingRebalance
//!   ▲                  ▲      ▲                                      │ leader's SyncGroup
//!   └── last leaves ───┘      └──── join, leave, expiry ─── Stable ◀─┘
//! ```
//!
//! Pure: time comes in as `now_ms`, answers go out through the waiters' channels.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::error::KafkaError;

/// Where a group is in its rebalance cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupPhase {
    /// No members.
    Empty,
    /// Waiting for every member to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Assigned; members heartbeat.
    Stable,
}

impl GroupPhase {
    /// Kafka's name for the phase (DescribeGroups, ListGroups).
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
        }
    }
}

/// What a member learns when its join completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinOutcome {
    /// The new generation.
    pub generation_id: i32,
    /// The chosen protocol (assignor).
    pub protocol_name: String,
    /// The group's protocol type.
    pub protocol_type: String,
    /// The leader's member id.
    pub leader: String,
    /// The member's own id.
    pub member_id: String,
    /// Every member with its metadata, for the leader only.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

/// A pending JoinGroup's answer channel.
pub type JoinWaiter = oneshot::Sender<Result<JoinOutcome, KafkaError>>;
/// A pending SyncGroup's answer channel.
pub type SyncWaiter = oneshot::Sender<Result<Bytes, KafkaError>>;

/// One member of a group.
#[derive(Debug)]
pub struct Member {
    /// Its id.
    pub member_id: String,
    /// Static membership id (KIP-345), if any.
    pub group_instance_id: Option<String>,
    /// The client id it connected with.
    pub client_id: String,
    /// Where it connects from.
    pub client_host: String,
    /// Expired when no heartbeat for this long.
    pub session_timeout_ms: i32,
    /// How long a rebalance waits for it to rejoin.
    pub rebalance_timeout_ms: i32,
    /// Protocols it supports, preferred first, with their metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// Its assignment in the current generation.
    pub assignment: Bytes,
    /// When it was last heard from.
    pub last_heartbeat_ms: i64,
    join_waiter: Option<JoinWaiter>,
    sync_waiter: Option<SyncWaiter>,
}

/// A join request's fields.
#[derive(Debug)]
pub struct JoinRequest {
    /// The member id (empty on a first join).
    pub member_id: String,
    /// Static membership id.
    pub group_instance_id: Option<String>,
    /// The client id.
    pub client_id: String,
    /// The client's host.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Protocol type ("consumer").
    pub protocol_type: String,
    /// Protocols with metadata.
    pub protocols: Vec<(String, Bytes)>,
}

/// One consumer group.
#[derive(Debug)]
pub struct Group {
    /// The group id.
    pub group_id: String,
    /// The phase.
    pub phase: GroupPhase,
    /// The generation (bumped by every completed join).
    pub generation_id: i32,
    /// The protocol type of its members.
    pub protocol_type: Option<String>,
    /// The protocol chosen in this generation.
    pub protocol_name: Option<String>,
    /// The leader of this generation.
    pub leader: Option<String>,
    /// Members by id.
    pub members: BTreeMap<String, Member>,
    rebalance_deadline_ms: Option<i64>,
    join_delay_until_ms: Option<i64>,
    /// Members of this generation that have not sent their SyncGroup yet, and until when they
    /// may (the rebalance timeout after the join completed).
    pending_sync: BTreeSet<String>,
    sync_deadline_ms: Option<i64>,
    next_member: u64,
}

impl Group {
    /// An empty group.
    pub fn new(group_id: &str) -> Self {
        Self {
            group_id: group_id.to_owned(),
            phase: GroupPhase::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            rebalance_deadline_ms: None,
            join_delay_until_ms: None,
            pending_sync: BTreeSet::new(),
            sync_deadline_ms: None,
            next_member: 0,
        }
    }

    /// A member joins (or rejoins); the answer comes through `waiter` when the join completes.
    pub fn join(
        &mut self,
        request: JoinRequest,
        waiter: JoinWaiter,
        now_ms: i64,
        initial_delay_ms: i64,
    ) {
        if let Err(error) = self.check_protocols(&request) {
            let _ = waiter.send(Err(error));
            return;
        }
        let member_id = if request.member_id.is_empty() {
            self.next_member += 1;
            format!("{}-{}-{}", request.client_id, self.generation_id, self.next_member)
        } else if self.members.contains_key(&request.member_id) {
            request.member_id.clone()
        } else {
            let _ = waiter.send(Err(KafkaError::UnknownMemberId(request.member_id)));
            return;
        };
        let member = self.members.entry(member_id.clone()).or_insert_with(|| Member {
            member_id: member_id.clone(),
            group_instance_id: request.group_instance_id.clone(),
            client_id: request.client_id.clone(),
            client_host: request.client_host.clone(),
            session_timeout_ms: request.session_timeout_ms,
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            protocols: Vec::new(),
            assignment: Bytes::new(),
            last_heartbeat_ms: now_ms,
            join_waiter: None,
            sync_waiter: None,
        });
        member.session_timeout_ms = request.session_timeout_ms;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.protocols = request.protocols;
        member.last_heartbeat_ms = now_ms;
        if let Some(old) = member.join_waiter.replace(waiter) {
            let _ = old.send(Err(KafkaError::RebalanceInProgress(self.group_id.clone())));
        }
        self.protocol_type.get_or_insert(request.protocol_type);
        let delay = if self.phase == GroupPhase::Empty { initial_delay_ms } else { 0 };
        self.prepare_rebalance(now_ms, delay);
        self.try_complete_join(now_ms);
    }

    /// A member's SyncGroup: the leader brings the assignment; everyone waits for it.
    pub fn sync(
        &mut self,
        member_id: &str,
        generation_id: i32,
        assignments: Vec<(String, Bytes)>,
        waiter: SyncWaiter,
        now_ms: i64,
    ) {
        let Some(member) = self.members.get_mut(member_id) else {
            let _ = waiter.send(Err(KafkaError::UnknownMemberId(member_id.to_owned())));
            return;
        };
        member.last_heartbeat_ms = now_ms;
        if generation_id != self.generation_id {
            let _ = waiter.send(Err(KafkaError::IllegalGeneration {
                current: self.generation_id,
                got: generation_id,
            }));
            return;
        }
        match self.phase {
            GroupPhase::Empty | GroupPhase::PreparingRebalance => {
                let _ = waiter.send(Err(KafkaError::RebalanceInProgress(self.group_id.clone())));
            }
            GroupPhase::Stable => {
                self.pending_sync.remove(member_id);
                let _ = waiter.send(Ok(member.assignment.clone()));
            }
            GroupPhase::CompletingRebalance => {
                self.pending_sync.remove(member_id);
                member.sync_waiter = Some(waiter);
                if self.leader.as_deref() == Some(member_id) {
                    for member in self.members.values_mut() {
                        member.assignment = Bytes::new();
                    }
                    for (id, assignment) in assignments {
                        if let Some(member) = self.members.get_mut(&id) {
                            member.assignment = assignment;
                        }
                    }
                    self.phase = GroupPhase::Stable;
                    for member in self.members.values_mut() {
                        if let Some(waiter) = member.sync_waiter.take() {
                            let _ = waiter.send(Ok(member.assignment.clone()));
                        }
                    }
                }
            }
        }
    }

    /// A member's heartbeat.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        generation_id: i32,
        now_ms: i64,
    ) -> Result<(), KafkaError> {
        let Some(member) = self.members.get_mut(member_id) else {
            return Err(KafkaError::UnknownMemberId(member_id.to_owned()));
        };
        member.last_heartbeat_ms = now_ms;
        match self.phase {
            GroupPhase::PreparingRebalance => {
                Err(KafkaError::RebalanceInProgress(self.group_id.clone()))
            }
            _ if generation_id != self.generation_id => Err(KafkaError::IllegalGeneration {
                current: self.generation_id,
                got: generation_id,
            }),
            _ => Ok(()),
        }
    }

    /// A member leaves.
    pub fn leave(&mut self, member_id: &str, now_ms: i64) -> Result<(), KafkaError> {
        if self.remove_member(member_id).is_none() {
            return Err(KafkaError::UnknownMemberId(member_id.to_owned()));
        }
        self.after_membership_change(now_ms);
        Ok(())
    }

    /// Checks whether an offset commit from this member at this generation is allowed.
    pub fn validate_commit(&self, member_id: &str, generation_id: i32) -> Result<(), KafkaError> {
        if generation_id < 0 && member_id.is_empty() {
            // A consumer that assigns partitions itself (no group membership).
            return if self.members.is_empty() {
                Ok(())
            } else {
                Err(KafkaError::IllegalGeneration {
                    current: self.generation_id,
                    got: generation_id,
                })
            };
        }
        if !self.members.contains_key(member_id) {
            return Err(KafkaError::UnknownMemberId(member_id.to_owned()));
        }
        if generation_id != self.generation_id {
            return Err(KafkaError::IllegalGeneration {
                current: self.generation_id,
                got: generation_id,
            });
        }
        if self.phase == GroupPhase::PreparingRebalance
            || self.phase == GroupPhase::CompletingRebalance
        {
            return Err(KafkaError::RebalanceInProgress(self.group_id.clone()));
        }
        Ok(())
    }

    /// Expires silent members, removes members that never sent their SyncGroup, and completes
    /// a rebalance whose deadline passed.
    pub fn tick(&mut self, now_ms: i64) {
        // A member parked in JoinGroup or SyncGroup is waiting on the group, not silent.
        let mut expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.join_waiter.is_none()
                    && m.sync_waiter.is_none()
                    && now_ms - m.last_heartbeat_ms > i64::from(m.session_timeout_ms)
            })
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in &expired {
            tracing::info!(group = %self.group_id, member = %member_id, "member expired");
        }
        if self.sync_deadline_ms.is_some_and(|deadline| now_ms >= deadline) {
            self.sync_deadline_ms = None;
            for member_id in std::mem::take(&mut self.pending_sync) {
                tracing::info!(group = %self.group_id, member = %member_id, "member never sent its SyncGroup");
                expired.push(member_id);
            }
        }
        expired.sort();
        expired.dedup();
        for member_id in &expired {
            self.remove_member(member_id);
        }
        if !expired.is_empty() {
            self.after_membership_change(now_ms);
        }
        if self.phase == GroupPhase::PreparingRebalance
            && self.rebalance_deadline_ms.is_some_and(|deadline| now_ms >= deadline)
        {
            let late: Vec<String> = self
                .members
                .values()
                .filter(|m| m.join_waiter.is_none())
                .map(|m| m.member_id.clone())
                .collect();
            for member_id in late {
                tracing::info!(group = %self.group_id, member = %member_id, "member missed the rebalance");
                self.remove_member(&member_id);
            }
            self.rebalance_deadline_ms = Some(now_ms);
        }
        self.try_complete_join(now_ms);
    }

    fn check_protocols(&self, request: &JoinRequest) -> Result<(), KafkaError> {
        if request.protocols.is_empty() || request.protocol_type.is_empty() {
            return Err(KafkaError::InconsistentGroupProtocol);
        }
        if let Some(protocol_type) = &self.protocol_type
            && !self.members.is_empty()
        {
            if *protocol_type != request.protocol_type {
                return Err(KafkaError::InconsistentGroupProtocol);
            }
            let shared = request.protocols.iter().any(|(name, _)| {
                self.members.values().all(|m| m.protocols.iter().any(|(n, _)| n == name))
            });
            if !shared {
                return Err(KafkaError::InconsistentGroupProtocol);
            }
        }
        Ok(())
    }

    fn prepare_rebalance(&mut self, now_ms: i64, delay_ms: i64) {
        if self.phase != GroupPhase::PreparingRebalance {
            tracing::info!(group = %self.group_id, generation = self.generation_id, "rebalance started");
            self.pending_sync.clear();
            self.sync_deadline_ms = None;
            for member in self.members.values_mut() {
                if let Some(waiter) = member.sync_waiter.take() {
                    let _ =
                        waiter.send(Err(KafkaError::RebalanceInProgress(self.group_id.clone())));
                }
            }
            self.phase = GroupPhase::PreparingRebalance;
            let timeout = self.members.values().map(|m| m.rebalance_timeout_ms).max().unwrap_or(0);
            self.rebalance_deadline_ms = Some(now_ms + i64::from(timeout).max(delay_ms));
            self.join_delay_until_ms = (delay_ms > 0).then_some(now_ms + delay_ms);
        }
    }

    fn try_complete_join(&mut self, now_ms: i64) {
        if self.phase != GroupPhase::PreparingRebalance {
            return;
        }
        // Members that missed the deadline were removed by `tick`; the rest must all be in.
        let delaying = self.join_delay_until_ms.is_some_and(|until| now_ms < until);
        let everyone_joined = self.members.values().all(|m| m.join_waiter.is_some());
        if self.members.is_empty() || !everyone_joined || delaying {
            return;
        }
        self.join_delay_until_ms = None;
        self.generation_id += 1;
        let leader = match &self.leader {
            Some(leader) if self.members.contains_key(leader) => leader.clone(),
            _ => self.members.keys().next().cloned().unwrap_or_default(),
        };
        let protocol = self.select_protocol(&leader);
        self.leader = Some(leader.clone());
        self.protocol_name = Some(protocol.clone());
        self.phase = GroupPhase::CompletingRebalance;
        self.rebalance_deadline_ms = None;
        self.pending_sync = self.members.keys().cloned().collect();
        let timeout = self.members.values().map(|m| m.rebalance_timeout_ms).max().unwrap_or(0);
        self.sync_deadline_ms = Some(now_ms + i64::from(timeout));
        tracing::info!(
            group = %self.group_id,
            generation = self.generation_id,
            leader = %leader,
            members = self.members.len(),
            "join completed"
        );
        let members: Vec<(String, Option<String>, Bytes)> = self
            .members
            .values()
            .map(|m| {
                let metadata =
                    m.protocols.iter().find(|(n, _)| *n == protocol).map(|(_, md)| md.clone());
                (m.member_id.clone(), m.group_instance_id.clone(), metadata.unwrap_or_default())
            })
            .collect();
        let protocol_type = self.protocol_type.clone().unwrap_or_default();
        for member in self.members.values_mut() {
            member.last_heartbeat_ms = now_ms;
            if let Some(waiter) = member.join_waiter.take() {
                let _ = waiter.send(Ok(JoinOutcome {
                    generation_id: self.generation_id,
                    protocol_name: protocol.clone(),
                    protocol_type: protocol_type.clone(),
                    leader: leader.clone(),
                    member_id: member.member_id.clone(),
                    members: if member.member_id == leader { members.clone() } else { Vec::new() },
                }));
            }
        }
    }

    /// The leader's most preferred protocol that every member supports.
    fn select_protocol(&self, leader: &str) -> String {
        let candidates = self.members.get(leader).map(|m| m.protocols.clone()).unwrap_or_default();
        candidates
            .into_iter()
            .map(|(name, _)| name)
            .find(|name| self.members.values().all(|m| m.protocols.iter().any(|(n, _)| n == name)))
            .unwrap_or_default()
    }

    fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let mut member = self.members.remove(member_id)?;
        self.pending_sync.remove(member_id);
        if let Some(waiter) = member.join_waiter.take() {
            let _ = waiter.send(Err(KafkaError::UnknownMemberId(member_id.to_owned())));
        }
        if let Some(waiter) = member.sync_waiter.take() {
            let _ = waiter.send(Err(KafkaError::UnknownMemberId(member_id.to_owned())));
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = None;
        }
        Some(member)
    }

    fn after_membership_change(&mut self, now_ms: i64) {
        if self.members.is_empty() {
            self.phase = GroupPhase::Empty;
            self.generation_id += 1;
            self.protocol_name = None;
            self.leader = None;
            self.rebalance_deadline_ms = None;
            return;
        }
        self.prepare_rebalance(now_ms, 0);
        self.try_complete_join(now_ms);
    }
}

#[cfg(test)]
mod tests;
