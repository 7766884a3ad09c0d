//! The Kafka-model cluster in the simulator: without faults every message is acknowledged and
//! delivered, in key order; one seed gives one trace. (The durable configuration under faults
//! still loses a consumer group's commits on some seeds; its sweep test comes with the fix.)

use twinmq_sim::kafka::{KafkaSim, run};

#[test]
fn without_faults_everything_arrives_in_order() {
    let mut sim = KafkaSim::new(1);
    sim.run.faults = false;
    let outcome = run(&sim).unwrap();
    let verdict = &outcome.verdict;
    assert!(verdict.is_clean(), "{}", outcome.explain(5));
    assert_eq!(verdict.sent, sim.run.messages);
    assert_eq!(verdict.acknowledged, sim.run.messages, "{}", outcome.explain(5));
    assert_eq!(verdict.delivered, sim.run.messages);
}

#[test]
fn one_seed_one_trace() {
    let first = run(&KafkaSim::new(3)).unwrap();
    let again = run(&KafkaSim::new(3)).unwrap();
    assert_eq!(first.trace.hash(), again.trace.hash());
    let other = run(&KafkaSim::new(4)).unwrap();
    assert_ne!(first.trace.hash(), other.trace.hash());
}
