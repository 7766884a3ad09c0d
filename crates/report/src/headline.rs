//! Headline — the run's figures against twinmq's goals, as ratios measured in this one run:
//! storage append against the machine's ceiling, the CommitLog at 1,024 queues against one
//! queue, Kafka-model produce and RocketMQ-model batch send rates at 100 B, and the
//! produce→consume p99 at half of peak load.

use crate::matrix::{Mode, Model, Series};
use crate::results::Results;

/// Storage append must reach this share of the ceiling.
pub const STORAGE_SHARE_MIN: f64 = 0.90;
/// The CommitLog at 1,024 queues must keep this share of its one-queue rate.
pub const QUEUES_SHARE_MIN: f64 = 0.90;
/// Kafka-model produce at 100 B on one broker, records per second.
pub const KAFKA_RECORDS_PER_SEC_MIN: f64 = 1_000_000.0;
/// RocketMQ-model batch send, messages per second.
pub const ROCKETMQ_MSGS_PER_SEC_MIN: f64 = 500_000.0;
/// Produce→consume p99 at half of peak, microseconds.
pub const E2E_P99_US_MAX: u64 = 3_000;

/// One goal and what the run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Headline {
    /// The goal, in words.
    pub goal: String,
    /// The goal's bound, in words.
    pub target: String,
    /// The measured figure, in words ("not measured" when the run has none).
    pub measured: String,
    /// Measured over the bound (over 1 meets a minimum; under 1 meets a maximum).
    pub ratio: Option<f64>,
    /// Whether the goal is met; `None` when not measured.
    pub met: Option<bool>,
}

/// Every goal against `results`.
pub fn headlines(results: &Results) -> Vec<Headline> {
    let mut lines = Vec::new();
    for (writer, name) in [("log", "Kafka Log"), ("commitlog", "RocketMQ CommitLog")] {
        let layout = results.storage_of(writer, 1024, 1, 0).map(|r| r.bytes_per_sec);
        let ceiling = results.storage_of("ceiling", 1024, 1, 0).map(|r| r.bytes_per_sec);
        lines.push(share(
            format!(
                "storage append, {name}, 1 KiB records, async, vs the sequential-write ceiling"
            ),
            layout.zip(ceiling),
            STORAGE_SHARE_MIN,
            |(layout, ceiling)| format!("{:.0} MB/s vs {:.0} MB/s", layout / 1e6, ceiling / 1e6),
        ));
    }
    let one = results.storage_of("commitlog", 1024, 1, 0).map(|r| r.bytes_per_sec);
    let many = results.storage_of("commitlog", 1024, 1024, 0).map(|r| r.bytes_per_sec);
    lines.push(share(
        "CommitLog append at 1,024 queues vs 1 queue, 1 KiB records, async".to_owned(),
        many.zip(one),
        QUEUES_SHARE_MIN,
        |(many, one)| format!("{:.0} MB/s vs {:.0} MB/s", many / 1e6, one / 1e6),
    ));
    lines.push(rate_goal(
        results,
        Model::Kafka,
        "Kafka-model produce at 100 B on one broker (acks=1), best of the partition sweep",
        KAFKA_RECORDS_PER_SEC_MIN,
        "records/s",
    ));
    lines.push(rate_goal(
        results,
        Model::Rocketmq,
        "RocketMQ-model batch send at 100 B on one master, best of the queue sweep",
        ROCKETMQ_MSGS_PER_SEC_MIN,
        "msgs/s",
    ));
    for model in Model::BOTH {
        lines.push(latency_goal(results, model));
    }
    lines
}

fn share(
    goal: String,
    figures: Option<(f64, f64)>,
    minimum: f64,
    words: impl Fn((f64, f64)) -> String,
) -> Headline {
    let target = format!("≥ {:.0} %", minimum * 100.0);
    match figures {
        Some((part, whole)) if whole > 0.0 => {
            let ratio = part / whole;
            Headline {
                goal,
                target,
                measured: format!("{:.1} % ({})", ratio * 100.0, words((part, whole))),
                ratio: Some(ratio / minimum),
                met: Some(ratio >= minimum),
            }
        }
        _ => not_measured(goal, target),
    }
}

fn rate_goal(results: &Results, model: Model, goal: &str, minimum: f64, unit: &str) -> Headline {
    let best = results
        .load_of(Series::PartitionSweep, model)
        .filter(|r| r.message_bytes == 100 && r.mode == Mode::BASE)
        .max_by(|a, b| a.summary.produce.msgs_per_sec.total_cmp(&b.summary.produce.msgs_per_sec));
    let target = format!("≥ {} {unit}", thousands(minimum));
    match best {
        Some(best) => {
            let rate = best.summary.produce.msgs_per_sec;
            Headline {
                goal: goal.to_owned(),
                target,
                measured: format!(
                    "{} {unit} ({} {})",
                    thousands(rate),
                    best.partitions,
                    model.partition_noun()
                ),
                ratio: Some(rate / minimum),
                met: Some(rate >= minimum),
            }
        }
        None => not_measured(goal.to_owned(), target),
    }
}

fn latency_goal(results: &Results, model: Model) -> Headline {
    let goal = format!(
        "{} produce→consume p99 at half of peak load ({})",
        model.name(),
        Mode::BASE.label(model)
    );
    let target = format!("≤ {:.1} ms", E2E_P99_US_MAX as f64 / 1_000.0);
    let point = results
        .load_of(Series::HalfPeak, model)
        .find(|r| r.mode == Mode::BASE && r.summary.latency_end_to_end_us.count > 0);
    match point {
        Some(point) => {
            let p99_us = point.summary.latency_end_to_end_us.p99_us;
            Headline {
                goal,
                target,
                measured: format!(
                    "{:.2} ms at {} msgs/s",
                    p99_us as f64 / 1_000.0,
                    thousands(point.summary.config.rate_msgs_per_sec as f64)
                ),
                ratio: Some(p99_us as f64 / E2E_P99_US_MAX as f64),
                met: Some(p99_us <= E2E_P99_US_MAX),
            }
        }
        None => not_measured(goal, target),
    }
}

fn not_measured(goal: String, target: String) -> Headline {
    Headline {
        goal,
        target,
        measured: "not measured in this run".to_owned(),
        ratio: None,
        met: None,
    }
}

/// A whole number with thousands separators (`1,234,567`).
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1_000.0), "1,000");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }

    #[test]
    fn a_share_is_met_at_its_minimum_and_not_below() {
        let words = |(a, b): (f64, f64)| format!("{a} of {b}");
        let met = share("g".into(), Some((90.0, 100.0)), 0.9, words);
        assert_eq!(met.met, Some(true));
        let missed = share("g".into(), Some((89.0, 100.0)), 0.9, words);
        assert_eq!(missed.met, Some(false));
        assert!(missed.measured.starts_with("89.0 %"), "{}", missed.measured);
        assert_eq!(share("g".into(), None, 0.9, words).met, None);
    }
}
