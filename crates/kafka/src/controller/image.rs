//! MetadataImage — the cluster's metadata at one point of the metadata log: brokers, topics,
//! partition leaders, epochs and ISRs, and the next producer id.

use std::collections::BTreeMap;

use super::record::MetadataRecord;

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerImage {
    /// `node.id`.
    pub node_id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
    /// Fenced: not live, not listed to clients, not elected.
    pub fenced: bool,
}

/// One partition's placement and leadership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionImage {
    /// Replica node ids, preferred leader first.
    pub replicas: Vec<i32>,
    /// The leader, or -1.
    pub leader: i32,
    /// The leader epoch.
    pub leader_epoch: i32,
    /// The in-sync replicas.
    pub isr: Vec<i32>,
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    /// Its id.
    pub topic_id: u128,
    /// Its partitions, by index.
    pub partitions: Vec<PartitionImage>,
}

/// The metadata, folded from the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    /// Brokers by node id.
    pub brokers: BTreeMap<i32, BrokerImage>,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicImage>,
    /// The next producer id to hand out.
    pub next_producer_id: i64,
    /// How many records were applied.
    pub records_applied: u64,
}

impl MetadataImage {
    /// Applies one record.
    pub fn apply(&mut self, record: &MetadataRecord) {
        self.records_applied += 1;
        match record {
            MetadataRecord::RegisterBroker { node_id, host, port } => {
                let broker = BrokerImage {
                    node_id: *node_id,
                    host: host.clone(),
                    port: *port,
                    fenced: false,
                };
                self.brokers.insert(*node_id, broker);
            }
            MetadataRecord::FenceBroker { node_id } => {
                if let Some(broker) = self.brokers.get_mut(node_id) {
                    broker.fenced = true;
                }
            }
            MetadataRecord::CreateTopic { name, topic_id, replicas } => {
                let partitions = replicas
                    .iter()
                    .map(|replicas| PartitionImage {
                        replicas: replicas.clone(),
                        leader: replicas.first().copied().unwrap_or(-1),
                        leader_epoch: 0,
                        isr: replicas.clone(),
                    })
                    .collect();
                self.topics.insert(name.clone(), TopicImage { topic_id: *topic_id, partitions });
            }
            MetadataRecord::DeleteTopic { name } => {
                self.topics.remove(name);
            }
            MetadataRecord::PartitionChange { topic, partition, leader, leader_epoch, isr } => {
                if let Some(image) = self.topics.get_mut(topic).and_then(|t| {
                    usize::try_from(*partition).ok().and_then(|p| t.partitions.get_mut(p))
                }) {
                    image.leader = *leader;
                    image.leader_epoch = *leader_epoch;
                    image.isr = isr.clone();
                }
            }
            MetadataRecord::AllocateProducerIds { next } => {
                self.next_producer_id = self.next_producer_id.max(*next);
            }
        }
    }

    /// The name of the topic with this id.
    pub fn topic_name(&self, topic_id: u128) -> Option<&str> {
        self.topics.iter().find(|(_, t)| t.topic_id == topic_id).map(|(name, _)| name.as_str())
    }

    /// One partition's image.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionImage> {
        self.topics.get(topic)?.partitions.get(usize::try_from(partition).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_topics_leadership_and_producer_ids() {
        let mut image = MetadataImage::default();
        image.apply(&MetadataRecord::CreateTopic {
            name: "t".into(),
            topic_id: 7,
            replicas: vec![vec![1, 2], vec![2, 1]],
        });
        assert_eq!(image.partition("t", 1).unwrap().leader, 2);
        image.apply(&MetadataRecord::PartitionChange {
            topic: "t".into(),
            partition: 1,
            leader: 1,
            leader_epoch: 1,
            isr: vec![1],
        });
        let p = image.partition("t", 1).unwrap();
        assert_eq!((p.leader, p.leader_epoch, p.isr.clone()), (1, 1, vec![1]));
        image.apply(&MetadataRecord::AllocateProducerIds { next: 1000 });
        image.apply(&MetadataRecord::AllocateProducerIds { next: 10 });
        assert_eq!(image.next_producer_id, 1000);
        image.apply(&MetadataRecord::DeleteTopic { name: "t".into() });
        assert!(image.partition("t", 0).is_none());
        assert_eq!(image.records_applied, 5);
    }
}
