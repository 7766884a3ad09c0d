//! The nameserver: brokers register with it (every 30 s, with their topics), clients ask it
//! for topic routes. Several run side by side, independent; brokers register with all of them.

pub mod route_info;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use twinmq_runtime::{Env, Listener, Net, Shutdown};

pub use route_info::{BrokerData, QueueData, Registration, RouteInfo, TopicConfig, TopicRouteData};

use crate::remoting::response_code::*;
use crate::remoting::{Peer, Processor, RemotingCommand, request_code, serve};

/// Nameserver settings.
#[derive(Debug, Clone)]
pub struct NamesrvConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// A broker not heard from for this long is dropped (RocketMQ: 120 s).
    pub broker_expiry_ms: i64,
    /// How often expiry runs (RocketMQ: 5 s).
    pub expiry_scan_ms: u64,
    /// Largest frame accepted (RocketMQ's `remotingMaxFrameSize`... 16 MiB).
    pub frame_bytes_max: usize,
}

impl NamesrvConfig {
    /// Defaults, listening on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            broker_expiry_ms: 120_000,
            expiry_scan_ms: 5_000,
            frame_bytes_max: 16 * 1024 * 1024,
        }
    }
}

/// A bound nameserver.
pub struct NameServer<E: Env> {
    env: E,
    config: NamesrvConfig,
    listener: <E::Net as Net>::Listener,
    processor: Arc<NamesrvProcessor<E>>,
}

impl<E: Env> std::fmt::Debug for NameServer<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NameServer").field("config", &self.config).finish_non_exhaustive()
    }
}

/// The nameserver's request handling.
pub struct NamesrvProcessor<E: Env> {
    env: E,
    /// The route tables.
    pub routes: Mutex<RouteInfo>,
    /// Broker address → the connection it last registered through.
    channels: Mutex<BTreeMap<String, SocketAddr>>,
}

impl<E: Env> NameServer<E> {
    /// Binds the listener.
    pub async fn bind(env: E, config: NamesrvConfig) -> std::io::Result<Self> {
        let listener = env.net().bind(config.listen).await?;
        let processor = Arc::new(NamesrvProcessor {
            env: env.clone(),
            routes: Mutex::new(RouteInfo::default()),
            channels: Mutex::new(BTreeMap::new()),
        });
        Ok(Self { env, config, listener, processor })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.listen)
    }

    /// Serves until `shutdown`.
    pub async fn run(self, shutdown: Shutdown) {
        let expiry = {
            let (processor, shutdown, env) =
                (Arc::clone(&self.processor), shutdown.clone(), self.env.clone());
            let (scan, timeout) = (self.config.expiry_scan_ms, self.config.broker_expiry_ms);
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        biased;
                        () = shutdown.wait() => return,
                        () = tokio::time::sleep(Duration::from_millis(scan)) => {}
                    }
                    let now_ms = env.clock().now_ms();
                    if let Ok(mut routes) = processor.routes.lock() {
                        for addr in routes.expire(now_ms, timeout) {
                            tracing::warn!(broker = %addr, "broker expired");
                        }
                    }
                }
            })
        };
        tracing::info!(addr = %self.local_addr(), "rocketmq nameserver listening");
        serve::<E, _>(self.listener, self.processor, self.config.frame_bytes_max, shutdown).await;
        let _ = expiry.await;
    }
}

impl<E: Env> Processor for NamesrvProcessor<E> {
    async fn process(&self, request: RemotingCommand, peer: &Peer) -> Option<RemotingCommand> {
        let Ok(mut routes) = self.routes.lock() else {
            return Some(RemotingCommand::response_to(
                &request,
                SYSTEM_ERROR,
                Some("route table poisoned".into()),
            ));
        };
        let now_ms = self.env.clock().now_ms();
        let response = match request.code {
            request_code::REGISTER_BROKER => match parse_registration(&request) {
                Ok(registration) => {
                    if let Ok(mut channels) = self.channels.lock() {
                        channels.insert(registration.broker_addr.clone(), peer.addr);
                    }
                    let (ha, master) = routes.register(registration, now_ms);
                    RemotingCommand::response_to(&request, SUCCESS, None)
                        .with_field("haServerAddr", ha)
                        .with_field("masterAddr", master)
                }
                Err(reason) => {
                    tracing::warn!(peer = %peer.addr, %reason, "registration refused");
                    RemotingCommand::response_to(&request, SYSTEM_ERROR, Some(reason))
                }
            },
            request_code::UNREGISTER_BROKER => {
                if let Some(addr) = request.field("brokerAddr") {
                    routes.unregister(addr);
                }
                RemotingCommand::response_to(&request, SUCCESS, None)
            }
            request_code::GET_ROUTEINFO_BY_TOPIC => {
                match request.field("topic").and_then(|topic| routes.route(topic)) {
                    Some(route) => RemotingCommand::response_to(&request, SUCCESS, None)
                        .with_body(serde_json::to_vec(&route).unwrap_or_default()),
                    None => RemotingCommand::response_to(
                        &request,
                        TOPIC_NOT_EXIST,
                        Some("Topic route was not found".into()),
                    ),
                }
            }
            request_code::GET_BROKER_CLUSTER_INFO => {
                RemotingCommand::response_to(&request, SUCCESS, None)
                    .with_body(serde_json::to_vec(&routes.cluster_info()).unwrap_or_default())
            }
            request_code::REGISTER_TOPIC_IN_NAMESRV => {
                let queues =
                    serde_json::from_slice::<serde_json::Value>(&request.body).ok().and_then(|v| {
                        serde_json::from_value::<Vec<QueueData>>(v["queueDatas"].clone()).ok()
                    });
                match (request.field("topic"), queues) {
                    (Some(topic), Some(queues)) => {
                        routes.register_topic(topic, queues);
                        RemotingCommand::response_to(&request, SUCCESS, None)
                    }
                    _ => RemotingCommand::response_to(
                        &request,
                        SYSTEM_ERROR,
                        Some("topic or queueDatas missing".into()),
                    ),
                }
            }
            other => {
                tracing::info!(peer = %peer.addr, code = other, "request code not supported");
                RemotingCommand::response_to(
                    &request,
                    REQUEST_CODE_NOT_SUPPORTED,
                    Some(format!("request code {other} is not supported")),
                )
            }
        };
        Some(response)
    }

    fn disconnected(&self, peer: &Peer) {
        let gone: Vec<String> = match self.channels.lock() {
            Ok(mut channels) => {
                let gone = channels
                    .iter()
                    .filter(|(_, channel)| **channel == peer.addr)
                    .map(|(broker, _)| broker.clone())
                    .collect();
                channels.retain(|_, channel| *channel != peer.addr);
                gone
            }
            Err(_) => return,
        };
        if let Ok(mut routes) = self.routes.lock() {
            for broker in gone {
                tracing::warn!(%broker, "broker connection closed; removed from the routes");
                routes.unregister(&broker);
            }
        }
    }
}

/// Reads REGISTER_BROKER's header fields and topic configuration body.
fn parse_registration(request: &RemotingCommand) -> Result<Registration, String> {
    let field = |name: &str| {
        request.field(name).map(str::to_owned).ok_or_else(|| format!("{name} missing"))
    };
    if request.field("compressed") == Some("true") {
        return Err("compressed registration bodies are not supported".into());
    }
    let broker_id = field("brokerId")?.parse::<i64>().map_err(|e| format!("brokerId: {e}"))?;
    let topics = if request.body.is_empty() {
        Vec::new()
    } else {
        let body: serde_json::Value =
            serde_json::from_slice(&request.body).map_err(|e| format!("body: {e}"))?;
        let table = &body["topicConfigSerializeWrapper"]["topicConfigTable"];
        table
            .as_object()
            .map(|topics| {
                topics
                    .iter()
                    .map(|(name, config)| TopicConfig {
                        name: name.clone(),
                        read_queue_nums: number(config, "readQueueNums"),
                        write_queue_nums: number(config, "writeQueueNums"),
                        perm: number(config, "perm"),
                        topic_sys_flag: number(config, "topicSysFlag"),
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(Registration {
        cluster: field("clusterName")?,
        broker_name: field("brokerName")?,
        broker_id,
        broker_addr: field("brokerAddr")?,
        ha_server_addr: request.field("haServerAddr").unwrap_or_default().to_owned(),
        topics,
    })
}

fn number(config: &serde_json::Value, key: &str) -> u32 {
    config[key].as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or(0)
}
