//! Two replicas of one partition, leader and follower, replicating through the same calls the
//! fetch path makes: the high watermark follows the slowest in-sync replica, and a returning
//! leader that took writes nobody else has truncates exactly those (KIP-101), then converges.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use twinmq_kafka::replica::{FollowerFetch, Partition};
use twinmq_runtime::{Clock, RealFs};
use twinmq_storage::LogConfig;

fn batch(tag: &str, count: i32) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            sequence: i - 1,
            timestamp: 1_000,
            key: None,
            value: Some(Bytes::from(format!("{tag}-{i}"))),
            headers: Default::default(),
        })
        .collect();
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut out, &records, &options).unwrap();
    out.freeze()
}

fn open(dir: &std::path::Path, node: i32) -> Partition<RealFs> {
    Partition::open(
        RealFs,
        Clock::system(),
        dir.join(format!("n{node}")),
        LogConfig::default(),
        ("t", 0, node),
    )
    .unwrap()
}

/// One follower fetch round: fetch, truncate on divergence, append. Returns the new LEO.
fn replicate(leader: &Partition<RealFs>, follower: &Partition<RealFs>, now_ms: i64) -> u64 {
    loop {
        let (_, epoch, leo) = follower.role().unwrap();
        let fetched_in = (leader.node_id, epoch);
        let last_epoch = follower.last_epoch().unwrap();
        let FollowerFetch { diverging, fetched, .. } =
            leader.fetch_for_follower(follower.node_id, leo, last_epoch, 1 << 20, now_ms).unwrap();
        if let Some((diverged_epoch, end_offset)) = diverging {
            follower.truncate_diverged(diverged_epoch, end_offset, fetched_in).unwrap();
            continue;
        }
        let records: Vec<u8> = fetched.batches.iter().flat_map(|b| b.iter().copied()).collect();
        return follower.append_as_follower(&records, fetched.high_watermark, fetched_in).unwrap();
    }
}

fn values(partition: &Partition<RealFs>) -> Vec<(u64, Bytes)> {
    let fetched = partition.read_committed(0, u64::MAX).unwrap();
    fetched
        .batches
        .into_iter()
        .map(|b| (u64::from_be_bytes(b[..8].try_into().unwrap()), b))
        .map(|(offset, b)| (offset, b.slice(61..)))
        .collect()
}

#[test]
fn the_high_watermark_waits_for_the_follower_and_a_divergent_leader_truncates_its_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (open(dir.path(), 1), open(dir.path(), 2));
    one.become_leader(0, &[1, 2], &[1, 2], 0).unwrap();
    two.become_follower(0, 1).unwrap();

    for tag in ["a", "b", "c"] {
        one.append_as_leader(&batch(tag, 2), u64::MAX).unwrap();
    }
    assert_eq!(one.offsets().unwrap().1, 0, "nothing is committed before the follower has it");
    assert_eq!(replicate(&one, &two, 1), 6);
    assert_eq!(
        one.offsets().unwrap().1,
        0,
        "the leader learns the follower's LEO on its next fetch"
    );
    assert_eq!(replicate(&one, &two, 2), 6);
    assert_eq!(one.offsets().unwrap().1, 6, "committed once both have it");
    assert_eq!(two.offsets().unwrap().1, 6, "the follower learns the high watermark");

    // The leader takes two more batches nobody replicates, then loses leadership.
    one.append_as_leader(&batch("lost1", 3), u64::MAX).unwrap();
    one.append_as_leader(&batch("lost2", 1), u64::MAX).unwrap();
    assert_eq!(one.role().unwrap().2, 10);
    two.become_leader(1, &[1, 2], &[2], 3).unwrap();
    two.append_as_leader(&batch("d", 2), u64::MAX).unwrap();
    one.become_follower(1, 2).unwrap();

    // It returns: its epoch-0 tail past offset 6 diverges and is cut, then it converges.
    assert_eq!(replicate(&two, &one, 4), 8);
    assert_eq!(values(&one), values(&two), "identical logs after convergence");
    assert_eq!(one.last_epoch().unwrap(), Some(1));
    assert_eq!(values(&two).len(), 4, "a, b, c (epoch 0) and d (epoch 1)");
}

#[test]
fn a_follower_cannot_append_out_of_place_and_a_non_leader_refuses_produce() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (open(dir.path(), 1), open(dir.path(), 2));
    two.become_follower(0, 1).unwrap();
    assert_eq!(two.append_as_leader(&batch("x", 1), u64::MAX).unwrap_err().code(), 6);
    one.become_leader(0, &[1, 2], &[1, 2], 0).unwrap();
    one.append_as_leader(&batch("a", 1), u64::MAX).unwrap();
    one.append_as_leader(&batch("b", 1), u64::MAX).unwrap();
    let fetched = one.fetch_for_follower(2, 1, Some(0), 1 << 20, 0).unwrap();
    assert!(fetched.diverging.is_none());
    let records: Vec<u8> = fetched.fetched.batches.iter().flat_map(|b| b.iter().copied()).collect();
    assert!(
        two.append_as_follower(&records, 0, (1, 0)).is_err(),
        "offset 1 cannot follow an empty log"
    );
    assert_eq!(two.role().unwrap().2, 0);
}

#[test]
fn a_fetch_answer_from_before_a_leadership_change_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (open(dir.path(), 1), open(dir.path(), 2));
    one.become_leader(0, &[1, 2], &[1, 2], 0).unwrap();
    one.append_as_leader(&batch("a", 1), u64::MAX).unwrap();
    two.become_follower(0, 1).unwrap();
    let fetched = one.fetch_for_follower(2, 0, None, 1 << 20, 0).unwrap();
    let records: Vec<u8> = fetched.fetched.batches.iter().flat_map(|b| b.iter().copied()).collect();
    // The answer was fetched in epoch 0; meanwhile two became leader of epoch 1.
    two.become_leader(1, &[1, 2], &[2], 0).unwrap();
    assert_eq!(two.append_as_follower(&records, 1, (1, 0)).unwrap(), 0, "not appended");
    assert_eq!(two.truncate_diverged(0, 0, (1, 0)).unwrap(), 0, "nothing to cut, nothing cut");
    // Following again, in epoch 2: an answer of epoch 0 is still stale, one of epoch 2 is not.
    two.become_follower(2, 1).unwrap();
    assert_eq!(two.append_as_follower(&records, 1, (1, 0)).unwrap(), 0);
    assert_eq!(two.append_as_follower(&records, 1, (1, 2)).unwrap(), 1);
}

#[tokio::test]
async fn a_deposed_leader_never_acknowledges_an_acks_all_produce_it_could_not_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (open(dir.path(), 1), open(dir.path(), 2));
    one.become_leader(0, &[1, 2], &[1, 2], 0).unwrap();
    two.become_follower(0, 1).unwrap();
    one.append_as_leader(&batch("a", 2), u64::MAX).unwrap();
    replicate(&one, &two, 10);
    replicate(&one, &two, 20);

    // Leader 1 takes a record its follower never sees; an acks=all producer waits for it.
    let produced = one.append_as_leader(&batch("lost", 1), u64::MAX).unwrap();
    let waiting = one.wait_committed(produced.log_end_offset, produced.leader_epoch);
    tokio::pin!(waiting);
    assert!(futures_poll_once(waiting.as_mut()).await.is_none(), "not committed yet");

    // The controller moves leadership to 2, which takes a record of its own at that offset;
    // 1 follows, truncates, and replicates past the offset the producer waits for.
    two.become_leader(1, &[1, 2], &[1, 2], 30).unwrap();
    one.become_follower(1, 2).unwrap();
    two.append_as_leader(&batch("new", 1), u64::MAX).unwrap();
    replicate(&two, &one, 40);
    replicate(&two, &one, 50);
    let (_, high_watermark, _) = one.offsets().unwrap();
    assert!(high_watermark >= produced.log_end_offset, "the offset is committed, by epoch 1");

    let answer = waiting.await;
    assert!(
        matches!(answer, Err(twinmq_kafka::KafkaError::NotLeader(_))),
        "the record of epoch 0 is gone, so its producer hears NOT_LEADER: {answer:?}"
    );
    assert!(
        one.wait_committed(produced.log_end_offset, produced.leader_epoch).await.is_err(),
        "and a wait begun after the leadership ended fails at once"
    );
}

/// Polls a future once: its output if it is ready.
async fn futures_poll_once<T>(
    future: std::pin::Pin<&mut impl std::future::Future<Output = T>>,
) -> Option<T> {
    let mut future = Some(future);
    std::future::poll_fn(|cx| {
        let ready = future.as_mut().map(|f| f.as_mut().poll(cx));
        std::task::Poll::Ready(match ready {
            Some(std::task::Poll::Ready(out)) => Some(out),
            _ => None,
        })
    })
    .await
}
