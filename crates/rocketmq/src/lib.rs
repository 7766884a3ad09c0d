//! twinmq's RocketMQ model: nameservers and brokers that real RocketMQ clients talk to, on the
//! shared storage core's CommitLog.
//!
//! - [`broker`]: the broker — send, pull (long polling), offsets, heartbeats, on the MessageStore.
//! - [`client`]: twinmq's own client — producers and pull/push consumers, on the Env seam.
//! - [`message`]: the message record as RocketMQ stores and serves it.
//! - [`namesrv`]: the nameserver — route tables fed by broker registrations, read by clients.
//! - [`remoting`]: RocketMQ's remoting protocol — frames, the JSON (and binary) command header,
//!   request and response codes, message properties.

pub mod broker;
pub mod client;
pub mod message;
pub mod namesrv;
pub mod remoting;
