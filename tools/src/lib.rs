//! RocketMQ's command-line tools: `mqadmin` ([`admin`]); `mqbench` is to come.

pub mod admin;
