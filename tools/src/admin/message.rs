//! `queryMsgById` and `queryMsgByKey`.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use rmq_remoting::header::{QueryMessageRequestHeader, ViewMessageRequestHeader};
use rmq_remoting::message::{decode_offset_msg_id, property, sys_flag, MessageExt};
use rmq_remoting::util::now_millis;
use rmq_remoting::{RemotingCommand, RequestCode, ResponseCode};

use super::cli::{QueryMsgByIdArgs, QueryMsgByKeyArgs};
use super::client::{select_broker_addr, CodeError};
use super::java;
use super::{track, Admin, Out};

/// extField that makes QUERY_MESSAGE look the key up as a message's `UNIQ_KEY`.
pub const UNIQUE_MSG_QUERY_FLAG: &str = "_UNIQUE_KEY_QUERY";
/// Where Java's mqadmin writes message bodies.
pub const MSG_BODY_DIR: &str = "/tmp/rocketmq/msgbodys";

/// `MessageClientExt.getMsgId`: the client's unique key if the message has one, else the
/// offset message id.
pub fn msg_id(msg: &MessageExt) -> String {
    msg.uniq_key()
        .map(String::from)
        .unwrap_or_else(|| msg.offset_msg_id())
}

/// VIEW_MESSAGE_BY_ID at the store that holds `offset`.
pub async fn view_message(
    admin: &Admin,
    addr: &str,
    topic: Option<&str>,
    offset: i64,
) -> Result<MessageExt> {
    let header = ViewMessageRequestHeader {
        offset,
        topic: topic.map(String::from),
    };
    let resp = admin
        .call(
            addr,
            &RemotingCommand::request_with_header(RequestCode::VIEW_MESSAGE_BY_ID, &header),
        )
        .await?;
    let mut body = resp.body.clone();
    MessageExt::decode(&mut body).with_context(|| format!("message from {addr}"))
}

/// What to look for with QUERY_MESSAGE.
pub struct Query<'a> {
    pub cluster: Option<&'a str>,
    pub topic: &'a str,
    pub key: &'a str,
    pub max_num: i32,
    pub begin: i64,
    pub end: i64,
    /// Look `key` up as a `UNIQ_KEY` instead of a `KEYS` entry.
    pub unique: bool,
}

/// `MQAdminImpl.queryMessage`: QUERY_MESSAGE to a broker of each broker name of the topic's
/// route, the answers merged and filtered to exact matches.
pub async fn query_messages(admin: &Admin, q: &Query<'_>) -> Result<Vec<MessageExt>> {
    let route = admin.route(q.topic).await?;
    let addrs: Vec<&str> = route
        .broker_datas
        .iter()
        .filter(|bd| q.cluster.is_none_or(|c| c.is_empty() || bd.cluster == c))
        .filter_map(select_broker_addr)
        .collect();
    if addrs.is_empty() {
        return Err(CodeError::new(
            None,
            ResponseCode::TOPIC_NOT_EXIST,
            format!("The topic[{}] not matched route info", q.topic),
        )
        .into());
    }
    let header = QueryMessageRequestHeader {
        topic: q.topic.to_string(),
        key: q.key.to_string(),
        max_num: q.max_num,
        begin_timestamp: q.begin,
        end_timestamp: q.end,
    };
    let mut req = RemotingCommand::request_with_header(RequestCode::QUERY_MESSAGE, &header);
    req.ext_fields
        .insert(UNIQUE_MSG_QUERY_FLAG.into(), q.unique.to_string());
    let mut found = Vec::new();
    for addr in addrs {
        let resp = match admin.invoke(addr, &req, admin.timeout() * 3).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(%addr, error = %format!("{e:#}"), "queryMessage failed");
                continue;
            }
        };
        if resp.code != ResponseCode::SUCCESS {
            tracing::debug!(%addr, code = resp.code, remark = ?resp.remark, "queryMessage found nothing");
            continue;
        }
        match MessageExt::decode_all(resp.body.clone()) {
            Ok(msgs) => found.extend(msgs),
            Err(e) => tracing::warn!(%addr, error = %e, "bad queryMessage body"),
        }
    }
    found.retain(|m| {
        if q.unique {
            msg_id(m) == q.key
        } else {
            m.topic == q.topic && m.keys().any(|k| k == q.key)
        }
    });
    if found.is_empty() {
        return Err(CodeError::new(
            None,
            ResponseCode::NO_MESSAGE,
            "query message by key finished, but no message.",
        )
        .into());
    }
    Ok(found)
}

/// `queryMessageByUniqKey`: the first message whose `UNIQ_KEY` is `key` (last three days).
pub async fn query_by_uniq_key(
    admin: &Admin,
    cluster: Option<&str>,
    topic: &str,
    key: &str,
) -> Result<Option<MessageExt>> {
    let q = Query {
        cluster,
        topic,
        key,
        max_num: 32,
        begin: now_millis() - 3 * 24 * 3600 * 1000,
        end: i64::MAX,
        unique: true,
    };
    match query_messages(admin, &q).await {
        Ok(mut msgs) => Ok(Some(msgs.swap_remove(0))),
        Err(e) if CodeError::code_of(&e) == Some(ResponseCode::NO_MESSAGE) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `DefaultMQAdminExt.queryMessage(cluster, topic, msgId)`: an offset message id is viewed at
/// its store; anything else, or a view that fails, is looked up as a unique key on `topic`.
async fn find_by_id(
    admin: &Admin,
    cluster: Option<&str>,
    topic: Option<&str>,
    id: &str,
) -> Result<Option<MessageExt>> {
    match decode_offset_msg_id(id) {
        Ok((store, offset)) => match view_message(admin, &store.to_string(), topic, offset).await {
            Ok(m) => return Ok(Some(m)),
            Err(e) if topic.is_some() => {
                tracing::debug!(error = %format!("{e:#}"), "the msgId maybe created by new client, msgId={id}");
            }
            Err(e) => return Err(e),
        },
        Err(e) if topic.is_none() => {
            bail!("`{id}` is not an offset message id ({e}); give -t <topic> to look it up as a unique key")
        }
        Err(_) => {}
    }
    let topic = topic.unwrap_or_default();
    query_by_uniq_key(admin, cluster, topic, id).await
}

pub async fn query_msg_by_id(admin: &Admin, args: &QueryMsgByIdArgs, out: Out<'_>) -> Result<()> {
    let topic = args.topic.as_deref().map(str::trim);
    let cluster = args.cluster.as_deref().map(str::trim);
    for id in args
        .msg_id
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match find_by_id(admin, cluster, topic, id).await? {
            Some(msg) => print_msg(admin, &msg, args.body_format.is_some(), out).await?,
            None => {
                writeln!(out)?;
                writeln!(out, "Message not found!")?;
                return Err(CodeError::new(
                    None,
                    ResponseCode::NO_MESSAGE,
                    format!("no message with id {id}"),
                )
                .into());
            }
        }
    }
    Ok(())
}

/// The body as the client sees it: inflated when the producer compressed it with zlib.
pub fn client_body(msg: &MessageExt) -> Bytes {
    let compression = (msg.sys_flag >> 8) & 0x7;
    if msg.sys_flag & sys_flag::COMPRESSED == 0 || !(compression == 0 || compression == 3) {
        return msg.body.clone();
    }
    let mut inflated = Vec::new();
    match flate2::read::ZlibDecoder::new(&msg.body[..]).read_to_end(&mut inflated) {
        Ok(_) => inflated.into(),
        Err(_) => msg.body.clone(),
    }
}

/// Writes the body to `/tmp/rocketmq/msgbodys/<msgId>`, as Java's `createBodyFile`.
fn write_body_file(msg: &MessageExt, body: &[u8]) -> Result<PathBuf> {
    std::fs::create_dir_all(MSG_BODY_DIR).with_context(|| format!("creating {MSG_BODY_DIR}"))?;
    let path = PathBuf::from(MSG_BODY_DIR).join(msg_id(msg));
    std::fs::write(&path, body).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// `QueryMsgByIdSubCommand.printMsg`, then who consumed it.
pub async fn print_msg(
    admin: &Admin,
    msg: &MessageExt,
    print_body: bool,
    out: Out<'_>,
) -> Result<()> {
    let body = client_body(msg);
    let path = write_body_file(msg, &body)?;
    let opt = |v: Option<&String>| v.cloned().unwrap_or_else(|| "null".into());
    let fields: [(&str, String); 15] = [
        ("OffsetID:", msg.offset_msg_id()),
        ("Topic:", msg.topic.clone()),
        (
            "Tags:",
            format!("[{}]", opt(msg.properties.get(property::TAGS))),
        ),
        (
            "Keys:",
            format!("[{}]", opt(msg.properties.get(property::KEYS))),
        ),
        ("Queue ID:", msg.queue_id.to_string()),
        ("Queue Offset:", msg.queue_offset.to_string()),
        ("CommitLog Offset:", msg.commit_log_offset.to_string()),
        ("Reconsume Times:", msg.reconsume_times.to_string()),
        ("Born Timestamp:", java::human_time2(msg.born_timestamp)),
        ("Store Timestamp:", java::human_time2(msg.store_timestamp)),
        ("Born Host:", host(msg.born_host)),
        ("Store Host:", host(msg.store_host)),
        ("System Flag:", msg.sys_flag.to_string()),
        ("Properties:", java::string_map(&msg.properties)),
        ("Message Body Path:", path.display().to_string()),
    ];
    for (name, value) in fields {
        writeln!(out, "{name:<20} {value}")?;
    }
    if print_body {
        writeln!(
            out,
            "{:<20} {}",
            "Message Body:",
            String::from_utf8_lossy(&body)
        )?;
    }
    match track::message_track_detail(admin, msg).await {
        Ok(tracks) if tracks.is_empty() => {
            writeln!(out)?;
            writeln!(out)?;
            writeln!(out, "WARN: No Consumer")?;
        }
        Ok(tracks) => {
            writeln!(out)?;
            writeln!(out)?;
            for t in tracks {
                writeln!(out, "{t}")?;
            }
        }
        Err(e) => eprintln!("messageTrackDetail failed: {e:#}"),
    }
    Ok(())
}

/// `RemotingHelper.parseSocketAddressAddr`: `ip:port`.
fn host(addr: std::net::SocketAddr) -> String {
    format!("{}:{}", addr.ip(), addr.port())
}

pub async fn query_msg_by_key(admin: &Admin, args: &QueryMsgByKeyArgs, out: Out<'_>) -> Result<()> {
    let q = Query {
        cluster: args.cluster.as_deref().map(str::trim),
        topic: args.topic.trim(),
        key: args.key.trim(),
        max_num: args.max_num,
        begin: args.begin,
        end: args.end,
        unique: false,
    };
    let msgs = query_messages(admin, &q).await?;
    writeln!(out, "{:<50} {:>4} {:>40}", "#Message ID", "#QID", "#Offset")?;
    for m in &msgs {
        writeln!(
            out,
            "{:<50} {:>4} {:>40}",
            msg_id(m),
            m.queue_id,
            m.queue_offset
        )?;
    }
    Ok(())
}
