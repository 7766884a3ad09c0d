//! The group state machine driven by hand: joins, syncs, heartbeats and ticks at chosen times.

use super::*;

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 60_000;

fn request(member_id: &str) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_owned(),
        group_instance_id: None,
        client_id: "c".into(),
        client_host: String::new(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"m"))],
    }
}

/// Joins `member_id` at `now_ms`; the receiver answers once the join completes.
fn join(
    group: &mut Group,
    member_id: &str,
    now_ms: i64,
) -> oneshot::Receiver<Result<JoinOutcome, KafkaError>> {
    let (tx, rx) = oneshot::channel();
    group.join(request(member_id), tx, now_ms, 0);
    rx
}

fn joined(rx: &mut oneshot::Receiver<Result<JoinOutcome, KafkaError>>) -> JoinOutcome {
    rx.try_recv().expect("join answered").expect("join succeeded")
}

fn sync(
    group: &mut Group,
    member_id: &str,
    generation: i32,
    assignments: Vec<(String, Bytes)>,
    now_ms: i64,
) -> oneshot::Receiver<Result<Bytes, KafkaError>> {
    let (tx, rx) = oneshot::channel();
    group.sync(member_id, generation, assignments, tx, now_ms);
    rx
}

/// A group of two members, both joined in one generation: (group, leader, follower, gen).
fn two_members() -> (Group, String, String, i32) {
    let mut group = Group::new("g");
    let first = joined(&mut join(&mut group, "", 0));
    assert_eq!(group.phase, GroupPhase::CompletingRebalance);
    let mut leader_sync = sync(&mut group, &first.member_id, first.generation_id, vec![], 0);
    leader_sync.try_recv().unwrap().unwrap();
    let mut second = join(&mut group, "", 10);
    let mut first_again = join(&mut group, &first.member_id, 20);
    let (a, b) = (joined(&mut first_again), joined(&mut second));
    assert_eq!(a.generation_id, b.generation_id);
    let leader = a.leader.clone();
    let follower = if leader == a.member_id { b.member_id } else { a.member_id };
    (group, leader, follower, a.generation_id)
}

/// The leader, then the follower, send their SyncGroup at time 30; both are answered.
fn sync_both(group: &mut Group, leader: &str, follower: &str, generation: i32) {
    for member in [leader, follower] {
        let mut synced = sync(group, member, generation, vec![], 30);
        synced.try_recv().expect("sync answered").expect("sync succeeded");
    }
}

#[test]
fn a_member_waiting_for_the_leaders_assignment_is_not_expired() {
    let (mut group, leader, follower, generation) = two_members();
    let mut waiting = sync(&mut group, &follower, generation, vec![], 30);
    // The leader takes longer than a session to assign; the follower only waits.
    group.heartbeat(&leader, generation, 5_000).unwrap();
    group.tick(15_000);
    assert!(group.members.contains_key(&follower), "a member parked in SyncGroup is alive");
    let assignment = Bytes::from_static(b"p0");
    let assignments = vec![(follower.clone(), assignment.clone())];
    let mut leader_sync = sync(&mut group, &leader, generation, assignments, 15_001);
    leader_sync.try_recv().unwrap().unwrap();
    assert_eq!(waiting.try_recv().unwrap().unwrap(), assignment);
    assert_eq!(group.phase, GroupPhase::Stable);
}

#[test]
fn a_member_that_never_syncs_is_removed_after_the_rebalance_timeout() {
    let (mut group, leader, follower, generation) = two_members();
    let mut leader_sync = sync(&mut group, &leader, generation, vec![], 30);
    leader_sync.try_recv().unwrap().unwrap();
    // The follower heartbeats but never sends SyncGroup.
    let mut now = 30;
    while now < i64::from(REBALANCE_MS) {
        now += 1_000;
        group.heartbeat(&follower, generation, now).unwrap();
        group.heartbeat(&leader, generation, now).unwrap();
        group.tick(now);
    }
    assert!(!group.members.contains_key(&follower), "the silent follower is dropped");
    assert_eq!(group.phase, GroupPhase::PreparingRebalance);
    let mut rejoined = join(&mut group, &leader, now);
    assert_eq!(joined(&mut rejoined).generation_id, generation + 1);
}

#[test]
fn a_leaving_member_hands_everything_to_the_one_that_rejoins() {
    let (mut group, leader, follower, generation) = two_members();
    sync_both(&mut group, &leader, &follower, generation);
    group.leave(&follower, 40).unwrap();
    assert_eq!(
        group.heartbeat(&leader, generation, 50).unwrap_err().code(),
        KafkaError::RebalanceInProgress("g".into()).code(),
        "the remaining member learns of the rebalance from its heartbeat"
    );
    let outcome = joined(&mut join(&mut group, &leader, 60));
    assert_eq!(outcome.generation_id, generation + 1);
    assert_eq!(outcome.members.len(), 1, "the leader alone assigns");
}

#[test]
fn a_silent_member_expires_after_its_session_timeout() {
    let (mut group, leader, follower, generation) = two_members();
    sync_both(&mut group, &leader, &follower, generation);
    group.heartbeat(&leader, generation, 9_000).unwrap();
    group.tick(i64::from(SESSION_MS) + 31);
    assert!(!group.members.contains_key(&follower));
    assert!(group.members.contains_key(&leader));
    assert_eq!(group.phase, GroupPhase::PreparingRebalance);
}
