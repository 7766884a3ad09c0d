//! Shutdown — a signal many tasks wait on and one caller triggers (SIGTERM, a test's end, a
//! simulated crash of the node's own accord).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// A one-way, clonable shutdown signal.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    inner: Arc<ShutdownState>,
}

#[derive(Debug, Default)]
struct ShutdownState {
    triggered: AtomicBool,
    notify: Notify,
}

impl Shutdown {
    /// A signal not yet triggered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Triggers it: every waiter, now and later, returns.
    pub fn trigger(&self) {
        self.inner.triggered.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    /// Whether it was triggered.
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::SeqCst)
    }

    /// Returns once it is triggered.
    pub async fn wait(&self) {
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_triggered() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_before_and_after_the_trigger_return() {
        let shutdown = Shutdown::new();
        let early = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { shutdown.wait().await }
        });
        tokio::task::yield_now().await;
        assert!(!shutdown.is_triggered());
        shutdown.trigger();
        early.await.unwrap();
        shutdown.wait().await;
    }
}
