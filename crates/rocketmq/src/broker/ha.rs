//! Master/slave replication (RocketMQ's HAService): a slave connects to its master's HA port,
//! says how far its CommitLog goes, and the master streams the CommitLog to it from there, byte
//! for byte, as whole entries; the slave appends them where the master placed them, dispatches
//! them into its own consume queues, and reports its new end after every chunk. A SYNC_MASTER
//! answers a send only when a slave reports holding it.
//!
//! ## Wire (integers big-endian)
//!
//! ```text
//! slave → master   u64 offset                 how far the slave's CommitLog goes (its end)
//! master → slave   u64 from | u32 len | bytes  CommitLog bytes from `from`; len 0: heartbeat
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use twinmq_runtime::{Env, Listener, Net, Shutdown};
use twinmq_storage::{DurableWatermark, FlushPolicy};

use super::processor::{BrokerProcessor, lock};
use crate::remoting::response_code::{FLUSH_SLAVE_TIMEOUT, SLAVE_NOT_AVAILABLE};

/// Bytes of a master → slave chunk header.
const CHUNK_HEADER_BYTES: usize = 12;

/// `brokerRole`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BrokerRole {
    /// Answers sends once stored; slaves catch up on their own.
    AsyncMaster,
    /// Answers sends once a slave holds them (else FLUSH_SLAVE_TIMEOUT / SLAVE_NOT_AVAILABLE).
    SyncMaster,
    /// Takes no sends; copies its master's CommitLog and serves pulls.
    Slave,
}

impl BrokerRole {
    /// Whether this broker takes sends.
    pub fn is_master(self) -> bool {
        self != Self::Slave
    }
}

impl std::str::FromStr for BrokerRole {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_uppercase().replace('-', "_").as_str() {
            "ASYNC_MASTER" => Ok(Self::AsyncMaster),
            "SYNC_MASTER" => Ok(Self::SyncMaster),
            "SLAVE" => Ok(Self::Slave),
            _ => Err(format!("{text:?}: one of ASYNC_MASTER, SYNC_MASTER, SLAVE")),
        }
    }
}

/// Replication settings (RocketMQ's names where it has them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaConfig {
    /// `brokerRole`.
    pub role: BrokerRole,
    /// Where a master listens for slaves (`haListenPort`); `None`: the listen port + 1 (any
    /// free port when the listen port is 0).
    pub listen: Option<std::net::SocketAddr>,
    /// `haMasterAddress`: a slave's master, when not learned from the nameservers.
    pub master: Option<String>,
    /// `haTransferBatchSize`: bytes per chunk (at least one whole message).
    pub chunk_bytes: u64,
    /// `haMaxGapNotInSync`: a slave further behind than this does not count for SYNC_MASTER.
    pub max_gap_bytes: u64,
    /// `haSendHeartbeatInterval`: an idle master sends a heartbeat this often.
    pub heartbeat_ms: u64,
    /// `haHousekeepingInterval`: a link silent this long is dead (a lost segment can stall a
    /// stream for ever), and both ends close it.
    pub housekeeping_ms: u64,
    /// How long a slave waits before connecting again.
    pub reconnect_ms: u64,
    /// How often a slave copies its master's topics and consumer offsets.
    pub sync_interval_ms: u64,
}

impl Default for HaConfig {
    fn default() -> Self {
        Self {
            role: BrokerRole::AsyncMaster,
            listen: None,
            master: None,
            chunk_bytes: 256 * 1024,
            max_gap_bytes: 256 * 1024 * 1024,
            heartbeat_ms: 5_000,
            housekeeping_ms: 20_000,
            reconnect_ms: 1_000,
            sync_interval_ms: 10_000,
        }
    }
}

/// What a broker knows of its replication partners.
#[derive(Debug)]
pub struct HaState {
    /// The furthest CommitLog offset a connected slave has reported.
    acked: DurableWatermark,
    /// Connected slaves: connection id → the end each reported.
    slaves: std::sync::Mutex<BTreeMap<u64, u64>>,
    next_slave: AtomicU64,
    /// A slave's master, as the nameservers said: (HA address, request address).
    pub(super) master_learned: std::sync::Mutex<(Option<String>, Option<String>)>,
    /// A master's HA address, as it registers it.
    pub(super) advertised: String,
}

impl HaState {
    /// State for a broker whose HA listener (if any) is at `advertised`.
    pub fn new(advertised: String) -> Self {
        Self {
            acked: DurableWatermark::new(0),
            slaves: std::sync::Mutex::new(BTreeMap::new()),
            next_slave: AtomicU64::new(0),
            master_learned: std::sync::Mutex::new((None, None)),
            advertised,
        }
    }

    /// Where this master takes slaves (empty for a slave).
    pub fn advertised(&self) -> &str {
        &self.advertised
    }

    /// How many slaves are connected.
    pub fn slaves_connected(&self) -> usize {
        lock(&self.slaves).len()
    }

    /// The furthest offset a connected slave holds.
    pub fn slave_offset(&self) -> u64 {
        self.acked.position()
    }

    fn report(&self, slave: u64, offset: Option<u64>) {
        let mut slaves = lock(&self.slaves);
        match offset {
            Some(offset) => {
                slaves.insert(slave, offset);
            }
            None => {
                slaves.remove(&slave);
            }
        }
        let furthest = slaves.values().copied().max().unwrap_or(0);
        // Down as well as up: a slave that leaves no longer holds anything for this master.
        self.acked.reset(furthest);
    }

    /// SYNC_MASTER: waits until a slave holds the CommitLog up to `end`. Fails with
    /// SLAVE_NOT_AVAILABLE when no slave is connected or the nearest is too far behind, and with
    /// FLUSH_SLAVE_TIMEOUT when none gets there within `timeout`.
    pub async fn wait_for_slave(
        &self,
        end: u64,
        max_gap_bytes: u64,
        timeout: Duration,
    ) -> Result<(), i32> {
        if self.slaves_connected() == 0 || end.saturating_sub(self.slave_offset()) > max_gap_bytes {
            return Err(SLAVE_NOT_AVAILABLE);
        }
        match tokio::time::timeout(timeout, self.acked.wait_for(end)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(FLUSH_SLAVE_TIMEOUT),
        }
    }
}

/// A master: accepts slaves until `shutdown`, streaming the CommitLog to each.
pub async fn serve_slaves<E: Env>(
    listener: <E::Net as Net>::Listener,
    processor: Arc<BrokerProcessor<E>>,
    shutdown: Shutdown,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            () = shutdown.wait() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, addr) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "HA accept failed");
                continue;
            }
        };
        let id = processor.ha.next_slave.fetch_add(1, Ordering::Relaxed);
        tracing::info!(%addr, "slave connected");
        let processor = Arc::clone(&processor);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let outcome = tokio::select! {
                biased;
                () = shutdown.wait() => Ok(()),
                outcome = stream_to_slave(stream, &processor, id) => outcome,
            };
            processor.ha.report(id, None);
            match outcome {
                Ok(()) => tracing::info!(%addr, "slave gone"),
                Err(error) => tracing::warn!(%addr, %error, "slave connection closed"),
            }
        });
    }
}

/// Serves one slave: reads its reports, sends it the CommitLog from where it says it ends.
async fn stream_to_slave<E: Env>(
    stream: <E::Net as Net>::Stream,
    processor: &BrokerProcessor<E>,
    id: u64,
) -> std::io::Result<()> {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let silence = Duration::from_millis(processor.config.ha.housekeeping_ms);
    // The slave's first word says where its CommitLog ends: streaming starts there.
    let mut next = tokio::time::timeout(silence, reader.read_u64())
        .await
        .map_err(|_| timed_out("the slave"))??;
    let end = lock(&processor.store).commit_log().max_physical_offset();
    if next > end {
        // Its copy holds what this master lost (an unsynced tail a crash took): the two have
        // diverged, and counting it as a holder would acknowledge sends it may not have.
        return Err(invalid(format!(
            "the slave's CommitLog ends at {next}, past this master's end {end}"
        )));
    }
    processor.ha.report(id, Some(next));
    let reading = async {
        loop {
            let offset = tokio::time::timeout(silence, reader.read_u64())
                .await
                .map_err(|_| timed_out("the slave"))??;
            processor.ha.report(id, Some(offset));
        }
    };
    let writing = async {
        let heartbeat = Duration::from_millis(processor.config.ha.heartbeat_ms);
        loop {
            let arrived = processor.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let chunk = lock(&processor.store)
                .read_replica(next, processor.config.ha.chunk_bytes)
                .map_err(|e| invalid(e.to_string()))?;
            let (from, bytes) = match chunk {
                Some((bytes, after)) => (std::mem::replace(&mut next, after), bytes),
                None => {
                    tokio::select! {
                        biased;
                        () = &mut arrived => continue,
                        () = tokio::time::sleep(heartbeat) => (next, Bytes::new()),
                    }
                }
            };
            let mut header = [0u8; CHUNK_HEADER_BYTES];
            header[..8].copy_from_slice(&from.to_be_bytes());
            let len = u32::try_from(bytes.len()).map_err(|_| invalid("chunk too large".into()))?;
            header[8..].copy_from_slice(&len.to_be_bytes());
            writer.write_all(&header).await?;
            writer.write_all(&bytes).await?;
        }
    };
    tokio::select! {
        biased;
        outcome = reading => outcome,
        outcome = writing => outcome,
    }
}

/// A slave: follows its master until `shutdown`, connecting again whenever the link drops.
pub async fn follow_master<E: Env>(processor: Arc<BrokerProcessor<E>>, shutdown: Shutdown) {
    let retry = Duration::from_millis(processor.config.ha.reconnect_ms);
    loop {
        let master = processor
            .config
            .ha
            .master
            .clone()
            .or_else(|| lock(&processor.ha.master_learned).0.clone())
            .filter(|addr| !addr.is_empty());
        if let Some(master) = master {
            tokio::select! {
                biased;
                () = shutdown.wait() => return,
                outcome = copy_from_master(&processor, &master) => {
                    if let Err(error) = outcome {
                        tracing::warn!(%master, %error, "replication from the master stopped");
                    }
                }
            }
        }
        tokio::select! {
            biased;
            () = shutdown.wait() => return,
            () = tokio::time::sleep(retry) => {}
        }
    }
}

async fn copy_from_master<E: Env>(
    processor: &BrokerProcessor<E>,
    master: &str,
) -> std::io::Result<()> {
    let stream = processor.env.net().connect(master).await?;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let end = lock(&processor.store).commit_log().max_physical_offset();
    tracing::info!(%master, end, "replicating from the master");
    writer.write_u64(end).await?;
    let chunk_max = processor.config.ha.chunk_bytes.max(processor.config.store.entry_bytes_max)
        + processor.config.store.entry_bytes_max;
    let silence = Duration::from_millis(processor.config.ha.housekeeping_ms);
    loop {
        let chunk = async {
            let from = reader.read_u64().await?;
            let len = u64::from(reader.read_u32().await?);
            if len > chunk_max {
                return Err(invalid(format!(
                    "a chunk of {len} bytes passes the limit {chunk_max}"
                )));
            }
            let mut bytes = vec![0; usize::try_from(len).unwrap_or(usize::MAX)];
            reader.read_exact(&mut bytes).await?;
            Ok((from, bytes))
        };
        let (from, bytes) =
            tokio::time::timeout(silence, chunk).await.map_err(|_| timed_out("the master"))??;
        let end = if bytes.is_empty() {
            lock(&processor.store).commit_log().max_physical_offset()
        } else {
            let end = lock(&processor.store)
                .append_replica(from, &Bytes::from(bytes))
                .map_err(|e| invalid(e.to_string()))?;
            processor.arrived.notify_waiters();
            if processor.config.store.flush == FlushPolicy::Sync {
                processor.flush_signal.request();
                processor.durable.wait_for(end).await.map_err(|e| invalid(e.to_string()))?;
            }
            end
        };
        writer.write_u64(end).await?;
    }
}

fn timed_out(who: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{who} went silent"))
}

fn invalid(reason: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, reason)
}
