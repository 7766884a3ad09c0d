//! The Kafka-model cluster in the simulator: without faults every message is acknowledged and
//! delivered, in key order. (Runs with faults are in `sweeps.rs`.)

use twinmq_sim::kafka::{KafkaSim, run};
use twinmq_sim::nemesis::FaultFamily;

#[test]
fn without_faults_everything_arrives_in_order() {
    let mut sim = KafkaSim::new(1);
    sim.run.faults = FaultFamily::None;
    let outcome = run(&sim).unwrap();
    let verdict = &outcome.verdict;
    assert!(verdict.is_clean(), "{}", outcome.explain(5));
    assert_eq!(verdict.sent, sim.run.messages);
    assert_eq!(verdict.acknowledged, sim.run.messages, "{}", outcome.explain(5));
    assert_eq!(verdict.delivered, sim.run.messages);
}
