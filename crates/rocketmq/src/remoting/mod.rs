//! The remoting protocol: `u32 total length | u32 (serialize type << 24 | header length) |
//! header | body`, requests and responses matched by `opaque`, oneway requests unanswered.

pub mod client;
pub mod command;
pub mod frame;
pub mod properties;
pub mod request_code;
pub mod response_code;
pub mod server;

pub use client::RemotingClient;
pub use command::{CommandError, LanguageCode, RemotingCommand, SerializeType};
pub use frame::{FrameError, RawFrame, try_frame};
pub use server::{Peer, Processor, serve};
