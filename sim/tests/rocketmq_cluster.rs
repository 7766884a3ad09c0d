//! The RocketMQ-model cluster in the simulator: without faults every message is acknowledged
//! and delivered once, in key order; with the nemesis on, SYNC_MASTER + SYNC_FLUSH loses no
//! acknowledged message and breaks no key's order, while ASYNC_MASTER + ASYNC_FLUSH loses some
//! and the checker catches it; one seed gives one trace.

use twinmq_sim::rocketmq::{RocketmqSim, run};

#[test]
fn without_faults_everything_arrives_once_in_order() {
    let mut sim = RocketmqSim::new(1);
    sim.run.faults = false;
    let outcome = run(&sim).unwrap();
    let verdict = &outcome.verdict;
    assert!(verdict.is_clean(), "{}", outcome.explain(5));
    assert_eq!(verdict.sent, sim.run.messages);
    assert_eq!(verdict.acknowledged, sim.run.messages, "{}", outcome.explain(5));
    assert_eq!(verdict.delivered, sim.run.messages);
}

#[test]
fn the_durable_configuration_loses_nothing_acknowledged_under_faults() {
    for seed in 0..8 {
        let outcome = run(&RocketmqSim::new(seed)).unwrap();
        assert!(
            outcome.verdict.is_clean(),
            "seed {seed}: {}\nreplay: twinmq sim --model rocketmq --seed {seed}",
            outcome.explain(5)
        );
        assert!(outcome.verdict.acknowledged > 0, "seed {seed}: {}", outcome.explain(5));
    }
}

#[test]
fn one_seed_one_trace() {
    let first = run(&RocketmqSim::new(3)).unwrap();
    let again = run(&RocketmqSim::new(3)).unwrap();
    assert_eq!(first.trace.hash(), again.trace.hash());
    let other = run(&RocketmqSim::new(4)).unwrap();
    assert_ne!(first.trace.hash(), other.trace.hash());
}

#[test]
fn the_weak_configuration_loses_acknowledged_messages_and_the_checker_says_so() {
    use twinmq_rocketmq::broker::ha::BrokerRole;
    use twinmq_storage::FlushPolicy;
    let weak = |seed| RocketmqSim {
        role: BrokerRole::AsyncMaster,
        flush: FlushPolicy::ASYNC_DEFAULT,
        ..RocketmqSim::new(seed)
    };
    let lossy: Vec<u64> =
        (0..8).filter(|seed| run(&weak(*seed)).unwrap().verdict.lost > 0).collect();
    assert!(
        !lossy.is_empty(),
        "ASYNC_MASTER + ASYNC_FLUSH with power-offs loses acknowledged messages on some seed"
    );
}
