//! Invariants of the brokers' own state, looked at between simulation steps (when every host is
//! paused, so one look is one consistent cut of the cluster):
//!
//! - Kafka: a partition has one leader per leader epoch, ever; a leader's high watermark is
//!   never past the log end of any replica it counts as in sync (a replica that lost what the
//!   leader called committed could be elected and lose it for everyone);
//! - RocketMQ: a slave's CommitLog never ends past its master's (a slave ahead holds bytes the
//!   master will write differently, or never).
//!
//! Servers put each incarnation in a [`Registry`] as it starts; a host that loses power takes
//! its state with it, so only running servers are looked at.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};

use twinmq_kafka::BrokerContext;
use twinmq_kafka::replica::replication::Role;
use twinmq_rocketmq::broker::processor::BrokerProcessor;
use twinmq_runtime::SimEnv;

/// A broken invariant: `key` names the breach (reported once per run), `detail` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breach {
    /// What breached, stable while the breach lasts (the same breach seen again is not news).
    pub key: String,
    /// What was seen, in words.
    pub detail: String,
}

/// Looks at the cluster's state and says what is broken.
pub trait Invariants {
    /// The breaches visible now.
    fn check(&mut self) -> Vec<Breach>;
}

/// No invariants (a model without a checker of its state).
impl Invariants for () {
    fn check(&mut self) -> Vec<Breach> {
        Vec::new()
    }
}

/// Each host's running server, held weakly.
pub struct Registry<T> {
    servers: Arc<Mutex<BTreeMap<String, Weak<T>>>>,
}

impl<T> std::fmt::Debug for Registry<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.lock().keys()).finish()
    }
}

impl<T> Clone for Registry<T> {
    fn clone(&self) -> Self {
        Self { servers: Arc::clone(&self.servers) }
    }
}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Self { servers: Arc::default() }
    }
}

impl<T> Registry<T> {
    /// `server` is what `host` runs now.
    pub fn register(&self, host: &str, server: &Arc<T>) {
        self.lock().insert(host.to_owned(), Arc::downgrade(server));
    }

    /// The server `host` runs, if it is running.
    pub fn get(&self, host: &str) -> Option<Arc<T>> {
        self.lock().get(host)?.upgrade()
    }

    /// Every running server, by host.
    pub fn running(&self) -> Vec<(String, Arc<T>)> {
        self.lock().iter().filter_map(|(h, s)| Some((h.clone(), s.upgrade()?))).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Weak<T>>> {
        self.servers.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The Kafka model's invariants.
#[derive(Debug, Default)]
pub struct KafkaInvariants {
    /// The brokers (and the controller) by host.
    pub brokers: Registry<BrokerContext<SimEnv>>,
    /// Who led each (topic, partition, epoch) when first seen.
    leaders: BTreeMap<(String, i32, i32), i32>,
}

impl Invariants for KafkaInvariants {
    fn check(&mut self) -> Vec<Breach> {
        let brokers: BTreeMap<i32, Arc<BrokerContext<SimEnv>>> =
            self.brokers.running().into_iter().map(|(_, b)| (b.config.node_id, b)).collect();
        let mut breaches = Vec::new();
        for (node, broker) in &brokers {
            for partition in broker.replicas.all() {
                let Ok(state) = partition.lock() else { continue };
                let Role::Leader { isr, joining, .. } = &state.role else { continue };
                let (name, epoch) =
                    (format!("{}-{}", partition.topic, partition.index), state.leader_epoch);
                let key = (partition.topic.clone(), partition.index, epoch);
                let first = *self.leaders.entry(key).or_insert(*node);
                if first != *node {
                    breaches.push(Breach {
                        key: format!("leaders {name} {epoch}"),
                        detail: format!(
                            "{name}: brokers {first} and {node} both led epoch {epoch}"
                        ),
                    });
                }
                let high_watermark = state.high_watermark;
                for member in isr.iter().chain(joining).filter(|m| *m != node) {
                    let Some(replica) = brokers
                        .get(member)
                        .and_then(|b| b.replicas.get(&partition.topic, partition.index))
                    else {
                        continue;
                    };
                    let Ok(log_end) = replica.lock().map(|r| r.log.log_end_offset()) else {
                        continue;
                    };
                    if log_end < high_watermark {
                        breaches.push(Breach {
                            key: format!("hw {name} {epoch} {member}"),
                            detail: format!(
                                "{name}: leader {node}'s high watermark {high_watermark} (epoch \
                                 {epoch}) is past the log end {log_end} of in-sync replica {member}"
                            ),
                        });
                    }
                }
            }
        }
        breaches
    }
}

/// The RocketMQ model's invariants.
#[derive(Debug, Default)]
pub struct RocketmqInvariants {
    /// The brokers by host.
    pub brokers: Registry<BrokerProcessor<SimEnv>>,
    /// Each broker group's (master host, slave host).
    pub pairs: Vec<(String, String)>,
}

impl Invariants for RocketmqInvariants {
    fn check(&mut self) -> Vec<Breach> {
        let mut breaches = Vec::new();
        for (master_host, slave_host) in &self.pairs {
            let (Some(master), Some(slave)) =
                (self.brokers.get(master_host), self.brokers.get(slave_host))
            else {
                continue;
            };
            let (master_end, slave_end) = (master.commit_log_end(), slave.commit_log_end());
            if slave_end > master_end {
                breaches.push(Breach {
                    key: format!("slave ahead {slave_host}"),
                    detail: format!(
                        "{slave_host}'s CommitLog ends at {slave_end}, past its master \
                         {master_host}'s {master_end}"
                    ),
                });
            }
        }
        breaches
    }
}
