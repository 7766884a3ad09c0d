//! The consumer protocol: what group members put in JoinGroup metadata (their subscription)
//! and the leader hands out through SyncGroup (assignments), each prefixed by its version, as
//! Kafka's `ConsumerProtocol` writes them, so members of other clients understand ours.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedPartitions;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::consumer::topic_name;

/// ConsumerProtocolSubscription v0, prefixed by its version.
pub(super) fn encode_subscription(topics: &[String]) -> Bytes {
    let subscription = ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| StrBytes::from_string(t.clone())).collect());
    let mut out = BytesMut::new();
    out.put_i16(0);
    let _ = subscription.encode(&mut out, 0);
    out.freeze()
}

/// The topics of a member's subscription (none if it does not decode).
pub(super) fn decode_subscription(mut bytes: Bytes) -> Vec<String> {
    if bytes.len() < 2 {
        return Vec::new();
    }
    let version = bytes.get_i16().clamp(0, 3);
    ConsumerProtocolSubscription::decode(&mut bytes, version)
        .map(|s| s.topics.into_iter().map(|t| t.to_string()).collect())
        .unwrap_or_default()
}

/// ConsumerProtocolAssignment v0, prefixed by its version.
pub(super) fn encode_assignment(topics: &BTreeMap<String, Vec<i32>>) -> Bytes {
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
        topics
            .iter()
            .map(|(t, ps)| {
                AssignedPartitions::default().with_topic(topic_name(t)).with_partitions(ps.clone())
            })
            .collect(),
    );
    let mut out = BytesMut::new();
    out.put_i16(0);
    let _ = assignment.encode(&mut out, 0);
    out.freeze()
}

/// The partitions of a member's assignment (none if it does not decode).
pub(super) fn decode_assignment(mut bytes: Bytes) -> Vec<(String, i32)> {
    if bytes.len() < 2 {
        return Vec::new();
    }
    let version = bytes.get_i16().clamp(0, 3);
    ConsumerProtocolAssignment::decode(&mut bytes, version)
        .map(|a| {
            a.assigned_partitions
                .into_iter()
                .flat_map(|tp| {
                    let topic = tp.topic.to_string();
                    tp.partitions.into_iter().map(move |p| (topic.clone(), p))
                })
                .collect()
        })
        .unwrap_or_default()
}
