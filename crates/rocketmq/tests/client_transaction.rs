//! The client's transaction producer against this crate's broker: a committed half message
//! becomes visible, a rolled-back one never does, and one left unknown is resolved by the
//! broker's check-back, answered by the producer's check listener.

mod common;

use std::sync::{Arc, Mutex};

use common::{Cluster, patiently};
use twinmq_rocketmq::client::{
    LocalTransactionState, Message, MessageQueue, PullConsumer, PullStatus, ReceivedMessage,
    SendResult, TransactionListener, TransactionProducer,
};
use twinmq_rocketmq::message::SYSFLAG_TRANSACTION_COMMIT;
use twinmq_runtime::RealEnv;

/// Decides by body; records what the broker asked about.
#[derive(Default)]
struct ByBody {
    checked: Mutex<Vec<String>>,
}

impl TransactionListener for ByBody {
    fn execute_local_transaction(
        &self,
        message: &Message,
        _: &SendResult,
    ) -> LocalTransactionState {
        match &message.body[..] {
            b"commit" => LocalTransactionState::CommitMessage,
            b"rollback" => LocalTransactionState::RollbackMessage,
            _ => LocalTransactionState::Unknown,
        }
    }

    fn check_local_transaction(&self, message: &ReceivedMessage) -> LocalTransactionState {
        let body = String::from_utf8(message.body().to_vec()).unwrap();
        self.checked.lock().unwrap().push(body.clone());
        if body == "unknown" {
            LocalTransactionState::CommitMessage
        } else {
            LocalTransactionState::RollbackMessage
        }
    }
}

/// The first message of `queue`, long-polling until it is there.
async fn first_message(consumer: &PullConsumer<RealEnv>, queue: &MessageQueue) -> ReceivedMessage {
    patiently("a visible message", async {
        loop {
            let pulled = consumer.pull_blocking(queue, "*", 0, 32, 1_000).await.unwrap();
            if pulled.status == PullStatus::Found {
                return pulled.messages.into_iter().next().unwrap();
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_shows_rollback_hides_and_unknown_is_resolved_by_the_check() {
    let cluster = Cluster::start(|config| {
        config.transaction_timeout_ms = 200;
        config.transaction_check_interval_ms = 200;
    })
    .await;
    // One queue per transaction topic, so each outcome is read from one place.
    for topic in ["tx-commit", "tx-rollback", "tx-unknown"] {
        cluster.create_topic(topic, 1).await;
    }
    let listener = Arc::new(ByBody::default());
    let producer = TransactionProducer::start(
        cluster.env.clone(),
        cluster.client("tp"),
        "txg",
        listener.clone(),
    )
    .await;
    let mut sent = Vec::new();
    for (topic, body) in
        [("tx-commit", "commit"), ("tx-rollback", "rollback"), ("tx-unknown", "unknown")]
    {
        let result =
            producer.send_in_transaction(&Message::new(topic, body).with_tags("T")).await.unwrap();
        assert_eq!(result.sent.queue.topic, topic);
        sent.push(result);
    }
    assert_eq!(
        sent.iter().map(|r| r.local_state).collect::<Vec<_>>(),
        [
            LocalTransactionState::CommitMessage,
            LocalTransactionState::RollbackMessage,
            LocalTransactionState::Unknown
        ]
    );

    let consumer = PullConsumer::new(cluster.env.clone(), cluster.client("c"), "cg");
    let committed = first_message(&consumer, &sent[0].sent.queue).await;
    assert_eq!(&committed.body()[..], b"commit");
    assert_eq!(committed.record.sys_flag & SYSFLAG_TRANSACTION_COMMIT, SYSFLAG_TRANSACTION_COMMIT);
    assert_eq!(committed.msg_id(), sent[0].sent.msg_id);

    let resolved = first_message(&consumer, &sent[2].sent.queue).await;
    assert_eq!(&resolved.body()[..], b"unknown");
    assert!(
        listener.checked.lock().unwrap().contains(&"unknown".to_owned()),
        "resolved by a check"
    );

    // The rolled-back half's queue stays empty, even after the check rounds that resolved the
    // unknown one (a check about it, had there been one, answers rollback too).
    let rolled_back = consumer.pull(&sent[1].sent.queue, "*", 0, 32).await.unwrap();
    assert_eq!(rolled_back.status, PullStatus::NoNewMessage);
    assert_eq!(consumer.max_offset(&sent[1].sent.queue).await.unwrap(), 0);

    producer.shutdown().await;
    consumer.shutdown().await;
    cluster.stop().await;
}
