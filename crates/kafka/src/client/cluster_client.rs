//! ClusterClient — what every client of a Kafka cluster needs: bootstrap, a metadata cache
//! (brokers, partitions and their leaders), one connection per broker, and a reconnect backoff
//! per address.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Request, StrBytes};
use tokio::sync::Mutex;
use twinmq_runtime::Net;

use super::backoff::ReconnectBackoff;
use super::connection::{ClientConnection, ClientError, REQUEST_TIMEOUT_MS};

/// Metadata version the client speaks.
const METADATA_VERSION: i16 = 9;

/// One partition as the cluster's metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The leader's node id (-1: none).
    pub leader: i32,
    /// The leader epoch.
    pub leader_epoch: i32,
}

#[derive(Debug, Default)]
struct Cache {
    brokers: BTreeMap<i32, String>,
    topics: BTreeMap<String, Vec<PartitionInfo>>,
}

/// A client's view of a cluster, and its connections.
pub struct ClusterClient<N: Net> {
    net: N,
    bootstrap: Vec<String>,
    client_id: String,
    request_timeout: Duration,
    cache: std::sync::Mutex<Cache>,
    connections: Mutex<BTreeMap<i32, Arc<Mutex<ClientConnection<N>>>>>,
    reconnects: std::sync::Mutex<BTreeMap<String, ReconnectBackoff>>,
}

impl<N: Net> std::fmt::Debug for ClusterClient<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterClient").field("bootstrap", &self.bootstrap).finish_non_exhaustive()
    }
}

impl<N: Net> ClusterClient<N> {
    /// A client of the cluster reachable at any of `bootstrap` (`host:port`, comma-separated).
    pub fn new(net: N, bootstrap: &str, client_id: &str) -> Self {
        Self {
            net,
            bootstrap: bootstrap
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            client_id: client_id.to_owned(),
            request_timeout: Duration::from_millis(REQUEST_TIMEOUT_MS),
            cache: std::sync::Mutex::new(Cache::default()),
            connections: Mutex::new(BTreeMap::new()),
            reconnects: std::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// Gives up on a connect or a request after `timeout_ms` (`request.timeout.ms`): a broker
    /// that went silent, cut off or powered off, costs one timeout, not a hung client.
    pub fn with_request_timeout(mut self, timeout_ms: u64) -> Self {
        self.request_timeout = Duration::from_millis(timeout_ms);
        self
    }

    /// Refreshes metadata for `topics` (auto-creating them when the broker allows).
    pub async fn refresh(&self, topics: &[String]) -> Result<(), ClientError> {
        let request = MetadataRequest::default()
            .with_topics(Some(
                topics
                    .iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                    })
                    .collect(),
            ))
            .with_allow_auto_topic_creation(true);
        let mut last_error = ClientError::Closed;
        let known: Vec<i32> = self.lock().brokers.keys().copied().collect();
        for node_id in known {
            match self.send_to(node_id, METADATA_VERSION, &request).await {
                Ok(response) => {
                    self.apply(response);
                    return Ok(());
                }
                Err(error) => last_error = error,
            }
        }
        for addr in &self.bootstrap {
            let answer = async {
                let mut connection = self.connect(addr).await?;
                connection.send(METADATA_VERSION, &request).await
            };
            match answer.await {
                Ok(response) => {
                    self.apply(response);
                    return Ok(());
                }
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    fn apply(&self, response: MetadataResponse) {
        let mut cache = self.lock();
        cache.brokers = response
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
            .collect();
        for topic in response.topics {
            let Some(name) = topic.name else { continue };
            if topic.error_code != 0 {
                continue;
            }
            let mut partitions = topic.partitions;
            partitions.sort_by_key(|p| p.partition_index);
            let infos = partitions
                .iter()
                .map(|p| PartitionInfo { leader: p.leader_id.0, leader_epoch: p.leader_epoch })
                .collect();
            cache.topics.insert(name.to_string(), infos);
        }
    }

    /// The partitions of a topic, if known.
    pub fn partitions(&self, topic: &str) -> Option<Vec<PartitionInfo>> {
        self.lock().topics.get(topic).cloned()
    }

    /// How many partitions a topic has, if known (no copy of the list: producers ask per record).
    pub fn partition_count(&self, topic: &str) -> Option<usize> {
        self.lock().topics.get(topic).map(Vec::len)
    }

    /// The leader of `topic`/`partition` as last learned, if it has one.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        let cache = self.lock();
        let leader = cache.topics.get(topic)?.get(usize::try_from(partition).ok()?)?.leader;
        (leader >= 0).then_some(leader)
    }

    /// Sends `request` to broker `node_id` over its shared connection; a failed connection is
    /// dropped so the next request reconnects.
    pub async fn send_to<R: Request>(
        &self,
        node_id: i32,
        version: i16,
        request: &R,
    ) -> Result<R::Response, ClientError> {
        let connection = self.connection(node_id).await?;
        let mut connection = connection.lock().await;
        let result = connection.send(version, request).await;
        if result.is_err() {
            self.connections.lock().await.remove(&node_id);
        }
        result
    }

    /// Sends `request` to the first broker that answers — known brokers in id order, then the
    /// bootstrap addresses — for requests any broker serves (FindCoordinator).
    pub async fn send_to_any<R: Request>(
        &self,
        version: i16,
        request: &R,
    ) -> Result<R::Response, ClientError> {
        let known: Vec<i32> = self.lock().brokers.keys().copied().collect();
        let mut last_error = ClientError::Closed;
        for node_id in known {
            match self.send_to(node_id, version, request).await {
                Ok(response) => return Ok(response),
                Err(error) => last_error = error,
            }
        }
        for addr in &self.bootstrap {
            let answer = async { self.connect(addr).await?.send(version, request).await };
            match answer.await {
                Ok(response) => return Ok(response),
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    /// Records where broker `node_id` listens, learned outside a metadata answer (a
    /// FindCoordinator answer names its coordinator's address).
    pub fn learn_broker(&self, node_id: i32, addr: String) {
        self.lock().brokers.insert(node_id, addr);
    }

    /// Sends `request` to broker `node_id` and expects no response (acks=0).
    pub async fn send_to_without_response<R: Request>(
        &self,
        node_id: i32,
        version: i16,
        request: &R,
    ) -> Result<(), ClientError> {
        let connection = self.connection(node_id).await?;
        let mut connection = connection.lock().await;
        let result = connection.send_without_response(version, request).await;
        if result.is_err() {
            self.connections.lock().await.remove(&node_id);
        }
        result
    }

    async fn connection(
        &self,
        node_id: i32,
    ) -> Result<Arc<Mutex<ClientConnection<N>>>, ClientError> {
        let mut connections = self.connections.lock().await;
        if let Some(connection) = connections.get(&node_id) {
            return Ok(Arc::clone(connection));
        }
        let addr =
            self.lock().brokers.get(&node_id).cloned().ok_or(ClientError::UnknownNode(node_id))?;
        let connection = Arc::new(Mutex::new(self.connect(&addr).await?));
        connections.insert(node_id, Arc::clone(&connection));
        Ok(connection)
    }

    /// Connects to `addr` once its reconnect backoff allows.
    async fn connect(&self, addr: &str) -> Result<ClientConnection<N>, ClientError> {
        let backoff = self.reconnects().get(addr).cloned();
        if let Some(backoff) = backoff {
            backoff.ready().await;
        }
        let connected = ClientConnection::connect_within(
            &self.net,
            addr,
            &self.client_id,
            self.request_timeout,
        )
        .await;
        let mut reconnects = self.reconnects();
        match &connected {
            Ok(_) => drop(reconnects.remove(addr)),
            Err(_) => drop(reconnects.entry(addr.to_owned()).or_default().failed()),
        }
        connected
    }

    fn reconnects(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ReconnectBackoff>> {
        self.reconnects.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Any known broker (for requests that may go anywhere).
    pub fn any_node(&self) -> Option<i32> {
        self.lock().brokers.keys().next().copied()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
