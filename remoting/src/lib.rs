//! The RocketMQ remoting protocol (4.x and 5.x), shared by the name server, the broker, the
//! operator and the tools.
//!
//! Layers, bottom up: [`codec`] turns bytes into frames, [`command`] gives a frame its
//! meaning, [`header`] and [`protocol`] type the header fields and JSON bodies, [`message`]
//! encodes stored messages, and [`connection`], [`client`] and [`server`] move commands over
//! TCP.

pub mod auth;
pub mod client;
pub mod code;
pub mod codec;
pub mod command;
pub mod config;
pub mod connection;
pub mod error;
pub mod fastjson;
pub mod header;
mod header_json;
pub mod message;
pub mod properties;
pub mod protocol;
pub mod role;
pub mod server;
pub mod tls;
pub mod topic;
pub mod util;

pub use auth::Credentials;
pub use client::{ClientConfig, RemotingClient};
pub use code::{LanguageCode, RequestCode, ResponseCode};
pub use codec::RemotingCodec;
pub use command::{RemotingCommand, SerializeType};
pub use connection::{Connection, ConnectionConfig, RequestProcessor};
pub use error::{RemotingError, Result};
pub use header::CommandHeader;
pub use protocol::JsonBody;
pub use server::RemotingServer;

#[cfg(test)]
mod codec_tests;
