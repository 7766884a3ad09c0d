//! BrokerConfig — every knob of a Kafka-model broker, named as Kafka names it, with Kafka's
//! defaults unless a line says otherwise.

use std::net::SocketAddr;
use std::path::PathBuf;

use twinmq_storage::{FlushPolicy, LogConfig};

/// One broker's configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `node.id`.
    pub node_id: i32,
    /// The address to listen on (`listeners`).
    pub listen: SocketAddr,
    /// The host clients are told to connect to (`advertised.listeners`); the listen address's
    /// IP when `None`.
    pub advertised_host: Option<String>,
    /// `log.dirs`: partitions, the metadata log and group offsets live here.
    pub data_dir: PathBuf,
    /// `num.partitions`: partitions of an auto-created topic.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `auto.create.topics.enable`: Metadata for an unknown topic creates it.
    pub auto_create_topics: bool,
    /// `socket.request.max.bytes`: a larger request frame closes the connection.
    pub request_bytes_max: usize,
    /// `message.max.bytes`: a larger record batch gets MESSAGE_TOO_LARGE.
    pub message_bytes_max: u64,
    /// `min.insync.replicas`: acks=all fails with NOT_ENOUGH_REPLICAS below it.
    pub min_insync_replicas: usize,
    /// `unclean.leader.election.enable`.
    pub unclean_leader_election: bool,
    /// `replica.lag.time.max.ms`: a follower not caught up for this long leaves the ISR.
    pub replica_lag_time_max_ms: i64,
    /// `fetch.max.bytes` ceiling a Fetch response respects, whatever the client asks.
    pub fetch_bytes_max: u64,
    /// `max.connections`: connections beyond it are closed at accept.
    pub connections_max: usize,
    /// Where the cluster's controller runs.
    pub controller: ControllerLocation,
    /// Whether this node is a broker (holds partitions); a controller-only node is not.
    pub broker_role: bool,
    /// `broker.session.timeout.ms`: the controller fences a broker silent this long.
    pub broker_session_timeout_ms: i64,
    /// `broker.heartbeat.interval.ms`.
    pub broker_heartbeat_interval_ms: u64,
    /// `replica.fetch.wait.max.ms`: a follower's fetch waits this long for new records.
    pub replica_fetch_wait_max_ms: i32,
    /// `replica.socket.timeout.ms`: a follower gives up on a fetch (beyond its wait) or a
    /// connect to its leader after this long, and reconnects.
    pub replica_socket_timeout_ms: u64,
    /// `controller.quorum.request.timeout.ms`: registration, heartbeats, forwarded requests and
    /// metadata fetches (beyond their wait) to the controller give up after this long, so a
    /// broker cut off and reconnected heartbeats again before its session expires.
    pub controller_request_timeout_ms: u64,
    /// `log.cleaner.backoff.ms`: how often compacted partitions are compacted.
    pub cleaner_backoff_ms: u64,
    /// `log.retention.check.interval.ms`: how often retention runs.
    pub retention_check_interval_ms: u64,
    /// The partition logs' layout and flush policy.
    pub log: LogConfig,
    /// Group coordination.
    pub group: GroupConfig,
    /// Test-only, deliberately broken: acknowledge every produce at once and append it a
    /// moment later, so a crash in between loses acknowledged records. The simulator's checker
    /// must catch them.
    #[cfg(feature = "fault-injection")]
    pub ack_before_append: bool,
}

/// Where the controller of a broker's cluster runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControllerLocation {
    /// In this broker's process (a single node, or the controller node of a cluster).
    Local,
    /// In another node, reached at this address.
    Remote {
        /// The controller's node id.
        node_id: i32,
        /// `host:port`.
        addr: String,
    },
}

/// Group coordinator settings.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms`.
    pub session_timeout_ms_min: i32,
    /// `group.max.session.timeout.ms`.
    pub session_timeout_ms_max: i32,
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group waits
    /// for more members. Kafka's default is 3000; twinmq's is 0 (a single node has no members
    /// in flight from a rolling restart to wait for), settable for clusters.
    pub initial_rebalance_delay_ms: i32,
    /// `offsets.commit.timeout.ms`: a commit the offsets partition's ISR has not taken within
    /// this long fails (and is not answered as done).
    pub offset_commit_timeout_ms: u64,
    /// `offsets.topic.num.partitions`: partitions of the committed-offsets log; the group's
    /// coordinator is the leader of partition `hash(group) % this`.
    pub offsets_partitions: i32,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            session_timeout_ms_min: 6_000,
            session_timeout_ms_max: 1_800_000,
            initial_rebalance_delay_ms: 0,
            offset_commit_timeout_ms: 5_000,
            offsets_partitions: 8,
        }
    }
}

impl BrokerConfig {
    /// A single-node broker listening on `listen` with data in `data_dir`.
    pub fn single_node(node_id: i32, listen: SocketAddr, data_dir: PathBuf) -> Self {
        Self {
            node_id,
            listen,
            advertised_host: None,
            data_dir,
            num_partitions: 1,
            default_replication_factor: 1,
            auto_create_topics: true,
            request_bytes_max: 100 * 1024 * 1024,
            message_bytes_max: 1_048_588,
            min_insync_replicas: 1,
            unclean_leader_election: false,
            replica_lag_time_max_ms: 30_000,
            fetch_bytes_max: 55 * 1024 * 1024,
            connections_max: 4_096,
            controller: ControllerLocation::Local,
            broker_role: true,
            broker_session_timeout_ms: 9_000,
            broker_heartbeat_interval_ms: 500,
            replica_fetch_wait_max_ms: 500,
            replica_socket_timeout_ms: 30_000,
            controller_request_timeout_ms: 2_000,
            retention_check_interval_ms: 300_000,
            cleaner_backoff_ms: 15_000,
            log: LogConfig {
                entry_bytes_max: 1_048_588 + 64,
                flush: FlushPolicy::ASYNC_DEFAULT,
                ..LogConfig::default()
            },
            group: GroupConfig::default(),
            #[cfg(feature = "fault-injection")]
            ack_before_append: false,
        }
    }
}
