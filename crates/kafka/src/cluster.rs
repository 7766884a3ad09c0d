//! Cluster — how one broker sees and changes its cluster: the metadata image it acts on, and
//! the controller it asks for changes, in-process on the controller node, over the wire
//! (forwarded Kafka requests) everywhere else.

use std::sync::RwLock;
use std::time::Duration;

use kafka_protocol::messages::alter_partition_request::{PartitionData, TopicData};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::sync::Notify;
use twinmq_runtime::Env;

use crate::client::ClientConnection;
use crate::config::ControllerLocation;
use crate::controller::{Controller, MetadataImage};
use crate::error::KafkaError;

/// How long a forwarded change waits to show up in this broker's metadata.
const PROPAGATION_WAIT_MS: u64 = 10_000;

/// A broker's view of its cluster.
pub struct Cluster<E: Env> {
    env: E,
    node_id: i32,
    location: ControllerLocation,
    request_timeout: Duration,
    /// The controller, when it runs in this process.
    pub controller: Option<Controller<E::Fs>>,
    image: RwLock<MetadataImage>,
    /// Woken whenever the image changes.
    pub changed: Notify,
}

impl<E: Env> std::fmt::Debug for Cluster<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("location", &self.location).finish_non_exhaustive()
    }
}

impl<E: Env> Cluster<E> {
    /// A view backed by an in-process controller or a remote one.
    pub fn new(
        env: E,
        node_id: i32,
        location: ControllerLocation,
        controller: Option<Controller<E::Fs>>,
    ) -> Self {
        let image = controller.as_ref().and_then(|c| c.image().ok()).unwrap_or_default();
        Self {
            env,
            node_id,
            location,
            request_timeout: Duration::from_millis(crate::client::connection::REQUEST_TIMEOUT_MS),
            controller,
            image: RwLock::new(image),
            changed: Notify::new(),
        }
    }

    /// Bounds each request forwarded to a remote controller by `timeout_ms`.
    pub fn with_request_timeout(mut self, timeout_ms: u64) -> Self {
        self.request_timeout = Duration::from_millis(timeout_ms);
        self
    }

    /// A copy of the image.
    pub fn image(&self) -> MetadataImage {
        self.image.read().map(|i| i.clone()).unwrap_or_default()
    }

    /// Reads the image in place.
    pub fn with_image<T>(&self, f: impl FnOnce(&MetadataImage) -> T) -> T {
        match self.image.read() {
            Ok(image) => f(&image),
            Err(_) => f(&MetadataImage::default()),
        }
    }

    /// Replaces the image (the metadata fetcher, or a local controller's change).
    pub fn set_image(&self, image: MetadataImage) {
        if let Ok(mut current) = self.image.write() {
            *current = image;
        }
        self.changed.notify_waiters();
    }

    /// Takes the local controller's image after it changed.
    pub fn refresh(&self) {
        if let Some(image) = self.controller.as_ref().and_then(|c| c.image().ok()) {
            self.set_image(image);
        }
    }

    /// The controller's node id.
    pub fn controller_id(&self) -> i32 {
        match &self.location {
            ControllerLocation::Local => self.node_id,
            ControllerLocation::Remote { node_id, .. } => *node_id,
        }
    }

    /// In-sync replicas of a partition (0 when unknown).
    pub fn isr_len(&self, topic: &str, partition: i32) -> usize {
        self.with_image(|image| image.partition(topic, partition).map_or(0, |p| p.isr.len()))
    }

    /// Creates a topic through the controller and waits until this broker's image has it.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        factor: i16,
    ) -> Result<(), KafkaError> {
        if let Some(controller) = &self.controller {
            controller.create_topic(name, partitions, factor)?;
            self.refresh();
            return Ok(());
        }
        let request = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_owned())))
                .with_num_partitions(partitions)
                .with_replication_factor(factor),
        ]);
        let response = self.forward(5, &request).await?;
        let code = response.topics.first().map_or(0, |t| t.error_code);
        if code != 0 && code != kafka_protocol::error::ResponseError::TopicAlreadyExists.code() {
            return Err(KafkaError::Forwarded(code));
        }
        self.wait_until(|image| image.topics.contains_key(name)).await
    }

    /// Deletes a topic through the controller.
    pub async fn delete_topic(&self, name: &str) -> Result<(), KafkaError> {
        if let Some(controller) = &self.controller {
            controller.delete_topic(name)?;
            self.refresh();
            return Ok(());
        }
        let request = DeleteTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![
            DeleteTopicState::default()
                .with_name(Some(TopicName(StrBytes::from_string(name.to_owned())))),
        ]);
        let response = self.forward(6, &request).await?;
        match response.responses.first().map_or(0, |r| r.error_code) {
            0 => self.wait_until(|image| !image.topics.contains_key(name)).await,
            code => Err(KafkaError::Forwarded(code)),
        }
    }

    /// A producer id from the controller.
    pub async fn allocate_producer_id(&self) -> Result<i64, KafkaError> {
        if let Some(controller) = &self.controller {
            return controller.allocate_producer_id();
        }
        let request = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000);
        let response = self.forward(4, &request).await?;
        match response.error_code {
            0 => Ok(response.producer_id.0),
            code => Err(KafkaError::Forwarded(code)),
        }
    }

    /// Asks the controller to change a partition's ISR (this broker leads it in `leader_epoch`).
    pub async fn alter_isr(
        &self,
        topic: &str,
        partition: i32,
        leader_epoch: i32,
        isr: &[i32],
    ) -> Result<(), KafkaError> {
        if let Some(controller) = &self.controller {
            controller.alter_isr(self.node_id, topic, partition, leader_epoch, isr)?;
            self.refresh();
            return Ok(());
        }
        let topic_id = self.with_image(|image| image.topics.get(topic).map(|t| t.topic_id));
        let topic_id =
            topic_id.ok_or_else(|| KafkaError::UnknownTopicOrPartition(topic.to_owned()))?;
        let request = AlterPartitionRequest::default()
            .with_broker_id(BrokerId(self.node_id))
            .with_topics(vec![
                TopicData::default()
                    .with_topic_id(uuid::Uuid::from_u128(topic_id))
                    .with_partitions(vec![
                        PartitionData::default()
                            .with_partition_index(partition)
                            .with_leader_epoch(leader_epoch)
                            .with_new_isr(isr.iter().copied().map(BrokerId).collect()),
                    ]),
            ]);
        let response = self.forward(2, &request).await?;
        let code = response
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .map_or(response.error_code, |p| p.error_code);
        match code {
            0 => Ok(()),
            code => Err(KafkaError::Forwarded(code)),
        }
    }

    async fn forward<R: kafka_protocol::protocol::Request>(
        &self,
        version: i16,
        request: &R,
    ) -> Result<R::Response, KafkaError> {
        let ControllerLocation::Remote { addr, .. } = &self.location else {
            return Err(KafkaError::InvalidRequest("no controller to forward to".into()));
        };
        let client_id = format!("broker-{}", self.node_id);
        let net = self.env.net();
        let mut connection =
            ClientConnection::connect_within(net, addr, &client_id, self.request_timeout)
                .await
                .map_err(|e| KafkaError::ControllerUnavailable(e.to_string()))?;
        connection
            .send(version, request)
            .await
            .map_err(|e| KafkaError::ControllerUnavailable(e.to_string()))
    }

    async fn wait_until(&self, done: impl Fn(&MetadataImage) -> bool) -> Result<(), KafkaError> {
        let wait = async {
            loop {
                let changed = self.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if self.with_image(&done) {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(Duration::from_millis(PROPAGATION_WAIT_MS), wait).await.map_err(|_| {
            KafkaError::RequestTimedOut(i32::try_from(PROPAGATION_WAIT_MS).unwrap_or(i32::MAX))
        })
    }
}
