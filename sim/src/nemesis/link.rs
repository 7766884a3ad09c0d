//! Faults of one link between two hosts, as turmoil applies them: cut both ways, cut one way,
//! held (messages queue until released, then arrive at once), slow (a long latency tail), or
//! flaky (it drops, now and then, everything in flight). A link has at most one at a time.

use std::time::Duration;

use crate::harness::LINK_LATENCY;

/// The most one-way delay of a slow link (turmoil draws up to it on its exponential curve).
pub const SLOW_LINK_LATENCY_MAX: Duration = Duration::from_millis(800);
/// The chance, per message, that a flaky link breaks (it mends at the next message).
pub const FLAKY_LINK_FAIL_RATE: f64 = 0.02;

/// A pair of hosts, in name order.
pub type Pair = (String, String);

/// The pair of `a` and `b`, in name order.
pub fn pair(a: &str, b: &str) -> Pair {
    if a <= b { (a.to_owned(), b.to_owned()) } else { (b.to_owned(), a.to_owned()) }
}

/// What is wrong with one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkFault {
    /// Nothing crosses, either way.
    Cut,
    /// Nothing crosses from the named host to the other; the other way works.
    OneWay {
        /// The host whose messages are dropped.
        from: String,
    },
    /// Messages wait on the link until it is released.
    Held,
    /// Messages take up to [`SLOW_LINK_LATENCY_MAX`].
    Slow,
    /// The link breaks now and then ([`FLAKY_LINK_FAIL_RATE`]).
    Flaky,
}

impl LinkFault {
    /// Whether the fault stops messages (so a link that a power-on repairs must get it back).
    pub fn blocks(&self) -> bool {
        matches!(self, Self::Cut | Self::OneWay { .. } | Self::Held)
    }

    /// Applies the fault to the link `(a, b)`.
    pub fn apply(&self, sim: &mut turmoil::Sim<'_>, (a, b): &Pair) {
        match self {
            Self::Cut => sim.partition(a.as_str(), b.as_str()),
            Self::OneWay { from } => {
                let to = if from == a { b } else { a };
                sim.partition_oneway(from.as_str(), to.as_str());
            }
            Self::Held => sim.hold(a.as_str(), b.as_str()),
            Self::Slow => {
                sim.set_link_max_message_latency(a.as_str(), b.as_str(), SLOW_LINK_LATENCY_MAX)
            }
            Self::Flaky => sim.set_link_fail_rate(a.as_str(), b.as_str(), FLAKY_LINK_FAIL_RATE),
        }
    }

    /// Undoes the fault on the link `(a, b)`; `reconnect` is false when an end is powered off
    /// (its links stay cut until it powers on).
    pub fn restore(&self, sim: &mut turmoil::Sim<'_>, (a, b): &Pair, reconnect: bool) {
        match self {
            Self::Cut | Self::OneWay { .. } if reconnect => sim.repair(a.as_str(), b.as_str()),
            Self::Held if reconnect => sim.release(a.as_str(), b.as_str()),
            Self::Slow => sim.set_link_max_message_latency(a.as_str(), b.as_str(), LINK_LATENCY.1),
            Self::Flaky => sim.set_link_fail_rate(a.as_str(), b.as_str(), 0.0),
            Self::Cut | Self::OneWay { .. } | Self::Held => {}
        }
    }
}
