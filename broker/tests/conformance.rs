//! Conformance with real clients' frames: every request in `tests/corpus/*.toml`, written as
//! each RocketMQ client writes it (read from the client's source: see `tests/corpus/README.md`),
//! is replayed byte for byte over TCP to a real name server and broker on 127.0.0.1, and the
//! response and what the broker stored are checked. Each client runs its own scenario
//! (routes, heartbeats, sends of every kind, offsets, pulls with a broker-side tag filter,
//! send-back, transactions, locks, queries, unregister) and every failure is reported with the
//! frame and the client source it came from.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use rmq_broker::broker::BrokerInner;
use rmq_broker::Broker;
use rmq_nameserver::NameServer;
use rmq_remoting::header::*;
use rmq_remoting::message::{
    decode_offset_msg_id, property, MessageExt, NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR,
};
use rmq_remoting::protocol::route::TopicRouteData;
use rmq_remoting::{
    RemotingClient, RemotingCodec, RemotingCommand, RequestCode, ResponseCode, SerializeType,
};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

const T: Duration = Duration::from_secs(10);
const CLUSTER: &str = "DefaultCluster";
const BROKER_NAME: &str = "broker-conf";
/// The subscription every corpus consumer holds on `${topic}`.
const SUBSCRIBED: [&str; 2] = ["A", "C"];

// ---------------------------------------------------------------------------------------------
// The corpus

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CorpusFile {
    client: String,
    describes: String,
    language: String,
    notes: String,
    frame: Vec<Frame>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Frame {
    op: String,
    name: String,
    source: String,
    serialize: String,
    #[serde(default)]
    oneway: bool,
    header: String,
    body: Option<String>,
    #[serde(default)]
    batch: Vec<BatchSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchSpec {
    #[serde(default)]
    flag: i32,
    #[serde(default)]
    properties: String,
    #[serde(default)]
    body: String,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn load(file: &str) -> CorpusFile {
    let path = corpus_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let corpus: CorpusFile = toml::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    assert!(!corpus.frame.is_empty(), "{file}: no frames");
    assert!(
        !corpus.describes.is_empty() && !corpus.language.is_empty() && !corpus.notes.is_empty(),
        "{file}: describes, language and notes say where the frames come from"
    );
    corpus
}

/// Fills `${name}` placeholders; an unknown one is an error (a typo would otherwise be sent).
fn fill(template: &str, vars: &BTreeMap<&str, String>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| format!("unclosed placeholder in {template:?}"))?;
        let name = &rest[start + 2..start + end];
        let value = vars
            .get(name)
            .ok_or_else(|| format!("unknown placeholder ${{{name}}}"))?;
        out.push_str(value);
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Java's `MessageDecoder#string2messageProperties`, written out here on its own (not the
/// library's parser, which is what is under test): pairs split at `\x02`, a pair of at least
/// three characters split at its first `\x01`, name and value non-empty, last value wins.
fn java_properties(s: &str) -> HashMap<String, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut map = HashMap::new();
    let mut index = 0;
    while index < chars.len() {
        let end = (index..chars.len())
            .find(|&i| chars[i] == '\u{2}')
            .unwrap_or(chars.len());
        if end - index >= 3 {
            if let Some(sep) = (index..chars.len()).find(|&i| chars[i] == '\u{1}') {
                if sep > index && sep < end - 1 {
                    map.insert(
                        chars[index..sep].iter().collect(),
                        chars[sep + 1..end].iter().collect(),
                    );
                }
            }
        }
        index = end + 1;
    }
    map
}

/// An extFields value as a number, whether the client wrote text or a JSON number.
fn ext_i64(ext: &serde_json::Map<String, serde_json::Value>, keys: &[&str]) -> Option<i64> {
    keys.iter().find_map(|k| match ext.get(*k)? {
        serde_json::Value::String(s) => s.trim().parse().ok(),
        v => v.as_i64(),
    })
}

/// The properties string of each record in a pull body, as stored (raw bytes), walking
/// RocketMQ's record layout independently of the library's decoder.
fn raw_properties(mut body: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let int = |b: &[u8], at: usize, n: usize| -> Result<i64, String> {
        let bytes = b.get(at..at + n).ok_or("record truncated")?;
        Ok(bytes.iter().fold(0i64, |acc, x| (acc << 8) | *x as i64))
    };
    let mut out = Vec::new();
    while !body.is_empty() {
        let total = int(body, 0, 4)? as usize;
        let rec = body.get(..total).ok_or("record longer than the body")?;
        let v2 = int(rec, 4, 4)? as u32 == 0xDAA3_20AB;
        let sys_flag = int(rec, 36, 4)?;
        let born = if sys_flag & 0x10 != 0 { 20 } else { 8 };
        let stored = if sys_flag & 0x20 != 0 { 20 } else { 8 };
        let mut at = 40 + 8 + born + 8 + stored + 4 + 8;
        at += 4 + int(rec, at, 4)? as usize;
        let topic_len = if v2 { 2 } else { 1 };
        at += topic_len + int(rec, at, topic_len)? as usize;
        let props_len = int(rec, at, 2)? as usize;
        out.push(
            rec.get(at + 2..at + 2 + props_len)
                .ok_or("properties truncated")?
                .to_vec(),
        );
        body = &body[total..];
    }
    Ok(out)
}

/// One item of a batch as the client sent it.
struct SentItem {
    body: Bytes,
    properties: HashMap<String, String>,
}

/// One frame made ready to send: its bytes and what the harness reads from it.
struct Prepared {
    bytes: Vec<u8>,
    opaque: i32,
    /// The ONEWAY flag is set: the broker must not answer.
    oneway: bool,
    /// The header's extFields as the client wrote them (JSON values, not yet text).
    ext: serde_json::Map<String, serde_json::Value>,
    /// The client's version (MQVersion ordinal).
    version: i64,
    /// The properties string the client sent, if any (`properties` or V2 `i`).
    properties: Option<String>,
    batch: Vec<SentItem>,
    body: Bytes,
}

fn prepare(frame: &Frame, vars: &BTreeMap<&str, String>) -> Result<Prepared, String> {
    let text = fill(&frame.header, vars)?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("header is not JSON: {e}"))?;
    let opaque = json["opaque"]
        .as_i64()
        .ok_or("header has no numeric opaque")? as i32;
    let flag = json["flag"].as_i64().unwrap_or(0);
    let version = json["version"].as_i64().unwrap_or(0);
    let ext = json["extFields"].as_object().cloned().unwrap_or_default();
    let properties = ["properties", "i"]
        .iter()
        .find_map(|k| ext.get(*k).and_then(|v| v.as_str()).map(String::from));
    let mut batch = Vec::new();
    let body = if !frame.batch.is_empty() {
        // Encoded here (MessageDecoder#encodeMessages' layout) so each item's properties
        // string goes out exactly as the client writes it.
        let mut body = BytesMut::new();
        for spec in &frame.batch {
            let item_body = fill(&spec.body, vars)?;
            let props = fill(&spec.properties, vars)?;
            let total = 20 + item_body.len() + 2 + props.len();
            body.put_i32(total as i32);
            body.put_i32(0);
            body.put_i32(0);
            body.put_i32(spec.flag);
            body.put_i32(item_body.len() as i32);
            body.put_slice(item_body.as_bytes());
            body.put_i16(props.len() as i16);
            body.put_slice(props.as_bytes());
            batch.push(SentItem {
                body: Bytes::from(item_body),
                properties: java_properties(&props),
            });
        }
        body.freeze()
    } else {
        Bytes::from(fill(frame.body.as_deref().unwrap_or(""), vars)?)
    };
    let header = match frame.serialize.as_str() {
        "json" => text.into_bytes(),
        "rocketmq" => {
            let mut cmd =
                RemotingCommand::decode_header_bytes(SerializeType::Json, text.as_bytes())
                    .map_err(|e| format!("header: {e}"))?;
            cmd.serialize_type = SerializeType::RocketMq;
            cmd.encode_header()
        }
        other => return Err(format!("unknown serialize {other:?}")),
    };
    let serialize = if frame.serialize == "rocketmq" {
        1u32
    } else {
        0
    };
    let mut bytes = Vec::with_capacity(8 + header.len() + body.len());
    bytes.extend_from_slice(&((4 + header.len() + body.len()) as u32).to_be_bytes());
    bytes.extend_from_slice(&((serialize << 24) | header.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&body);
    let oneway = flag & 2 != 0;
    if oneway != frame.oneway {
        return Err(format!(
            "`oneway = {}` disagrees with the header's flag {flag}",
            frame.oneway
        ));
    }
    Ok(Prepared {
        bytes,
        opaque,
        oneway,
        ext,
        version,
        properties,
        batch,
        body,
    })
}

// ---------------------------------------------------------------------------------------------
// A raw connection, as the client's own

struct Wire {
    write: OwnedWriteHalf,
    read: FramedRead<OwnedReadHalf, RemotingCodec>,
}

impl Wire {
    async fn connect(addr: &str) -> Wire {
        let s = TcpStream::connect(addr).await.expect("connect");
        s.set_nodelay(true).unwrap();
        let (r, w) = s.into_split();
        Wire {
            write: w,
            read: FramedRead::new(r, RemotingCodec::default()),
        }
    }

    /// Sends a prepared frame; the response, or `None` for a oneway one (checked: the broker
    /// sends nothing for it before answering the next request on this connection).
    async fn exchange(&mut self, p: &Prepared) -> Result<Option<RemotingCommand>, String> {
        self.write
            .write_all(&p.bytes)
            .await
            .map_err(|e| format!("write: {e}"))?;
        if !p.oneway {
            return self.response(p.opaque).await.map(Some);
        }
        // A sentinel request on the same connection: its answer must be the next response.
        let mut sentinel = RemotingCommand::request(RequestCode::GET_BROKER_RUNTIME_INFO);
        sentinel.opaque = p.opaque.wrapping_add(1_000_000);
        let mut buf = BytesMut::new();
        tokio_util::codec::Encoder::encode(
            &mut RemotingCodec::default(),
            sentinel.clone(),
            &mut buf,
        )
        .map_err(|e| e.to_string())?;
        self.write
            .write_all(&buf)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let next = self.next_response().await?;
        if next.opaque != sentinel.opaque {
            return Err(format!(
                "a ONEWAY request was answered (code {} opaque {})",
                next.code, next.opaque
            ));
        }
        Ok(None)
    }

    /// The next response on the connection, skipping requests the broker sends the client
    /// (NOTIFY_CONSUMER_IDS_CHANGED, CHECK_TRANSACTION_STATE).
    async fn next_response(&mut self) -> Result<RemotingCommand, String> {
        loop {
            let cmd = tokio::time::timeout(T, self.read.next())
                .await
                .map_err(|_| "no response within 10 s".to_string())?
                .ok_or("connection closed by the broker")?
                .map_err(|e| format!("bad frame from the broker: {e}"))?;
            if cmd.is_response() {
                return Ok(cmd);
            }
        }
    }

    async fn response(&mut self, opaque: i32) -> Result<RemotingCommand, String> {
        let r = self.next_response().await?;
        if r.opaque != opaque {
            return Err(format!("response opaque {} for request {opaque}", r.opaque));
        }
        Ok(r)
    }
}

// ---------------------------------------------------------------------------------------------
// The cluster

async fn start(dir: &Path) -> (NameServer, Broker) {
    let namesrv = rmq_testkit::start_namesrv(dir).await;
    let mut s = rmq_testkit::broker_settings(dir, &namesrv.local_addr().to_string(), BROKER_NAME);
    s.broker.broker_cluster_name = CLUSTER.into();
    // Checks would race the harness's own END_TRANSACTION frames.
    s.broker.transaction_time_out = 600_000;
    s.broker.transaction_check_interval = 600_000;
    // Every level one second: delayed sends and retries arrive within the test.
    s.store.message_delay_level = vec!["1s"; 18].join(" ");
    let broker = Broker::start(s).await.unwrap();
    (namesrv, broker)
}

// ---------------------------------------------------------------------------------------------
// One client's run

/// A message the broker stored for a frame, with the properties the client gave it.
#[derive(Debug, Clone)]
struct Stored {
    record: MessageExt,
    client_props: HashMap<String, String>,
}

struct Run {
    client: String,
    frames: Vec<Frame>,
    vars: BTreeMap<&'static str, String>,
    inner: Arc<BrokerInner>,
    broker_addr: String,
    ns_addr: String,
    wire: Wire,
    admin: RemotingClient,
    /// Messages in `${topic}`, in the order stored.
    stored: Vec<Stored>,
    failures: Vec<String>,
    done: Vec<bool>,
    next_opaque: i32,
}

impl Run {
    fn frames(&self, op: &str) -> Vec<(usize, Frame)> {
        self.frames
            .iter()
            .enumerate()
            .filter(|(_, f)| f.op == op)
            .map(|(i, f)| (i, f.clone()))
            .collect()
    }

    fn fail(&mut self, i: usize, msg: impl std::fmt::Display) {
        let f = &self.frames[i];
        self.failures.push(format!(
            "[{}] {} \"{}\" ({}): {msg}",
            self.client, f.op, f.name, f.source
        ));
    }

    fn topic(&self) -> String {
        self.vars["topic"].clone()
    }

    /// Vars for one frame: the run's, a fresh opaque and UNIQ_KEY, and `extra`.
    fn vars_for(&mut self, extra: &[(&'static str, String)]) -> BTreeMap<&'static str, String> {
        self.next_opaque += 1;
        let mut v = self.vars.clone();
        v.insert("opaque", self.next_opaque.to_string());
        v.insert("now", rmq_remoting::util::now_millis().to_string());
        v.insert(
            "uniq_key",
            rmq_remoting::message::create_uniq_id(std::net::Ipv4Addr::LOCALHOST),
        );
        for (k, val) in extra {
            v.insert(k, val.clone());
        }
        v
    }

    /// Prepares and sends frame `i`; marks it done. Errors are recorded as failures.
    async fn send_frame(
        &mut self,
        i: usize,
        extra: &[(&'static str, String)],
    ) -> Option<(Prepared, Option<RemotingCommand>)> {
        self.done[i] = true;
        let vars = self.vars_for(extra);
        let frame = self.frames[i].clone();
        let p = match prepare(&frame, &vars) {
            Ok(p) => p,
            Err(e) => {
                self.fail(i, e);
                return None;
            }
        };
        match self.wire.exchange(&p).await {
            Ok(r) => Some((p, r)),
            Err(e) => {
                self.fail(i, e);
                // The connection may be unusable now; the client would reconnect.
                self.wire = Wire::connect(&self.broker_addr).await;
                None
            }
        }
    }

    /// Sends frame `i` and expects `code` (any code when the frame is oneway by flag).
    async fn expect(
        &mut self,
        i: usize,
        extra: &[(&'static str, String)],
        code: i32,
    ) -> Option<(Prepared, Option<RemotingCommand>)> {
        let (p, r) = self.send_frame(i, extra).await?;
        if let Some(r) = &r {
            if r.code != code {
                self.fail(
                    i,
                    format!(
                        "answered {} ({}) {:?}, expected {code}",
                        r.code,
                        r.code_name(),
                        r.remark
                    ),
                );
                return None;
            }
        }
        Some((p, r))
    }

    /// The properties a stored copy of the client's message must have: every client property
    /// with its exact value, `CLUSTER` this broker's cluster, a `UNIQ_KEY`, and no value
    /// holding a separator (the symptom of a property appended without one).
    fn check_props(
        &mut self,
        i: usize,
        what: &str,
        stored: &MessageExt,
        client: &HashMap<String, String>,
        overridden: &[&str],
    ) {
        let got = &stored.properties;
        for (k, v) in client {
            if overridden.contains(&k.as_str()) {
                continue;
            }
            if got.get(k) != Some(v) {
                self.fail(
                    i,
                    format!(
                        "{what}: property {k:?} stored as {:?}, the client sent {v:?}",
                        got.get(k)
                    ),
                );
            }
        }
        if got.get(property::CLUSTER).map(String::as_str) != Some(CLUSTER) {
            self.fail(
                i,
                format!("{what}: CLUSTER = {:?}", got.get(property::CLUSTER)),
            );
        }
        if got
            .get(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX)
            .is_none_or(|u| u.is_empty())
        {
            self.fail(i, format!("{what}: no UNIQ_KEY"));
        }
        for (k, v) in got {
            if k.contains([NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR])
                || v.contains([NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR])
            {
                self.fail(
                    i,
                    format!("{what}: property {k:?} = {v:?} holds a separator"),
                );
            }
        }
    }

    fn record_at(&self, offset: i64) -> Option<MessageExt> {
        self.inner.store.look_message_by_offset(offset)
    }

    /// Every message of `topic` (all queues), once what was appended is dispatched.
    async fn messages_of(&self, topic: &str) -> Vec<MessageExt> {
        let store = &self.inner.store;
        let deadline = Instant::now() + T;
        while store.dispatched_phy_offset() < store.max_phy_offset() {
            assert!(
                Instant::now() < deadline,
                "the store's dispatch did not catch up in 10 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut out = Vec::new();
        for q in 0..16 {
            let max = store.max_offset_in_queue(topic, q, true);
            for off in store.min_offset_in_queue(topic, q)..max {
                if let Some(m) = store
                    .queue_unit(topic, q, off)
                    .and_then(|u| store.look_message_by_offset(u.commit_log_offset))
                {
                    out.push(m);
                }
            }
        }
        out
    }

    /// Waits for a message of `topic` (any queue) matching `f`.
    async fn wait_for(&self, topic: &str, f: impl Fn(&MessageExt) -> bool) -> Option<MessageExt> {
        let deadline = Instant::now() + T;
        while Instant::now() < deadline {
            if let Some(m) = self.messages_of(topic).await.into_iter().find(|m| f(m)) {
                return Some(m);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// The records a send response names (`msgId`, comma-separated for batches).
    fn records_of(&mut self, i: usize, r: &RemotingCommand) -> Vec<MessageExt> {
        let ids = r.ext_fields.get("msgId").cloned().unwrap_or_default();
        if !r.ext_fields.contains_key("queueId") || !r.ext_fields.contains_key("queueOffset") {
            self.fail(
                i,
                format!(
                    "send response lacks queueId/queueOffset: {:?}",
                    r.ext_fields
                ),
            );
        }
        let mut out = Vec::new();
        for id in ids.split(',').filter(|s| !s.is_empty()) {
            match decode_offset_msg_id(id) {
                Ok((_, offset)) if id.len() == 32 => match self.record_at(offset) {
                    Some(m) => out.push(m),
                    None => self.fail(i, format!("msgId {id}: nothing stored at {offset}")),
                },
                _ => self.fail(i, format!("msgId {id:?} is not a 32-digit IPv4 offset id")),
            }
        }
        out
    }

    // ----- the scenario

    async fn routes(&mut self, exists: bool) {
        for (i, _) in self.frames("get_route") {
            let vars = self.vars_for(&[]);
            self.done[i] = true;
            let p = match prepare(&self.frames[i].clone(), &vars) {
                Ok(p) => p,
                Err(e) => {
                    self.fail(i, e);
                    continue;
                }
            };
            let mut ns = Wire::connect(&self.ns_addr).await;
            let r = match ns.exchange(&p).await {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    self.fail(i, e);
                    continue;
                }
            };
            if !exists {
                if r.code != ResponseCode::TOPIC_NOT_EXIST {
                    self.fail(i, format!("unknown topic answered {}", r.code));
                }
                continue;
            }
            if r.code != ResponseCode::SUCCESS {
                self.fail(i, format!("answered {} {:?}", r.code, r.remark));
                continue;
            }
            match rmq_remoting::fastjson::from_slice::<TopicRouteData>(&r.body) {
                Ok(route) => {
                    let ok = route.broker_datas.iter().any(|b| {
                        b.broker_name == BROKER_NAME
                            && b.broker_addrs.values().any(|a| *a == self.broker_addr)
                    }) && route
                        .queue_datas
                        .iter()
                        .any(|q| q.broker_name == BROKER_NAME);
                    if !ok {
                        self.fail(i, format!("route lacks this broker: {route:?}"));
                    }
                }
                Err(e) => self.fail(i, format!("route body: {e}")),
            }
        }
    }

    /// The group's consumers as GET_CONSUMER_LIST_BY_GROUP lists them (RocketMQ answers
    /// SYSTEM_ERROR "no consumer for this group" for none).
    async fn consumer_listed(&self) -> Result<Vec<String>, String> {
        let req = RemotingCommand::request_with_header(
            RequestCode::GET_CONSUMER_LIST_BY_GROUP,
            &GetConsumerListByGroupRequestHeader {
                consumer_group: self.vars["consumer_group"].clone(),
            },
        );
        let r = self
            .admin
            .invoke(&self.broker_addr, req, T)
            .await
            .map_err(|e| format!("GET_CONSUMER_LIST_BY_GROUP: {e}"))?;
        if r.code == ResponseCode::SYSTEM_ERROR {
            return Ok(Vec::new());
        }
        if r.code != ResponseCode::SUCCESS {
            return Err(format!("GET_CONSUMER_LIST_BY_GROUP answered {}", r.code));
        }
        let v: serde_json::Value = serde_json::from_slice(&r.body)
            .map_err(|e| format!("GET_CONSUMER_LIST_BY_GROUP body: {e}"))?;
        Ok(v["consumerIdList"]
            .as_array()
            .ok_or("no consumerIdList")?
            .iter()
            .filter_map(|s| s.as_str().map(String::from))
            .collect())
    }

    async fn heartbeats(&mut self) {
        let mut consumer = None;
        for (i, _) in self.frames("heartbeat") {
            let Some((p, _)) = self.expect(i, &[], ResponseCode::SUCCESS).await else {
                continue;
            };
            let body: serde_json::Value = serde_json::from_slice(&p.body).unwrap_or_default();
            if body["consumerDataSet"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["groupName"] == self.vars["consumer_group"].as_str())
            }) {
                consumer = Some(i);
            }
        }
        if let Some(i) = consumer {
            let id = self.vars["client_id"].clone();
            match self.consumer_listed().await {
                Ok(l) if l.contains(&id) => {}
                other => self.fail(i, format!("{id} not listed: {other:?}")),
            }
        }
    }

    async fn query_offsets(&mut self, phase: &str) {
        for (i, _) in self.frames("query_offset") {
            let Some((_, Some(r))) = self.expect(i, &[], ResponseCode::SUCCESS).await else {
                continue;
            };
            if r.ext_fields.get("offset").map(String::as_str) != Some("0") {
                self.fail(
                    i,
                    format!(
                        "{phase}: a new group on a queue starting at 0 in memory got {:?}, not 0",
                        r.ext_fields
                    ),
                );
            }
        }
    }

    /// A single send (plain, oneway or delayed): the stored record and the client's map.
    async fn send_one(&mut self, i: usize) -> Option<(MessageExt, HashMap<String, String>)> {
        let before = self.messages_of(&self.topic()).await.len() as i64;
        let (p, r) = self.expect(i, &[], ResponseCode::SUCCESS).await?;
        let client = java_properties(p.properties.as_deref().unwrap_or(""));
        let record = match r {
            Some(r) => self.records_of(i, &r).into_iter().next()?,
            None => {
                // Oneway: the broker said nothing; the record is the queue's next one.
                let topic = self.topic();
                let found = self
                    .wait_for(&topic, |m| m.queue_id == 0 && m.queue_offset == before)
                    .await;
                match found {
                    Some(m) => m,
                    None => {
                        self.fail(i, "the oneway message was not stored");
                        return None;
                    }
                }
            }
        };
        Some((record, client))
    }

    async fn sends(&mut self) {
        let topic = self.topic();
        for op in ["send", "send.oneway"] {
            for (i, _) in self.frames(op) {
                let Some((record, client)) = self.send_one(i).await else {
                    continue;
                };
                if record.topic != topic {
                    self.fail(i, format!("stored in {} not {topic}", record.topic));
                }
                self.check_props(i, "stored", &record, &client, &[property::CLUSTER]);
                self.stored.push(Stored {
                    record,
                    client_props: client,
                });
            }
        }
        for (i, _) in self.frames("send.batch") {
            let Some((p, Some(r))) = self.expect(i, &[], ResponseCode::SUCCESS).await else {
                continue;
            };
            let records = self.records_of(i, &r);
            if records.len() != p.batch.len() {
                self.fail(
                    i,
                    format!(
                        "{} items sent, {} msgIds answered",
                        p.batch.len(),
                        records.len()
                    ),
                );
            }
            for (record, item) in records.into_iter().zip(&p.batch) {
                // Each item keeps its own properties, as RocketMQ 5 stores them (the batch's
                // own, such as the Java 5.x client's batch UNIQ_KEY, are not copied in).
                let client = item.properties.clone();
                if record.body != item.body {
                    self.fail(
                        i,
                        format!("item body {:?} stored as {:?}", item.body, record.body),
                    );
                }
                self.check_props(i, "batch item", &record, &client, &[property::CLUSTER]);
                self.stored.push(Stored {
                    record,
                    client_props: client,
                });
            }
        }
        for (i, _) in self.frames("send.delay") {
            let Some((record, client)) = self.send_one(i).await else {
                continue;
            };
            if record.topic != rmq_broker::store::SCHEDULE_TOPIC
                || record.properties.get(property::REAL_TOPIC) != Some(&topic)
            {
                self.fail(i, format!("not waiting in the schedule topic: {record:?}"));
                continue;
            }
            let uniq = record.uniq_key().unwrap_or_default().to_string();
            let Some(delivered) = self
                .wait_for(&topic, |m| m.uniq_key() == Some(uniq.as_str()))
                .await
            else {
                self.fail(i, "the delayed message was never delivered");
                continue;
            };
            self.check_props(i, "delivered", &delivered, &client, &[property::CLUSTER]);
            for k in [
                property::DELAY_TIME_LEVEL,
                property::REAL_TOPIC,
                property::REAL_QUEUE_ID,
            ] {
                if !delivered.properties.contains_key(k) {
                    self.fail(i, format!("delivered without {k}, which RocketMQ keeps"));
                }
            }
            self.stored.push(Stored {
                record: delivered,
                client_props: client,
            });
        }
    }

    async fn transactions(&mut self) {
        let topic = self.topic();
        let halves = self.frames("send.transaction");
        let ends = self.frames("end_transaction");
        let Some((half_frame, _)) = halves.first().cloned() else {
            for (i, _) in ends {
                self.fail(i, "no send.transaction frame to end");
            }
            return;
        };
        // One half for each END_TRANSACTION form (a half ends once), or one on its own.
        let rounds: Vec<Option<usize>> = if ends.is_empty() {
            vec![None]
        } else {
            ends.iter().map(|(i, _)| Some(*i)).collect()
        };
        for end in rounds {
            let Some((record, client)) = self.send_one(half_frame).await else {
                continue;
            };
            if record.topic != "RMQ_SYS_TRANS_HALF_TOPIC" {
                self.fail(half_frame, format!("the half went to {}", record.topic));
                continue;
            }
            let uniq = record.uniq_key().unwrap_or_default().to_string();
            let Some(end) = end else { continue };
            let extra = [
                ("commit_log_offset", record.commit_log_offset.to_string()),
                ("tran_state_table_offset", record.queue_offset.to_string()),
                ("msg_id", record.offset_msg_id()),
                ("uniq_key", uniq.clone()),
            ];
            if self
                .expect(end, &extra, ResponseCode::SUCCESS)
                .await
                .is_none()
            {
                continue;
            }
            let Some(committed) = self
                .wait_for(&topic, |m| m.uniq_key() == Some(uniq.as_str()))
                .await
            else {
                self.fail(end, "the committed message never reached its topic");
                continue;
            };
            self.check_props(end, "committed", &committed, &client, &[property::CLUSTER]);
            self.stored.push(Stored {
                record: committed,
                client_props: client,
            });
        }
    }

    async fn pulls(&mut self) {
        let topic = self.topic();
        // What a consumer of "A || C" must get from queue 0, in order.
        let store = &self.inner.store;
        let max = store.max_offset_in_queue(&topic, 0, true);
        let wanted: Vec<MessageExt> = (0..max)
            .filter_map(|o| {
                store
                    .queue_unit(&topic, 0, o)
                    .and_then(|u| store.look_message_by_offset(u.commit_log_offset))
            })
            .filter(|m| m.tags().is_some_and(|t| SUBSCRIBED.contains(&t)))
            .collect();
        for (i, _) in self.frames("pull") {
            if wanted.is_empty() {
                self.fail(i, "nothing tagged A or C was stored to pull");
                self.done[i] = true;
                continue;
            }
            let extra = [
                ("queue_offset", "0".to_string()),
                ("next_offset", "0".to_string()),
            ];
            let Some((_, Some(r))) = self.expect(i, &extra, ResponseCode::SUCCESS).await else {
                continue;
            };
            for k in [
                "nextBeginOffset",
                "minOffset",
                "maxOffset",
                "suggestWhichBrokerId",
            ] {
                if r.ext_fields
                    .get(k)
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_none()
                {
                    self.fail(i, format!("pull response without a numeric {k}"));
                }
            }
            let got = match MessageExt::decode_all(r.body.clone()) {
                Ok(got) => got,
                Err(e) => {
                    self.fail(i, format!("pull body: {e}"));
                    continue;
                }
            };
            if got.is_empty() {
                self.fail(i, "FOUND with no messages");
            }
            // Stored as Java brokers store them: no trailing separator (ali-ons re-sends what
            // it consumed, and a trailing one would grow an empty pair).
            match raw_properties(&r.body) {
                Ok(raw) => {
                    if raw.iter().any(|p| p.last() == Some(&2)) {
                        self.fail(i, "a stored properties string ends with \\x02");
                    }
                }
                Err(e) => self.fail(i, format!("walking the pull body: {e}")),
            }
            for (n, m) in got.iter().enumerate() {
                match wanted.get(n) {
                    Some(w) if w.commit_log_offset == m.commit_log_offset => {}
                    other => self.fail(
                        i,
                        format!(
                            "message {n} of the pull: tag {:?} at queue offset {}, expected {:?}",
                            m.tags(),
                            m.queue_offset,
                            other.map(|w| (w.tags(), w.queue_offset))
                        ),
                    ),
                }
                if let Some(s) = self
                    .stored
                    .iter()
                    .find(|s| s.record.commit_log_offset == m.commit_log_offset)
                    .cloned()
                {
                    self.check_props(i, "pulled", m, &s.client_props, &[property::CLUSTER]);
                }
            }
        }
    }

    async fn offsets(&mut self) {
        let topic = self.topic();
        let max = self.inner.store.max_offset_in_queue(&topic, 0, true);
        for (i, _) in self.frames("update_offset") {
            if self
                .expect(
                    i,
                    &[("next_offset", max.to_string())],
                    ResponseCode::SUCCESS,
                )
                .await
                .is_none()
            {
                continue;
            }
            // A oneway commit may still be in flight: poll.
            let group = self.vars["consumer_group"].clone();
            let deadline = Instant::now() + T;
            let mut committed = self.inner.offsets.query(&group, &topic, 0);
            while committed != max && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
                committed = self.inner.offsets.query(&group, &topic, 0);
            }
            if committed != max {
                self.fail(i, format!("committed offset is {committed}, not {max}"));
            }
        }
        let store = self.inner.store.clone();
        for (i, _) in self.frames("get_max_offset") {
            if let Some((_, Some(r))) = self.expect(i, &[], ResponseCode::SUCCESS).await {
                if r.ext_fields.get("offset") != Some(&max.to_string()) {
                    self.fail(i, format!("max offset {:?}, expected {max}", r.ext_fields));
                }
            }
        }
        for (i, _) in self.frames("get_min_offset") {
            if let Some((_, Some(r))) = self.expect(i, &[], ResponseCode::SUCCESS).await {
                if r.ext_fields.get("offset").map(String::as_str) != Some("0") {
                    self.fail(i, format!("min offset {:?}, expected 0", r.ext_fields));
                }
            }
        }
        let first_time = store.message_store_timestamp(&topic, 0, 0).unwrap_or(-1);
        for (i, _) in self.frames("get_earliest_time") {
            if let Some((_, Some(r))) = self.expect(i, &[], ResponseCode::SUCCESS).await {
                if r.ext_fields.get("timestamp") != Some(&first_time.to_string()) {
                    self.fail(
                        i,
                        format!("earliest {:?}, expected {first_time}", r.ext_fields),
                    );
                }
            }
        }
        for (i, _) in self.frames("search_offset") {
            if let Some((_, Some(r))) = self.expect(i, &[], ResponseCode::SUCCESS).await {
                let o = r
                    .ext_fields
                    .get("offset")
                    .and_then(|o| o.parse::<i64>().ok());
                if !o.is_some_and(|o| (0..=max).contains(&o)) {
                    self.fail(
                        i,
                        format!("search answered {:?} for a queue of {max}", r.ext_fields),
                    );
                }
            }
        }
    }

    /// The first stored message the consumer would have got (tag A or C), as a frame's target.
    fn target(&self) -> Option<Stored> {
        self.stored
            .iter()
            .find(|s| s.record.tags().is_some_and(|t| SUBSCRIBED.contains(&t)))
            .cloned()
    }

    fn target_vars(t: &Stored) -> Vec<(&'static str, String)> {
        vec![
            ("commit_log_offset", t.record.commit_log_offset.to_string()),
            ("msg_id", t.record.offset_msg_id()),
            (
                "uniq_key",
                t.record.uniq_key().unwrap_or_default().to_string(),
            ),
            ("queue_offset", t.record.queue_offset.to_string()),
        ]
    }

    /// The dead-letter path: the client's send-back of a message already reconsumed as often
    /// as its limit allows (the limit the frame carries, else the group's 16) moves it to
    /// `%DLQ%<group>` with its properties intact.
    async fn dead_letters(&mut self) {
        let topic = self.topic();
        let dlq = format!("%DLQ%{}", self.vars["consumer_group"]);
        for (i, frame) in self.frames("send_back") {
            let Some(base) = self.target() else { continue };
            let limit = prepare(&frame, &self.vars_for(&[]))
                .ok()
                .and_then(|p| {
                    p.ext.get("maxReconsumeTimes").and_then(|v| match v {
                        serde_json::Value::String(s) => s.parse::<i32>().ok(),
                        v => v.as_i64().map(|n| n as i32),
                    })
                })
                .unwrap_or(16);
            // A copy of the consumed message that has been retried `limit` times already.
            let mut put = rmq_broker::store::PutMessage::copy_of(
                &base.record,
                &base.record.properties,
                self.inner.store_host,
            );
            put.reconsume_times = limit;
            let r = self.inner.store.put_message(put).await;
            let Some(record) = r
                .append
                .and_then(|a| a.offsets.first().copied())
                .and_then(|o| self.record_at(o))
            else {
                self.fail(
                    i,
                    format!("setting up the dead-letter case: {:?}", r.status),
                );
                continue;
            };
            let exhausted = Stored {
                record,
                client_props: base.client_props.clone(),
            };
            if self
                .expect(i, &Self::target_vars(&exhausted), ResponseCode::SUCCESS)
                .await
                .is_none()
            {
                continue;
            }
            let uniq = exhausted.record.uniq_key().unwrap_or_default().to_string();
            let Some(m) = self
                .wait_for(&dlq, |m| {
                    m.uniq_key() == Some(uniq.as_str())
                        && m.properties.get(property::DLQ_ORIGIN_TOPIC) == Some(&topic)
                })
                .await
            else {
                self.fail(
                    i,
                    format!("a message past {limit} reconsumes never reached {dlq}"),
                );
                continue;
            };
            self.check_props(
                i,
                "dead letter",
                &m,
                &exhausted.client_props,
                &[
                    property::CLUSTER,
                    property::DELAY_TIME_LEVEL,
                    property::WAIT_STORE_MSG_OK,
                ],
            );
        }
    }

    async fn send_backs(&mut self) {
        let retry = self.vars["retry_topic"].clone();
        let topic = self.topic();
        for (i, _) in self.frames("send_back") {
            let Some(t) = self.target() else {
                self.fail(i, "no message to send back");
                self.done[i] = true;
                continue;
            };
            if self
                .expect(i, &Self::target_vars(&t), ResponseCode::SUCCESS)
                .await
                .is_none()
            {
                continue;
            }
            let uniq = t.record.uniq_key().unwrap_or_default().to_string();
            let Some(m) = self
                .wait_for(&retry, |m| {
                    m.uniq_key() == Some(uniq.as_str())
                        && m.properties.get(property::RETRY_TOPIC) == Some(&topic)
                })
                .await
            else {
                self.fail(i, format!("nothing reached {retry}"));
                continue;
            };
            self.check_props(
                i,
                "retry",
                &m,
                &t.client_props,
                &[
                    property::CLUSTER,
                    property::DELAY_TIME_LEVEL,
                    property::WAIT_STORE_MSG_OK,
                ],
            );
            if m.reconsume_times < 1 || !m.properties.contains_key(property::ORIGIN_MESSAGE_ID) {
                self.fail(
                    i,
                    format!("retry lacks its reconsume count or ORIGIN_MESSAGE_ID: {m:?}"),
                );
            }
        }
        // The group allows one reconsume: the limit that decides must be the client's own
        // (header maxReconsumeTimes from V3_4_9 on, as RocketMQ reads it).
        let group = self.vars["consumer_group"].clone();
        self.inner
            .groups
            .put(rmq_remoting::protocol::admin::SubscriptionGroupConfig {
                group_name: group.clone(),
                retry_max_times: 1,
                ..Default::default()
            });
        for (i, _) in self.frames("send.retry") {
            let Some(t) = self.target() else {
                self.fail(i, "no message to retry");
                self.done[i] = true;
                continue;
            };
            let Some((p, r)) = self
                .expect(i, &Self::target_vars(&t), ResponseCode::SUCCESS)
                .await
            else {
                continue;
            };
            let client = java_properties(p.properties.as_deref().unwrap_or(""));
            let limit = ext_i64(&p.ext, &["maxReconsumeTimes", "l"])
                .filter(|_| p.version >= 121)
                .unwrap_or(1);
            let reconsumed = ext_i64(&p.ext, &["reconsumeTimes", "j"]).unwrap_or(0);
            let Some(first) = r.and_then(|r| self.records_of(i, &r).into_iter().next()) else {
                continue;
            };
            // The message lands in the retry topic (after its delay) or, past its limit, in
            // the dead-letter topic: a record there that was not before, with its UNIQ_KEY.
            let uniq = first.uniq_key().unwrap_or_default().to_string();
            let dlq = format!("%DLQ%{}", self.vars["consumer_group"]);
            let mut seen = std::collections::HashSet::new();
            for topic in [&retry, &dlq] {
                seen.extend(
                    self.messages_of(topic)
                        .await
                        .iter()
                        .map(|m| m.commit_log_offset),
                );
            }
            seen.remove(&first.commit_log_offset);
            let deadline = Instant::now() + T;
            let mut found = None;
            while found.is_none() && Instant::now() < deadline {
                for topic in [&retry, &dlq] {
                    found = found.or(self.messages_of(topic).await.into_iter().find(|m| {
                        !seen.contains(&m.commit_log_offset) && m.uniq_key() == Some(uniq.as_str())
                    }));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let want = if reconsumed >= limit { &dlq } else { &retry };
            match found {
                Some(m) if &m.topic == want => {
                    self.check_props(i, "retried", &m, &client, &[property::CLUSTER])
                }
                Some(m) => self.fail(
                    i,
                    format!(
                        "reconsumed {reconsumed} of {limit}: stored in {}, not {want}",
                        m.topic
                    ),
                ),
                None => self.fail(
                    i,
                    "the retry was stored in neither the retry nor the dead-letter topic",
                ),
            }
        }
        self.inner
            .groups
            .put(rmq_remoting::protocol::admin::SubscriptionGroupConfig {
                group_name: group,
                ..Default::default()
            });
    }

    async fn locks(&mut self) {
        for (i, _) in self.frames("lock") {
            let Some((p, Some(r))) = self.expect(i, &[], ResponseCode::SUCCESS).await else {
                continue;
            };
            let asked: serde_json::Value = serde_json::from_slice(&p.body).unwrap_or_default();
            let got: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let asked = asked["mqSet"].as_array().cloned().unwrap_or_default();
            let locked = got["lockOKMQSet"].as_array().cloned().unwrap_or_default();
            if asked.is_empty() || locked.len() != asked.len() {
                self.fail(i, format!("asked to lock {asked:?}, locked {locked:?}"));
            }
        }
        let first_lock = self.frames("lock").first().map(|(i, _)| *i);
        for (i, _) in self.frames("unlock") {
            // The client holds the queue (its own lock frame), then lets it go.
            if let Some(l) = first_lock {
                self.expect(l, &[], ResponseCode::SUCCESS).await;
            }
            if self.expect(i, &[], ResponseCode::SUCCESS).await.is_none() {
                continue;
            }
            // Unlocked: another client can take the queue now (a oneway unlock may still be in
            // flight: poll), and then gives it back.
            let (group, topic) = (self.vars["consumer_group"].clone(), self.topic());
            let another = |code| {
                let body = rmq_remoting::protocol::heartbeat::LockBatchRequestBody {
                    consumer_group: group.clone(),
                    client_id: "127.0.0.1@another".into(),
                    only_this_broker: true,
                    mq_set: [rmq_remoting::protocol::heartbeat::MessageQueue {
                        topic: topic.clone(),
                        broker_name: BROKER_NAME.into(),
                        queue_id: 0,
                    }]
                    .into(),
                };
                RemotingCommand::request(code).with_body(rmq_remoting::JsonBody::encode(&body))
            };
            let deadline = Instant::now() + T;
            let mut taken = false;
            while !taken && Instant::now() < deadline {
                taken = match self
                    .admin
                    .invoke(&self.broker_addr, another(RequestCode::LOCK_BATCH_MQ), T)
                    .await
                {
                    Ok(r) => String::from_utf8_lossy(&r.body).contains(&topic),
                    Err(_) => false,
                };
                if !taken {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            if !taken {
                self.fail(i, "the queue is still locked after UNLOCK_BATCH_MQ");
            }
            let _ = self
                .admin
                .invoke(&self.broker_addr, another(RequestCode::UNLOCK_BATCH_MQ), T)
                .await;
        }
    }

    async fn lookups(&mut self) {
        for (i, _) in self.frames("get_consumer_list") {
            let Some((_, Some(r))) = self.expect(i, &[], ResponseCode::SUCCESS).await else {
                continue;
            };
            if !String::from_utf8_lossy(&r.body).contains(&self.vars["client_id"]) {
                self.fail(
                    i,
                    format!(
                        "{} not in {:?}",
                        self.vars["client_id"],
                        String::from_utf8_lossy(&r.body)
                    ),
                );
            }
        }
        for (i, _) in self.frames("view_message") {
            let Some(t) = self.target() else { continue };
            let Some((_, Some(r))) = self
                .expect(i, &Self::target_vars(&t), ResponseCode::SUCCESS)
                .await
            else {
                continue;
            };
            match MessageExt::decode_all(r.body.clone()) {
                Ok(m) if m.len() == 1 && m[0].commit_log_offset == t.record.commit_log_offset => {}
                other => self.fail(i, format!("viewed {other:?}")),
            }
        }
        for (i, _) in self.frames("query_message") {
            // By key (a send used `${key}`) or by the target's unique key.
            let Some(t) = self.target() else { continue };
            let Some((p, Some(r))) = self
                .expect(i, &Self::target_vars(&t), ResponseCode::SUCCESS)
                .await
            else {
                continue;
            };
            let wanted_key = p
                .ext
                .get("key")
                .and_then(|k| k.as_str())
                .unwrap_or_default()
                .to_string();
            match MessageExt::decode_all(r.body.clone()) {
                Ok(found)
                    if !found.is_empty()
                        && found.iter().all(|m| {
                            m.keys().any(|k| k == wanted_key)
                                || m.uniq_key() == Some(wanted_key.as_str())
                        }) => {}
                other => self.fail(i, format!("query for {wanted_key:?} found {other:?}")),
            }
        }
    }

    async fn unregister(&mut self) {
        for (i, _) in self.frames("unregister") {
            if self.expect(i, &[], ResponseCode::SUCCESS).await.is_none() {
                continue;
            }
            let id = self.vars["client_id"].clone();
            match self.consumer_listed().await {
                Ok(l) if !l.contains(&id) => {}
                other => self.fail(i, format!("after UNREGISTER_CLIENT: {other:?}")),
            }
        }
    }
}

/// Replays one client's corpus file; panics with every failure found.
async fn replay(file: &str) {
    let corpus = load(file);
    let dir = tempfile::tempdir().unwrap();
    let (namesrv, broker) = start(dir.path()).await;
    let id: String = corpus
        .client
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let broker_addr = broker.local_addr().to_string();
    let now = rmq_remoting::util::now_millis();
    let vars: BTreeMap<&'static str, String> = [
        ("topic", format!("Conf_{id}")),
        ("producer_group", format!("PG_{id}")),
        ("consumer_group", format!("CG_{id}")),
        ("retry_topic", format!("%RETRY%CG_{id}")),
        ("client_id", format!("127.0.0.1@{id}")),
        ("broker_name", BROKER_NAME.to_string()),
        ("broker_addr", broker_addr.clone()),
        ("cluster", CLUSTER.to_string()),
        ("queue_id", "0".to_string()),
        // One instant for the whole run: a subscription's version in the heartbeat and in the
        // pulls must agree, as a client's do.
        ("sub_version", now.to_string()),
        ("key", format!("key-{id}")),
        ("queue_offset", "0".to_string()),
        ("next_offset", "0".to_string()),
        ("commit_log_offset", "0".to_string()),
        ("msg_id", String::new()),
        ("tran_state_table_offset", "0".to_string()),
    ]
    .into_iter()
    .collect();
    let n = corpus.frame.len();
    let mut run = Run {
        client: corpus.client.clone(),
        frames: corpus.frame,
        vars,
        inner: broker.inner().clone(),
        ns_addr: namesrv.local_addr().to_string(),
        wire: Wire::connect(&broker_addr).await,
        broker_addr,
        admin: RemotingClient::default(),
        stored: Vec::new(),
        failures: Vec::new(),
        done: vec![false; n],
        next_opaque: 0,
    };
    run.routes(false).await;
    run.heartbeats().await;
    run.query_offsets("before any message").await;
    run.sends().await;
    run.transactions().await;
    run.query_offsets("after the first messages").await;
    run.pulls().await;
    run.offsets().await;
    run.send_backs().await;
    run.dead_letters().await;
    run.locks().await;
    run.lookups().await;
    run.unregister().await;
    // The broker registers new topics with the name server at once (register_soon).
    tokio::time::sleep(Duration::from_millis(300)).await;
    run.routes(true).await;
    for (i, done) in run.done.clone().into_iter().enumerate() {
        if !done {
            run.fail(i, "op not replayed by the harness");
        }
    }
    run.admin.close_all();
    broker.shutdown().await;
    namesrv.shutdown().await;
    assert!(
        run.failures.is_empty(),
        "{} of {n} frames of {file} failed:\n{}",
        run.failures.len(),
        run.failures.join("\n")
    );
}

macro_rules! corpus_tests {
    ($($test:ident => $file:literal),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                replay($file).await;
            }
        )*

        /// Every corpus file has a test above.
        #[test]
        fn every_corpus_file_is_replayed() {
            let known = [$($file),*];
            for entry in std::fs::read_dir(corpus_dir()).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                if name.ends_with(".toml") {
                    assert!(known.contains(&name.as_str()), "{name} has no test in conformance.rs");
                }
            }
        }
    };
}

corpus_tests! {
    java_4_9_8 => "java-4.9.8.toml",
    java_5_3_3 => "java-5.3.3.toml",
    cpp_1_2_5 => "cpp-1.2.5.toml",
    cpp_2_2_0 => "cpp-2.2.0.toml",
    ali_ons_3_12_2 => "ali-ons-3.12.2.toml",
    go_2_1_2 => "go-2.1.2.toml",
    rust_client_1_0_0 => "rust-client-1.0.0.toml",
}
