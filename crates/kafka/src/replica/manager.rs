//! ReplicaManager — the partitions this broker holds, each a directory `topic-index/` in the
//! data dir with a flusher task of its own.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use twinmq_runtime::{Clock, Fs, Shutdown};
use twinmq_storage::{LogConfig, QueueMap, run_flusher};

use super::partition::{Partition, partition_name};
use super::replication::Role;
use crate::controller::MetadataImage;
use crate::error::KafkaError;
use crate::halt::Halt;

/// Topics with `cleanup.policy=compact`: the newest record per key is kept.
pub const COMPACTED_TOPICS: &[&str] = &[crate::group::OFFSETS_TOPIC];

/// Suffix of a partition directory being deleted: renamed first, so a crash mid-delete never
/// leaves files a re-created topic of the same name would open.
const DELETED_SUFFIX: &str = ".deleted";

struct Held<F: Fs> {
    partition: Arc<Partition<F>>,
    stop: Shutdown,
}

/// The partitions held by this broker.
pub struct ReplicaManager<F: Fs> {
    fs: F,
    clock: Clock,
    data_dir: PathBuf,
    log_config: LogConfig,
    node_id: i32,
    /// Raised when a partition's flush fails: Kafka takes the log dir offline, and with one
    /// log dir the broker halts.
    halt: Halt,
    partitions: RwLock<QueueMap<Held<F>>>,
    /// Serializes `sync_with`: two metadata updates must not open one partition twice.
    syncing: std::sync::Mutex<()>,
}

impl<F: Fs> std::fmt::Debug for ReplicaManager<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaManager").field("data_dir", &self.data_dir).finish_non_exhaustive()
    }
}

impl<F: Fs> ReplicaManager<F> {
    /// A manager of no partitions yet; finishes deletes a crash interrupted.
    pub fn new(
        fs: F,
        clock: Clock,
        data_dir: PathBuf,
        log_config: LogConfig,
        node_id: i32,
        halt: Halt,
    ) -> Result<Self, KafkaError> {
        if !fs.exists(&data_dir) {
            fs.create_dir_all(&data_dir).map_err(|e| io_error(&data_dir, e))?;
        }
        for path in fs.read_dir(&data_dir).map_err(|e| io_error(&data_dir, e))? {
            if path.to_string_lossy().ends_with(DELETED_SUFFIX) {
                fs.remove_dir_all(&path).map_err(|e| io_error(&path, e))?;
            }
        }
        Ok(Self {
            fs,
            clock,
            data_dir,
            log_config,
            node_id,
            halt,
            partitions: RwLock::new(QueueMap::default()),
            syncing: std::sync::Mutex::new(()),
        })
    }

    /// Opens every partition the image places on this broker that is not open yet, and closes
    /// and deletes those of topics the image no longer has.
    pub fn sync_with(
        &self,
        image: &MetadataImage,
        broker_shutdown: &Shutdown,
    ) -> Result<Vec<Arc<Partition<F>>>, KafkaError> {
        let _one_at_a_time = self
            .syncing
            .lock()
            .map_err(|_| KafkaError::InvalidRequest("replica sync lock poisoned".into()))?;
        let mut wanted = Vec::new();
        for (topic, topic_image) in &image.topics {
            for (index, partition) in topic_image.partitions.iter().enumerate() {
                if partition.replicas.contains(&self.node_id) {
                    wanted.push((topic.clone(), i32::try_from(index).unwrap_or(i32::MAX)));
                }
            }
        }
        let held: Vec<(String, i32)> =
            self.read()?.iter().map(|(t, i, _)| (t.to_owned(), to_i32(i))).collect();
        for key in held.iter().filter(|k| !wanted.contains(k)) {
            self.delete(&key.0, key.1)?;
        }
        for (topic, index) in wanted {
            if !held.contains(&(topic.clone(), index)) {
                self.open(&topic, index, broker_shutdown)?;
            }
        }
        self.apply_leadership(image)
    }

    /// Makes each held partition leader or follower as the image says, when that changed.
    fn apply_leadership(
        &self,
        image: &MetadataImage,
    ) -> Result<Vec<Arc<Partition<F>>>, KafkaError> {
        let now_ms = self.clock.now_ms();
        let mut new_leaders = Vec::new();
        for partition in self.all() {
            let Some(wanted) = image.partition(&partition.topic, partition.index) else { continue };
            let (role, epoch, _) = partition.role()?;
            let is_leader = matches!(role, Role::Leader { .. });
            if wanted.leader == self.node_id {
                if !is_leader || epoch != wanted.leader_epoch {
                    partition.become_leader(
                        wanted.leader_epoch,
                        &wanted.replicas,
                        &wanted.isr,
                        now_ms,
                    )?;
                    new_leaders.push(Arc::clone(&partition));
                } else if role.isr() != Some(&wanted.isr[..]) {
                    partition.set_isr(&wanted.isr)?;
                }
            } else if role != (Role::Follower { leader: wanted.leader })
                || epoch != wanted.leader_epoch
            {
                partition.become_follower(wanted.leader_epoch, wanted.leader)?;
            }
        }
        Ok(new_leaders)
    }

    /// The partition, if this broker holds it.
    pub fn get(&self, topic: &str, index: i32) -> Option<Arc<Partition<F>>> {
        let partitions = self.partitions.read().ok()?;
        partitions.get(topic, u32::try_from(index).ok()?).map(|held| Arc::clone(&held.partition))
    }

    /// Every partition held, in (topic, index) order.
    pub fn all(&self) -> Vec<Arc<Partition<F>>> {
        self.partitions
            .read()
            .map(|p| p.iter().map(|(_, _, held)| Arc::clone(&held.partition)).collect())
            .unwrap_or_default()
    }

    /// Flushes every partition (shutdown).
    pub fn flush_all(&self) -> Result<(), KafkaError> {
        for partition in self.all() {
            partition.flush()?;
        }
        Ok(())
    }

    fn open(&self, topic: &str, index: i32, broker_shutdown: &Shutdown) -> Result<(), KafkaError> {
        let dir = self.data_dir.join(partition_name(topic, index));
        let mut partition = Partition::open(
            self.fs.clone(),
            self.clock.clone(),
            dir,
            self.log_config.clone(),
            (topic, index, self.node_id),
        )?;
        if COMPACTED_TOPICS.contains(&topic) {
            partition = partition.compacted();
        }
        let partition = Arc::new(partition);
        let stop = Shutdown::new();
        let flusher = run_flusher(
            self.fs.clone(),
            partition.shared_state(),
            partition.flush_policy(),
            partition.flush_signal(),
            {
                let (stop, broker_shutdown) = (stop.clone(), broker_shutdown.clone());
                async move {
                    tokio::select! {
                        biased;
                        () = stop.wait() => {}
                        () = broker_shutdown.wait() => {}
                    }
                }
            },
        );
        let (name, halt) = (partition_name(topic, index), self.halt.clone());
        tokio::spawn(async move {
            if let Err(error) = flusher.await {
                halt.raise(format!("partition {name}: flush failed: {error}"));
            }
        });
        self.write()?.insert(topic, to_u32(index), Held { partition, stop });
        Ok(())
    }

    fn delete(&self, topic: &str, index: i32) -> Result<(), KafkaError> {
        let Some(held) = self.write()?.remove(topic, to_u32(index)) else { return Ok(()) };
        held.stop.trigger();
        let dir = self.data_dir.join(partition_name(topic, index));
        let doomed = PathBuf::from(format!("{}{DELETED_SUFFIX}", dir.display()));
        self.fs.rename(&dir, &doomed).map_err(|e| io_error(&dir, e))?;
        self.fs.sync_dir(&self.data_dir).map_err(|e| io_error(&self.data_dir, e))?;
        self.fs.remove_dir_all(&doomed).map_err(|e| io_error(&doomed, e))?;
        tracing::info!(partition = %partition_name(topic, index), "deleted");
        Ok(())
    }

    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, QueueMap<Held<F>>>, KafkaError> {
        self.partitions
            .read()
            .map_err(|_| KafkaError::InvalidRequest("replica lock poisoned".into()))
    }

    fn write(&self) -> Result<std::sync::RwLockWriteGuard<'_, QueueMap<Held<F>>>, KafkaError> {
        self.partitions
            .write()
            .map_err(|_| KafkaError::InvalidRequest("replica lock poisoned".into()))
    }
}

fn io_error(path: &Path, source: std::io::Error) -> KafkaError {
    KafkaError::Storage(twinmq_storage::StorageError::Io { path: path.to_owned(), source })
}

fn to_u32(index: i32) -> u32 {
    u32::try_from(index).unwrap_or(0)
}

fn to_i32(index: u32) -> i32 {
    i32::try_from(index).unwrap_or(i32::MAX)
}
