//! The broker's side of the controller: registration and heartbeats, the metadata log fetched
//! and replayed into this broker's image (as KRaft brokers do), and — on the controller node —
//! the liveness check that fences silent brokers.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::broker_registration_request::Listener;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use twinmq_runtime::Env;

use crate::client::ClientConnection;
use crate::client::backoff::{RECONNECT_BACKOFF_MAX_MS, ReconnectBackoff};
use crate::config::ControllerLocation;
use crate::controller::MetadataImage;
use crate::controller::metadata_log::{METADATA_TOPIC, decode};
use crate::server::BrokerContext;

/// How often the controller checks brokers' sessions.
const LIVENESS_CHECK_MS: u64 = 250;
/// Pause before reconnecting to the controller.
const RECONNECT_MS: u64 = 250;

/// Runs this broker's controller duties until shutdown: the liveness check when the
/// controller is local, registration, heartbeats and metadata replication when it is remote.
pub async fn run<E: Env>(context: Arc<BrokerContext<E>>) {
    match context.config.controller.clone() {
        ControllerLocation::Local => check_liveness(&context).await,
        ControllerLocation::Remote { addr, .. } => {
            tokio::join!(heartbeat(&context, &addr), replicate_metadata(&context, &addr));
        }
    }
}

/// Reconnects to the controller back off from [`RECONNECT_MS`] to Kafka's
/// `reconnect.backoff.max.ms`.
fn reconnect_backoff() -> ReconnectBackoff {
    ReconnectBackoff::new(
        Duration::from_millis(RECONNECT_MS),
        Duration::from_millis(RECONNECT_BACKOFF_MAX_MS),
    )
}

fn millis(wait: Duration) -> u64 {
    u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)
}

async fn sleep_or_shutdown<E: Env>(context: &BrokerContext<E>, ms: u64) -> bool {
    tokio::select! {
        biased;
        () = context.shutdown.wait() => false,
        () = tokio::time::sleep(Duration::from_millis(ms)) => true,
    }
}

async fn check_liveness<E: Env>(context: &BrokerContext<E>) {
    while sleep_or_shutdown(context, LIVENESS_CHECK_MS).await {
        let Some(controller) = &context.cluster.controller else { return };
        if let Some(reason) = controller.failure() {
            context.halt.raise(format!("controller: {reason}"));
            return;
        }
        match controller.check_liveness(context.env.clock().now_ms()) {
            Ok(fenced) if !fenced.is_empty() => context.metadata_changed(),
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "liveness check failed"),
        }
        context.ensure_offsets_topic();
    }
}

async fn heartbeat<E: Env>(context: &BrokerContext<E>, addr: &str) {
    let node_id = context.config.node_id;
    let client_id = format!("broker-{node_id}-heartbeat");
    let timeout = Duration::from_millis(context.config.controller_request_timeout_ms);
    let mut backoff = reconnect_backoff();
    loop {
        if context.shutdown.is_triggered() {
            return;
        }
        let net = context.env.net();
        let mut connection =
            match ClientConnection::connect_within(net, addr, &client_id, timeout).await {
                Ok(connection) => {
                    backoff.succeeded();
                    connection
                }
                Err(error) => {
                    tracing::debug!(%error, "controller unreachable");
                    if !sleep_or_shutdown(context, millis(backoff.failed())).await {
                        return;
                    }
                    continue;
                }
            };
        let (host, port) = context.advertised.clone();
        let registration = BrokerRegistrationRequest::default()
            .with_broker_id(BrokerId(node_id))
            .with_cluster_id(StrBytes::from_static_str(crate::api::CLUSTER_ID))
            .with_listeners(vec![
                Listener::default()
                    .with_name(StrBytes::from_static_str("PLAINTEXT"))
                    .with_host(StrBytes::from_string(host))
                    .with_port(u16::try_from(port).unwrap_or(0)),
            ]);
        let epoch = match connection.send(0, &registration).await {
            Ok(response) if response.error_code == 0 => response.broker_epoch,
            Ok(response) => {
                tracing::warn!(code = response.error_code, "registration refused");
                if !sleep_or_shutdown(context, RECONNECT_MS).await {
                    return;
                }
                continue;
            }
            Err(error) => {
                tracing::debug!(%error, "registration failed");
                if !sleep_or_shutdown(context, RECONNECT_MS).await {
                    return;
                }
                continue;
            }
        };
        tracing::info!(node_id, epoch, "registered with the controller");
        while sleep_or_shutdown(context, context.config.broker_heartbeat_interval_ms).await {
            let beat = BrokerHeartbeatRequest::default()
                .with_broker_id(BrokerId(node_id))
                .with_broker_epoch(epoch);
            match connection.send(0, &beat).await {
                Ok(response) if response.error_code == 0 => {}
                Ok(response) => {
                    tracing::warn!(
                        code = response.error_code,
                        "fenced by the controller; registering again"
                    );
                    break;
                }
                Err(error) => {
                    tracing::debug!(%error, "heartbeat failed");
                    break;
                }
            }
        }
    }
}

async fn replicate_metadata<E: Env>(context: &BrokerContext<E>, addr: &str) {
    let client_id = format!("broker-{}-metadata", context.config.node_id);
    let wait_ms = u64::try_from(context.config.replica_fetch_wait_max_ms).unwrap_or(0);
    let timeout = Duration::from_millis(wait_ms + context.config.controller_request_timeout_ms);
    let mut image = MetadataImage::default();
    let mut next_offset = 0u64;
    let mut backoff = reconnect_backoff();
    loop {
        if context.shutdown.is_triggered() {
            return;
        }
        let net = context.env.net();
        let mut connection =
            match ClientConnection::connect_within(net, addr, &client_id, timeout).await {
                Ok(connection) => {
                    backoff.succeeded();
                    connection
                }
                Err(_) => {
                    if !sleep_or_shutdown(context, millis(backoff.failed())).await {
                        return;
                    }
                    continue;
                }
            };
        loop {
            let request = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(context.config.replica_fetch_wait_max_ms)
                .with_min_bytes(1)
                .with_max_bytes(16 << 20)
                .with_topics(vec![
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
                        .with_partitions(vec![
                            FetchPartition::default()
                                .with_partition(0)
                                .with_fetch_offset(i64::try_from(next_offset).unwrap_or(i64::MAX))
                                .with_partition_max_bytes(16 << 20),
                        ]),
                ]);
            let fetched = tokio::select! {
                biased;
                () = context.shutdown.wait() => return,
                fetched = connection.send(12, &request) => fetched,
            };
            let response = match fetched {
                Ok(response) => response,
                Err(error) => {
                    tracing::debug!(%error, "metadata fetch failed");
                    break;
                }
            };
            let Some(data) = response.responses.first().and_then(|t| t.partitions.first()) else {
                break;
            };
            let Some(records) = data.records.as_ref().filter(|r| !r.is_empty()) else { continue };
            match decode(records) {
                Ok(decoded) => {
                    for (offset, record) in decoded {
                        if offset >= next_offset {
                            image.apply(&record);
                            next_offset = offset + 1;
                        }
                    }
                    context.cluster.set_image(image.clone());
                    context.metadata_changed();
                }
                Err(error) => {
                    tracing::error!(%error, "undecodable metadata from the controller");
                    break;
                }
            }
        }
        if !sleep_or_shutdown(context, RECONNECT_MS).await {
            return;
        }
    }
}
