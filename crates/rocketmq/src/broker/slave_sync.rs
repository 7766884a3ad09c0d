//! A slave copies its master's metadata (RocketMQ's SlaveSynchronize): topic configuration and
//! committed consumer offsets — which include the delay levels' and the transaction checker's
//! progress — every `sync_interval_ms`, so that consumers that turn to the slave while the
//! master is down resume where they were. The master answers GET_ALL_TOPIC_CONFIG (21) and
//! GET_ALL_CONSUMER_OFFSET (43).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use twinmq_runtime::{Env, Shutdown};

use super::processor::{BrokerProcessor, lock};
use super::tables::TopicConfigEntry;
use crate::remoting::response_code::SUCCESS;
use crate::remoting::{RemotingClient, RemotingCommand, request_code};

/// GET_ALL_TOPIC_CONFIG's body (RocketMQ's TopicConfigSerializeWrapper).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicConfigWrapper {
    /// Topics by name.
    pub topic_config_table: BTreeMap<String, TopicConfigEntry>,
}

/// GET_ALL_CONSUMER_OFFSET's body (RocketMQ's ConsumerOffsetSerializeWrapper).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerOffsetWrapper {
    /// `topic@group` → queue → next offset.
    pub offset_table: BTreeMap<String, BTreeMap<u32, u64>>,
}

impl<E: Env> BrokerProcessor<E> {
    /// GET_ALL_TOPIC_CONFIG.
    pub(super) fn all_topics(&self, request: &RemotingCommand) -> RemotingCommand {
        let wrapper = TopicConfigWrapper { topic_config_table: lock(&self.topics).topics.clone() };
        RemotingCommand::response_to(request, SUCCESS, None)
            .with_body(serde_json::to_vec(&wrapper).unwrap_or_default())
    }

    /// GET_ALL_CONSUMER_OFFSET.
    pub(super) fn all_offsets(&self, request: &RemotingCommand) -> RemotingCommand {
        let wrapper = ConsumerOffsetWrapper { offset_table: lock(&self.offsets).table().clone() };
        RemotingCommand::response_to(request, SUCCESS, None)
            .with_body(serde_json::to_vec(&wrapper).unwrap_or_default())
    }
}

/// A slave: copies its master's topics and offsets until `shutdown`.
pub async fn run<E: Env>(processor: Arc<BrokerProcessor<E>>, shutdown: Shutdown) {
    let interval = Duration::from_millis(processor.config.ha.sync_interval_ms);
    let mut link: Option<(String, RemotingClient<E::Net>)> = None;
    loop {
        tokio::select! {
            biased;
            () = shutdown.wait() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let Some(master) = lock(&processor.ha.master_learned).1.clone() else { continue };
        if link.as_ref().is_none_or(|(addr, client)| *addr != master || client.is_closed()) {
            link = RemotingClient::connect(processor.env.net(), &master, None)
                .await
                .ok()
                .map(|client| (master.clone(), client));
        }
        let Some((_, client)) = &link else { continue };
        if let Err(reason) = sync_once(&processor, client).await {
            tracing::debug!(%master, %reason, "copying the master's metadata failed");
            link = None;
        }
    }
}

async fn sync_once<E: Env>(
    processor: &BrokerProcessor<E>,
    master: &RemotingClient<E::Net>,
) -> Result<(), String> {
    let ask = |code| RemotingCommand::request(code, BTreeMap::new(), Bytes::new());
    let topics: TopicConfigWrapper = fetch(master, ask(request_code::GET_ALL_TOPIC_CONFIG)).await?;
    let offsets: ConsumerOffsetWrapper =
        fetch(master, ask(request_code::GET_ALL_CONSUMER_OFFSET)).await?;
    lock(&processor.topics).replace_all(topics.topic_config_table).map_err(|e| e.to_string())?;
    let mut table = lock(&processor.offsets);
    table.replace_all(offsets.offset_table);
    table.persist().map_err(|e| e.to_string())
}

async fn fetch<N: twinmq_runtime::Net, T: serde::de::DeserializeOwned>(
    master: &RemotingClient<N>,
    request: RemotingCommand,
) -> Result<T, String> {
    let answer = tokio::time::timeout(Duration::from_secs(3), master.request(request))
        .await
        .map_err(|_| "timed out".to_owned())?
        .ok_or("connection closed")?;
    if answer.code != SUCCESS {
        return Err(format!("code {}: {:?}", answer.code, answer.remark));
    }
    serde_json::from_slice(&answer.body).map_err(|e| e.to_string())
}
