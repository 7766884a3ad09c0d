//! MetadataLog — the controller's records on the storage core: one JSON record per entry in a
//! Kafka-layout Log, synced before the change it carries is acknowledged.

use std::path::PathBuf;

use twinmq_runtime::{Clock, Fs};
use twinmq_storage::{Log, LogConfig, NewEntry, StorageError};

use super::record::MetadataRecord;
use crate::error::KafkaError;

/// The metadata log's directory name under the data dir (KRaft's).
pub const METADATA_LOG_DIR: &str = "__cluster_metadata-0";

/// The controller's durable log of metadata records.
#[derive(Debug)]
pub struct MetadataLog<F: Fs> {
    log: Log<F>,
    clock: Clock,
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
        Ok(Self { log, clock })
    }

    /// Appends one record and syncs it.
    pub fn append(&mut self, record: &MetadataRecord) -> Result<(), KafkaError> {
        let payload = serde_json::to_vec(record)
            .map_err(|e| KafkaError::InvalidRequest(format!("metadata record: {e}")))?;
        let entry = NewEntry {
            record_count: 1,
            timestamp_ms: self.clock.now_ms(),
            key: None,
            payload: &payload,
        };
        self.log.append(entry)?;
        self.log.flush()?;
        Ok(())
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
                let record = serde_json::from_slice(&entry.payload).map_err(|e| {
                    KafkaError::Storage(StorageError::Corrupt {
                        path: self.log.dir().to_owned(),
                        position: entry.offset,
                        reason: format!("metadata record: {e}"),
                    })
                })?;
                records.push(record);
            }
        }
        Ok(records)
    }
}
