//! `mqadmin` run as a process against our name server (in-process, real TCP on 127.0.0.1)
//! and fake brokers that answer like Java's and record what they receive.

mod broker_cmds;
mod fake_broker;
mod harness;
mod message_cmds;
mod namesrv_cmds;
