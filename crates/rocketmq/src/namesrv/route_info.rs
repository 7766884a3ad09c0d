//! RouteInfo — the nameserver's tables (apache/rocketmq `RouteInfoManager`): clusters, broker
//! groups and their members' addresses, each topic's queues per broker group, and the brokers'
//! liveness. Pure: time comes in as `now_ms`. Several nameservers keep independent copies,
//! each fed by every broker's registrations; they never talk to each other.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// A topic's queues on one broker group (route `queueDatas` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueData {
    /// The broker group.
    pub broker_name: String,
    /// Queues consumers read.
    pub read_queue_nums: u32,
    /// Queues producers write.
    pub write_queue_nums: u32,
    /// Permission bits: 2 write, 4 read, 1 inherit.
    pub perm: u32,
    /// Topic system flags.
    pub topic_sys_flag: u32,
}

/// One broker group: its cluster and its members' addresses by broker id (0 = master).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerData {
    /// The cluster.
    pub cluster: String,
    /// The group's name.
    pub broker_name: String,
    /// Broker id → `host:port` (JSON object keys are the ids as strings).
    pub broker_addrs: BTreeMap<String, String>,
    /// Zone (unused).
    pub zone_name: Option<String>,
    /// Slave-acting-master mode (always false here; the Rust client requires the key).
    pub enable_acting_master: bool,
}

/// A topic's route as clients read it (GET_ROUTEINFO_BY_TOPIC body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicRouteData {
    /// Order configuration (unused).
    pub order_topic_conf: Option<String>,
    /// Queues per broker group.
    pub queue_datas: Vec<QueueData>,
    /// The groups holding them.
    pub broker_datas: Vec<BrokerData>,
    /// Filter servers (always empty; the client requires the key).
    pub filter_server_table: BTreeMap<String, Vec<String>>,
    /// Static topic mapping (unused).
    pub topic_queue_mapping_info: Option<String>,
}

/// A topic's configuration as a broker registers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    /// The topic.
    pub name: String,
    /// Read queues.
    pub read_queue_nums: u32,
    /// Write queues.
    pub write_queue_nums: u32,
    /// Permissions.
    pub perm: u32,
    /// System flags.
    pub topic_sys_flag: u32,
}

/// One broker's registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Its cluster.
    pub cluster: String,
    /// Its group.
    pub broker_name: String,
    /// Its id in the group (0 = master).
    pub broker_id: i64,
    /// Where clients reach it.
    pub broker_addr: String,
    /// Where its slaves replicate from.
    pub ha_server_addr: String,
    /// Its topics (only a master's shape the routes).
    pub topics: Vec<TopicConfig>,
}

#[derive(Debug, Clone)]
struct Liveness {
    last_update_ms: i64,
    broker_name: String,
    ha_server_addr: String,
}

/// The nameserver's route tables.
#[derive(Debug, Clone, Default)]
pub struct RouteInfo {
    clusters: BTreeMap<String, BTreeSet<String>>,
    brokers: BTreeMap<String, BrokerData>,
    topics: BTreeMap<String, BTreeMap<String, QueueData>>,
    live: BTreeMap<String, Liveness>,
}

impl RouteInfo {
    /// Registers (or refreshes) a broker; returns (master's HA address, master address) for a
    /// slave, empty strings for a master.
    pub fn register(&mut self, registration: Registration, now_ms: i64) -> (String, String) {
        let Registration { cluster, broker_name, broker_id, broker_addr, ha_server_addr, topics } =
            registration;
        self.clusters.entry(cluster.clone()).or_default().insert(broker_name.clone());
        let group = self.brokers.entry(broker_name.clone()).or_insert_with(|| BrokerData {
            cluster: cluster.clone(),
            broker_name: broker_name.clone(),
            broker_addrs: BTreeMap::new(),
            zone_name: None,
            enable_acting_master: false,
        });
        // One address holds one id: a broker that changed role leaves its old id.
        group.broker_addrs.retain(|id, addr| *addr != broker_addr || *id == broker_id.to_string());
        group.broker_addrs.insert(broker_id.to_string(), broker_addr.clone());
        if broker_id == 0 {
            for topic in topics {
                self.put_topic(&broker_name, &topic);
            }
        }
        self.live.insert(
            broker_addr,
            Liveness {
                last_update_ms: now_ms,
                broker_name: broker_name.clone(),
                ha_server_addr: ha_server_addr.clone(),
            },
        );
        if broker_id == 0 {
            return (String::new(), String::new());
        }
        let master = self
            .brokers
            .get(&broker_name)
            .and_then(|g| g.broker_addrs.get("0"))
            .cloned()
            .unwrap_or_default();
        let master_ha =
            self.live.get(&master).map(|l| l.ha_server_addr.clone()).unwrap_or_default();
        (master_ha, master)
    }

    /// A broker announces one topic (REGISTER_TOPIC_IN_NAMESRV).
    pub fn register_topic(&mut self, topic: &str, queue_datas: Vec<QueueData>) {
        for queue in queue_datas {
            if self.brokers.contains_key(&queue.broker_name) {
                self.topics
                    .entry(topic.to_owned())
                    .or_default()
                    .insert(queue.broker_name.clone(), queue);
            }
        }
    }

    fn put_topic(&mut self, broker_name: &str, topic: &TopicConfig) {
        let queue = QueueData {
            broker_name: broker_name.to_owned(),
            read_queue_nums: topic.read_queue_nums,
            write_queue_nums: topic.write_queue_nums,
            perm: topic.perm,
            topic_sys_flag: topic.topic_sys_flag,
        };
        self.topics.entry(topic.name.clone()).or_default().insert(broker_name.to_owned(), queue);
    }

    /// A broker leaves (UNREGISTER_BROKER, or its channel expired).
    pub fn unregister(&mut self, broker_addr: &str) {
        let Some(live) = self.live.remove(broker_addr) else { return };
        let mut group_gone = false;
        if let Some(group) = self.brokers.get_mut(&live.broker_name) {
            group.broker_addrs.retain(|_, addr| addr != broker_addr);
            group_gone = group.broker_addrs.is_empty();
        }
        if group_gone {
            self.brokers.remove(&live.broker_name);
            for names in self.clusters.values_mut() {
                names.remove(&live.broker_name);
            }
            self.clusters.retain(|_, names| !names.is_empty());
            for queues in self.topics.values_mut() {
                queues.remove(&live.broker_name);
            }
            self.topics.retain(|_, queues| !queues.is_empty());
        }
    }

    /// Removes brokers not heard from for `timeout_ms`; returns their addresses.
    pub fn expire(&mut self, now_ms: i64, timeout_ms: i64) -> Vec<String> {
        let expired: Vec<String> = self
            .live
            .iter()
            .filter(|(_, l)| now_ms - l.last_update_ms > timeout_ms)
            .map(|(addr, _)| addr.clone())
            .collect();
        for addr in &expired {
            self.unregister(addr);
        }
        expired
    }

    /// A topic's route, if any broker group serves it.
    pub fn route(&self, topic: &str) -> Option<TopicRouteData> {
        let queues = self.topics.get(topic)?;
        let queue_datas: Vec<QueueData> = queues.values().cloned().collect();
        let broker_datas: Vec<BrokerData> =
            queues.keys().filter_map(|name| self.brokers.get(name).cloned()).collect();
        if broker_datas.is_empty() {
            return None;
        }
        Some(TopicRouteData {
            order_topic_conf: None,
            queue_datas,
            broker_datas,
            filter_server_table: BTreeMap::new(),
            topic_queue_mapping_info: None,
        })
    }

    /// GET_BROKER_CLUSTER_INFO's body.
    pub fn cluster_info(&self) -> serde_json::Value {
        serde_json::json!({
            "brokerAddrTable": self.brokers,
            "clusterAddrTable": self.clusters,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(name: &str, id: i64, addr: &str, topics: &[(&str, u32)]) -> Registration {
        Registration {
            cluster: "DefaultCluster".into(),
            broker_name: name.into(),
            broker_id: id,
            broker_addr: addr.into(),
            ha_server_addr: format!("{addr}-ha"),
            topics: topics
                .iter()
                .map(|(t, n)| TopicConfig {
                    name: (*t).into(),
                    read_queue_nums: *n,
                    write_queue_nums: *n,
                    perm: 6,
                    topic_sys_flag: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn routes_list_each_group_serving_the_topic_with_its_members() {
        let mut routes = RouteInfo::default();
        routes
            .register(registration("broker-a", 0, "a0:10911", &[("orders", 4), ("TBW102", 8)]), 0);
        let (master_ha, master) =
            routes.register(registration("broker-a", 1, "a1:10911", &[("ignored", 1)]), 0);
        assert_eq!((master_ha.as_str(), master.as_str()), ("a0:10911-ha", "a0:10911"));
        routes.register(registration("broker-b", 0, "b0:10911", &[("orders", 2)]), 0);
        let route = routes.route("orders").unwrap();
        assert_eq!(route.queue_datas.len(), 2);
        assert_eq!(route.broker_datas[0].broker_addrs.len(), 2, "master and slave of broker-a");
        assert!(routes.route("ignored").is_none(), "a slave's topics do not shape routes");
        let json = serde_json::to_string(&route).unwrap();
        for key in [
            "\"filterServerTable\":{}",
            "\"enableActingMaster\":false",
            "\"brokerAddrs\":{\"0\":\"a0:10911\",\"1\":\"a1:10911\"}",
            "\"readQueueNums\":4",
        ] {
            assert!(json.contains(key), "{key} in {json}");
        }
    }

    #[test]
    fn an_expired_master_leaves_its_group_and_a_gone_group_leaves_the_routes() {
        let mut routes = RouteInfo::default();
        routes.register(registration("broker-a", 0, "a0", &[("t", 4)]), 0);
        routes.register(registration("broker-a", 1, "a1", &[]), 100_000);
        routes.register(registration("broker-b", 0, "b0", &[("t", 4)]), 100_000);
        assert_eq!(routes.expire(130_000, 120_000), vec!["a0".to_string()]);
        let route = routes.route("t").unwrap();
        assert_eq!(route.broker_datas.len(), 2, "broker-a lives on in its slave");
        assert_eq!(route.broker_datas[0].broker_addrs.keys().collect::<Vec<_>>(), ["1"]);
        routes.unregister("a1");
        let route = routes.route("t").unwrap();
        assert_eq!(route.broker_datas.len(), 1);
        assert_eq!(route.queue_datas[0].broker_name, "broker-b");
        let info = routes.cluster_info();
        assert_eq!(info["clusterAddrTable"]["DefaultCluster"], serde_json::json!(["broker-b"]));
    }
}
