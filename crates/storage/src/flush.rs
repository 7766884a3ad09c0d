//! Flushing: the group commit that makes appends durable, and the watermark appenders wait on.
//!
//! A layout implements [`Flushable`]: it says which files hold unsynced bytes and how far a sync
//! of them makes the log durable. [`run_flusher`] is the one task that syncs them, for both
//! policies: under [`FlushPolicy::Sync`] it runs whenever an appender asks and every append made
//! while an fsync was in flight is covered by the next one (RocketMQ's `GroupCommitService`);
//! under [`FlushPolicy::Async`] it runs every interval, or sooner once enough bytes are unsynced
//! (`FlushRealTimeService`). Appenders learn durability from the [`DurableWatermark`].

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use twinmq_runtime::Fs;

use crate::config::FlushPolicy;
use crate::error::{Result, StorageError};

/// A log that can be flushed by [`run_flusher`].
pub trait Flushable: Send + 'static {
    /// The file type whose `sync_data` makes bytes durable.
    type File: twinmq_runtime::File;

    /// What a flush now would sync, or `None` when everything appended is durable.
    fn flush_plan(&mut self) -> Option<FlushPlan<Self::File>>;

    /// Records that the files of a plan are synced: `up_to` is durable.
    fn flush_done(&mut self, up_to: u64);

    /// Records that a flush failed: the log stops taking appends.
    fn flush_failed(&mut self, error: &StorageError);

    /// Bytes appended but not yet synced.
    fn unflushed_bytes(&self) -> u64;
}

/// The files to sync and the position their sync makes durable.
#[derive(Debug)]
pub struct FlushPlan<File> {
    /// Files with unsynced bytes, in log order.
    pub files: Vec<Arc<File>>,
    /// The position (offset or physical offset) that is durable once they are synced.
    pub up_to: u64,
}

/// How far a log is durable, and a way to wait until it is durable far enough.
///
/// Built on a mutex and a `Notify` rather than tokio's watch channel, which spreads its waiters
/// over shards picked by tokio's unseeded random number generator, so the order in which it
/// wakes them differs between two simulated runs of one seed. `Notify` wakes in arrival order.
#[derive(Debug, Clone)]
pub struct DurableWatermark {
    inner: Arc<WatermarkState>,
}

#[derive(Debug)]
struct WatermarkState {
    durable: Mutex<Durable>,
    changed: Notify,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Durable {
    position: u64,
    failure: Option<String>,
}

impl DurableWatermark {
    /// A watermark at `position`.
    pub fn new(position: u64) -> Self {
        Self {
            inner: Arc::new(WatermarkState {
                durable: Mutex::new(Durable { position, failure: None }),
                changed: Notify::new(),
            }),
        }
    }

    /// The durable position.
    pub fn position(&self) -> u64 {
        self.update(|_| false).position
    }

    /// Moves the watermark forward to `position` (never back) and wakes the waiters it passes.
    pub fn advance(&self, position: u64) {
        self.update(|durable| {
            let moved = position > durable.position;
            durable.position = durable.position.max(position);
            moved
        });
    }

    /// Sets the watermark to `position`, possibly backwards (after a truncation).
    pub fn reset(&self, position: u64) {
        self.update(|durable| {
            durable.position = position;
            true
        });
    }

    /// Marks the log failed: every waiter, now and later, gets an error.
    pub fn fail(&self, reason: String) {
        self.update(|durable| {
            durable.failure = Some(reason);
            true
        });
    }

    /// Waits until `position` is durable.
    pub async fn wait_for(&self, position: u64) -> Result<()> {
        loop {
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let durable = self.update(|_| false);
            if durable.position >= position {
                return Ok(());
            }
            if let Some(reason) = durable.failure {
                return Err(StorageError::Refused(format!("flush failed: {reason}")));
            }
            notified.await;
        }
    }

    /// Applies `change` under the lock; wakes every waiter when it reports a change.
    fn update(&self, change: impl FnOnce(&mut Durable) -> bool) -> Durable {
        let mut durable = match self.inner.durable.lock() {
            Ok(durable) => durable,
            Err(poisoned) => poisoned.into_inner(),
        };
        let changed = change(&mut durable);
        let snapshot = durable.clone();
        drop(durable);
        if changed {
            self.inner.changed.notify_waiters();
        }
        snapshot
    }
}

/// Wakes the flusher: appenders call [`FlushSignal::request`] after appending.
#[derive(Debug, Clone, Default)]
pub struct FlushSignal {
    notify: Arc<Notify>,
}

impl FlushSignal {
    /// A new signal.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the flusher to run as soon as it can.
    pub fn request(&self) {
        self.notify.notify_one();
    }
}

/// Runs the flusher of `target` until `shutdown` resolves, then flushes once more and returns.
///
/// An fsync error is reported to the log ([`Flushable::flush_failed`]) and ends the flusher.
pub async fn run_flusher<F, L>(
    fs: F,
    target: Arc<Mutex<L>>,
    policy: FlushPolicy,
    signal: FlushSignal,
    shutdown: impl Future<Output = ()>,
) -> Result<()>
where
    F: Fs,
    L: Flushable<File = F::File>,
{
    tokio::pin!(shutdown);
    loop {
        match policy {
            FlushPolicy::Sync => {
                tokio::select! {
                    biased;
                    () = &mut shutdown => return flush_once(&fs, &target).await,
                    () = signal.notify.notified() => {}
                }
            }
            FlushPolicy::Async { interval_ms, bytes } => {
                let interval = tokio::time::sleep(Duration::from_millis(interval_ms.max(1)));
                tokio::pin!(interval);
                loop {
                    tokio::select! {
                        biased;
                        () = &mut shutdown => return flush_once(&fs, &target).await,
                        () = &mut interval => break,
                        () = signal.notify.notified() => {
                            if unflushed_bytes(&target)? >= bytes {
                                break;
                            }
                        }
                    }
                }
            }
        }
        flush_once(&fs, &target).await?;
    }
}

/// Syncs whatever `target` has unsynced, now.
pub async fn flush_once<F, L>(fs: &F, target: &Arc<Mutex<L>>) -> Result<()>
where
    F: Fs,
    L: Flushable<File = F::File>,
{
    let plan = lock(target)?.flush_plan();
    let Some(plan) = plan else { return Ok(()) };
    for file in plan.files {
        if let Err(source) = fs.sync_data_async(file).await {
            let error = StorageError::Io { path: "(flush)".into(), source };
            lock(target)?.flush_failed(&error);
            return Err(error);
        }
    }
    lock(target)?.flush_done(plan.up_to);
    Ok(())
}

fn unflushed_bytes<L: Flushable>(target: &Arc<Mutex<L>>) -> Result<u64> {
    Ok(lock(target)?.unflushed_bytes())
}

fn lock<L>(target: &Arc<Mutex<L>>) -> Result<std::sync::MutexGuard<'_, L>> {
    target.lock().map_err(|_| StorageError::Refused("a thread panicked holding the log".into()))
}
