//! Partition assignors run by a group's leader (Kafka's `RangeAssignor` and
//! `RoundRobinAssignor`): pure functions from subscriptions to assignments.

use std::collections::BTreeMap;

/// Which assignor a consumer offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    /// Per topic, contiguous ranges of partitions (Kafka's "range").
    Range,
    /// All partitions dealt out in turn (Kafka's "roundrobin").
    RoundRobin,
}

impl Assignor {
    /// The protocol name in JoinGroup.
    pub fn name(self) -> &'static str {
        match self {
            Self::Range => "range",
            Self::RoundRobin => "roundrobin",
        }
    }

    /// Assigns `partitions` (topic → count) among `members` (id → subscribed topics).
    pub fn assign(
        self,
        members: &BTreeMap<String, Vec<String>>,
        partitions: &BTreeMap<String, i32>,
    ) -> BTreeMap<String, BTreeMap<String, Vec<i32>>> {
        let mut out: BTreeMap<String, BTreeMap<String, Vec<i32>>> =
            members.keys().map(|m| (m.clone(), BTreeMap::new())).collect();
        match self {
            Self::Range => {
                for (topic, count) in partitions {
                    let subscribers: Vec<&String> =
                        members.iter().filter(|(_, t)| t.contains(topic)).map(|(m, _)| m).collect();
                    if subscribers.is_empty() {
                        continue;
                    }
                    let n = i32::try_from(subscribers.len()).unwrap_or(i32::MAX);
                    let (per, extra) = (count / n, count % n);
                    let mut next = 0;
                    for (i, member) in subscribers.into_iter().enumerate() {
                        let i = i32::try_from(i).unwrap_or(i32::MAX);
                        let take = per + i32::from(i < extra);
                        let range: Vec<i32> = (next..next + take).collect();
                        next += take;
                        if !range.is_empty() {
                            out.entry(member.clone()).or_default().insert(topic.clone(), range);
                        }
                    }
                }
            }
            Self::RoundRobin => {
                let ids: Vec<&String> = members.keys().collect();
                let mut turn = 0usize;
                for (topic, count) in partitions {
                    for partition in 0..*count {
                        for _ in 0..ids.len() {
                            let member = ids[turn % ids.len()];
                            turn += 1;
                            if members[member].contains(topic) {
                                out.entry(member.clone())
                                    .or_default()
                                    .entry(topic.clone())
                                    .or_default()
                                    .push(partition);
                                break;
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn members(n: usize, topics: &[&str]) -> BTreeMap<String, Vec<String>> {
        (0..n).map(|i| (format!("m{i}"), topics.iter().map(|t| t.to_string()).collect())).collect()
    }

    #[test]
    fn range_gives_contiguous_ranges_with_the_remainder_first() {
        let partitions = BTreeMap::from([("t".to_string(), 7)]);
        let out = Assignor::Range.assign(&members(3, &["t"]), &partitions);
        assert_eq!(out["m0"]["t"], vec![0, 1, 2]);
        assert_eq!(out["m1"]["t"], vec![3, 4]);
        assert_eq!(out["m2"]["t"], vec![5, 6]);
    }

    #[test]
    fn round_robin_deals_in_turn() {
        let partitions = BTreeMap::from([("t".to_string(), 5)]);
        let out = Assignor::RoundRobin.assign(&members(2, &["t"]), &partitions);
        assert_eq!(out["m0"]["t"], vec![0, 2, 4]);
        assert_eq!(out["m1"]["t"], vec![1, 3]);
    }

    proptest! {
        #[test]
        fn every_partition_is_assigned_exactly_once(n in 1usize..6, a in 0i32..20, b in 0i32..20, robin in any::<bool>()) {
            let partitions = BTreeMap::from([("a".to_string(), a), ("b".to_string(), b)]);
            let assignor = if robin { Assignor::RoundRobin } else { Assignor::Range };
            let out = assignor.assign(&members(n, &["a", "b"]), &partitions);
            let mut seen: Vec<(String, i32)> = out.values().flat_map(|t| t.iter().flat_map(|(topic, ps)| ps.iter().map(move |p| (topic.clone(), *p)))).collect();
            seen.sort();
            let mut want: Vec<(String, i32)> = (0..a).map(|p| ("a".to_string(), p)).chain((0..b).map(|p| ("b".to_string(), p))).collect();
            want.sort();
            prop_assert_eq!(seen, want);
        }
    }
}
