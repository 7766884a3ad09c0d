//! twinmq's deterministic simulations, run on turmoil through the runtime's `SimEnv`.
//!
//! Every run is a pure function of its seed: the same seed gives the same event trace, byte for
//! byte, and so the same [`trace::TraceHash`]. The harness drives the storage core alone
//! through crashes and torn writes ([`storage_crash`]), and whole clusters of both broker models
//! ([`kafka`], [`rocketmq`]) under a seeded [`nemesis`], as named [`scenario`]s swept over
//! seeds ([`sweep`]), with the brokers' own state checked against each model's [`invariants`]
//! between steps; [`durability`] is the sweep behind the comparison report's table.

pub mod availability;
pub mod checker;
pub mod durability;
pub mod harness;
pub mod history;
pub mod invariants;
pub mod kafka;
pub mod nemesis;
pub mod rocketmq;
pub mod scenario;
pub mod storage_crash;
pub mod sweep;
pub mod trace;
