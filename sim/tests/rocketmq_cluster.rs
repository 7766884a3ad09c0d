//! The RocketMQ-model cluster in the simulator: without faults every message is acknowledged
//! and delivered once, in key order; with the nemesis on, SYNC_MASTER + SYNC_FLUSH loses no
//! acknowledged message and breaks no key's order, while ASYNC_MASTER + ASYNC_FLUSH loses some
//! and the checker catches it; one seed gives one trace.

use twinmq_sim::rocketmq::{RocketmqSim, run};

fn explain(outcome: &twinmq_sim::rocketmq::SimOutcome) -> String {
    let violations: Vec<String> =
        outcome.verdict.violations.iter().take(5).map(ToString::to_string).collect();
    format!("{:?}\n{}", outcome.verdict, violations.join("\n"))
}

#[test]
fn without_faults_everything_arrives_once_in_order() {
    let sim = RocketmqSim { faults: false, ..RocketmqSim::new(1) };
    let outcome = run(&sim).unwrap();
    let verdict = &outcome.verdict;
    assert!(verdict.is_clean(), "{}", explain(&outcome));
    assert_eq!(verdict.sent, sim.messages);
    assert_eq!(verdict.acknowledged, sim.messages, "{}", explain(&outcome));
    assert_eq!(verdict.delivered, sim.messages);
}

#[test]
fn the_durable_configuration_loses_nothing_acknowledged_under_faults() {
    for seed in 0..8 {
        let outcome = run(&RocketmqSim::new(seed)).unwrap();
        assert!(
            outcome.verdict.is_clean(),
            "seed {seed}: {}\nreplay: twinmq sim --model rocketmq --seed {seed}",
            explain(&outcome)
        );
        assert!(outcome.verdict.acknowledged > 0, "seed {seed}: {}", explain(&outcome));
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
