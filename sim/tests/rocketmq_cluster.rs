//! The RocketMQ-model cluster in the simulator: without faults every message is acknowledged
//! and delivered once, in key order. (Runs with faults are in `sweeps.rs`.)

use twinmq_sim::nemesis::FaultFamily;
use twinmq_sim::rocketmq::{RocketmqSim, run};

#[test]
fn without_faults_everything_arrives_once_in_order() {
    let mut sim = RocketmqSim::new(1);
    sim.run.faults = FaultFamily::None;
    let outcome = run(&sim).unwrap();
    let verdict = &outcome.verdict;
    assert!(verdict.is_clean(), "{}", outcome.explain(5));
    assert_eq!(verdict.sent, sim.run.messages);
    assert_eq!(verdict.acknowledged, sim.run.messages, "{}", outcome.explain(5));
    assert_eq!(verdict.delivered, sim.run.messages);
}
