//! Storage under crashes: one turmoil host appends to a storage layout on the simulated file
//! system while the nemesis crashes and restarts it at seeded points, with torn writes on.
//!
//! After every restart the host reopens the store (recovery) and checks, per stream, that
//!
//! 1. every entry that was reported durable is present, in its place, with its exact bytes;
//! 2. past the durable prefix there is at most a prefix of the entries appended after it, in
//!    append order — never a torn, corrupt, stale or invented entry.
//!
//! The checker only observes: it draws no randomness and never steers the store. Every event is
//! recorded in a [`TraceHash`], so two runs of one seed can be compared byte for byte.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use rand::Rng as _;
use twinmq_runtime::{Env, Fs, Rng, SimEnv, SimFile, SimFs};
use twinmq_storage::{DurableWatermark, FlushPolicy, FlushSignal, Flushable, run_flusher};

use crate::trace::TraceHash;

mod subjects;

pub use subjects::Layout;

/// One storage crash scenario; everything else is drawn from `seed`.
#[derive(Debug, Clone)]
pub struct StorageCrashConfig {
    /// The seed of the whole run.
    pub seed: u64,
    /// Which layout is under test.
    pub layout: Layout,
    /// When appends become durable.
    pub flush: FlushPolicy,
    /// Block size of torn writes (`None`: writes are atomic).
    pub torn_block_bytes: Option<u64>,
    /// How many times the host is crashed and restarted.
    pub crash_count: u32,
    /// Concurrent appending tasks.
    pub appender_count: u32,
    /// Most appends each appender makes in one life.
    pub appends_per_life_max: u32,
    /// Most simulated milliseconds between two crashes.
    pub life_ms_max: u64,
    /// Keep every trace line (for printing).
    pub keep_trace: bool,
}

impl StorageCrashConfig {
    /// A scenario with the defaults used by the test suite.
    pub fn new(seed: u64, layout: Layout, flush: FlushPolicy) -> Self {
        Self {
            seed,
            layout,
            flush,
            torn_block_bytes: Some(512),
            crash_count: 6,
            appender_count: 3,
            appends_per_life_max: 40,
            life_ms_max: 120,
            keep_trace: false,
        }
    }
}

/// What a run found.
#[derive(Debug, Clone)]
pub struct StorageCrashOutcome {
    /// Every event of the run.
    pub trace: TraceHash,
    /// Entries appended, over all lives.
    pub appended_count: u64,
    /// Entries reported durable, over all lives.
    pub durable_count: u64,
    /// Restarts whose recovery cut a torn or damaged tail.
    pub recoveries_with_cuts: u64,
    /// How many times the store was opened (lives that reached recovery).
    pub open_count: u64,
    /// Broken promises, each with the seed; empty when the store kept every promise.
    pub violations: Vec<String>,
}

/// Runs one scenario.
pub fn run(config: &StorageCrashConfig) -> Result<StorageCrashOutcome, String> {
    match config.layout {
        Layout::Log => run_with::<subjects::LogSubject>(config),
        Layout::LogAckedBeforeSync => run_with::<subjects::LogAckedBeforeSyncSubject>(config),
        Layout::CommitLog => run_with::<subjects::StoreSubject>(config),
    }
}

/// The operations the harness needs from a layout.
trait Subject: Flushable<File = SimFile> + Sized + 'static {
    /// Opens (recovers) the store in `dir`; the string summarises the recovery for the trace,
    /// the flag says whether it cut a tail.
    fn open(env: &SimEnv, dir: &Path, flush: FlushPolicy) -> Result<(Self, String, bool), String>;
    /// Appends one entry to `stream`; returns the position to wait on for its durability.
    fn append(&mut self, stream: u32, payload: &[u8]) -> Result<u64, String>;
    /// Every stream's payloads, in order.
    fn contents(&self) -> Result<BTreeMap<u32, Vec<Bytes>>, String>;
    /// The watermark appenders wait on.
    fn watermark(&self) -> DurableWatermark;
    /// How many streams appends are spread over.
    fn stream_count() -> u32;
}

/// The checker's model of one stream.
#[derive(Debug, Default)]
struct StreamModel {
    /// (entry id, durability ticket), in log order.
    entries: Vec<(u64, u64)>,
    /// How many leading entries are known durable.
    durable_len: usize,
}

#[derive(Debug)]
struct Oracle {
    seed: u64,
    streams: BTreeMap<u32, StreamModel>,
    next_id: u64,
    trace: TraceHash,
    appended_count: u64,
    durable_count: u64,
    recoveries_with_cuts: u64,
    open_count: u64,
    violations: Vec<String>,
}

impl Oracle {
    fn event(&mut self, line: String) {
        let now = turmoil::sim_elapsed().unwrap_or_default().as_millis();
        self.trace.record(format!("{now:>6}ms {line}"));
    }

    fn violation(&mut self, what: String) {
        self.event(format!("VIOLATION {what}"));
        self.violations.push(format!("seed {}: {what}", self.seed));
    }

    /// Marks every entry whose ticket is at most `position` as durable.
    fn durable_up_to(&mut self, position: u64) {
        let mut newly = 0;
        for model in self.streams.values_mut() {
            while let Some((_, ticket)) = model.entries.get(model.durable_len) {
                if *ticket > position {
                    break;
                }
                model.durable_len += 1;
                newly += 1;
            }
        }
        if newly > 0 {
            self.durable_count += newly;
            self.event(format!("durable up to {position} (+{newly})"));
        }
    }

    /// Checks what a recovery found against the model, then adopts it as the model.
    fn check_recovered(&mut self, recovered: &BTreeMap<u32, Vec<Bytes>>) {
        let stream_ids: Vec<u32> = self
            .streams
            .keys()
            .chain(recovered.keys())
            .copied()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for stream in stream_ids {
            let found = recovered.get(&stream).map(Vec::as_slice).unwrap_or_default();
            let mut ids = Vec::with_capacity(found.len());
            for (index, payload) in found.iter().enumerate() {
                match decode_payload(payload) {
                    Some(id) => ids.push(id),
                    None => {
                        self.violation(format!(
                            "stream {stream} entry {index}: served bytes that no append wrote ({} bytes)",
                            payload.len()
                        ));
                        ids.push(u64::MAX);
                    }
                }
            }
            let model = self.streams.entry(stream).or_default();
            let durable: Vec<u64> =
                model.entries[..model.durable_len].iter().map(|e| e.0).collect();
            let appended: Vec<u64> = model.entries.iter().map(|e| e.0).collect();
            let mut problems = Vec::new();
            if ids.len() < durable.len() || ids[..durable.len()] != durable[..] {
                let lost: Vec<u64> =
                    durable.iter().filter(|id| !ids.contains(id)).copied().collect();
                problems.push(format!(
                    "stream {stream}: durable prefix of {} entries not intact after recovery; lost ids {lost:?}",
                    durable.len()
                ));
            } else if ids.len() > appended.len() || ids[..] != appended[..ids.len()] {
                problems.push(format!(
                    "stream {stream}: past the durable prefix recovery kept {:?}, not a prefix of the appends {:?}",
                    &ids[durable.len().min(ids.len())..],
                    &appended[durable.len()..]
                ));
            }
            for problem in problems {
                self.violation(problem);
            }
            let model = self.streams.entry(stream).or_default();
            model.entries = ids.iter().map(|id| (*id, 0)).collect();
            model.durable_len = ids.len();
        }
    }
}

/// Payload of entry `id`: the id, then filler of a length and content derived from the id, so a
/// checker can tell a whole entry from torn, stale or foreign bytes.
fn encode_payload(id: u64) -> Vec<u8> {
    let filler_len = (id.wrapping_mul(2_654_435_761) % 700) as usize;
    let mut payload = Vec::with_capacity(8 + filler_len);
    payload.extend_from_slice(&id.to_be_bytes());
    payload.extend((0..filler_len).map(|i| (id as usize).wrapping_add(i).wrapping_mul(31) as u8));
    payload
}

fn decode_payload(payload: &[u8]) -> Option<u64> {
    let id = u64::from_be_bytes(payload.get(..8)?.try_into().ok()?);
    (encode_payload(id) == payload).then_some(id)
}

const HOST: &str = "store";
const DATA_DIR: &str = "/data/store";

fn run_with<S: Subject>(config: &StorageCrashConfig) -> Result<StorageCrashOutcome, String> {
    let mut builder = turmoil::Builder::new();
    builder
        .rng_seed(config.seed)
        .epoch(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .tick_duration(Duration::from_millis(1))
        .simulation_duration(Duration::from_secs(3_600));
    if let Some(block) = config.torn_block_bytes {
        builder.fs().block_size(block);
    }
    let mut sim = builder.build();
    let oracle = Rc::new(RefCell::new(Oracle {
        seed: config.seed,
        streams: BTreeMap::new(),
        next_id: 0,
        trace: TraceHash::new(config.keep_trace),
        appended_count: 0,
        durable_count: 0,
        recoveries_with_cuts: 0,
        open_count: 0,
        violations: Vec::new(),
    }));
    let host_config = config.clone();
    let host_oracle = Rc::clone(&oracle);
    sim.host(HOST, move || {
        let config = host_config.clone();
        let oracle = Rc::clone(&host_oracle);
        async move {
            life::<S>(config, oracle).await;
            std::future::pending::<()>().await;
            Ok(())
        }
    });

    let mut nemesis = Rng::from_seed_and_stream(config.seed, "nemesis");
    for crash in 0..=config.crash_count {
        let life_ms = nemesis.random_range(1..=config.life_ms_max.max(1));
        for _ in 0..life_ms {
            sim.step()
                .map_err(|error| format!("seed {}: simulation failed: {error}", config.seed))?;
        }
        if crash < config.crash_count {
            oracle.borrow_mut().event(format!("crash {crash} after {life_ms}ms"));
            sim.crash(HOST);
            sim.bounce(HOST);
        }
    }
    // Whatever state the last life left, one more crash and recovery must keep every promise.
    let opens_before = oracle.borrow().open_count;
    oracle.borrow_mut().event("final crash".into());
    sim.crash(HOST);
    sim.bounce(HOST);
    let mut steps = 0;
    while oracle.borrow().open_count == opens_before {
        sim.step().map_err(|error| format!("seed {}: simulation failed: {error}", config.seed))?;
        steps += 1;
        if steps > 10_000 {
            return Err(format!(
                "seed {}: the store never reopened after the final crash",
                config.seed
            ));
        }
    }
    drop(sim);
    let oracle = Rc::try_unwrap(oracle).map_err(|_| "oracle still shared".to_owned())?.into_inner();
    Ok(StorageCrashOutcome {
        trace: oracle.trace,
        appended_count: oracle.appended_count,
        durable_count: oracle.durable_count,
        recoveries_with_cuts: oracle.recoveries_with_cuts,
        open_count: oracle.open_count,
        violations: oracle.violations,
    })
}

/// One life of the store host: recover and check, then append until done.
async fn life<S: Subject>(config: StorageCrashConfig, oracle: Rc<RefCell<Oracle>>) {
    let env = SimEnv::for_host(config.seed, HOST);
    let dir = Path::new(DATA_DIR);
    let opened = S::open(&env, dir, config.flush);
    let store = match opened {
        Ok((store, summary, cut)) => {
            let mut oracle = oracle.borrow_mut();
            oracle.open_count += 1;
            oracle.recoveries_with_cuts += u64::from(cut);
            oracle.event(format!("open: {summary}"));
            match store.contents() {
                Ok(contents) => oracle.check_recovered(&contents),
                Err(error) => {
                    oracle.violation(format!("reading back after recovery failed: {error}"))
                }
            }
            store
        }
        Err(error) => {
            let mut oracle = oracle.borrow_mut();
            oracle.open_count += 1;
            oracle.violation(format!("recovery refused to open the store: {error}"));
            return;
        }
    };
    let watermark = store.watermark();
    let store = Arc::new(Mutex::new(store));
    let signal = FlushSignal::new();
    tokio::task::spawn_local(run_flusher(
        env.fs().clone(),
        Arc::clone(&store),
        config.flush,
        signal.clone(),
        std::future::pending::<()>(),
    ));
    {
        let oracle = Rc::clone(&oracle);
        let watermark = watermark.clone();
        tokio::task::spawn_local(async move {
            let mut seen = watermark.position();
            while watermark.wait_for(seen + 1).await.is_ok() {
                seen = watermark.position();
                oracle.borrow_mut().durable_up_to(seen);
            }
        });
    }
    let mut appenders = Vec::new();
    for appender in 0..config.appender_count {
        let mut rng = env.rng(&format!("appender-{appender}"));
        let (store, oracle, signal, watermark) =
            (Arc::clone(&store), Rc::clone(&oracle), signal.clone(), watermark.clone());
        let appends = rng.random_range(1..=config.appends_per_life_max.max(1));
        let flush = config.flush;
        appenders.push(tokio::task::spawn_local(async move {
            for _ in 0..appends {
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..=3))).await;
                let stream = rng.random_range(0..S::stream_count());
                let id = {
                    let mut oracle = oracle.borrow_mut();
                    oracle.next_id += 1;
                    oracle.next_id
                };
                let appended = store
                    .lock()
                    .map_err(|_| "store lock poisoned".to_owned())
                    .and_then(|mut store| store.append(stream, &encode_payload(id)));
                let ticket = match appended {
                    Ok(ticket) => ticket,
                    Err(error) => {
                        oracle.borrow_mut().event(format!("append id {id} failed: {error}"));
                        return;
                    }
                };
                {
                    let mut oracle = oracle.borrow_mut();
                    oracle.appended_count += 1;
                    oracle.streams.entry(stream).or_default().entries.push((id, ticket));
                    oracle.event(format!("append id {id} stream {stream} ticket {ticket}"));
                }
                signal.request();
                if flush == FlushPolicy::Sync {
                    match watermark.wait_for(ticket).await {
                        Ok(()) => oracle.borrow_mut().durable_up_to(ticket),
                        Err(error) => {
                            oracle.borrow_mut().event(format!("id {id} not durable: {error}"));
                            return;
                        }
                    }
                }
            }
        }));
    }
    for appender in appenders {
        let _ = appender.await;
    }
    oracle.borrow_mut().event("life done".into());
}

/// Creates `dir` durably on the simulated file system.
fn create_dir_durably(fs: &SimFs, dir: &Path) -> Result<(), String> {
    fs.create_dir_all(dir).map_err(|error| format!("create {}: {error}", dir.display()))?;
    let mut path = dir;
    while let Some(parent) = path.parent() {
        fs.sync_dir(parent).map_err(|error| format!("sync {}: {error}", parent.display()))?;
        path = parent;
    }
    Ok(())
}
