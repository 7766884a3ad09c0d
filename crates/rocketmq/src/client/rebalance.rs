//! Queue allocation among a consumer group's live members (RocketMQ
//! `AllocateMessageQueueAveragely`): queues and client ids both sorted, each member takes a
//! contiguous run, the first `queues % members` members one queue more. Every member computes
//! the same split from the same lists, so they agree without talking to each other.

use super::MessageQueue;

/// The queues `client_id` owns among `all_queues` shared by `all_clients`.
pub fn allocate_averagely(
    client_id: &str,
    all_queues: &[MessageQueue],
    all_clients: &[String],
) -> Vec<MessageQueue> {
    let mut queues = all_queues.to_vec();
    queues.sort();
    queues.dedup();
    let mut clients = all_clients.to_vec();
    clients.sort();
    clients.dedup();
    let Some(index) = clients.iter().position(|c| c == client_id) else {
        return Vec::new();
    };
    if queues.is_empty() {
        return Vec::new();
    }
    let (queue_count, client_count) = (queues.len(), clients.len());
    let remainder = queue_count % client_count;
    let share = if queue_count <= client_count {
        1
    } else if remainder > 0 && index < remainder {
        queue_count / client_count + 1
    } else {
        queue_count / client_count
    };
    let start =
        if remainder > 0 && index < remainder { index * share } else { index * share + remainder };
    let range = share.min(queue_count.saturating_sub(start));
    (0..range).map(|i| queues[(start + i) % queue_count].clone()).collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn queues(n: u32) -> Vec<MessageQueue> {
        (0..n)
            .map(|queue_id| MessageQueue {
                topic: "t".into(),
                broker_name: "broker-a".into(),
                queue_id,
            })
            .collect()
    }

    fn ids(owned: &[MessageQueue]) -> Vec<u32> {
        owned.iter().map(|q| q.queue_id).collect()
    }

    #[test]
    fn splits_like_rocketmq() {
        let clients: Vec<String> = ["c2", "c1", "c3"].map(String::from).to_vec();
        let all = queues(8);
        assert_eq!(ids(&allocate_averagely("c1", &all, &clients)), [0, 1, 2]);
        assert_eq!(ids(&allocate_averagely("c2", &all, &clients)), [3, 4, 5]);
        assert_eq!(ids(&allocate_averagely("c3", &all, &clients)), [6, 7]);
        assert!(allocate_averagely("stranger", &all, &clients).is_empty());
        let few = queues(2);
        assert_eq!(ids(&allocate_averagely("c3", &few, &clients)), Vec::<u32>::new());
        assert_eq!(ids(&allocate_averagely("c2", &few, &clients)), [1]);
    }

    proptest! {
        #[test]
        fn every_queue_has_exactly_one_owner(queue_count in 0u32..40, client_count in 1usize..9) {
            let all = queues(queue_count);
            let clients: Vec<String> = (0..client_count).map(|c| format!("client-{c}")).collect();
            let mut owned: Vec<u32> =
                clients.iter().flat_map(|c| ids(&allocate_averagely(c, &all, &clients))).collect();
            owned.sort_unstable();
            prop_assert_eq!(owned, (0..queue_count).collect::<Vec<_>>());
        }
    }
}
