//! The decoders behind the codec, in process (no network): a mutant's bytes through the
//! frame codec, then its header and body through what the broker's processor for its code
//! reads, then every other header and body decoder too (a code confused for another is a
//! mutant's job). Nothing is asserted but that none of it panics.

use std::panic::{catch_unwind, AssertUnwindSafe};

use proptest::strategy::{Strategy, ValueTree};
use rmq_broker::filter::SqlFilter;
use rmq_remoting::message::{decode_batch, Properties};
use rmq_remoting::protocol::admin::SubscriptionGroupConfig;
use rmq_remoting::protocol::heartbeat::{
    CheckClientRequestBody, HeartbeatData, LockBatchRequestBody,
};
use rmq_remoting::JsonBody;

use super::*;

#[derive(Debug, Default)]
pub struct DecodeReport {
    pub execs: u64,
    /// Read as at least one frame; with the header, and the body too, their processor reads.
    pub frames: u64,
    pub headers: u64,
    pub bodies: u64,
    pub elapsed: Duration,
    /// Each panic, shrunk to the smallest plan that still panics, with its bytes.
    pub crashes: Vec<String>,
}

impl DecodeReport {
    pub fn summary(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        format!(
            "{} mutants in {secs:.1} s ({:.0}/s); {} read as frames, {} with the header and {} \
             also the body their processor reads; {} crashes",
            self.execs,
            self.execs as f64 / secs.max(1e-9),
            self.frames,
            self.headers,
            self.bodies,
            self.crashes.len()
        )
    }
}

/// Up to `cases` mutants (or `budget`) through the decoders. A panic is shrunk with
/// proptest's value tree (as its runner would, but here the loop owns the clock) and
/// recorded; `first_only` stops there.
pub fn run(pool: &Pool, seed: u64, cases: u64, budget: Duration, first_only: bool) -> DecodeReport {
    let started = Instant::now();
    let strategy = mutate::plan(false);
    let mut runner = net::rng(seed, u64::MAX);
    let mut r = DecodeReport::default();
    let attempt = |plan: &mutate::Plan| {
        let m = mutate::apply(pool, plan);
        catch_unwind(AssertUnwindSafe(|| exercise(&m.bytes))).map_err(|e| {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            (m, msg)
        })
    };
    while r.execs < cases && started.elapsed() < budget {
        let mut tree = strategy.new_tree(&mut runner).expect("plan");
        r.execs += 1;
        let failed = match attempt(&tree.current()) {
            Ok(reached) => {
                r.frames += u64::from(reached.frames > 0);
                r.headers += u64::from(reached.frames > 0 && reached.header);
                r.bodies += u64::from(reached.frames > 0 && reached.header && reached.body);
                continue;
            }
            Err(f) => f,
        };
        let mut smallest = (tree.current(), failed);
        let shrink_until = Instant::now() + Duration::from_secs(60);
        if tree.simplify() {
            while Instant::now() < shrink_until {
                match attempt(&tree.current()) {
                    Ok(_) if !tree.complicate() => break,
                    Ok(_) => {}
                    Err(f) => {
                        smallest = (tree.current(), f);
                        if !tree.simplify() {
                            break;
                        }
                    }
                }
            }
        }
        let (plan, (m, msg)) = smallest;
        r.crashes.push(format!(
            "{msg}\n  seed `{}`, {plan:?}\n  bytes ({}): {}",
            pool.seeds[m.seed].name,
            m.bytes.len(),
            net::hex_head(&m.bytes, 4096)
        ));
        if first_only {
            break;
        }
    }
    r.elapsed = started.elapsed();
    r
}

/// How far a mutant got.
#[derive(Debug, Default, Clone, Copy)]
pub struct Reached {
    pub frames: u32,
    /// The header decoded for the code's own processor.
    pub header: bool,
    /// The body decoded as that processor reads it (or it reads none).
    pub body: bool,
}

pub fn exercise(bytes: &[u8]) -> Reached {
    let mut reached = Reached::default();
    let mut buf = BytesMut::from(bytes);
    let mut codec = RemotingCodec::default();
    // Trailing bytes are read as the broker would read them: as the next frames.
    while let Ok(Some(cmd)) = codec.decode(&mut buf) {
        let (header, body) = as_broker(&cmd);
        if reached.frames == 0 {
            reached.header = header;
            reached.body = body;
        }
        reached.frames += 1;
        every_header(&cmd.ext_fields);
        every_body(&cmd.body);
        for v in cmd.ext_fields.values() {
            let _ = Properties::parse(v);
        }
        // Responses are written in the request's serialization and echo its fields.
        let _ = rmq_remoting::codec::encode_frame(&cmd);
        if reached.frames >= 8 {
            break;
        }
    }
    reached
}

fn ok<T, E>(r: Result<T, E>) -> bool {
    r.is_ok()
}

fn sql(expression_type: &str, text: &str) {
    if expression_type.eq_ignore_ascii_case("SQL92") {
        let _ = SqlFilter::compile(text);
    }
}

/// What `BrokerProcessor::route` and the processor for the code read; (header, body) decoded.
fn as_broker(cmd: &RemotingCommand) -> (bool, bool) {
    let h = |ok: bool| (ok, true);
    match cmd.code {
        RequestCode::SEND_MESSAGE
        | RequestCode::SEND_MESSAGE_V2
        | RequestCode::SEND_BATCH_MESSAGE => {
            let header = if cmd.code == RequestCode::SEND_MESSAGE {
                cmd.decode_header::<SendMessageRequestHeader>()
            } else {
                cmd.decode_header::<SendMessageRequestHeaderV2>()
                    .map(SendMessageRequestHeaderV2::into_v1)
            };
            let Ok(header) = header else {
                return (false, false);
            };
            let props = Properties::from_string(header.properties.unwrap_or_default());
            let _ = props.get("DELAY").map(|d| d.parse::<i32>());
            let batch = cmd.code == RequestCode::SEND_BATCH_MESSAGE || header.batch == Some(true);
            if !batch {
                return (true, true);
            }
            match decode_batch(cmd.body.clone()) {
                Ok(items) => {
                    for item in items {
                        let _ = item.properties.to_map();
                    }
                    (true, true)
                }
                Err(_) => (true, false),
            }
        }
        RequestCode::PULL_MESSAGE | RequestCode::LITE_PULL_MESSAGE => {
            match cmd.decode_header::<PullMessageRequestHeader>() {
                Ok(p) => {
                    sql(
                        p.expression_type.as_deref().unwrap_or("TAG"),
                        p.subscription.as_deref().unwrap_or("*"),
                    );
                    (true, true)
                }
                Err(_) => (false, true),
            }
        }
        RequestCode::HEART_BEAT => match HeartbeatData::decode(&cmd.body) {
            Ok(hb) => {
                for c in &hb.consumer_data_set {
                    for s in &c.subscription_data_set {
                        sql(&s.expression_type, &s.sub_string);
                    }
                }
                (true, true)
            }
            Err(_) => (true, false),
        },
        RequestCode::CHECK_CLIENT_CONFIG => match CheckClientRequestBody::decode(&cmd.body) {
            Ok(b) => {
                if let Some(s) = &b.subscription_data {
                    sql(&s.expression_type, &s.sub_string);
                }
                (true, true)
            }
            Err(_) => (true, false),
        },
        RequestCode::LOCK_BATCH_MQ | RequestCode::UNLOCK_BATCH_MQ => {
            (true, ok(LockBatchRequestBody::decode(&cmd.body)))
        }
        RequestCode::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => {
            (true, ok(SubscriptionGroupConfig::decode(&cmd.body)))
        }
        RequestCode::UPDATE_BROKER_CONFIG => (
            true,
            ok(rmq_remoting::config::parse_properties(
                &String::from_utf8_lossy(&cmd.body),
            )),
        ),
        RequestCode::UNREGISTER_CLIENT => {
            h(ok(cmd.decode_header::<UnregisterClientRequestHeader>()))
        }
        RequestCode::GET_CONSUMER_LIST_BY_GROUP => h(ok(
            cmd.decode_header::<GetConsumerListByGroupRequestHeader>()
        )),
        RequestCode::QUERY_CONSUMER_OFFSET => {
            h(ok(cmd.decode_header::<QueryConsumerOffsetRequestHeader>()))
        }
        RequestCode::UPDATE_CONSUMER_OFFSET => {
            h(ok(cmd.decode_header::<UpdateConsumerOffsetRequestHeader>()))
        }
        RequestCode::GET_MAX_OFFSET => h(ok(cmd.decode_header::<GetMaxOffsetRequestHeader>())),
        RequestCode::GET_MIN_OFFSET => h(ok(cmd.decode_header::<GetMinOffsetRequestHeader>())),
        RequestCode::GET_EARLIEST_MSG_STORETIME => h(ok(
            cmd.decode_header::<GetEarliestMsgStoretimeRequestHeader>()
        )),
        RequestCode::SEARCH_OFFSET_BY_TIMESTAMP => {
            h(ok(cmd.decode_header::<SearchOffsetRequestHeader>()))
        }
        RequestCode::UPDATE_AND_CREATE_TOPIC => {
            match cmd.decode_header::<CreateTopicRequestHeader>() {
                Ok(t) => {
                    let _ = rmq_remoting::topic::validate_topic(&t.topic);
                    h(true)
                }
                Err(_) => h(false),
            }
        }
        RequestCode::DELETE_TOPIC_IN_BROKER => {
            h(ok(cmd.decode_header::<DeleteTopicRequestHeader>()))
        }
        RequestCode::GET_TOPIC_STATS_INFO => {
            h(ok(cmd.decode_header::<GetTopicStatsInfoRequestHeader>()))
        }
        RequestCode::GET_CONSUME_STATS => {
            h(ok(cmd.decode_header::<GetConsumeStatsRequestHeader>()))
        }
        RequestCode::GET_CONSUMER_CONNECTION_LIST => h(ok(cmd
            .decode_header::<GetConsumerConnectionListRequestHeader>(
        ))),
        RequestCode::DELETE_SUBSCRIPTIONGROUP => h(ok(
            cmd.decode_header::<DeleteSubscriptionGroupRequestHeader>()
        )),
        RequestCode::VIEW_MESSAGE_BY_ID => h(ok(cmd.decode_header::<ViewMessageRequestHeader>())),
        RequestCode::QUERY_MESSAGE => h(ok(cmd.decode_header::<QueryMessageRequestHeader>())),
        RequestCode::CONSUMER_SEND_MSG_BACK => {
            match cmd.decode_header::<ConsumerSendMsgBackRequestHeader>() {
                Ok(b) => {
                    let _ = b
                        .origin_msg_id
                        .map(|id| rmq_remoting::message::decode_offset_msg_id(&id));
                    h(true)
                }
                Err(_) => h(false),
            }
        }
        RequestCode::INVOKE_BROKER_TO_RESET_OFFSET => {
            h(ok(cmd.decode_header::<ResetOffsetRequestHeader>()))
        }
        RequestCode::NOTIFY_BROKER_ROLE_CHANGED => h(ok(
            cmd.decode_header::<NotifyBrokerRoleChangedRequestHeader>()
        )),
        RequestCode::END_TRANSACTION => match cmd.decode_header::<EndTransactionRequestHeader>() {
            Ok(e) => {
                let _ = rmq_remoting::message::decode_offset_msg_id(&e.msg_id);
                h(true)
            }
            Err(_) => h(false),
        },
        RequestCode::UPDATE_AND_CREATE_ACL_CONFIG => {
            h(ok(cmd.decode_header::<CreateAccessConfigRequestHeader>()))
        }
        RequestCode::DELETE_ACL_CONFIG => {
            h(ok(cmd.decode_header::<DeleteAccessConfigRequestHeader>()))
        }
        RequestCode::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG => {
            h(ok(cmd
                .decode_header::<UpdateGlobalWhiteAddrsConfigRequestHeader>(
                )))
        }
        // Codes read nothing (GET_ALL_*, runtime info, epoch cache) or are not handled.
        _ => (true, true),
    }
}

macro_rules! decode_all_headers {
    ($ext:expr, $($t:ident),* $(,)?) => {
        $( let _ = $t::from_ext_fields($ext); )*
    };
}

fn every_header(ext: &HashMap<String, String>) {
    decode_all_headers!(
        ext,
        SendMessageRequestHeader,
        SendMessageRequestHeaderV2,
        PullMessageRequestHeader,
        UnregisterClientRequestHeader,
        GetConsumerListByGroupRequestHeader,
        QueryConsumerOffsetRequestHeader,
        UpdateConsumerOffsetRequestHeader,
        GetMaxOffsetRequestHeader,
        GetMinOffsetRequestHeader,
        GetEarliestMsgStoretimeRequestHeader,
        SearchOffsetRequestHeader,
        ConsumerSendMsgBackRequestHeader,
        EndTransactionRequestHeader,
        QueryMessageRequestHeader,
        ViewMessageRequestHeader,
        CreateTopicRequestHeader,
        DeleteTopicRequestHeader,
        GetTopicStatsInfoRequestHeader,
        GetConsumerConnectionListRequestHeader,
        ResetOffsetRequestHeader,
        GetConsumeStatsRequestHeader,
        DeleteSubscriptionGroupRequestHeader,
        NotifyBrokerRoleChangedRequestHeader,
        CreateAccessConfigRequestHeader,
        DeleteAccessConfigRequestHeader,
        UpdateGlobalWhiteAddrsConfigRequestHeader,
        GetRouteInfoRequestHeader,
    );
}

fn every_body(body: &Bytes) {
    if body.is_empty() {
        return;
    }
    let _ = HeartbeatData::decode(body);
    let _ = LockBatchRequestBody::decode(body);
    let _ = CheckClientRequestBody::decode(body);
    let _ = SubscriptionGroupConfig::decode(body);
    let _ = rmq_remoting::fastjson::normalize(body);
    let _ = decode_batch(body.clone());
    let _ = MessageExt::decode_all(body.clone());
}
