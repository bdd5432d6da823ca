//! RocketMQ-compatible broker: the message store ([`store`]), the metadata managers, the
//! request processors and the server that ties them to the network ([`Broker`]).

pub mod broker;
pub mod config;
pub mod failover;
pub mod filter;
pub mod ha;
pub mod long_polling;
pub mod manager;
pub mod metrics;
pub mod namesrv;
pub mod netif;
pub mod processor;
pub mod role;
pub mod schedule;
pub mod slave_sync;
pub mod store;
pub mod term_check;
pub mod traffic;
pub mod transaction;

pub use broker::Broker;
pub use config::{BrokerConfig, BrokerSettings};
