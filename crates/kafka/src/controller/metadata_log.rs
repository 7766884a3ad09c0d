//! MetadataLog — the controller's records on the storage core, as KRaft keeps them: RecordBatches
//! of one record each (value: the record as JSON) in the `__cluster_metadata-0` Log, synced
//! before the change is acknowledged. Brokers replicate it with ordinary Fetch requests.

use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use twinmq_runtime::{Clock, Fs};
use twinmq_storage::{Log, LogConfig, NewEntry, StorageError};

use super::record::MetadataRecord;
use crate::error::KafkaError;
use crate::record_batch;

/// The metadata topic (KRaft's name).
pub const METADATA_TOPIC: &str = "__cluster_metadata";
/// The metadata log's directory name under the data dir.
pub const METADATA_LOG_DIR: &str = "__cluster_metadata-0";

/// The controller's durable log of metadata records.
#[derive(Debug)]
pub struct MetadataLog<F: Fs> {
    log: Log<F>,
    clock: Clock,
    scratch: BytesMut,
}

impl<F: Fs> MetadataLog<F> {
    /// Opens (or creates) the metadata log under `data_dir`.
    pub fn open(fs: F, clock: Clock, data_dir: PathBuf) -> Result<Self, KafkaError> {
        let config = LogConfig { segment_bytes_max: 64 << 20, ..LogConfig::default() };
        let (log, recovery) =
            Log::open(fs, clock.clone(), data_dir.join(METADATA_LOG_DIR), config)?;
        if !recovery.is_clean() {
            tracing::warn!(?recovery, "metadata log recovered");
        }
        Ok(Self { log, clock, scratch: BytesMut::new() })
    }

    /// The offset the next record gets.
    pub fn next_offset(&self) -> u64 {
        self.log.log_end_offset()
    }

    /// Appends one record and syncs it.
    pub fn append(&mut self, record: &MetadataRecord) -> Result<(), KafkaError> {
        let offset = self.log.log_end_offset();
        let now_ms = self.clock.now_ms();
        self.scratch.clear();
        encode(record, offset, now_ms, &mut self.scratch)?;
        let entry =
            NewEntry { record_count: 1, timestamp_ms: now_ms, key: None, payload: &self.scratch };
        self.log.append(entry)?;
        self.log.flush()?;
        Ok(())
    }

    /// Whole batches from `offset` on (what a broker's metadata fetch gets).
    pub fn read_batches(&self, offset: u64, bytes_max: u64) -> Result<Vec<Bytes>, KafkaError> {
        if offset >= self.log.log_end_offset() {
            return Ok(Vec::new());
        }
        Ok(self.log.read(offset, bytes_max)?.into_iter().map(|e| e.payload).collect())
    }

    /// Every record, in log order.
    pub fn replay(&self) -> Result<Vec<MetadataRecord>, KafkaError> {
        let mut records = Vec::new();
        let mut offset = self.log.log_start_offset();
        while offset < self.log.log_end_offset() {
            let entries = self.log.read(offset, 1 << 20)?;
            let Some(last) = entries.last() else { break };
            offset = last.next_offset();
            for entry in entries {
                let decoded = decode(&entry.payload).map_err(|reason| {
                    KafkaError::Storage(StorageError::Corrupt {
                        path: self.log.dir().to_owned(),
                        position: entry.offset,
                        reason,
                    })
                })?;
                records.extend(decoded.into_iter().map(|(_, record)| record));
            }
        }
        Ok(records)
    }
}

/// Encodes one metadata record as a RecordBatch at `offset`.
fn encode(
    record: &MetadataRecord,
    offset: u64,
    now_ms: i64,
    out: &mut BytesMut,
) -> Result<(), KafkaError> {
    let value = serde_json::to_vec(record)
        .map_err(|e| KafkaError::InvalidRequest(format!("metadata record: {e}")))?;
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: i64::try_from(offset).unwrap_or(i64::MAX),
        sequence: -1,
        timestamp: now_ms,
        key: None,
        value: Some(Bytes::from(value)),
        headers: Default::default(),
    };
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(out, [&record], &options)
        .map_err(|e| KafkaError::InvalidRequest(format!("metadata batch: {e}")))
}

/// Decodes metadata batches (as fetched) into (offset, record) pairs.
pub fn decode(batches: &[u8]) -> Result<Vec<(u64, MetadataRecord)>, String> {
    record_batch::validate(batches).map_err(|e| e.to_string())?;
    let mut bytes = Bytes::copy_from_slice(batches);
    let sets = RecordBatchDecoder::decode_all(&mut bytes).map_err(|e| e.to_string())?;
    let mut records = Vec::new();
    for record in sets.into_iter().flat_map(|set| set.records) {
        let value = record.value.ok_or("a metadata record without a value")?;
        let parsed = serde_json::from_slice(&value).map_err(|e| format!("metadata record: {e}"))?;
        records.push((u64::try_from(record.offset).unwrap_or(0), parsed));
    }
    Ok(records)
}
