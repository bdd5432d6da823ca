//! Request handling: one function per request code, over the route registry and KV store.

use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use parking_lot::RwLock;
use rmq_remoting::code::version;
use rmq_remoting::config::{parse_properties, JavaConfig};
use rmq_remoting::header::*;
use rmq_remoting::protocol::route::TopicRouteData;
use rmq_remoting::protocol::topic::{RegisterBrokerBody, TopicConfigSerializeWrapper};
use rmq_remoting::protocol::{DataVersion, KvTable};
use rmq_remoting::util::now_millis;
use rmq_remoting::{
    Connection, JsonBody, RemotingCommand, RemotingError, RequestCode, RequestProcessor,
    ResponseCode,
};

use crate::config::NamesrvConfig;
use crate::kvconfig::{write_atomically, KvConfigManager, NAMESPACE_ORDER_TOPIC_CONFIG};
use crate::route_info::{RegisterError, Registration, RouteInfoManager};

/// The name server's state and its request processor.
pub struct NamesrvProcessor {
    pub route: RouteInfoManager,
    pub kv: KvConfigManager,
    pub config: RwLock<NamesrvConfig>,
    pub metrics: std::sync::Arc<crate::metrics::NamesrvMetrics>,
    /// Who may change routes and registrations.
    gate: rmq_acl::Gate,
    started: Instant,
}

type Response = Result<RemotingCommand, RemotingError>;

impl NamesrvProcessor {
    pub fn new(config: NamesrvConfig, kv: KvConfigManager) -> Self {
        NamesrvProcessor {
            route: RouteInfoManager::new(),
            kv,
            config: RwLock::new(config),
            metrics: crate::metrics::NamesrvMetrics::new(),
            gate: rmq_acl::Gate::open(),
            started: Instant::now(),
        }
    }

    /// Applies `gate` to every request that arrives over the network.
    pub fn with_gate(mut self, gate: rmq_acl::Gate) -> Self {
        self.gate = gate;
        self
    }

    /// Answers one request (never a panic: bad input becomes an error response).
    pub fn handle(&self, conn: Option<&Connection>, req: &RemotingCommand) -> RemotingCommand {
        let result = match req.code {
            RequestCode::PUT_KV_CONFIG => self.put_kv_config(req),
            RequestCode::GET_KV_CONFIG => self.get_kv_config(req),
            RequestCode::DELETE_KV_CONFIG => self.delete_kv_config(req),
            RequestCode::GET_KVLIST_BY_NAMESPACE => self.get_kv_list(req),
            RequestCode::REGISTER_BROKER => self.register_broker(conn, req),
            RequestCode::UNREGISTER_BROKER => self.unregister_broker(req),
            RequestCode::QUERY_DATA_VERSION => self.query_data_version(req),
            RequestCode::BROKER_HEARTBEAT => self.broker_heartbeat(req),
            RequestCode::GET_BROKER_MEMBER_GROUP => self.broker_member_group(req),
            RequestCode::GET_ROUTEINFO_BY_TOPIC => self.route_info(req),
            RequestCode::GET_BROKER_CLUSTER_INFO => Ok(self.cluster_info(req)),
            RequestCode::WIPE_WRITE_PERM_OF_BROKER => self.wipe_write_perm(req),
            RequestCode::ADD_WRITE_PERM_OF_BROKER => self.add_write_perm(req),
            RequestCode::GET_ALL_TOPIC_LIST_FROM_NAMESERVER => Ok(self.all_topics()),
            RequestCode::GET_TOPICS_BY_CLUSTER => self.topics_by_cluster(req),
            RequestCode::GET_SYSTEM_TOPIC_LIST_FROM_NS => {
                Ok(RemotingCommand::success().with_body(self.route.system_topics().encode()))
            }
            RequestCode::GET_UNIT_TOPIC_LIST => Ok(self.topic_list_gated(|r| r.unit_topics())),
            RequestCode::GET_HAS_UNIT_SUB_TOPIC_LIST => {
                Ok(self.topic_list_gated(|r| r.unit_sub_topics()))
            }
            RequestCode::GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST => {
                Ok(self.topic_list_gated(|r| r.unit_sub_non_unit_topics()))
            }
            RequestCode::DELETE_TOPIC_IN_NAMESRV => self.delete_topic(req),
            RequestCode::REGISTER_TOPIC_IN_NAMESRV => self.register_topic(req),
            RequestCode::UPDATE_NAMESRV_CONFIG => self.update_config(req),
            RequestCode::GET_NAMESRV_CONFIG => Ok(RemotingCommand::success()
                .with_body(self.config.read().to_properties_text().into_bytes())),
            other => {
                tracing::debug!(code = other, "request code not supported");
                Ok(RemotingCommand::not_supported(other))
            }
        };
        let resp = result.unwrap_or_else(|e| {
            tracing::warn!(code = req.code, name = req.code_name(), error = %e, "bad request");
            RemotingCommand::error(ResponseCode::SYSTEM_ERROR, e.to_string())
        });
        resp.answer(req)
    }

    fn put_kv_config(&self, req: &RemotingCommand) -> Response {
        let h: PutKvConfigRequestHeader = req.decode_header()?;
        self.kv.put(&h.namespace, &h.key, &h.value);
        Ok(RemotingCommand::success())
    }

    fn get_kv_config(&self, req: &RemotingCommand) -> Response {
        let h: GetKvConfigRequestHeader = req.decode_header()?;
        Ok(match self.kv.get(&h.namespace, &h.key) {
            Some(value) => RemotingCommand::success()
                .with_header(&GetKvConfigResponseHeader { value: Some(value) }),
            None => RemotingCommand::error(
                ResponseCode::QUERY_NOT_FOUND,
                format!("No config item, Namespace: {} Key: {}", h.namespace, h.key),
            ),
        })
    }

    fn delete_kv_config(&self, req: &RemotingCommand) -> Response {
        let h: DeleteKvConfigRequestHeader = req.decode_header()?;
        self.kv.delete(&h.namespace, &h.key);
        Ok(RemotingCommand::success())
    }

    fn get_kv_list(&self, req: &RemotingCommand) -> Response {
        let h: GetKvListByNamespaceRequestHeader = req.decode_header()?;
        Ok(match self.kv.list(&h.namespace) {
            Some(table) => RemotingCommand::success().with_body(KvTable { table }.encode()),
            None => RemotingCommand::error(
                ResponseCode::QUERY_NOT_FOUND,
                format!("No config item, Namespace: {}", h.namespace),
            ),
        })
    }

    fn register_broker(&self, conn: Option<&Connection>, req: &RemotingCommand) -> Response {
        let h: RegisterBrokerRequestHeader = req.decode_header()?;
        if let Some(expected) = h.body_crc32.filter(|c| *c != 0) {
            let actual = (crc32fast::hash(&req.body) & 0x7FFF_FFFF) as i32;
            if actual != expected {
                tracing::warn!(broker = %h.broker_addr, expected, actual, "register body CRC mismatch");
                return Ok(RemotingCommand::error(
                    ResponseCode::SYSTEM_ERROR,
                    "crc32 not match",
                ));
            }
        }
        let (topics, filter_servers) = if req.body.is_empty() {
            (TopicConfigSerializeWrapper::default(), None)
        } else if req.version >= version::V3_0_11 {
            let body = RegisterBrokerBody::decode_register(
                &req.body,
                h.compressed.unwrap_or(false),
                req.version,
            )?;
            (
                body.topic_config_serialize_wrapper,
                Some(body.filter_server_list),
            )
        } else {
            (TopicConfigSerializeWrapper::decode(&req.body)?, None)
        };
        let (default_timeout, delete_with_registration, return_order) = {
            let c = self.config.read();
            (
                c.broker_channel_expired_time,
                c.delete_topic_with_broker_registration,
                c.return_order_topic_config_to_broker,
            )
        };
        let reg = Registration {
            cluster: h.cluster_name,
            broker_addr: h.broker_addr,
            broker_name: h.broker_name,
            broker_id: h.broker_id,
            ha_server_addr: h.ha_server_addr,
            zone_name: req.ext_fields.get("__ZONE_NAME").cloned(),
            timeout_ms: h.heartbeat_timeout_millis,
            enable_acting_master: h.enable_acting_master,
            topics,
            filter_servers,
        };
        match self.route.register_broker(
            reg,
            conn.cloned(),
            now_millis(),
            default_timeout,
            delete_with_registration,
        ) {
            Ok(result) => {
                let mut resp =
                    RemotingCommand::success().with_header(&RegisterBrokerResponseHeader {
                        ha_server_addr: result.ha_server_addr,
                        master_addr: result.master_addr,
                    });
                if return_order {
                    if let Some(table) = self.kv.list(NAMESPACE_ORDER_TOPIC_CONFIG) {
                        resp = resp.with_body(KvTable { table }.encode());
                    }
                }
                Ok(resp)
            }
            Err(e) => {
                tracing::warn!(error = %e, "register broker refused");
                let mut resp = RemotingCommand::error(
                    ResponseCode::SYSTEM_ERROR,
                    format!("register broker failed: {e}"),
                );
                // Ours: who holds the id, at which state version (epoch), so a master whose
                // term is over can tell and stop taking writes.
                if let RegisterError::StaleStateVersion {
                    holder,
                    holder_version,
                    ..
                } = &e
                {
                    resp.ext_fields.insert("holderAddr".into(), holder.clone());
                    resp.ext_fields
                        .insert("holderStateVersion".into(), holder_version.to_string());
                }
                Ok(resp)
            }
        }
    }

    fn unregister_broker(&self, req: &RemotingCommand) -> Response {
        let h: UnregisterBrokerRequestHeader = req.decode_header()?;
        self.route
            .unregister_broker(&h.cluster_name, &h.broker_addr, &h.broker_name, h.broker_id);
        Ok(RemotingCommand::success())
    }

    fn query_data_version(&self, req: &RemotingCommand) -> Response {
        let h: QueryDataVersionRequestHeader = req.decode_header()?;
        let theirs = DataVersion::decode(&req.body)?;
        let ours = self.route.data_version(&h.cluster_name, &h.broker_addr);
        let changed = ours.as_ref() != Some(&theirs);
        // A version query is also a sign of life.
        self.route
            .touch(&h.cluster_name, &h.broker_addr, now_millis(), None);
        let mut resp =
            RemotingCommand::success().with_header(&QueryDataVersionResponseHeader { changed });
        if let Some(ours) = ours {
            resp = resp.with_body(ours.encode());
        }
        Ok(resp)
    }

    fn broker_heartbeat(&self, req: &RemotingCommand) -> Response {
        let h: BrokerHeartbeatRequestHeader = req.decode_header()?;
        self.route.touch(
            &h.cluster_name,
            &h.broker_addr,
            now_millis(),
            h.heartbeat_timeout_mills,
        );
        Ok(RemotingCommand::success())
    }

    fn broker_member_group(&self, req: &RemotingCommand) -> Response {
        let h: GetBrokerMemberGroupRequestHeader = req.decode_header()?;
        let group = self
            .route
            .broker_member_group(&h.cluster_name, &h.broker_name);
        Ok(RemotingCommand::success().with_body(group.encode()))
    }

    /// Old Java clients (< 4.9.4) and the Go client parse `brokerAddrs` by hand and need
    /// fastjson's bare numeric keys; everyone newer, or who asks, gets standard JSON.
    fn wants_standard_json(req: &RemotingCommand, accept_standard_only: Option<bool>) -> bool {
        req.version >= version::V4_9_4 || accept_standard_only.unwrap_or(false)
    }

    fn route_info(&self, req: &RemotingCommand) -> Response {
        let h: GetRouteInfoRequestHeader = req.decode_header()?;
        let (wait, wait_secs, order_enable) = {
            let c = self.config.read();
            (
                c.need_wait_for_service,
                c.wait_seconds_for_service,
                c.order_message_enable,
            )
        };
        if wait && self.started.elapsed().as_secs() < wait_secs.max(0) as u64 {
            return Ok(RemotingCommand::error(
                ResponseCode::SYSTEM_ERROR,
                "name server not ready",
            ));
        }
        let Some(mut route) = self.route.topic_route(&h.topic) else {
            return Ok(RemotingCommand::error(
                ResponseCode::TOPIC_NOT_EXIST,
                format!(
                    "No topic route info in name server for the topic: {}",
                    h.topic
                ),
            ));
        };
        if order_enable {
            route.order_topic_conf = self.kv.get(NAMESPACE_ORDER_TOPIC_CONFIG, &h.topic);
        }
        let body = if Self::wants_standard_json(req, h.accept_standard_json_only) {
            route.encode()
        } else {
            route.encode_fastjson()
        };
        Ok(RemotingCommand::success().with_body(body))
    }

    fn cluster_info(&self, req: &RemotingCommand) -> RemotingCommand {
        let info = self.route.cluster_info();
        let body = if Self::wants_standard_json(req, None) {
            info.encode()
        } else {
            info.encode_fastjson()
        };
        RemotingCommand::success().with_body(body)
    }

    fn wipe_write_perm(&self, req: &RemotingCommand) -> Response {
        let h: WipeWritePermOfBrokerRequestHeader = req.decode_header()?;
        let count = self.route.wipe_write_perm(&h.broker_name);
        tracing::info!(broker = %h.broker_name, topics = count, "write permission wiped");
        Ok(
            RemotingCommand::success().with_header(&WipeWritePermOfBrokerResponseHeader {
                wipe_topic_count: count,
            }),
        )
    }

    fn add_write_perm(&self, req: &RemotingCommand) -> Response {
        let h: AddWritePermOfBrokerRequestHeader = req.decode_header()?;
        let count = self.route.add_write_perm(&h.broker_name);
        tracing::info!(broker = %h.broker_name, topics = count, "write permission added");
        Ok(
            RemotingCommand::success().with_header(&AddWritePermOfBrokerResponseHeader {
                add_topic_count: count,
            }),
        )
    }

    fn all_topics(&self) -> RemotingCommand {
        if !self.config.read().enable_all_topic_list {
            return RemotingCommand::error(ResponseCode::SYSTEM_ERROR, "disable");
        }
        RemotingCommand::success().with_body(self.route.all_topics().encode())
    }

    fn topic_list_gated(
        &self,
        f: impl Fn(&RouteInfoManager) -> rmq_remoting::protocol::TopicList,
    ) -> RemotingCommand {
        if !self.config.read().enable_topic_list {
            return RemotingCommand::error(ResponseCode::SYSTEM_ERROR, "disable");
        }
        RemotingCommand::success().with_body(f(&self.route).encode())
    }

    fn topics_by_cluster(&self, req: &RemotingCommand) -> Response {
        let h: GetTopicsByClusterRequestHeader = req.decode_header()?;
        Ok(self.topic_list_gated(|r| r.topics_by_cluster(&h.cluster)))
    }

    fn delete_topic(&self, req: &RemotingCommand) -> Response {
        let h: DeleteTopicFromNamesrvRequestHeader = req.decode_header()?;
        self.route.delete_topic(&h.topic, h.cluster_name.as_deref());
        tracing::info!(topic = %h.topic, cluster = ?h.cluster_name, "topic deleted");
        Ok(RemotingCommand::success())
    }

    fn register_topic(&self, req: &RemotingCommand) -> Response {
        let h: RegisterTopicRequestHeader = req.decode_header()?;
        if !req.body.is_empty() {
            let route = TopicRouteData::decode(&req.body)?;
            self.route.register_topic(&h.topic, &route.queue_datas);
        }
        Ok(RemotingCommand::success())
    }

    fn update_config(&self, req: &RemotingCommand) -> Response {
        let text = std::str::from_utf8(&req.body)
            .map_err(|_| RemotingError::BadBody("config body is not UTF-8".into()))?;
        let props = parse_properties(text).map_err(|e| RemotingError::BadBody(e.to_string()))?;
        let mut config = self.config.write();
        let black = config.black_list();
        if let Some(key) = props.keys().find(|k| black.contains(k)) {
            return Ok(RemotingCommand::error(
                ResponseCode::NO_PERMISSION,
                format!("Can not update config in black list: {key}"),
            ));
        }
        // Validate everything before changing anything.
        let mut updated = config.clone();
        match updated.apply(&props) {
            Ok(unknown) if !unknown.is_empty() => {
                tracing::warn!(
                    ?unknown,
                    "ignoring unknown config keys in UPDATE_NAMESRV_CONFIG"
                )
            }
            Ok(_) => {}
            Err(e) => {
                return Ok(RemotingCommand::error(
                    ResponseCode::INVALID_PARAMETER,
                    e.to_string(),
                ))
            }
        }
        *config = updated;
        let path = std::path::PathBuf::from(&config.config_store_path);
        let body = config.to_properties_text().into_bytes();
        drop(config);
        tracing::info!(?props, "name server config updated");
        tokio::task::spawn_blocking(move || {
            if let Err(e) = write_atomically(&path, &body) {
                tracing::error!(path = %path.display(), error = %e, "cannot persist name server config");
            }
        });
        Ok(RemotingCommand::success())
    }
}

/// Adapter so the remoting server can drive the processor.
pub struct NamesrvService(pub Arc<NamesrvProcessor>);

impl RequestProcessor for NamesrvService {
    fn process(
        self: Arc<Self>,
        conn: Connection,
        request: RemotingCommand,
    ) -> BoxFuture<'static, Option<RemotingCommand>> {
        let started = Instant::now();
        if let Err(denied) = self.0.gate.check(&request, conn.peer_addr().ip()) {
            tracing::warn!(code = request.code, name = request.code_name(), peer = %conn.peer_addr(), ?denied, "request refused");
            self.0
                .metrics
                .denied
                .with_label_values(&[request.code_name(), denied.kind()])
                .inc();
            let resp = (!request.is_oneway()).then(|| denied.response());
            return Box::pin(async move { resp });
        }
        let resp = self.0.handle(Some(&conn), &request);
        self.0
            .metrics
            .requests
            .with_label_values(&[request.code_name()])
            .observe(started.elapsed().as_secs_f64());
        Box::pin(async move { Some(resp) })
    }

    fn connection_closed(&self, conn: &Connection) {
        self.0.route.connection_closed(conn);
    }
}
