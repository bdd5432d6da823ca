//! A broker stand-in: registers with name servers like a Java broker, answers the admin
//! requests with bodies shaped as Java's, and records every request it receives.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use rmq_remoting::config::{parse_properties, properties_to_text};
use rmq_remoting::header::{
    GetBrokerConfigResponseHeader, GetConsumeStatsRequestHeader,
    GetConsumerConnectionListRequestHeader, GetTopicStatsInfoRequestHeader,
    QueryMessageRequestHeader, QueryMessageResponseHeader, RegisterBrokerRequestHeader,
    ViewMessageRequestHeader,
};
use rmq_remoting::message::MessageExt;
use rmq_remoting::protocol::admin::{
    Connection as ClientConnection, ConsumeStats, ConsumerConnection, OffsetWrapper, TopicOffset,
    TopicStatsTable,
};
use rmq_remoting::protocol::heartbeat::{
    ConsumeType, MessageModel, MessageQueue, SubscriptionData,
};
use rmq_remoting::protocol::topic::{RegisterBrokerBody, TopicConfig, TopicConfigSerializeWrapper};
use rmq_remoting::protocol::{DataVersion, KvTable};
use rmq_remoting::{
    Connection, ConnectionConfig, JsonBody, RemotingClient, RemotingCommand, RemotingServer,
    RequestCode, RequestProcessor, ResponseCode,
};

use crate::harness::TIMEOUT;

/// The consumer group the fake brokers know.
pub const GROUP: &str = "G";
/// Time stamps the fake brokers report.
pub const STAMP: i64 = 1_700_000_000_000;

/// What a fake broker holds and received.
pub struct BrokerState {
    pub name: String,
    pub topics: Vec<(String, i32)>,
    pub received: Mutex<Vec<RemotingCommand>>,
    pub messages: Mutex<Vec<MessageExt>>,
    pub config: Mutex<BTreeMap<String, String>>,
    /// Request code → the error (code, remark) to answer it with.
    pub failures: Mutex<HashMap<i32, (i32, String)>>,
}

pub struct FakeBroker {
    pub state: Arc<BrokerState>,
    pub addr: String,
    _server: RemotingServer,
    /// Holds the registrations: the name server drops a broker whose connection closes.
    _registrar: RemotingClient,
}

struct Processor(Arc<BrokerState>);

impl RequestProcessor for Processor {
    fn process(
        self: Arc<Self>,
        _conn: Connection,
        request: RemotingCommand,
    ) -> BoxFuture<'static, Option<RemotingCommand>> {
        self.0.received.lock().unwrap().push(request.clone());
        let resp = self.0.answer(&request);
        Box::pin(async move { Some(resp) })
    }
}

impl FakeBroker {
    /// Binds a loopback port and registers as `cluster`/`name`/`id` with every name server.
    pub async fn start(
        cluster: &str,
        name: &str,
        id: i64,
        namesrvs: &[&str],
        topics: &[(&str, i32)],
    ) -> FakeBroker {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr").to_string();
        let mut config = BTreeMap::new();
        for (k, v) in [
            ("brokerClusterName", cluster),
            ("brokerName", name),
            ("brokerId", &id.to_string()),
            ("flushDiskType", "ASYNC_FLUSH"),
            ("listenPort", addr.rsplit(':').next().unwrap_or_default()),
        ] {
            config.insert(k.to_string(), v.to_string());
        }
        let state = Arc::new(BrokerState {
            name: name.into(),
            topics: topics.iter().map(|(t, q)| (t.to_string(), *q)).collect(),
            received: Mutex::new(Vec::new()),
            messages: Mutex::new(Vec::new()),
            config: Mutex::new(config),
            failures: Mutex::new(HashMap::new()),
        });
        let server = RemotingServer::serve(
            listener,
            Arc::new(Processor(state.clone())),
            ConnectionConfig::default(),
        );
        let registrar = rmq_testkit::admin_client();
        for ns in namesrvs {
            register(&registrar, ns, cluster, name, id, &addr, topics).await;
        }
        FakeBroker {
            state,
            addr,
            _server: server,
            _registrar: registrar,
        }
    }

    /// Every request received with `code`.
    pub fn requests(&self, code: i32) -> Vec<RemotingCommand> {
        self.state
            .received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.code == code)
            .cloned()
            .collect()
    }

    /// Answers `request_code` with `code` and `remark` from now on.
    pub fn fail(&self, request_code: i32, code: i32, remark: &str) {
        self.state
            .failures
            .lock()
            .unwrap()
            .insert(request_code, (code, remark.to_string()));
    }

    /// Stores a message of topic `T` at commit-log offset `offset`, as this broker stored it.
    pub fn store_message(
        &self,
        offset: i64,
        queue_offset: i64,
        props: &[(&str, &str)],
    ) -> MessageExt {
        let store: SocketAddr = self.addr.parse().expect("socket addr");
        let msg = MessageExt {
            queue_id: 1,
            queue_offset,
            commit_log_offset: offset,
            born_timestamp: STAMP,
            born_host: "127.0.0.1:40000".parse().unwrap(),
            store_timestamp: STAMP + 5,
            store_host: store,
            body: Bytes::from_static(b"hello body"),
            topic: "T".into(),
            properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        self.state.messages.lock().unwrap().push(msg.clone());
        msg
    }
}

async fn register(
    client: &RemotingClient,
    namesrv: &str,
    cluster: &str,
    name: &str,
    id: i64,
    addr: &str,
    topics: &[(&str, i32)],
) {
    let body = RegisterBrokerBody {
        topic_config_serialize_wrapper: TopicConfigSerializeWrapper {
            topic_config_table: topics
                .iter()
                .map(|(t, q)| (t.to_string(), TopicConfig::new(*t, *q, 6)))
                .collect(),
            data_version: DataVersion {
                state_version: 0,
                timestamp: STAMP,
                counter: 1,
            },
            ..Default::default()
        },
        filter_server_list: vec![],
    }
    .encode();
    let header = RegisterBrokerRequestHeader {
        broker_name: name.into(),
        broker_addr: addr.into(),
        cluster_name: cluster.into(),
        ha_server_addr: addr.into(),
        broker_id: id,
        heartbeat_timeout_millis: None,
        enable_acting_master: Some(false),
        compressed: Some(false),
        body_crc32: None,
    };
    let req =
        RemotingCommand::request_with_header(RequestCode::REGISTER_BROKER, &header).with_body(body);
    client
        .invoke(namesrv, req, TIMEOUT)
        .await
        .expect("register answered")
        .ensure_success()
        .expect("register succeeds");
}

impl BrokerState {
    fn serves(&self, topic: &str) -> Option<i32> {
        self.topics
            .iter()
            .find(|(t, _)| t == topic)
            .map(|(_, q)| *q)
    }

    fn answer(&self, req: &RemotingCommand) -> RemotingCommand {
        if let Some((code, remark)) = self.failures.lock().unwrap().get(&req.code) {
            return RemotingCommand::error(*code, remark.clone());
        }
        match self.answer_ok(req) {
            Ok(resp) => resp,
            Err(e) => RemotingCommand::error(ResponseCode::SYSTEM_ERROR, e.to_string()),
        }
    }

    fn answer_ok(&self, req: &RemotingCommand) -> rmq_remoting::Result<RemotingCommand> {
        Ok(match req.code {
            RequestCode::UPDATE_AND_CREATE_TOPIC
            | RequestCode::DELETE_TOPIC_IN_BROKER
            | RequestCode::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => RemotingCommand::success(),
            RequestCode::GET_TOPIC_STATS_INFO => {
                let h: GetTopicStatsInfoRequestHeader = req.decode_header()?;
                let Some(queues) = self.serves(&h.topic) else {
                    return Ok(RemotingCommand::error(
                        ResponseCode::TOPIC_NOT_EXIST,
                        format!("topic[{}] not exist", h.topic),
                    ));
                };
                let mut table = TopicStatsTable {
                    topic_put_tps: 1.5,
                    ..Default::default()
                };
                for q in 0..queues {
                    table.offset_table.insert(
                        self.queue(&h.topic, q),
                        TopicOffset {
                            min_offset: 0,
                            max_offset: 100 + q as i64,
                            last_update_timestamp: STAMP + q as i64,
                        },
                    );
                }
                RemotingCommand::success().with_body(table.encode_fastjson())
            }
            RequestCode::GET_CONSUME_STATS => {
                let h: GetConsumeStatsRequestHeader = req.decode_header()?;
                let mut stats = ConsumeStats::default();
                if h.consumer_group == GROUP {
                    stats.consume_tps = 2.5;
                    for q in 0..self.serves("T").unwrap_or(0) {
                        let base = 100 + q as i64;
                        stats.offset_table.insert(
                            self.queue("T", q),
                            OffsetWrapper {
                                broker_offset: base,
                                consumer_offset: base - 10,
                                pull_offset: base - 5,
                                last_timestamp: if q == 0 { 0 } else { STAMP },
                            },
                        );
                    }
                }
                RemotingCommand::success().with_body(stats.encode_fastjson())
            }
            RequestCode::GET_CONSUMER_CONNECTION_LIST => {
                let h: GetConsumerConnectionListRequestHeader = req.decode_header()?;
                if h.consumer_group != GROUP {
                    return Ok(RemotingCommand::error(
                        ResponseCode::CONSUMER_NOT_ONLINE,
                        format!("the consumer group[{}] not online", h.consumer_group),
                    ));
                }
                let mut cc = ConsumerConnection {
                    consume_type: ConsumeType::ConsumePassively,
                    message_model: MessageModel::Clustering,
                    ..Default::default()
                };
                cc.connection_set.push(ClientConnection {
                    client_id: "10.1.2.3@4242".into(),
                    client_addr: "10.1.2.3:50000".into(),
                    language: "JAVA".into(),
                    version: 401,
                });
                cc.subscription_table.insert(
                    "T".into(),
                    SubscriptionData {
                        topic: "T".into(),
                        ..Default::default()
                    },
                );
                RemotingCommand::success().with_body(cc.encode())
            }
            RequestCode::QUERY_TOPIC_CONSUME_BY_WHO => {
                RemotingCommand::success().with_body(format!(r#"{{"groupList":["{GROUP}"]}}"#))
            }
            RequestCode::GET_CONSUMER_RUNNING_INFO => {
                // fastjson writes `mqTable` with MessageQueue objects as keys.
                let body = r#"{"jstack":"","mqTable":{{"brokerName":"broker-a","queueId":0,"topic":"T"}:{"locked":false},{"brokerName":"broker-b","queueId":0,"topic":"T"}:{"locked":false}},"properties":{},"statusTable":{},"subscriptionSet":[]}"#;
                RemotingCommand::success().with_body(body)
            }
            RequestCode::GET_BROKER_RUNTIME_INFO => {
                let mut t = KvTable::default();
                for (k, v) in [
                    ("brokerVersionDesc", "V5_3_3"),
                    ("brokerVersion", "479"),
                    ("putTps", "12.5 12.0 11.0"),
                    ("getTransferredTps", "3.25 3.0 2.0"),
                    ("sendThreadPoolQueueSize", "0"),
                    ("sendThreadPoolQueueHeadWaitTimeMills", "0"),
                    ("pullThreadPoolQueueSize", "0"),
                    ("pullThreadPoolQueueHeadWaitTimeMills", "0"),
                    ("pageCacheLockTimeMills", "0"),
                    ("earliestMessageTimeStamp", &STAMP.to_string()),
                    ("commitLogDiskRatio", "0.25"),
                    ("brokerActive", "true"),
                    ("msgPutTotalYesterdayMorning", "10"),
                    ("msgPutTotalTodayMorning", "30"),
                    ("msgPutTotalTodayNow", "35"),
                    ("msgGetTotalYesterdayMorning", "1"),
                    ("msgGetTotalTodayMorning", "2"),
                    ("msgGetTotalTodayNow", "4"),
                ] {
                    t.table.insert(k.into(), v.into());
                }
                RemotingCommand::success().with_body(t.encode())
            }
            RequestCode::GET_BROKER_CONFIG => {
                let text = properties_to_text(&self.config.lock().unwrap());
                let header = GetBrokerConfigResponseHeader {
                    version: String::from_utf8(DataVersion::now().encode()).unwrap_or_default(),
                };
                RemotingCommand::success()
                    .with_header(&header)
                    .with_body(text.into_bytes())
            }
            RequestCode::UPDATE_BROKER_CONFIG => {
                let props = parse_properties(&String::from_utf8_lossy(&req.body))
                    .map_err(|e| rmq_remoting::RemotingError::BadBody(e.to_string()))?;
                self.config.lock().unwrap().extend(props);
                RemotingCommand::success()
            }
            RequestCode::VIEW_MESSAGE_BY_ID => {
                let h: ViewMessageRequestHeader = req.decode_header()?;
                let msgs = self.messages.lock().unwrap();
                match msgs.iter().find(|m| m.commit_log_offset == h.offset) {
                    Some(m) => RemotingCommand::success().with_body(m.encode()?.freeze()),
                    None => RemotingCommand::error(
                        ResponseCode::SYSTEM_ERROR,
                        "can not find message by the offset",
                    ),
                }
            }
            RequestCode::QUERY_MESSAGE => {
                let h: QueryMessageRequestHeader = req.decode_header()?;
                let unique =
                    req.ext_fields.get("_UNIQUE_KEY_QUERY").map(String::as_str) == Some("true");
                let msgs = self.messages.lock().unwrap();
                let mut body = BytesMut::new();
                for m in msgs.iter().filter(|m| m.topic == h.topic) {
                    let hit = if unique {
                        m.uniq_key() == Some(h.key.as_str())
                    } else {
                        m.keys().any(|k| k == h.key)
                    };
                    if hit {
                        body.extend_from_slice(&m.encode()?);
                    }
                }
                if body.is_empty() {
                    return Ok(RemotingCommand::error(
                        ResponseCode::QUERY_NOT_FOUND,
                        "can not find message, maybe time range not correct",
                    ));
                }
                RemotingCommand::success()
                    .with_header(&QueryMessageResponseHeader {
                        index_last_update_timestamp: STAMP,
                        index_last_update_phyoffset: 0,
                    })
                    .with_body(body.freeze())
            }
            other => RemotingCommand::not_supported(other),
        })
    }

    fn queue(&self, topic: &str, queue_id: i32) -> MessageQueue {
        MessageQueue {
            topic: topic.into(),
            broker_name: self.name.clone(),
            queue_id,
        }
    }
}
