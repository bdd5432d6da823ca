//! Request processors, one module per family; [`BrokerProcessor`] routes by request code.

mod acl;
mod admin;
mod client;
mod lock;
mod offset;
mod pull;
mod retry;
mod send;

use std::sync::Arc;

use futures::future::BoxFuture;
use rmq_remoting::{
    Connection, RemotingCommand, RemotingError, RequestCode, RequestProcessor, ResponseCode,
};

use crate::broker::BrokerInner;

pub type Response = Result<RemotingCommand, RemotingError>;

/// A request refused on the way through a processor's steps: RocketMQ's response code and
/// remark for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: i32,
    pub remark: String,
}

impl Refusal {
    pub fn new(code: i32, remark: impl Into<String>) -> Refusal {
        Refusal {
            code,
            remark: remark.into(),
        }
    }
}

impl From<Refusal> for RemotingCommand {
    fn from(r: Refusal) -> RemotingCommand {
        RemotingCommand::error(r.code, r.remark)
    }
}

pub struct BrokerProcessor {
    pub inner: Arc<BrokerInner>,
}

impl BrokerProcessor {
    pub fn new(inner: Arc<BrokerInner>) -> Self {
        BrokerProcessor { inner }
    }

    async fn handle(&self, conn: &Connection, req: &RemotingCommand) -> Option<RemotingCommand> {
        let started = std::time::Instant::now();
        if let Err(denied) = self.inner.gate.check(req, conn.peer_addr().ip()) {
            tracing::warn!(code = req.code, name = req.code_name(), peer = %conn.peer_addr(), ?denied, "request refused");
            self.inner
                .metrics
                .denied
                .with_label_values(&[req.code_name(), denied.kind()])
                .inc();
            return (!req.is_oneway()).then(|| denied.response());
        }
        let resp = self.route(conn, req).await;
        self.inner
            .metrics
            .requests
            .with_label_values(&[req.code_name()])
            .observe(started.elapsed().as_secs_f64());
        resp
    }

    async fn route(&self, conn: &Connection, req: &RemotingCommand) -> Option<RemotingCommand> {
        let i = &self.inner;
        let result = match req.code {
            RequestCode::SEND_MESSAGE
            | RequestCode::SEND_MESSAGE_V2
            | RequestCode::SEND_BATCH_MESSAGE => send::send(i, conn, req).await,
            RequestCode::PULL_MESSAGE | RequestCode::LITE_PULL_MESSAGE => {
                pull::pull(i, conn, req).await
            }
            RequestCode::HEART_BEAT => client::heartbeat(i, conn, req).await,
            RequestCode::UNREGISTER_CLIENT => client::unregister(i, conn, req).await,
            RequestCode::GET_CONSUMER_LIST_BY_GROUP => client::consumer_list(i, req),
            RequestCode::QUERY_CONSUMER_OFFSET => offset::query_consumer_offset(i, req),
            RequestCode::UPDATE_CONSUMER_OFFSET => offset::update_consumer_offset(i, req),
            RequestCode::GET_MAX_OFFSET => offset::max_offset(i, req),
            RequestCode::GET_MIN_OFFSET => offset::min_offset(i, req),
            RequestCode::GET_EARLIEST_MSG_STORETIME => offset::earliest_time(i, req),
            RequestCode::SEARCH_OFFSET_BY_TIMESTAMP => offset::search_by_time(i, req),
            RequestCode::UPDATE_AND_CREATE_TOPIC => admin::create_topic(i, req).await,
            RequestCode::DELETE_TOPIC_IN_BROKER => admin::delete_topic(i, req).await,
            RequestCode::GET_ALL_TOPIC_CONFIG => admin::all_topic_config(i),
            RequestCode::GET_TOPIC_STATS_INFO => admin::topic_stats(i, req),
            RequestCode::GET_CONSUME_STATS => admin::consume_stats(i, req),
            RequestCode::GET_CONSUMER_CONNECTION_LIST => admin::consumer_connections(i, req),
            RequestCode::GET_BROKER_RUNTIME_INFO => admin::runtime_info(i),
            RequestCode::GET_BROKER_CONFIG => admin::get_config(i),
            RequestCode::UPDATE_BROKER_CONFIG => admin::update_config_drained(i, req).await,
            RequestCode::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => admin::update_group(i, req).await,
            RequestCode::GET_ALL_SUBSCRIPTIONGROUP_CONFIG => admin::all_groups(i),
            RequestCode::DELETE_SUBSCRIPTIONGROUP => admin::delete_group(i, req).await,
            RequestCode::GET_ALL_CONSUMER_OFFSET => {
                Ok(RemotingCommand::success().with_body(i.offsets.encode()))
            }
            RequestCode::VIEW_MESSAGE_BY_ID => admin::view_message(i, req),
            RequestCode::QUERY_MESSAGE => admin::query_message(i, req),
            RequestCode::CONSUMER_SEND_MSG_BACK => {
                retry::consumer_send_msg_back(i, conn, req).await
            }
            RequestCode::INVOKE_BROKER_TO_RESET_OFFSET => offset::reset_offset(i, req),
            RequestCode::GET_BROKER_EPOCH_CACHE => crate::failover::epoch_cache(i),
            RequestCode::NOTIFY_BROKER_ROLE_CHANGED => crate::failover::role_changed(i, req).await,
            RequestCode::CHECK_CLIENT_CONFIG => client::check_client_config(i, req),
            RequestCode::END_TRANSACTION => crate::transaction::end_transaction(i, req).await,
            RequestCode::LOCK_BATCH_MQ => lock::lock_batch(i, req),
            RequestCode::UNLOCK_BATCH_MQ => lock::unlock_batch(i, req),
            RequestCode::UPDATE_AND_CREATE_ACL_CONFIG => acl::update_account(i, req),
            RequestCode::DELETE_ACL_CONFIG => acl::delete_account(i, req),
            RequestCode::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG => acl::update_global_white(i, req),
            RequestCode::GET_BROKER_CLUSTER_ACL_INFO => acl::versions(i),
            RequestCode::GET_ALL_DELAY_OFFSET => {
                Ok(RemotingCommand::success().with_body(i.schedule.encode().into_bytes()))
            }
            other => Ok(RemotingCommand::not_supported(other)),
        };
        Some(result.unwrap_or_else(|e| {
            tracing::warn!(code = req.code, name = req.code_name(), peer = %conn.peer_addr(), error = %e, "bad request");
            RemotingCommand::error(ResponseCode::SYSTEM_ERROR, e.to_string())
        }))
    }
}

impl RequestProcessor for BrokerProcessor {
    fn process(
        self: Arc<Self>,
        conn: Connection,
        request: RemotingCommand,
    ) -> BoxFuture<'static, Option<RemotingCommand>> {
        Box::pin(async move { self.handle(&conn, &request).await })
    }

    fn connection_closed(&self, conn: &Connection) {
        for group in self.inner.clients.connection_closed(conn) {
            tracing::info!(group, peer = %conn.peer_addr(), "consumer connection closed");
            client::notify_consumer_ids_changed(&self.inner, &group);
        }
    }
}
