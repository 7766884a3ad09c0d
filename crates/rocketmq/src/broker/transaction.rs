//! Transactional messages (RocketMQ's TransactionalMessageService): a half message (sysFlag
//! PREPARED) waits, invisible, in `RMQ_SYS_TRANS_HALF_TOPIC`. END_TRANSACTION (37) commits it —
//! a copy goes to its real topic and queue with sysFlag COMMIT and the half's CommitLog offset as
//! its prepared-transaction offset — or rolls it back. Either way an op record naming the half's
//! queue offset goes to `RMQ_SYS_TRANS_OP_HALF_TOPIC`, so what is resolved survives a restart.
//! A check task asks a producer of the half's group (CHECK_TRANSACTION_STATE, 39) about halves
//! left unresolved past `transaction_timeout_ms`, every `transaction_check_interval_ms`, up to
//! `transaction_check_max` times; then the half is given up (moved to
//! `TRANS_CHECK_MAX_TIME_TOPIC`) as RocketMQ does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use twinmq_runtime::{Env, Fs, Shutdown};
use twinmq_storage::{MessageStore, StorageError, StoredMessage};

use super::processor::{BrokerProcessor, lock, number};
use super::tables::ConsumerOffsets;
use crate::message::{
    MessageRecord, SYSFLAG_TRANSACTION_COMMIT, SYSFLAG_TRANSACTION_PREPARED, stamp,
};
use crate::remoting::properties::{self, PGROUP, REAL_TOPIC, TRAN_MSG, UNIQ_KEY};
use crate::remoting::response_code::*;
use crate::remoting::{RemotingCommand, request_code};

/// Where half messages wait.
pub const HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
/// Where the resolution of each half is recorded.
pub const OP_TOPIC: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";
/// Where halves go that no producer resolved in `transaction_check_max` checks.
pub const GIVEN_UP_TOPIC: &str = "TRANS_CHECK_MAX_TIME_TOPIC";
/// The pseudo group whose offsets record the check task's progress in both topics.
pub const TRANSACTION_GROUP: &str = "CID_SYS_RMQ_TRANS";
/// The tag of op records.
const OP_TAG: &str = "d";
/// The property counting the checks of a half.
const CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";
/// The property carrying the transaction id in a check.
const TRANSACTION_ID: &str = "__transactionId__";
/// Halves looked at per check round, at most.
const CHECK_BATCH: u32 = 256;

/// END_TRANSACTION's `commitOrRollback`: commit.
pub const COMMIT: i32 = SYSFLAG_TRANSACTION_COMMIT;
/// END_TRANSACTION's `commitOrRollback`: rollback.
pub const ROLLBACK: i32 = 0xC;

/// What the broker knows of halves still to be resolved.
#[derive(Debug, Default)]
pub struct TransactionState {
    /// Every half below this queue offset is resolved.
    half_progress: u64,
    /// Every op record below this queue offset names a half below `half_progress`.
    op_progress: u64,
    /// Resolved halves at or above `half_progress`.
    resolved: BTreeSet<u64>,
    /// Halves checked so far: queue offset → (checks, when last checked).
    checks: BTreeMap<u64, (u32, i64)>,
}

impl TransactionState {
    /// Rebuilds the state from the progress recorded in `offsets` and the op records after it.
    pub fn recover<F: Fs>(
        store: &MessageStore<F>,
        offsets: &ConsumerOffsets<F>,
    ) -> Result<Self, StorageError> {
        let mut state = Self {
            half_progress: offsets.get(HALF_TOPIC, TRANSACTION_GROUP, 0).unwrap_or(0),
            op_progress: offsets.get(OP_TOPIC, TRANSACTION_GROUP, 0).unwrap_or(0),
            ..Self::default()
        };
        let end = store.max_offset_in_queue(OP_TOPIC, 0);
        let mut at = state.op_progress.max(store.min_offset_in_queue(OP_TOPIC, 0));
        while at < end {
            let found = store.get_message(OP_TOPIC, 0, at, 1024, 4 << 20, None)?;
            let Some(last) = found.messages.last() else { break };
            at = last.queue_offset + 1;
            for op in &found.messages {
                if let Some(half) = op_half_offset(op) {
                    state.resolved.insert(half);
                }
            }
        }
        state.resolved.retain(|half| *half >= state.half_progress);
        Ok(state)
    }

    /// Whether the half at `queue_offset` is resolved.
    pub fn is_resolved(&self, queue_offset: u64) -> bool {
        queue_offset < self.half_progress || self.resolved.contains(&queue_offset)
    }

    /// How many halves wait for a decision among those looked at.
    pub fn pending_checks(&self) -> usize {
        self.checks.len()
    }
}

/// The half queue offset an op record names.
fn op_half_offset(op: &StoredMessage) -> Option<u64> {
    let record = MessageRecord::decode(&op.body).ok()?;
    std::str::from_utf8(&record.body).ok()?.trim().parse().ok()
}

impl<E: Env> BrokerProcessor<E> {
    /// END_TRANSACTION (usually oneway; the answer, if asked for, says how it went).
    pub(super) fn end_transaction(&self, request: &RemotingCommand) -> RemotingCommand {
        match self.try_end_transaction(request) {
            Ok(()) => RemotingCommand::response_to(request, SUCCESS, None),
            Err((code, remark)) => {
                tracing::info!(%remark, "END_TRANSACTION refused");
                RemotingCommand::response_to(request, code, Some(remark))
            }
        }
    }

    fn try_end_transaction(&self, request: &RemotingCommand) -> Result<(), (i32, String)> {
        let decision: i32 = number(request.field("commitOrRollback"))
            .ok_or((SYSTEM_ERROR, "commitOrRollback missing".to_owned()))?;
        if decision != COMMIT && decision != ROLLBACK {
            // UNKNOWN: the check task will ask again.
            return Ok(());
        }
        let physical: u64 = number(request.field("commitLogOffset"))
            .ok_or((SYSTEM_ERROR, "commitLogOffset missing".to_owned()))?;
        let half = lock(&self.store)
            .read_message(physical)
            .map_err(|e| (SYSTEM_ERROR, format!("no half message at {physical}: {e}")))?;
        let record =
            MessageRecord::decode(&half.body).map_err(|e| (SYSTEM_ERROR, e.to_string()))?;
        let props = properties::decode(&record.properties);
        let queue_offset_given: Option<u64> = number(request.field("tranStateTableOffset"));
        let group_given = request.field("producerGroup");
        if half.topic != HALF_TOPIC
            || queue_offset_given.is_some_and(|offset| offset != half.queue_offset)
            || group_given.is_some_and(|group| props.get(PGROUP).is_some_and(|g| g != group))
        {
            return Err((
                SYSTEM_ERROR,
                format!("the message at {physical} is not this producer's half message"),
            ));
        }
        if lock(&self.transactions).is_resolved(half.queue_offset) {
            // Already decided (a check answered twice, a retried END_TRANSACTION).
            return Ok(());
        }
        if decision == COMMIT {
            self.put_committed(&half, record, props)?;
        }
        self.record_resolution(half.queue_offset)?;
        tracing::debug!(half = half.queue_offset, commit = decision == COMMIT, "transaction ended");
        Ok(())
    }

    /// Stores the committed copy of a half in its real topic and queue.
    fn put_committed(
        &self,
        half: &StoredMessage,
        record: MessageRecord,
        mut props: BTreeMap<String, String>,
    ) -> Result<(), (i32, String)> {
        props.remove(TRAN_MSG);
        let committed = MessageRecord {
            sys_flag: (record.sys_flag & !ROLLBACK) | SYSFLAG_TRANSACTION_COMMIT,
            prepared_transaction_offset: i64::try_from(half.physical_offset).unwrap_or(0),
            ..record
        };
        self.put_in_real_queue(committed, &props).map_err(|e| (SYSTEM_ERROR, e))
    }

    /// Writes the op record of a resolved half and remembers it.
    fn record_resolution(&self, half_offset: u64) -> Result<(), (i32, String)> {
        let op = MessageRecord {
            topic: OP_TOPIC.into(),
            properties: properties::encode(&BTreeMap::from([(
                properties::TAGS.to_owned(),
                OP_TAG.to_owned(),
            )])),
            body: Bytes::from(half_offset.to_string()),
            born_timestamp: self.env.clock().now_ms(),
            ..MessageRecord::empty(self.store_host)
        };
        self.put_record(&op, properties::tag_hash(OP_TAG) as u64, None)
            .map_err(|e| (SYSTEM_ERROR, e))?;
        let mut state = lock(&self.transactions);
        state.resolved.insert(half_offset);
        state.checks.remove(&half_offset);
        Ok(())
    }

    /// One check round: advances the progress over resolved halves, asks producers about halves
    /// unresolved past the timeout, gives up on those checked too often. Returns the checks sent.
    pub fn check_transactions(&self) -> usize {
        let now_ms = self.env.clock().now_ms();
        let config = &self.config;
        let from = lock(&self.transactions).half_progress;
        let found = lock(&self.store).get_message(HALF_TOPIC, 0, from, CHECK_BATCH, 4 << 20, None);
        let Ok(found) = found else { return 0 };
        let mut sent = 0;
        let mut resolved_prefix_end = None;
        for half in &found.messages {
            let offset = half.queue_offset;
            let (resolved, checks) = {
                let state = lock(&self.transactions);
                (state.is_resolved(offset), state.checks.get(&offset).copied())
            };
            if resolved {
                if resolved_prefix_end.is_none_or(|end| end == offset) {
                    resolved_prefix_end = Some(offset + 1);
                }
                continue;
            }
            if resolved_prefix_end.is_none() {
                resolved_prefix_end = Some(offset);
            }
            if now_ms - half.store_timestamp_ms < config.transaction_timeout_ms {
                break;
            }
            let (times, last) = checks.unwrap_or((0, i64::MIN));
            if last != i64::MIN
                && now_ms - last < i64::try_from(config.transaction_check_interval_ms).unwrap_or(0)
            {
                continue;
            }
            if times >= config.transaction_check_max {
                self.give_up(half);
                continue;
            }
            if self.send_check(half, times + 1) {
                lock(&self.transactions).checks.insert(offset, (times + 1, now_ms));
                sent += 1;
            }
        }
        if let Some(end) = resolved_prefix_end {
            self.advance_half_progress(end);
        }
        sent
    }

    fn advance_half_progress(&self, to: u64) {
        let mut state = lock(&self.transactions);
        if to <= state.half_progress {
            return;
        }
        state.half_progress = to;
        let progress = state.half_progress;
        state.resolved.retain(|half| *half >= progress);
        drop(state);
        // Op records before the first one naming a half at or past the progress are done with.
        let mut op_progress = lock(&self.transactions).op_progress;
        let store = lock(&self.store);
        let end = store.max_offset_in_queue(OP_TOPIC, 0);
        while op_progress < end {
            let Ok(found) = store.get_message(OP_TOPIC, 0, op_progress, 64, 1 << 20, None) else {
                break;
            };
            let done = found
                .messages
                .iter()
                .take_while(|op| op_half_offset(op).is_some_and(|half| half < progress))
                .count();
            op_progress += done as u64;
            if done < found.messages.len() || found.messages.is_empty() {
                break;
            }
        }
        drop(store);
        lock(&self.transactions).op_progress = op_progress;
        let mut offsets = lock(&self.offsets);
        offsets.set(HALF_TOPIC, TRANSACTION_GROUP, 0, progress);
        offsets.set(OP_TOPIC, TRANSACTION_GROUP, 0, op_progress);
    }

    /// Sends CHECK_TRANSACTION_STATE to a live producer of the half's group.
    fn send_check(&self, half: &StoredMessage, times: u32) -> bool {
        let Ok(mut record) = MessageRecord::decode(&half.body) else { return false };
        let mut props = properties::decode(&record.properties);
        let Some(group) = props.get(PGROUP).cloned() else { return false };
        let peer = lock(&self.producers)
            .get(&group)
            .and_then(|clients| clients.values().find(|(peer, _)| peer.is_connected()).cloned());
        let Some((peer, _)) = peer else {
            tracing::debug!(%group, "no producer of the group to check a transaction with");
            return false;
        };
        let uniq = props.get(UNIQ_KEY).cloned().unwrap_or_default();
        props.insert(CHECK_TIMES.into(), times.to_string());
        props.insert(TRANSACTION_ID.into(), uniq.clone());
        if let Some(real) = props.get(REAL_TOPIC) {
            record.topic = real.clone();
        }
        record.properties = properties::encode(&props);
        let Ok(body) = record.encode() else { return false };
        let mut body = body.to_vec();
        stamp(&mut body, half.queue_offset, half.physical_offset, half.store_timestamp_ms);
        let check = RemotingCommand::request(
            request_code::CHECK_TRANSACTION_STATE,
            BTreeMap::new(),
            Bytes::from(body),
        )
        .with_field("topic", HALF_TOPIC)
        .with_field("commitLogOffset", half.physical_offset)
        .with_field("tranStateTableOffset", half.queue_offset)
        .with_field("msgId", &uniq)
        .with_field("transactionId", &uniq)
        .with_field("offsetMsgId", "")
        .with_field("bname", &self.config.broker_name);
        peer.send_oneway(check)
    }

    /// Moves a half no producer resolved to the given-up topic and resolves it.
    fn give_up(&self, half: &StoredMessage) {
        tracing::warn!(half = half.queue_offset, "transaction never resolved; given up");
        let Ok(record) = MessageRecord::decode(&half.body) else { return };
        let given_up = MessageRecord { topic: GIVEN_UP_TOPIC.into(), queue_id: 0, ..record };
        if let Err(error) = self.put_record(&given_up, 0, None) {
            tracing::error!(half = half.queue_offset, %error, "could not store a given-up half message");
            return;
        }
        if let Err((_, error)) = self.record_resolution(half.queue_offset) {
            tracing::error!(%error, "could not resolve a given-up half message");
        }
    }
}

/// Runs check rounds until shutdown.
pub async fn run<E: Env>(processor: Arc<BrokerProcessor<E>>, shutdown: Shutdown) {
    // Look often enough that a half is checked soon after its timeout, never more than 10×/s.
    let tick = (processor.config.transaction_check_interval_ms / 4).clamp(100, 10_000);
    loop {
        tokio::select! {
            biased;
            () = shutdown.wait() => return,
            () = tokio::time::sleep(Duration::from_millis(tick)) => {}
        }
        processor.check_transactions();
    }
}

/// Whether a SEND's sysFlag marks a half message.
pub fn is_half(sys_flag: i32) -> bool {
    sys_flag & SYSFLAG_TRANSACTION_PREPARED != 0
}
