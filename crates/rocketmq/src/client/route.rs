//! A topic's route as a client uses it (RocketMQ `TopicPublishInfo` and the subscribe side of
//! `MQClientInstance.topicRouteData2TopicSubscribeInfo`): the queues it may write and read, and
//! the master address of each broker group. Built from the GET_ROUTEINFO_BY_TOPIC body.

use std::collections::BTreeMap;

use super::MessageQueue;
use crate::namesrv::TopicRouteData;

/// Permission bit: producers may write.
const PERM_WRITE: u32 = 2;
/// Permission bit: consumers may read.
const PERM_READ: u32 = 4;
/// The broker id of a group's master.
const MASTER_ID: &str = "0";

/// A topic's queues and where their brokers are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRoute {
    /// The topic.
    pub topic: String,
    /// Queues a producer writes, on groups with a master, sorted.
    pub write_queues: Vec<MessageQueue>,
    /// Queues a consumer reads, sorted.
    pub read_queues: Vec<MessageQueue>,
    /// Broker group → its master's `host:port`.
    pub master_addrs: BTreeMap<String, String>,
    /// Broker group → where its queues are read: the master, or while the group has none, its
    /// first slave (RocketMQ `findBrokerAddressInSubscribe`).
    pub read_addrs: BTreeMap<String, String>,
    /// Whether this is the default topic's route borrowed for a topic not created yet.
    pub borrowed: bool,
}

impl TopicRoute {
    /// The route of `topic` from the nameserver's answer.
    pub fn from_data(topic: &str, data: &TopicRouteData) -> Self {
        let master_addrs: BTreeMap<String, String> = data
            .broker_datas
            .iter()
            .filter_map(|broker| {
                broker
                    .broker_addrs
                    .get(MASTER_ID)
                    .map(|addr| (broker.broker_name.clone(), addr.clone()))
            })
            .collect();
        let read_addrs: BTreeMap<String, String> = data
            .broker_datas
            .iter()
            .filter_map(|broker| {
                let first = broker
                    .broker_addrs
                    .iter()
                    .filter_map(|(id, addr)| Some((id.parse::<u64>().ok()?, addr)))
                    .min_by_key(|(id, _)| *id)?;
                Some((broker.broker_name.clone(), first.1.clone()))
            })
            .collect();
        let queues = |perm: u32, count: fn(&crate::namesrv::QueueData) -> u32| {
            let served = if perm == PERM_WRITE { &master_addrs } else { &read_addrs };
            let mut queues: Vec<MessageQueue> = data
                .queue_datas
                .iter()
                .filter(|q| q.perm & perm != 0 && served.contains_key(&q.broker_name))
                .flat_map(|q| {
                    (0..count(q)).map(|queue_id| MessageQueue {
                        topic: topic.to_owned(),
                        broker_name: q.broker_name.clone(),
                        queue_id,
                    })
                })
                .collect();
            queues.sort();
            queues
        };
        Self {
            topic: topic.to_owned(),
            write_queues: queues(PERM_WRITE, |q| q.write_queue_nums),
            read_queues: queues(PERM_READ, |q| q.read_queue_nums),
            master_addrs,
            read_addrs,
            borrowed: false,
        }
    }

    /// The route a producer uses for `topic` while only the default topic's route is known:
    /// its brokers, with at most `queue_nums` write queues each (the broker creates the topic
    /// with that many on the first send).
    pub fn borrowed(topic: &str, default_route: &TopicRouteData, queue_nums: u32) -> Self {
        let mut data = default_route.clone();
        for queue in &mut data.queue_datas {
            queue.write_queue_nums = queue.write_queue_nums.min(queue_nums);
            queue.read_queue_nums = queue.read_queue_nums.min(queue_nums);
        }
        Self { borrowed: true, ..Self::from_data(topic, &data) }
    }

    /// The master address of a broker group.
    pub fn master_addr(&self, broker_name: &str) -> Option<&str> {
        self.master_addrs.get(broker_name).map(String::as_str)
    }

    /// Where a broker group's queues are read (its master, else a slave).
    pub fn read_addr(&self, broker_name: &str) -> Option<&str> {
        self.read_addrs.get(broker_name).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_writes_to_masters_and_reads_from_slaves_of_groups_without_one() {
        let body = br#"{"orderTopicConf":null,"queueDatas":[{"brokerName":"broker-b","readQueueNums":2,"writeQueueNums":1,"perm":6,"topicSysFlag":0},{"brokerName":"broker-a","readQueueNums":2,"writeQueueNums":2,"perm":4,"topicSysFlag":0},{"brokerName":"broker-c","readQueueNums":1,"writeQueueNums":1,"perm":6,"topicSysFlag":0}],"brokerDatas":[{"cluster":"c","brokerName":"broker-a","brokerAddrs":{"0":"10.0.0.1:10911"},"zoneName":null,"enableActingMaster":false},{"cluster":"c","brokerName":"broker-b","brokerAddrs":{"0":"10.0.0.2:10911","1":"10.0.0.3:10911"},"zoneName":null,"enableActingMaster":false},{"cluster":"c","brokerName":"broker-c","brokerAddrs":{"1":"10.0.0.4:10911"},"zoneName":null,"enableActingMaster":false}],"filterServerTable":{},"topicQueueMappingInfo":null}"#;
        let data: TopicRouteData = serde_json::from_slice(body).unwrap();
        let route = TopicRoute::from_data("t", &data);
        let names = |queues: &[MessageQueue]| -> Vec<String> {
            queues.iter().map(|q| format!("{}#{}", q.broker_name, q.queue_id)).collect()
        };
        assert_eq!(names(&route.write_queues), ["broker-b#0"], "a is read-only, c has no master");
        assert_eq!(
            names(&route.read_queues),
            ["broker-a#0", "broker-a#1", "broker-b#0", "broker-b#1", "broker-c#0"],
            "c's master is down: its slave serves reads"
        );
        assert_eq!(route.master_addr("broker-b"), Some("10.0.0.2:10911"));
        assert_eq!(route.master_addr("broker-c"), None);
        assert_eq!(route.read_addr("broker-b"), Some("10.0.0.2:10911"));
        assert_eq!(route.read_addr("broker-c"), Some("10.0.0.4:10911"));
        let borrowed = TopicRoute::borrowed("new", &data, 1);
        assert!(borrowed.borrowed);
        assert_eq!(borrowed.read_queues.len(), 3, "one queue on each of a, b and c");
    }
}
