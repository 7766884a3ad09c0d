//! The group coordinator: consumer groups' membership ([`Group`]) and their committed offsets
//! ([`OffsetStore`] over the `__consumer_offsets` partitions).

pub mod offsets;
pub mod state;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use twinmq_runtime::{Clock, Env, Fs};

pub use offsets::{CommittedOffset, OFFSETS_TOPIC, OffsetStore};
pub use state::{Group, GroupPhase, JoinOutcome, JoinRequest};

use crate::config::{BrokerConfig, GroupConfig};
use crate::error::KafkaError;
use crate::replica::Partition;
use crate::server::BrokerContext;

/// How often member sessions and rebalance deadlines are checked.
pub const GROUP_TICK_MS: u64 = 100;

/// The groups coordinated by this broker.
#[derive(Debug)]
pub struct GroupCoordinator<F: Fs> {
    groups: Mutex<BTreeMap<String, Group>>,
    /// The offsets partitions this broker has loaded, with the leader epoch it loaded them in:
    /// it coordinates their groups only while it still leads them in that epoch.
    loaded: Mutex<BTreeMap<i32, i32>>,
    /// Committed offsets.
    pub offsets: OffsetStore,
    /// Settings.
    pub config: GroupConfig,
    clock: Clock,
    _fs: std::marker::PhantomData<F>,
}

impl<F: Fs> GroupCoordinator<F> {
    /// A coordinator with no groups loaded yet (see [`GroupCoordinator::load`]).
    pub fn open(_fs: F, clock: Clock, config: &BrokerConfig) -> Result<Self, KafkaError> {
        Ok(Self {
            groups: Mutex::new(BTreeMap::new()),
            loaded: Mutex::new(BTreeMap::new()),
            offsets: OffsetStore::new(),
            config: config.group.clone(),
            clock,
            _fs: std::marker::PhantomData,
        })
    }

    /// Replays an offsets partition this broker now leads into the offset cache (a coordinator
    /// taking over its groups). What an earlier stint as their coordinator left behind —
    /// members, generations, commits its log may since have lost — is dropped first.
    pub fn load_partition(&self, partition: &Partition<F>) -> Result<u64, KafkaError> {
        let (_, epoch, _) = partition.role()?;
        let partitions = self.config.offsets_partitions;
        let index = partition.index;
        let ours = |group: &str| OffsetStore::partition_for(group, partitions) == index;
        self.lock()?.retain(|group, _| !ours(group));
        self.offsets.forget(ours);
        let mut applied = 0;
        let mut offset = partition.offsets()?.0;
        loop {
            let fetched = partition.read_to_end(offset, 1 << 20)?;
            let Some(last) = fetched.batches.last() else { break };
            let header = crate::record_batch::read_header(last)?;
            offset =
                u64::try_from(header.base_offset).unwrap_or(0) + u64::from(header.offset_count());
            applied += self.offsets.replay(&fetched.batches)?;
        }
        self.loaded_partitions()?.insert(index, epoch);
        Ok(applied)
    }

    /// Whether this broker coordinates the groups of offsets partition `partition` now: it
    /// leads the partition in the leader epoch it loaded it in.
    pub fn coordinates(&self, partition: &Partition<F>) -> bool {
        let loaded = self.loaded_partitions().ok().and_then(|l| l.get(&partition.index).copied());
        matches!(
            partition.role(),
            Ok((crate::replica::Role::Leader { .. }, epoch, _)) if Some(epoch) == loaded
        )
    }

    fn loaded_partitions(&self) -> Result<MutexGuard<'_, BTreeMap<i32, i32>>, KafkaError> {
        self.loaded.lock().map_err(|_| KafkaError::InvalidRequest("group lock poisoned".into()))
    }

    /// The group's state under the lock (created empty if unknown).
    pub fn with_group<T>(
        &self,
        group_id: &str,
        f: impl FnOnce(&mut Group) -> T,
    ) -> Result<T, KafkaError> {
        if group_id.is_empty() {
            return Err(KafkaError::InvalidGroupId(group_id.to_owned()));
        }
        let mut groups = self.lock()?;
        let group = groups.entry(group_id.to_owned()).or_insert_with(|| Group::new(group_id));
        Ok(f(group))
    }

    /// Every known group's (id, phase name, protocol type).
    pub fn list(&self) -> Result<Vec<(String, &'static str, String)>, KafkaError> {
        let groups = self.lock()?;
        let mut listed: Vec<(String, &'static str, String)> = groups
            .values()
            .map(|g| {
                (g.group_id.clone(), g.phase.name(), g.protocol_type.clone().unwrap_or_default())
            })
            .collect();
        for group in self.offsets.groups() {
            if !groups.contains_key(&group) {
                listed.push((group, GroupPhase::Empty.name(), "consumer".into()));
            }
        }
        listed.sort();
        Ok(listed)
    }

    /// The current time on this node's clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Nothing to flush beyond the offsets partitions, which the replica manager flushes.
    pub fn flush(&self) -> Result<(), KafkaError> {
        Ok(())
    }

    /// Expires members and ends overdue rebalances until the broker shuts down.
    pub async fn run_timers<E: Env<Fs = F>>(context: Arc<BrokerContext<E>>) {
        let tick = Duration::from_millis(GROUP_TICK_MS);
        loop {
            tokio::select! {
                biased;
                () = context.shutdown.wait() => return,
                () = tokio::time::sleep(tick) => {}
            }
            let now_ms = context.groups.now_ms();
            if let Ok(mut groups) = context.groups.lock() {
                for group in groups.values_mut() {
                    group.tick(now_ms);
                }
            }
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, BTreeMap<String, Group>>, KafkaError> {
        self.groups.lock().map_err(|_| KafkaError::InvalidRequest("group lock poisoned".into()))
    }
}
