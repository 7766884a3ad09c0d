//! ClientInstance — what every producer and consumer shares (RocketMQ `MQClientInstance` with
//! its `MQClientAPIImpl`): one pooled connection per server address, requests with timeouts,
//! the route cache, heartbeats, and the requests brokers send back down those connections
//! (NOTIFY_CONSUMER_IDS_CHANGED, CHECK_TRANSACTION_STATE), delivered tagged with the address they
//! came from.
//!
//! A connection that closes or times out a request is dropped from the pool; the next request
//! to that address connects again (turmoil's TCP has no retransmission, so a stalled stream
//! never recovers by itself).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use twinmq_runtime::Env;

use super::route::TopicRoute;
use super::{ClientConfig, ClientError, DEFAULT_TOPIC};
use crate::namesrv::TopicRouteData;
use crate::remoting::response_code::{SUCCESS, TOPIC_NOT_EXIST};
use crate::remoting::{RemotingClient, RemotingCommand, request_code};

/// A request a broker sent this client, with the broker's address.
pub type Callback = (String, RemotingCommand);

type Connection<E> = Arc<RemotingClient<<E as Env>::Net>>;
type Slot<E> = Arc<tokio::sync::Mutex<Option<Connection<E>>>>;

/// The shared plumbing of one client.
pub struct ClientInstance<E: Env> {
    env: E,
    config: ClientConfig,
    /// One slot per address: connecting to a silent host holds up only that address.
    connections: Mutex<BTreeMap<String, Slot<E>>>,
    routes: Mutex<BTreeMap<String, Arc<TopicRoute>>>,
    callbacks: mpsc::UnboundedSender<Callback>,
}

impl<E: Env> std::fmt::Debug for ClientInstance<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientInstance").field("client_id", &self.config.client_id).finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<E: Env> ClientInstance<E> {
    /// A client with no connections yet, and the stream of requests brokers will send it.
    pub fn new(env: E, config: ClientConfig) -> (Arc<Self>, mpsc::UnboundedReceiver<Callback>) {
        let (callbacks, received) = mpsc::unbounded_channel();
        let instance = Arc::new(Self {
            env,
            config,
            connections: Mutex::default(),
            routes: Mutex::default(),
            callbacks,
        });
        (instance, received)
    }

    /// The environment.
    pub fn env(&self) -> &E {
        &self.env
    }

    /// The settings.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The connection to `addr`, made if there is none (or the pooled one closed).
    async fn connection(&self, addr: &str) -> Result<Connection<E>, ClientError> {
        let slot = Arc::clone(lock(&self.connections).entry(addr.to_owned()).or_default());
        let mut slot = slot.lock().await;
        if let Some(connection) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(Arc::clone(connection));
        }
        let (forward, mut received) = mpsc::unbounded_channel();
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        let connected = tokio::time::timeout(
            timeout,
            RemotingClient::connect(self.env.net(), addr, Some(forward)),
        )
        .await;
        let connection = match connected {
            Ok(Ok(connection)) => Arc::new(connection),
            Ok(Err(error)) => {
                return Err(ClientError::Connect { addr: addr.into(), reason: error.to_string() });
            }
            Err(_) => {
                return Err(ClientError::Connect { addr: addr.into(), reason: "timed out".into() });
            }
        };
        let (callbacks, from) = (self.callbacks.clone(), addr.to_owned());
        tokio::spawn(async move {
            while let Some(request) = received.recv().await {
                if callbacks.send((from.clone(), request)).is_err() {
                    return;
                }
            }
        });
        *slot = Some(Arc::clone(&connection));
        Ok(connection)
    }

    /// Forgets `connection` if it is still the pooled one for `addr`.
    async fn discard(&self, addr: &str, connection: &Connection<E>) {
        let slot = lock(&self.connections).get(addr).cloned();
        if let Some(slot) = slot {
            let mut slot = slot.lock().await;
            if slot.as_ref().is_some_and(|pooled| Arc::ptr_eq(pooled, connection)) {
                *slot = None;
            }
        }
    }

    /// Sends a request and waits for its answer, at most `timeout_ms`.
    pub async fn request(
        &self,
        addr: &str,
        request: RemotingCommand,
        timeout_ms: u64,
    ) -> Result<RemotingCommand, ClientError> {
        let code = request.code;
        let connection = self.connection(addr).await?;
        let answered =
            tokio::time::timeout(Duration::from_millis(timeout_ms), connection.request(request))
                .await;
        match answered {
            Ok(Some(response)) => Ok(response),
            Ok(None) => {
                self.discard(addr, &connection).await;
                Err(ClientError::Closed { addr: addr.into(), code })
            }
            Err(_) => {
                self.discard(addr, &connection).await;
                Err(ClientError::Timeout { addr: addr.into(), code, timeout_ms })
            }
        }
    }

    /// Sends a request within the ordinary timeout and requires SUCCESS.
    pub async fn request_ok(
        &self,
        addr: &str,
        request: RemotingCommand,
    ) -> Result<RemotingCommand, ClientError> {
        let response = self.request(addr, request, self.config.request_timeout_ms).await?;
        if response.code == SUCCESS { Ok(response) } else { Err(refused(addr, &response)) }
    }

    /// Sends a oneway request.
    pub async fn oneway(&self, addr: &str, request: RemotingCommand) -> Result<(), ClientError> {
        let connection = self.connection(addr).await?;
        if let Err(error) = connection.oneway(request).await {
            self.discard(addr, &connection).await;
            return Err(ClientError::Connect { addr: addr.into(), reason: error.to_string() });
        }
        Ok(())
    }

    /// The cached route of `topic`, fetched if there is none.
    pub async fn route(&self, topic: &str) -> Result<Arc<TopicRoute>, ClientError> {
        if let Some(route) = lock(&self.routes).get(topic).filter(|r| !r.borrowed) {
            return Ok(Arc::clone(route));
        }
        self.refresh_route(topic).await
    }

    /// The route a producer sends by: the topic's own, or — for a topic no nameserver knows
    /// yet — the default topic's brokers, so the first send makes a broker create it.
    pub async fn publish_route(&self, topic: &str) -> Result<Arc<TopicRoute>, ClientError> {
        match self.route(topic).await {
            Ok(route) => Ok(route),
            Err(ClientError::NoRoute(_)) => {
                let default = self.fetch_route_data(DEFAULT_TOPIC).await?;
                let route = Arc::new(TopicRoute::borrowed(
                    topic,
                    &default,
                    self.config.default_topic_queue_nums,
                ));
                lock(&self.routes).insert(topic.to_owned(), Arc::clone(&route));
                Ok(route)
            }
            Err(other) => Err(other),
        }
    }

    /// Fetches the route of `topic` from the nameservers and caches it.
    pub async fn refresh_route(&self, topic: &str) -> Result<Arc<TopicRoute>, ClientError> {
        let data = self.fetch_route_data(topic).await?;
        let route = Arc::new(TopicRoute::from_data(topic, &data));
        lock(&self.routes).insert(topic.to_owned(), Arc::clone(&route));
        Ok(route)
    }

    /// Fetches every cached route again (errors keep the cached one).
    pub async fn refresh_routes(&self) {
        let topics: Vec<String> = lock(&self.routes).keys().cloned().collect();
        for topic in topics {
            if let Err(error) = self.refresh_route(&topic).await {
                tracing::debug!(%topic, %error, "route refresh failed");
            }
        }
    }

    /// Asks the nameservers in order until one answers.
    async fn fetch_route_data(&self, topic: &str) -> Result<TopicRouteData, ClientError> {
        let mut last = ClientError::NoRoute(topic.to_owned());
        for namesrv in &self.config.namesrv {
            let request = RemotingCommand::request(
                request_code::GET_ROUTEINFO_BY_TOPIC,
                BTreeMap::new(),
                Bytes::new(),
            )
            .with_field("topic", topic);
            match self.request(namesrv, request, self.config.request_timeout_ms).await {
                Ok(response) if response.code == SUCCESS => {
                    return serde_json::from_slice(&response.body).map_err(|e| {
                        ClientError::Malformed {
                            code: request_code::GET_ROUTEINFO_BY_TOPIC,
                            reason: e.to_string(),
                        }
                    });
                }
                Ok(response) if response.code == TOPIC_NOT_EXIST => {
                    return Err(ClientError::NoRoute(topic.to_owned()));
                }
                Ok(response) => last = refused(namesrv, &response),
                Err(error) => last = error,
            }
        }
        Err(last)
    }

    /// Every broker address in the cached routes that is written or read (masters, and slaves
    /// standing in for a missing master).
    pub fn broker_addrs(&self) -> BTreeSet<String> {
        lock(&self.routes)
            .values()
            .flat_map(|route| route.master_addrs.values().chain(route.read_addrs.values()).cloned())
            .collect()
    }

    /// Where a broker group's queues are read, from any cached route.
    pub fn read_addr(&self, broker_name: &str) -> Option<String> {
        lock(&self.routes)
            .values()
            .find_map(|route| route.read_addr(broker_name).map(str::to_owned))
    }

    /// The master address of a broker group, from any cached route.
    pub fn master_addr(&self, broker_name: &str) -> Option<String> {
        lock(&self.routes)
            .values()
            .find_map(|route| route.master_addr(broker_name).map(str::to_owned))
    }

    /// Sends HEART_BEAT with `body` to every known broker; returns the brokers that took it.
    pub async fn heartbeat(&self, body: &serde_json::Value) -> BTreeSet<String> {
        let body = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
        let mut reached = BTreeSet::new();
        for addr in self.broker_addrs() {
            let request =
                RemotingCommand::request(request_code::HEART_BEAT, BTreeMap::new(), body.clone());
            match self.request_ok(&addr, request).await {
                Ok(_) => {
                    reached.insert(addr);
                }
                Err(error) => tracing::debug!(%addr, %error, "heartbeat failed"),
            }
        }
        reached
    }

    /// Sends UNREGISTER_CLIENT for a producer (`producerGroup`) or consumer (`consumerGroup`)
    /// group to every known broker.
    pub async fn unregister(&self, group_field: &str, group: &str) {
        for addr in self.broker_addrs() {
            let request = RemotingCommand::request(
                request_code::UNREGISTER_CLIENT,
                BTreeMap::new(),
                Bytes::new(),
            )
            .with_field("clientID", &self.config.client_id)
            .with_field(group_field, group);
            if let Err(error) = self.request_ok(&addr, request).await {
                tracing::debug!(%addr, %error, "unregister failed");
            }
        }
    }

    /// Drops every connection.
    pub async fn close(&self) {
        let slots: Vec<Slot<E>> =
            std::mem::take(&mut *lock(&self.connections)).into_values().collect();
        for slot in slots {
            slot.lock().await.take();
        }
    }
}

/// The error for a non-SUCCESS answer.
pub fn refused(addr: &str, response: &RemotingCommand) -> ClientError {
    ClientError::Refused {
        addr: addr.to_owned(),
        code: response.code,
        remark: response.remark.clone().unwrap_or_default(),
    }
}

/// A request with the given header fields.
pub fn request_with(code: i32, fields: &[(&str, String)]) -> RemotingCommand {
    let ext = fields.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
    RemotingCommand::request(code, ext, Bytes::new())
}

/// A header field parsed as a number, or a Malformed error naming it.
pub fn number_field<T: std::str::FromStr>(
    response: &RemotingCommand,
    code: i32,
    name: &str,
) -> Result<T, ClientError> {
    response.field(name).and_then(|v| v.parse().ok()).ok_or_else(|| ClientError::Malformed {
        code,
        reason: format!("field {name} missing or not a number: {:?}", response.field(name)),
    })
}
