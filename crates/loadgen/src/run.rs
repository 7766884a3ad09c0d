//! A run from start to report, the same for both models: set the topic up, start the
//! consumers and wait until they read, start the clock and the producers, wait for the
//! producers, let the consumers drain, stop everything, merge what each task recorded.
//!
//! The model modules ([`crate::kafka`], [`crate::rocketmq`]) supply the clients; this module
//! supplies the pieces they share: the [`RunContext`], the consumers' [`ConsumeSide`] and the
//! [`drain`].

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rand::RngCore;
use tokio::sync::Notify;
use twinmq_runtime::Env;

use crate::config::BenchConfig;
use crate::payload::read_stamp;
use crate::report::Report;
use crate::schedule::Schedule;
use crate::stats::{LiveCounts, Recorder, Seen};
use crate::target::Target;
use crate::{ConfigError, LoadgenError};

/// How long the set-up (topic creation, consumers joining) may take before the run gives up.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// The pause after a failed request before a producer or consumer tries again.
pub const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// Runs the workload `config` against its target and reports what happened; `live` shows
/// progress meanwhile.
pub async fn run<E: Env>(
    env: E,
    config: BenchConfig,
    live: Arc<LiveCounts>,
) -> Result<Report, LoadgenError> {
    config.validate()?;
    let run_id = env.rng("loadgen/run").next_u64();
    let context = RunContext::new(config, run_id, env.clock().now_ms(), live);
    match context.config.target {
        Target::Kafka { .. } => crate::kafka::run(env, context).await,
        Target::RocketMq { .. } => crate::rocketmq::run(env, context).await,
    }
}

/// What every task of a run shares.
#[derive(Debug)]
pub struct RunContext {
    /// The workload.
    pub config: BenchConfig,
    /// The id stamped in every body of this run.
    pub run_id: u64,
    /// Wall-clock time the run began (ms since the Unix epoch, from the `Env`'s clock).
    pub started_at_ms: i64,
    /// Totals for the progress bar and the drain.
    pub live: Arc<LiveCounts>,
    /// What the consumers saw.
    pub consumed: Arc<ConsumeSide>,
}

impl RunContext {
    fn new(
        config: BenchConfig,
        run_id: u64,
        started_at_ms: i64,
        live: Arc<LiveCounts>,
    ) -> Arc<Self> {
        let recorder = Recorder::new(config.warmup_ms * 1_000, config.message_bytes);
        let consumed = Arc::new(ConsumeSide {
            run_id,
            schedule: OnceLock::new(),
            state: Mutex::new(ConsumeState { recorder, seen: Seen::default() }),
            progress: Notify::new(),
            live: Arc::clone(&live),
        });
        Arc::new(Self { config, run_id, started_at_ms, live, consumed })
    }

    /// Starts the clock: from now on producers send and consumers record.
    pub fn start_clock(&self) -> Schedule {
        let schedule = Schedule::start(&self.config);
        let set = self.consumed.schedule.set(schedule);
        assert!(set.is_ok(), "a run's clock starts once");
        schedule
    }

    /// A producer's recorder.
    pub fn recorder(&self) -> Recorder {
        Recorder::new(self.config.warmup_ms * 1_000, self.config.message_bytes)
    }

    /// Producer `index`'s share of the rate, in messages per second (0: unbounded).
    pub fn producer_rate(&self) -> f64 {
        self.config.rate_msgs_per_sec as f64 / f64::from(self.config.producers.max(1))
    }

    /// How many messages producer `index` sends next, at `now_us`: up to `want`, or none when
    /// it is done (the duration is over, or its measured share is sent).
    pub fn next_send(
        &self,
        schedule: &Schedule,
        now_us: u64,
        share: Option<u64>,
        measured_sent: u64,
        want: u32,
    ) -> u32 {
        if schedule.end_us().is_some_and(|end| now_us >= end) {
            return 0;
        }
        match share {
            Some(share) if now_us >= schedule.measure_from_us() => {
                let left = share.saturating_sub(measured_sent);
                u32::try_from(left.min(u64::from(want))).unwrap_or(want)
            }
            _ => want,
        }
    }

    /// Builds the report from every producer's recorder and the consumers'.
    pub fn report(
        &self,
        producers: Vec<Recorder>,
        partitions_actual: u32,
        elapsed: Duration,
    ) -> Report {
        let mut all = self.recorder();
        for recorder in &producers {
            all.merge(recorder);
        }
        all.merge(&lock(&self.consumed.state).recorder);
        let mut report =
            Report::new(&self.config, self.run_id, partitions_actual, &all, elapsed.as_secs_f64());
        report.summary.started_at_ms = self.started_at_ms;
        report
    }
}

/// The consumers' shared record: one lock per delivered batch.
#[derive(Debug)]
pub struct ConsumeSide {
    run_id: u64,
    schedule: OnceLock<Schedule>,
    state: Mutex<ConsumeState>,
    progress: Notify,
    live: Arc<LiveCounts>,
}

#[derive(Debug)]
struct ConsumeState {
    recorder: Recorder,
    seen: Seen,
}

impl ConsumeSide {
    /// Records delivered bodies; bodies of other runs (or before the clock started) are not
    /// this run's and are skipped.
    pub fn record<'a>(&self, bodies: impl IntoIterator<Item = &'a [u8]>) {
        let Some(schedule) = self.schedule.get() else { return };
        let now_us = schedule.now_us();
        let mut first_count = 0;
        {
            let mut state = lock(&self.state);
            for body in bodies {
                let Some(stamp) = read_stamp(body).filter(|s| s.run_id == self.run_id) else {
                    continue;
                };
                let first = state.seen.first(stamp.producer, stamp.sequence);
                state.recorder.consumed(stamp.sent_us, now_us, body.len(), first);
                first_count += u64::from(first);
            }
        }
        if first_count > 0 {
            self.live.add_consumed(first_count);
            self.progress.notify_one();
        }
    }
}

/// Waits until the consumers have every message the brokers took (acknowledged, or sent when
/// nothing is acknowledged), or until they go `idle` without a new one; true when complete.
pub async fn drain(context: &RunContext, idle: Duration) -> bool {
    let expected = |context: &RunContext| {
        let totals = context.live.snapshot();
        if context.config.acknowledged() { totals.acked } else { totals.sent - totals.failed }
    };
    loop {
        let consumed = context.live.snapshot().consumed;
        if consumed >= expected(context) {
            return true;
        }
        // A notification between the check and the wait leaves a permit: nothing is missed.
        if tokio::time::timeout(idle, context.consumed.progress.notified()).await.is_err() {
            tracing::warn!(
                consumed,
                expected = expected(context),
                idle_ms = idle.as_millis(),
                "consumers went idle before reading every message"
            );
            return false;
        }
    }
}

/// The error of a set-up step.
pub fn setup_error(context: &RunContext, what: &str, reason: impl ToString) -> LoadgenError {
    LoadgenError::Setup {
        target: context.config.target.to_string(),
        what: what.to_owned(),
        reason: reason.to_string(),
    }
}

/// A configuration the model cannot serve.
pub fn unsupported(name: &'static str, value: String, expected: String) -> LoadgenError {
    LoadgenError::Config(ConfigError::OutOfRange { name, value, expected })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
