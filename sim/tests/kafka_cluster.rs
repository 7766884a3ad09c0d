//! The Kafka-model cluster in the simulator: without faults every message is acknowledged and
//! delivered, in key order; one seed gives one trace. (The durable configuration under faults
//! still loses a consumer group's commits on some seeds; its sweep test comes with the fix.)

use twinmq_sim::kafka::{KafkaSim, SimOutcome, run};

fn explain(outcome: &SimOutcome) -> String {
    let violations: Vec<String> =
        outcome.verdict.violations.iter().take(5).map(ToString::to_string).collect();
    let failures: Vec<String> = outcome
        .records
        .iter()
        .filter(|r| matches!(r.event, twinmq_sim::history::Event::SendFailed { .. }))
        .take(3)
        .map(ToString::to_string)
        .collect();
    format!("{:?}\n{}\n{}", outcome.verdict, violations.join("\n"), failures.join("\n"))
}

#[test]
fn without_faults_everything_arrives_in_order() {
    let sim = KafkaSim { faults: false, ..KafkaSim::new(1) };
    let outcome = run(&sim).unwrap();
    let verdict = &outcome.verdict;
    assert!(verdict.is_clean(), "{}", explain(&outcome));
    assert_eq!(verdict.sent, sim.messages);
    assert_eq!(verdict.acknowledged, sim.messages, "{}", explain(&outcome));
    assert_eq!(verdict.delivered, sim.messages);
}

#[test]
fn one_seed_one_trace() {
    let first = run(&KafkaSim::new(3)).unwrap();
    let again = run(&KafkaSim::new(3)).unwrap();
    assert_eq!(first.trace.hash(), again.trace.hash());
    let other = run(&KafkaSim::new(4)).unwrap();
    assert_ne!(first.trace.hash(), other.trace.hash());
}
