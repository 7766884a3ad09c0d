//! QueueMap — a sorted map keyed by (topic, queue id) that looks up by `&str` without
//! allocating, for the per-message paths of the RocketMQ layout.

use std::collections::BTreeMap;

/// Values per (topic, queue id), iterated in (topic, queue id) order.
#[derive(Debug, Clone)]
pub struct QueueMap<V> {
    topics: BTreeMap<String, BTreeMap<u32, V>>,
}

impl<V> Default for QueueMap<V> {
    fn default() -> Self {
        Self { topics: BTreeMap::new() }
    }
}

impl<V> QueueMap<V> {
    /// The value of a queue.
    pub fn get(&self, topic: &str, queue_id: u32) -> Option<&V> {
        self.topics.get(topic)?.get(&queue_id)
    }

    /// The value of a queue, mutably.
    pub fn get_mut(&mut self, topic: &str, queue_id: u32) -> Option<&mut V> {
        self.topics.get_mut(topic)?.get_mut(&queue_id)
    }

    /// Sets the value of a queue.
    pub fn insert(&mut self, topic: &str, queue_id: u32, value: V) {
        match self.topics.get_mut(topic) {
            Some(queues) => {
                queues.insert(queue_id, value);
            }
            None => {
                self.topics.insert(topic.to_owned(), BTreeMap::from([(queue_id, value)]));
            }
        }
    }

    /// Removes a queue's value and returns it.
    pub fn remove(&mut self, topic: &str, queue_id: u32) -> Option<V> {
        let queues = self.topics.get_mut(topic)?;
        let value = queues.remove(&queue_id);
        if queues.is_empty() {
            self.topics.remove(topic);
        }
        value
    }

    /// Every (topic, queue id, value), sorted.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u32, &V)> {
        self.topics
            .iter()
            .flat_map(|(topic, queues)| queues.iter().map(move |(id, v)| (topic.as_str(), *id, v)))
    }

    /// Every value, mutably, in (topic, queue id) order.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.topics.values_mut().flat_map(|queues| queues.values_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_inserts_and_iterates_in_order() {
        let mut map = QueueMap::default();
        map.insert("b", 1, 10);
        map.insert("a", 2, 20);
        map.insert("a", 0, 30);
        map.insert("a", 2, 21);
        assert_eq!(map.get("a", 2), Some(&21));
        assert_eq!(map.get("c", 0), None);
        *map.get_mut("b", 1).unwrap() += 1;
        let all: Vec<_> = map.iter().map(|(t, q, v)| (t.to_owned(), q, *v)).collect();
        assert_eq!(all, [("a".into(), 0, 30), ("a".into(), 2, 21), ("b".into(), 1, 11)]);
        assert_eq!(map.remove("b", 1), Some(11));
        assert_eq!(map.remove("b", 1), None);
        assert_eq!(map.iter().count(), 2);
    }
}
