//! The classic group protocol: JoinGroup (11), SyncGroup (14), Heartbeat (12), LeaveGroup (13),
//! DescribeGroups (15), ListGroups (16). The state machine is `group::state`; these only
//! translate, and park a request until the group answers it.

use bytes::Bytes;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;
use twinmq_runtime::Env;

use super::str_bytes;
use crate::error::{KafkaError, code_of};
use crate::group::JoinRequest;
use crate::server::BrokerContext;

/// JoinGroup: parks until the group's join completes.
pub async fn join_group<E: Env>(
    context: &BrokerContext<E>,
    request: JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    let config = &context.groups.config;
    let member_id = request.member_id.to_string();
    let failed = |error: KafkaError| {
        let response = JoinGroupResponse::default()
            .with_error_code(error.code())
            .with_generation_id(-1)
            .with_member_id(StrBytes::from_string(member_id.clone()));
        if version < 7 { response.with_protocol_name(Some(StrBytes::default())) } else { response }
    };
    if !(config.session_timeout_ms_min..=config.session_timeout_ms_max)
        .contains(&request.session_timeout_ms)
    {
        return failed(KafkaError::InvalidSessionTimeout(request.session_timeout_ms));
    }
    let rebalance_timeout_ms =
        if version >= 1 { request.rebalance_timeout_ms } else { request.session_timeout_ms };
    let join = JoinRequest {
        member_id: member_id.clone(),
        group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: "consumer".into(),
        client_host: String::new(),
        session_timeout_ms: request.session_timeout_ms,
        rebalance_timeout_ms,
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
    };
    let (waiter, answer) = oneshot::channel();
    let now_ms = context.groups.now_ms();
    let delay = i64::from(config.initial_rebalance_delay_ms);
    if let Err(error) =
        context.with_group(&request.group_id, |g| g.join(join, waiter, now_ms, delay))
    {
        return failed(error);
    }
    let outcome = tokio::select! {
        biased;
        () = context.shutdown.wait() => return failed(KafkaError::RebalanceInProgress(request.group_id.to_string())),
        outcome = answer => outcome,
    };
    match outcome {
        Ok(Ok(joined)) => {
            let members = joined
                .members
                .into_iter()
                .map(|(id, instance, metadata)| {
                    let member = JoinGroupResponseMember::default()
                        .with_member_id(StrBytes::from_string(id))
                        .with_metadata(metadata);
                    if version >= 5 {
                        member.with_group_instance_id(instance.map(StrBytes::from_string))
                    } else {
                        member
                    }
                })
                .collect();
            let response = JoinGroupResponse::default()
                .with_generation_id(joined.generation_id)
                .with_protocol_name(Some(StrBytes::from_string(joined.protocol_name)))
                .with_leader(StrBytes::from_string(joined.leader))
                .with_member_id(StrBytes::from_string(joined.member_id))
                .with_members(members);
            if version >= 7 {
                response.with_protocol_type(Some(StrBytes::from_string(joined.protocol_type)))
            } else {
                response
            }
        }
        Ok(Err(error)) => failed(error),
        Err(_) => failed(KafkaError::RebalanceInProgress(request.group_id.to_string())),
    }
}

/// SyncGroup: parks until the leader's assignment arrives.
pub async fn sync_group<E: Env>(
    context: &BrokerContext<E>,
    request: SyncGroupRequest,
    version: i16,
) -> SyncGroupResponse {
    let assignments: Vec<(String, Bytes)> =
        request.assignments.into_iter().map(|a| (a.member_id.to_string(), a.assignment)).collect();
    let (waiter, answer) = oneshot::channel();
    let member_id = request.member_id.to_string();
    let generation = request.generation_id;
    let now_ms = context.groups.now_ms();
    let queued = context.with_group(&request.group_id, |g| {
        let protocol = (g.protocol_type.clone(), g.protocol_name.clone());
        g.sync(&member_id, generation, assignments, waiter, now_ms);
        protocol
    });
    let (protocol_type, protocol_name) = match queued {
        Ok(protocol) => protocol,
        Err(error) => return SyncGroupResponse::default().with_error_code(error.code()),
    };
    let outcome = tokio::select! {
        biased;
        () = context.shutdown.wait() => Err(KafkaError::RebalanceInProgress(request.group_id.to_string())),
        outcome = answer => outcome.unwrap_or_else(|_| Err(KafkaError::RebalanceInProgress(request.group_id.to_string()))),
    };
    let response = match outcome {
        Ok(assignment) => SyncGroupResponse::default().with_assignment(assignment),
        Err(error) => SyncGroupResponse::default().with_error_code(error.code()),
    };
    if version >= 5 {
        response
            .with_protocol_type(protocol_type.map(StrBytes::from_string))
            .with_protocol_name(protocol_name.map(StrBytes::from_string))
    } else {
        response
    }
}

/// Heartbeat: keeps a member alive; tells it when to rejoin.
pub async fn heartbeat<E: Env>(
    context: &BrokerContext<E>,
    request: HeartbeatRequest,
    _version: i16,
) -> HeartbeatResponse {
    let now_ms = context.groups.now_ms();
    let result = context
        .with_group(&request.group_id, |g| {
            g.heartbeat(&request.member_id, request.generation_id, now_ms)
        })
        .and_then(|r| r);
    HeartbeatResponse::default().with_error_code(code_of(&result))
}

/// LeaveGroup: one member (v0-2) or several (v3+) leave.
pub async fn leave_group<E: Env>(
    context: &BrokerContext<E>,
    request: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let now_ms = context.groups.now_ms();
    let leave = |member_id: &str| {
        context.with_group(&request.group_id, |g| g.leave(member_id, now_ms)).and_then(|r| r)
    };
    if version < 3 {
        let result = leave(&request.member_id);
        return LeaveGroupResponse::default().with_error_code(code_of(&result));
    }
    let members = request
        .members
        .iter()
        .map(|member| {
            let result = leave(&member.member_id);
            MemberResponse::default()
                .with_member_id(member.member_id.clone())
                .with_group_instance_id(member.group_instance_id.clone())
                .with_error_code(code_of(&result))
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}

/// DescribeGroups: phase, protocol and members of each group.
pub async fn describe_groups<E: Env>(
    context: &BrokerContext<E>,
    request: DescribeGroupsRequest,
    _version: i16,
) -> DescribeGroupsResponse {
    let groups = request
        .groups
        .into_iter()
        .map(|group_id| {
            let described = context.with_group(&group_id, |g| {
                let members = g
                    .members
                    .values()
                    .map(|m| {
                        let metadata = g
                            .protocol_name
                            .as_ref()
                            .and_then(|p| m.protocols.iter().find(|(n, _)| n == p))
                            .map(|(_, md)| md.clone())
                            .unwrap_or_default();
                        DescribedGroupMember::default()
                            .with_member_id(StrBytes::from_string(m.member_id.clone()))
                            .with_client_id(StrBytes::from_string(m.client_id.clone()))
                            .with_client_host(StrBytes::from_string(m.client_host.clone()))
                            .with_member_metadata(metadata)
                            .with_member_assignment(m.assignment.clone())
                    })
                    .collect();
                DescribedGroup::default()
                    .with_group_id(group_id.clone())
                    .with_group_state(str_bytes(g.phase.name()))
                    .with_protocol_type(StrBytes::from_string(
                        g.protocol_type.clone().unwrap_or_default(),
                    ))
                    .with_protocol_data(StrBytes::from_string(
                        g.protocol_name.clone().unwrap_or_default(),
                    ))
                    .with_members(members)
            });
            described.unwrap_or_else(|error| {
                DescribedGroup::default().with_group_id(group_id).with_error_code(error.code())
            })
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

/// ListGroups: every group known here.
pub async fn list_groups<E: Env>(
    context: &BrokerContext<E>,
    _request: ListGroupsRequest,
    version: i16,
) -> ListGroupsResponse {
    match context.groups.list() {
        Ok(groups) => {
            let listed = groups
                .into_iter()
                .map(|(id, phase, protocol_type)| {
                    let group = ListedGroup::default()
                        .with_group_id(GroupId(StrBytes::from_string(id)))
                        .with_protocol_type(StrBytes::from_string(protocol_type));
                    if version >= 4 { group.with_group_state(str_bytes(phase)) } else { group }
                })
                .collect();
            ListGroupsResponse::default().with_groups(listed)
        }
        Err(error) => ListGroupsResponse::default().with_error_code(error.code()),
    }
}
