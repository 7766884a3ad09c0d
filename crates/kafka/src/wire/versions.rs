//! The API versions twinmq advertises: an explicit table, not the protocol crate's full ranges.
//!
//! - Produce is advertised from v0 although only v3+ is served: librdkafka checks compression
//!   support against Produce v0 and silently stops compressing otherwise (KAFKA-18659).
//! - Produce and Fetch stop at v12, OffsetCommit and OffsetFetch at v9: the next versions name
//!   topics by id (KIP-516), which twinmq does not assign.

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::VersionRange;

/// Every API twinmq serves, with the range it advertises in ApiVersions.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 12),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 5),
];

/// Broker-to-controller APIs (KRaft's): served, never advertised to clients.
pub const INTERNAL_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::BrokerRegistration, 0, 0),
    (ApiKey::BrokerHeartbeat, 0, 0),
    (ApiKey::AlterPartition, 2, 2),
];

/// The range of an API twinmq serves (advertised or internal), or `None`.
pub fn supported_range(key: ApiKey) -> Option<VersionRange> {
    SUPPORTED_APIS
        .iter()
        .chain(INTERNAL_APIS)
        .find(|(api, _, _)| *api == key)
        .map(|(_, min, max)| VersionRange { min: *min, max: *max })
}

/// Whether twinmq decodes and answers this API at this version (Produce v0-2 are advertised,
/// never served).
pub fn is_served(key: ApiKey, version: i16) -> bool {
    supported_range(key).is_some_and(|range| {
        let decodable = key.valid_versions();
        version >= range.min.max(decodable.min) && version <= range.max.min(decodable.max)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_advertised_maximum_is_decodable_by_the_protocol_crate() {
        for (key, _, max) in SUPPORTED_APIS {
            let crate_range = key.valid_versions();
            assert!(*max <= crate_range.max, "{key:?} advertised up to {max}, crate {crate_range}");
            assert!(is_served(*key, *max), "{key:?} v{max}");
        }
    }

    #[test]
    fn produce_is_advertised_from_zero_but_served_from_three() {
        assert_eq!(supported_range(ApiKey::Produce).map(|r| r.min), Some(0));
        assert!(!is_served(ApiKey::Produce, 2));
        assert!(is_served(ApiKey::Produce, 3));
        assert!(!is_served(ApiKey::Produce, 13));
        assert!(!is_served(ApiKey::SaslHandshake, 0));
    }
}
