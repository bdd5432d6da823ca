//! RocketMQ-compatible broker. So far: the message store ([`store`]), usable on its own.

pub mod store;
