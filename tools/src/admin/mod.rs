//! `mqadmin`: RocketMQ's admin command line, subcommand for subcommand.
//!
//! [`cli`] parses the command line, [`client::Admin`] talks to name servers and brokers, and
//! one module per area runs the subcommands and prints what Java's mqadmin prints.

pub mod acl;
pub mod bodies;
pub mod broker;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod consumer;
pub mod java;
pub mod message;
pub mod mq_version;
pub mod namesrv;
pub mod topic;
pub mod track;

use std::io::Write;
use std::time::Duration;

use anyhow::Result;

pub use cli::{Cli, Command};
pub use client::Admin;

/// Where subcommands print their output.
pub type Out<'a> = &'a mut dyn Write;

/// Runs one subcommand; `namesrv_env` is `$NAMESRV_ADDR`, used when `-n` is absent.
pub async fn run(command: &Command, namesrv_env: Option<&str>, out: Out<'_>) -> Result<()> {
    let common = command.common();
    let namesrv = common.namesrv_addr.as_deref().or(namesrv_env);
    let admin = Admin::new(namesrv, Duration::from_millis(common.timeout_ms.max(1)))
        .with_credentials(common.credentials()?)
        .with_tls(common.client_tls()?);
    let result = match command {
        Command::ClusterList(a) => cluster::cluster_list(&admin, a, out).await,
        Command::TopicList(a) => topic::topic_list(&admin, a, out).await,
        Command::TopicRoute(a) => topic::topic_route(&admin, a, out).await,
        Command::UpdateTopic(a) => topic::update_topic(&admin, a, out).await,
        Command::DeleteTopic(a) => topic::delete_topic(&admin, a, out).await,
        Command::TopicStatus(a) => topic::topic_status(&admin, a, out).await,
        Command::ConsumerProgress(a) => consumer::consumer_progress(&admin, a, out).await,
        Command::ResetOffsetByTime(a) => consumer::reset_offset_by_time(&admin, a, out).await,
        Command::BrokerStatus(a) => broker::broker_status(&admin, a, out).await,
        Command::HaStatus(a) => broker::ha_status(&admin, a, out).await,
        Command::Promote(a) => broker::promote(&admin, a, out).await,
        Command::GetBrokerConfig(a) => broker::get_broker_config(&admin, a, out).await,
        Command::UpdateBrokerConfig(a) => broker::update_broker_config(&admin, a, out).await,
        Command::UpdateSubGroup(a) => consumer::update_sub_group(&admin, a, out).await,
        Command::QueryMsgById(a) => message::query_msg_by_id(&admin, a, out).await,
        Command::QueryMsgByKey(a) => message::query_msg_by_key(&admin, a, out).await,
        Command::UpdateKvConfig(a) => namesrv::update_kv_config(&admin, a, out).await,
        Command::DeleteKvConfig(a) => namesrv::delete_kv_config(&admin, a, out).await,
        Command::WipeWritePerm(a) => namesrv::write_perm(&admin, a, false, out).await,
        Command::AddWritePerm(a) => namesrv::write_perm(&admin, a, true, out).await,
        Command::GetNamesrvConfig(_) => namesrv::get_namesrv_config(&admin, out).await,
        Command::UpdateNamesrvConfig(a) => namesrv::update_namesrv_config(&admin, a, out).await,
        Command::UpdateAclConfig(a) => acl::update_acl_config(&admin, a, out).await,
        Command::DeleteAclConfig(a) => acl::delete_acl_config(&admin, a, out).await,
        Command::UpdateGlobalWhiteAddr(a) => acl::update_global_white_addr(&admin, a, out).await,
        Command::ClusterAclConfigVersion(a) => {
            acl::cluster_acl_config_version(&admin, a, out).await
        }
    };
    out.flush()?;
    result
}
