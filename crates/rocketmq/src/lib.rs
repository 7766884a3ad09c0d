//! twinmq's RocketMQ model: nameservers and brokers that real RocketMQ clients talk to, on the
//! shared storage core's CommitLog.
//!
//! - [`remoting`]: RocketMQ's remoting protocol — frames, the JSON (and binary) command header,
//!   request and response codes, message properties.

pub mod remoting;
