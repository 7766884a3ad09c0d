//! Halt — how a broker stops on a storage failure it cannot serve past, as Kafka halts when its
//! metadata log or its only log directory fails: the first reason is kept, [`crate::Broker::run`]
//! returns it as an error, and whatever supervises the process restarts it from its data dir,
//! where recovery decides what the failed writes left.

use std::sync::{Arc, Mutex};

use twinmq_runtime::Shutdown;

/// A broker's halt signal: raised once, by whichever part failed first.
#[derive(Debug, Clone, Default)]
pub struct Halt {
    reason: Arc<Mutex<Option<String>>>,
    raised: Shutdown,
}

impl Halt {
    /// A signal not yet raised.
    pub fn new() -> Self {
        Self::default()
    }

    /// Raises it; the first reason wins.
    pub fn raise(&self, reason: impl Into<String>) {
        let mut held = self.reason.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if held.is_none() {
            let reason = reason.into();
            tracing::error!(%reason, "halting the broker");
            *held = Some(reason);
        }
        drop(held);
        self.raised.trigger();
    }

    /// Why it was raised, if it was.
    pub fn reason(&self) -> Option<String> {
        self.reason.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Returns once it is raised.
    pub async fn wait(&self) {
        self.raised.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_reason_is_kept_and_waiters_return() {
        let halt = Halt::new();
        assert_eq!(halt.reason(), None);
        let waiter = tokio::spawn({
            let halt = halt.clone();
            async move { halt.wait().await }
        });
        halt.raise("metadata log sync failed");
        halt.raise("a later failure");
        waiter.await.unwrap();
        assert_eq!(halt.reason().as_deref(), Some("metadata log sync failed"));
    }
}
