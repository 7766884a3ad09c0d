//! MetadataRecord — one change to the cluster's metadata, as the controller writes it to its
//! log (KRaft's `__cluster_metadata` records, reduced to what twinmq acts on).

use serde::{Deserialize, Serialize};

/// One metadata change; the image is the fold of them in log order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    /// A broker joined (or came back) at this address.
    RegisterBroker {
        /// `node.id`.
        node_id: i32,
        /// Host clients connect to.
        host: String,
        /// Port clients connect to.
        port: i32,
    },
    /// A broker's session expired: it is fenced until it registers again.
    FenceBroker {
        /// `node.id`.
        node_id: i32,
    },
    /// A topic with its replica assignment; partition `i` starts with leader `replicas[i][0]`,
    /// epoch 0, and every replica in sync.
    CreateTopic {
        /// The topic.
        name: String,
        /// Its id (KIP-516), unique across re-creations of the name.
        #[serde(with = "hex_u128")]
        topic_id: u128,
        /// Replica node ids per partition.
        replicas: Vec<Vec<i32>>,
    },
    /// A topic and its data are gone.
    DeleteTopic {
        /// The topic.
        name: String,
    },
    /// A partition's leader or ISR changed.
    PartitionChange {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The new leader (-1: none).
        leader: i32,
        /// The new leader epoch.
        leader_epoch: i32,
        /// The new in-sync replica set.
        isr: Vec<i32>,
    },
    /// Producer ids below `next` are handed out.
    AllocateProducerIds {
        /// The first id not yet handed out.
        next: i64,
    },
}

/// A u128 as 32 hex digits (JSON numbers do not hold 128 bits).
mod hex_u128 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &u128, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("{value:032x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u128, D::Error> {
        let text = String::deserialize(deserializer)?;
        u128::from_str_radix(&text, 16).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_json() {
        let record = MetadataRecord::CreateTopic {
            name: "t".into(),
            topic_id: u128::MAX - 5,
            replicas: vec![vec![1, 2]],
        };
        let json = serde_json::to_string(&record).unwrap();
        assert!(json.contains("fffffffffffffffffffffffffffffffa"), "{json}");
        assert_eq!(serde_json::from_str::<MetadataRecord>(&json).unwrap(), record);
    }
}
