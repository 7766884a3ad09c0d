//! Client housekeeping (RocketMQ `ClientHousekeepingService`): a client whose connection closed
//! is forgotten at once (see the processor's `disconnected`), but one that simply falls silent —
//! a machine that lost power, a network that dropped its segments — never closes anything. Every
//! `client_scan_interval_ms` the broker drops consumers and producers not heard from for
//! `client_expiry_ms` and tells the rest of each consumer group to rebalance.

use twinmq_runtime::Env;

use super::processor::{BrokerProcessor, lock};

impl<E: Env> BrokerProcessor<E> {
    /// Drops clients whose last heartbeat is older than `client_expiry_ms`; returns how many.
    pub fn expire_silent_clients(&self) -> usize {
        let oldest_ms = self.env.clock().now_ms() - self.config.client_expiry_ms;
        let mut expired = 0;
        let mut changed_groups = Vec::new();
        for (name, group) in lock(&self.groups).iter_mut() {
            let members_before = group.clients.len();
            group.clients.retain(|_, (_, heard_ms)| *heard_ms >= oldest_ms);
            if group.clients.len() != members_before {
                expired += members_before - group.clients.len();
                changed_groups.push(name.clone());
            }
        }
        for clients in lock(&self.producers).values_mut() {
            let before = clients.len();
            clients.retain(|_, (_, heard_ms)| *heard_ms >= oldest_ms);
            expired += before - clients.len();
        }
        for name in changed_groups {
            tracing::info!(group = %name, "silent consumers expired; the group rebalances");
            self.notify_group_changed(&name);
        }
        expired
    }
}
