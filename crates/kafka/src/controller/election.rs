//! Leader election and ISR changes, as pure functions of the metadata image: what the
//! controller writes when a broker is fenced or unfenced, or a leader asks to change its ISR.

use std::collections::BTreeSet;

use super::image::{MetadataImage, PartitionImage};
use super::record::MetadataRecord;
use crate::error::KafkaError;

/// The changes that follow from the set of live (unfenced) brokers: a partition whose leader is
/// not live gets a new leader from its live in-sync replicas (or, with `unclean`, from any live
/// replica) and a bumped epoch; dead brokers leave the ISR (never emptying it: the last member
/// stays, as Kafka keeps it, so a clean election can wait for it).
pub fn changes_for_liveness(
    image: &MetadataImage,
    live: &BTreeSet<i32>,
    unclean: bool,
) -> Vec<MetadataRecord> {
    let mut changes = Vec::new();
    for (topic, topic_image) in &image.topics {
        for (index, partition) in topic_image.partitions.iter().enumerate() {
            let index = i32::try_from(index).unwrap_or(i32::MAX);
            if let Some(change) = elect(topic, index, partition, live, unclean) {
                changes.push(change);
            }
        }
    }
    changes
}

fn elect(
    topic: &str,
    index: i32,
    partition: &PartitionImage,
    live: &BTreeSet<i32>,
    unclean: bool,
) -> Option<MetadataRecord> {
    let mut isr: Vec<i32> = partition.isr.iter().copied().filter(|r| live.contains(r)).collect();
    let leader_live = partition.leader >= 0 && live.contains(&partition.leader);
    let leader = if leader_live {
        partition.leader
    } else if let Some(clean) = partition.replicas.iter().copied().find(|r| isr.contains(r)) {
        clean
    } else if let Some(any) =
        partition.replicas.iter().copied().find(|r| unclean && live.contains(r))
    {
        tracing::warn!(
            topic,
            index,
            leader = any,
            "unclean leader election: committed records may be lost"
        );
        isr = vec![any];
        any
    } else {
        -1
    };
    if isr.is_empty() {
        // Keep the last in-sync replica on record: only it may lead again without loss.
        isr = partition.isr.clone();
    }
    if leader == partition.leader && isr == partition.isr {
        return None;
    }
    let leader_epoch = if leader == partition.leader {
        partition.leader_epoch
    } else {
        partition.leader_epoch + 1
    };
    Some(MetadataRecord::PartitionChange {
        topic: topic.to_owned(),
        partition: index,
        leader,
        leader_epoch,
        isr,
    })
}

/// Validates a leader's ISR change request and returns the record that applies it.
pub fn alter_isr(
    image: &MetadataImage,
    topic: &str,
    index: i32,
    broker: i32,
    leader_epoch: i32,
    new_isr: &[i32],
    live: &BTreeSet<i32>,
) -> Result<MetadataRecord, KafkaError> {
    let partition = image
        .partition(topic, index)
        .ok_or_else(|| KafkaError::UnknownTopicOrPartition(format!("{topic}-{index}")))?;
    if partition.leader != broker || partition.leader_epoch != leader_epoch {
        return Err(KafkaError::NotLeader(format!("{topic}-{index}")));
    }
    if !new_isr.contains(&broker) || new_isr.iter().any(|r| !partition.replicas.contains(r)) {
        return Err(KafkaError::InvalidRequest(format!(
            "ISR {new_isr:?} for replicas {:?}",
            partition.replicas
        )));
    }
    // A fenced broker cannot rejoin the ISR until it is live again.
    let isr: Vec<i32> =
        new_isr.iter().copied().filter(|r| live.contains(r) || partition.isr.contains(r)).collect();
    Ok(MetadataRecord::PartitionChange {
        topic: topic.to_owned(),
        partition: index,
        leader: broker,
        leader_epoch,
        isr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(leader: i32, isr: &[i32]) -> MetadataImage {
        let mut image = MetadataImage::default();
        image.apply(&MetadataRecord::CreateTopic {
            name: "t".into(),
            topic_id: 1,
            replicas: vec![vec![1, 2, 3]],
        });
        image.apply(&MetadataRecord::PartitionChange {
            topic: "t".into(),
            partition: 0,
            leader,
            leader_epoch: 4,
            isr: isr.to_vec(),
        });
        image
    }

    fn live(nodes: &[i32]) -> BTreeSet<i32> {
        nodes.iter().copied().collect()
    }

    #[test]
    fn a_dead_leader_is_replaced_from_the_isr_with_a_new_epoch() {
        let changes = changes_for_liveness(&image(1, &[1, 2, 3]), &live(&[2, 3]), false);
        assert_eq!(
            changes,
            [MetadataRecord::PartitionChange {
                topic: "t".into(),
                partition: 0,
                leader: 2,
                leader_epoch: 5,
                isr: vec![2, 3]
            }]
        );
        assert!(changes_for_liveness(&image(1, &[1, 2, 3]), &live(&[1, 2, 3]), false).is_empty());
    }

    #[test]
    fn without_a_live_in_sync_replica_only_unclean_election_picks_a_leader() {
        let clean = changes_for_liveness(&image(1, &[1]), &live(&[2, 3]), false);
        assert_eq!(
            clean,
            [MetadataRecord::PartitionChange {
                topic: "t".into(),
                partition: 0,
                leader: -1,
                leader_epoch: 5,
                isr: vec![1]
            }]
        );
        let unclean = changes_for_liveness(&image(1, &[1]), &live(&[3]), true);
        assert_eq!(
            unclean,
            [MetadataRecord::PartitionChange {
                topic: "t".into(),
                partition: 0,
                leader: 3,
                leader_epoch: 5,
                isr: vec![3]
            }]
        );
        let returned = changes_for_liveness(&image(-1, &[1]), &live(&[1, 2]), false);
        assert_eq!(
            returned,
            [MetadataRecord::PartitionChange {
                topic: "t".into(),
                partition: 0,
                leader: 1,
                leader_epoch: 5,
                isr: vec![1]
            }]
        );
    }

    #[test]
    fn only_the_current_leader_may_change_the_isr() {
        let image = image(1, &[1, 2]);
        assert!(alter_isr(&image, "t", 0, 2, 4, &[1, 2], &live(&[1, 2, 3])).is_err());
        assert!(alter_isr(&image, "t", 0, 1, 3, &[1, 2], &live(&[1, 2, 3])).is_err());
        assert!(alter_isr(&image, "t", 0, 1, 4, &[1, 9], &live(&[1, 2, 3])).is_err());
        let change = alter_isr(&image, "t", 0, 1, 4, &[1, 2, 3], &live(&[1, 2, 3])).unwrap();
        assert!(
            matches!(change, MetadataRecord::PartitionChange { ref isr, leader: 1, leader_epoch: 4, .. } if *isr == vec![1, 2, 3])
        );
    }
}
