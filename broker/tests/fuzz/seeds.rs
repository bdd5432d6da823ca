//! The valid frames mutants start from: every frame of the client corpus
//! (`tests/corpus/*.toml`, filled in by the conformance test's own `prepare`), one frame built
//! with the crate's header and body types for each request code the broker handles that no
//! corpus client sends, and the regression cases the fuzzer found.

use super::*;

pub const TOPIC: &str = "FuzzTopic";
pub const PRODUCER_GROUP: &str = "FuzzPG";
pub const CONSUMER_GROUP: &str = "FuzzCG";
pub const BROKER_NAME: &str = "broker-a";
pub const CLUSTER: &str = "DefaultCluster";
/// Where the seeds say the broker is; mutants are sent wherever it really is.
pub const BROKER_ADDR: &str = "127.0.0.1:10911";

/// How long a seed pull may be held: the corpus's 15–30 s would make every pull of an empty
/// queue a wait (mutants still send other values).
pub const SEED_SUSPEND_MS: &str = "200";

#[derive(Debug, Clone)]
pub struct Seed {
    pub name: String,
    pub code: i32,
    /// The frame as its client writes it.
    pub bytes: Vec<u8>,
    pub shape: Shape,
    /// How long a replay waits after this frame (a regression that needs the broker's
    /// periodic housekeeping to run before the next frame).
    pub pause: Duration,
}

/// Every seed to mutate, in a fixed order (regressions with short pulls too: they are
/// replayed as they are).
pub fn all() -> Vec<Seed> {
    let mut seeds = corpus();
    seeds.extend(built());
    seeds.extend(regressions().into_iter().map(short_suspend));
    seeds
}

fn vars(opaque: i32) -> BTreeMap<&'static str, String> {
    [
        ("topic", TOPIC.to_string()),
        ("producer_group", PRODUCER_GROUP.to_string()),
        ("consumer_group", CONSUMER_GROUP.to_string()),
        ("retry_topic", format!("%RETRY%{CONSUMER_GROUP}")),
        ("client_id", "127.0.0.1@fuzz".to_string()),
        ("broker_name", BROKER_NAME.to_string()),
        ("broker_addr", BROKER_ADDR.to_string()),
        ("cluster", CLUSTER.to_string()),
        ("queue_id", "0".to_string()),
        ("sub_version", "1700000000000".to_string()),
        ("key", "fuzz-key".to_string()),
        ("queue_offset", "0".to_string()),
        ("next_offset", "1".to_string()),
        ("commit_log_offset", "0".to_string()),
        ("msg_id", "7F00000100002A9F0000000000000000".to_string()),
        ("tran_state_table_offset", "0".to_string()),
        ("opaque", opaque.to_string()),
        ("now", "1700000000000".to_string()),
        ("uniq_key", "7F0000011F9018B4AAC2000000000000".to_string()),
    ]
    .into_iter()
    .collect()
}

fn corpus() -> Vec<Seed> {
    let mut files: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    files.sort();
    let mut seeds = Vec::new();
    for file in files {
        let corpus = load(&file);
        for frame in &corpus.frame {
            let name = format!("{}: {}", corpus.client, frame.name);
            let p = prepare(frame, &vars(seeds.len() as i32 + 1))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            seeds.push(short_suspend(seed(name, p.bytes)));
        }
    }
    seeds
}

/// A seed from a valid frame.
fn seed(name: String, bytes: Vec<u8>) -> Seed {
    let shape = Shape::from_frame(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    let Parse::One(cmd) = parse(&bytes) else {
        panic!("{name}: the seed is not one valid frame");
    };
    Seed {
        name,
        code: cmd.code,
        bytes,
        shape,
        pause: Duration::from_millis(100),
    }
}

/// The seed with a pull's suspend time [`SEED_SUSPEND_MS`].
fn short_suspend(mut s: Seed) -> Seed {
    let mut changed = false;
    for (k, v) in s.shape.ext_mut() {
        if k == "suspendTimeoutMillis" {
            *v = Val::Raw(SEED_SUSPEND_MS.into());
            changed = true;
        }
    }
    if changed {
        s.bytes = s.shape.encode();
    }
    s
}

fn built_seed(name: &str, cmd: RemotingCommand) -> Seed {
    let body = cmd.body.to_vec();
    let mut cmd = cmd;
    cmd.opaque = 1;
    cmd.language = LanguageCode::Java;
    let bytes = Shape::from_command(&cmd, 0, body).encode();
    seed(format!("built: {name}"), bytes)
}

fn request<H: CommandHeader>(code: i32, h: &H) -> RemotingCommand {
    RemotingCommand::request_with_header(code, h)
}

/// Frames for the handled codes no corpus client sends, as mqadmin, the Java admin API or a
/// controller would write them.
fn built() -> Vec<Seed> {
    use rmq_remoting::protocol::admin::SubscriptionGroupConfig;
    use rmq_remoting::protocol::heartbeat::{CheckClientRequestBody, SubscriptionData};
    use rmq_remoting::role::{BrokerRole, Epoch};
    use rmq_remoting::JsonBody;
    let plain = |code| RemotingCommand::request(code);
    let check_client = |expression_type: &str, sub_string: &str| {
        CheckClientRequestBody {
            client_id: "127.0.0.1@fuzz".into(),
            group: CONSUMER_GROUP.into(),
            subscription_data: Some(SubscriptionData {
                topic: TOPIC.into(),
                sub_string: sub_string.into(),
                expression_type: expression_type.into(),
                ..Default::default()
            }),
            namespace: None,
        }
        .encode()
    };
    // Every key UPDATE_BROKER_CONFIG may change at run time, at its default.
    let broker_config = "brokerPermission=6\nautoCreateTopicEnable=true\n\
        autoCreateSubscriptionGroup=true\ndefaultTopicQueueNums=8\nlongPollingEnable=true\n\
        shortPollingTimeMills=1000\nregisterNameServerPeriod=30000\n\
        maxTransferBytesOnMessageInMemory=262144\nmaxTransferCountOnMessageInMemory=32\n\
        channelExpiredTimeout=120000\nrejectTransactionMessage=false\nslaveReadEnable=false\n";
    let list = [
        (
            "UPDATE_AND_CREATE_TOPIC",
            request(
                RequestCode::UPDATE_AND_CREATE_TOPIC,
                &CreateTopicRequestHeader {
                    topic: TOPIC.into(),
                    default_topic: "TBW102".into(),
                    read_queue_nums: 8,
                    write_queue_nums: 8,
                    perm: 6,
                    topic_filter_type: "SINGLE_TAG".into(),
                    topic_sys_flag: Some(0),
                    order: false,
                    attributes: Some("+message.type=NORMAL".into()),
                    force: None,
                },
            ),
        ),
        (
            "DELETE_TOPIC_IN_BROKER",
            request(
                RequestCode::DELETE_TOPIC_IN_BROKER,
                &DeleteTopicRequestHeader {
                    topic: "FuzzDoomed".into(),
                },
            ),
        ),
        (
            "GET_ALL_TOPIC_CONFIG",
            plain(RequestCode::GET_ALL_TOPIC_CONFIG),
        ),
        (
            "GET_TOPIC_STATS_INFO",
            request(
                RequestCode::GET_TOPIC_STATS_INFO,
                &GetTopicStatsInfoRequestHeader {
                    topic: TOPIC.into(),
                },
            ),
        ),
        (
            "GET_CONSUME_STATS",
            request(
                RequestCode::GET_CONSUME_STATS,
                &GetConsumeStatsRequestHeader {
                    consumer_group: CONSUMER_GROUP.into(),
                    topic: Some(TOPIC.into()),
                    topic_list: None,
                },
            ),
        ),
        (
            "GET_CONSUMER_CONNECTION_LIST",
            request(
                RequestCode::GET_CONSUMER_CONNECTION_LIST,
                &GetConsumerConnectionListRequestHeader {
                    consumer_group: CONSUMER_GROUP.into(),
                },
            ),
        ),
        (
            "GET_BROKER_RUNTIME_INFO",
            plain(RequestCode::GET_BROKER_RUNTIME_INFO),
        ),
        ("GET_BROKER_CONFIG", plain(RequestCode::GET_BROKER_CONFIG)),
        (
            "UPDATE_BROKER_CONFIG",
            plain(RequestCode::UPDATE_BROKER_CONFIG).with_body(broker_config.as_bytes().to_vec()),
        ),
        (
            "UPDATE_AND_CREATE_SUBSCRIPTIONGROUP",
            plain(RequestCode::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP).with_body(
                SubscriptionGroupConfig {
                    group_name: CONSUMER_GROUP.into(),
                    ..Default::default()
                }
                .encode(),
            ),
        ),
        (
            "GET_ALL_SUBSCRIPTIONGROUP_CONFIG",
            plain(RequestCode::GET_ALL_SUBSCRIPTIONGROUP_CONFIG),
        ),
        (
            "DELETE_SUBSCRIPTIONGROUP",
            request(
                RequestCode::DELETE_SUBSCRIPTIONGROUP,
                &DeleteSubscriptionGroupRequestHeader {
                    group_name: "FuzzDoomedGroup".into(),
                    clean_offset: Some(true),
                },
            ),
        ),
        (
            "GET_ALL_CONSUMER_OFFSET",
            plain(RequestCode::GET_ALL_CONSUMER_OFFSET),
        ),
        (
            "INVOKE_BROKER_TO_RESET_OFFSET",
            request(
                RequestCode::INVOKE_BROKER_TO_RESET_OFFSET,
                &ResetOffsetRequestHeader {
                    topic: TOPIC.into(),
                    group: CONSUMER_GROUP.into(),
                    timestamp: -1,
                    is_force: true,
                },
            ),
        ),
        (
            "GET_BROKER_EPOCH_CACHE",
            plain(RequestCode::GET_BROKER_EPOCH_CACHE),
        ),
        (
            "NOTIFY_BROKER_ROLE_CHANGED",
            request(
                RequestCode::NOTIFY_BROKER_ROLE_CHANGED,
                &NotifyBrokerRoleChangedRequestHeader {
                    master_address: Some("127.0.0.1:10921".into()),
                    master_epoch: Some(Epoch(2)),
                    sync_state_set_epoch: Some(1),
                    master_broker_id: Some(1),
                    master_ha_address: Some("127.0.0.1:10922".into()),
                    broker_role: Some(BrokerRole::SyncMaster),
                    former_master_broker_id: Some(2),
                    broker_id: Some(2),
                    broker_name: Some(BROKER_NAME.into()),
                    force_truncate: Some(false),
                },
            ),
        ),
        (
            "CHECK_CLIENT_CONFIG, TAG",
            plain(RequestCode::CHECK_CLIENT_CONFIG).with_body(check_client("TAG", "A || C")),
        ),
        (
            "CHECK_CLIENT_CONFIG, SQL92",
            plain(RequestCode::CHECK_CLIENT_CONFIG).with_body(check_client(
                "SQL92",
                "a > 5 AND b IN ('x', 'y') OR (c IS NOT NULL AND d BETWEEN 1 AND 3)",
            )),
        ),
        (
            "UPDATE_AND_CREATE_ACL_CONFIG",
            request(
                RequestCode::UPDATE_AND_CREATE_ACL_CONFIG,
                &CreateAccessConfigRequestHeader {
                    access_key: "RocketMQFuzz".into(),
                    secret_key: Some("12345678".into()),
                    white_remote_address: Some("192.168.0.*".into()),
                    admin: Some(false),
                    default_topic_perm: Some("DENY".into()),
                    default_group_perm: Some("SUB".into()),
                    topic_perms: Some(format!("{TOPIC}=PUB|SUB,other=DENY")),
                    group_perms: Some(format!("{CONSUMER_GROUP}=SUB")),
                },
            ),
        ),
        (
            "DELETE_ACL_CONFIG",
            request(
                RequestCode::DELETE_ACL_CONFIG,
                &DeleteAccessConfigRequestHeader {
                    access_key: "RocketMQFuzz".into(),
                },
            ),
        ),
        (
            "UPDATE_GLOBAL_WHITE_ADDRS_CONFIG",
            request(
                RequestCode::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG,
                &UpdateGlobalWhiteAddrsConfigRequestHeader {
                    global_white_addrs: "10.10.*.*,192.168.1.1".into(),
                    acl_file_full_path: None,
                },
            ),
        ),
        (
            "GET_BROKER_CLUSTER_ACL_INFO",
            plain(RequestCode::GET_BROKER_CLUSTER_ACL_INFO),
        ),
        (
            "GET_ALL_DELAY_OFFSET",
            plain(RequestCode::GET_ALL_DELAY_OFFSET),
        ),
    ];
    let mut seeds: Vec<Seed> = list
        .into_iter()
        .map(|(name, cmd)| built_seed(name, cmd))
        .collect();
    // One key each too, so a mutant changes that key alone and the change lasts until a
    // mutant of the same seed changes it back.
    for line in broker_config.lines() {
        let key = line.split('=').next().unwrap();
        let cmd = plain(RequestCode::UPDATE_BROKER_CONFIG).with_body(line.as_bytes().to_vec());
        seeds.push(built_seed(&format!("UPDATE_BROKER_CONFIG {key}"), cmd));
    }
    seeds
}

/// The runtime settings a mutant may change that would leave the rest of the run testing
/// little (nothing stored, nothing pulled, every pull held): put back after each change.
pub const HAMPERING_SETTINGS: &[&str] = &[
    "brokerPermission",
    "autoCreateTopicEnable",
    "autoCreateSubscriptionGroup",
    "longPollingEnable",
    "shortPollingTimeMills",
    "maxTransferBytesOnMessageInMemory",
    "maxTransferCountOnMessageInMemory",
];

/// Minimized mutants that once broke the broker, replayed first by both harnesses (in this
/// order, on one connection, a pause after each so the store dispatches) and kept in the
/// pool so their neighbourhood is searched again.
pub fn regressions() -> Vec<Seed> {
    use rmq_remoting::protocol::heartbeat::{HeartbeatData, ProducerData};
    use rmq_remoting::JsonBody;
    let plain = RemotingCommand::request;
    let admin = rmq_testkit::admin_credential();
    let signed = |mut cmd: RemotingCommand| {
        admin.sign(&mut cmd);
        cmd
    };
    let list = [
        // A committed offset near i64::MAX, read back by GET_CONSUME_STATS: the consume
        // queue's byte position (offset x 20) overflowed (a panic in the request's task,
        // which then never answered).
        (
            "consume stats at an offset past i64::MAX / 20: a message in the queue",
            rmq_testkit::send_request(TOPIC, b"queue 0 exists"),
        ),
        (
            "consume stats at an offset past i64::MAX / 20: the offset committed",
            request(
                RequestCode::UPDATE_CONSUMER_OFFSET,
                &UpdateConsumerOffsetRequestHeader {
                    consumer_group: "FuzzRegressionGroup".into(),
                    topic: TOPIC.into(),
                    queue_id: 0,
                    commit_offset: i64::MAX,
                },
            ),
        ),
        (
            "consume stats at an offset past i64::MAX / 20: read back",
            signed(request(
                RequestCode::GET_CONSUME_STATS,
                &GetConsumeStatsRequestHeader {
                    consumer_group: "FuzzRegressionGroup".into(),
                    topic: Some(TOPIC.into()),
                    topic_list: None,
                },
            )),
        ),
    ];
    // Two groups of 9 MB each: GET_ALL_CONSUMER_OFFSET's answer no longer fits a frame. It
    // was dropped unsent and the client waited; then both groups go (a table holding 18 MB
    // is written out on every flush and would slow the rest of the run).
    let huge = |n: char| format!("{n}{}", "g".repeat(9 << 20));
    let commit = |group: String| {
        request(
            RequestCode::UPDATE_CONSUMER_OFFSET,
            &UpdateConsumerOffsetRequestHeader {
                consumer_group: group,
                topic: TOPIC.into(),
                queue_id: 0,
                commit_offset: 1,
            },
        )
    };
    let delete = |group: String| {
        signed(request(
            RequestCode::DELETE_SUBSCRIPTIONGROUP,
            &DeleteSubscriptionGroupRequestHeader {
                group_name: group,
                clean_offset: Some(true),
            },
        ))
    };
    let too_large = [
        (
            "an answer over the frame limit: one 9 MB group",
            commit(huge('a')),
        ),
        ("an answer over the frame limit: another", commit(huge('b'))),
        (
            "an answer over the frame limit: all offsets",
            RemotingCommand::request(RequestCode::GET_ALL_CONSUMER_OFFSET),
        ),
        (
            "an answer over the frame limit: cleaned up",
            delete(huge('a')),
        ),
        (
            "an answer over the frame limit: cleaned up too",
            delete(huge('b')),
        ),
    ];
    // channelExpiredTimeout at i64::MAX, a client registered, then a housekeeping pass: its
    // last heartbeat + the timeout overflowed (the housekeeping task died in debug builds,
    // so offsets were never persisted again; in release builds every client expired).
    let config = |text: &str| {
        signed(plain(RequestCode::UPDATE_BROKER_CONFIG).with_body(text.as_bytes().to_vec()))
    };
    let heartbeat = plain(RequestCode::HEART_BEAT).with_body(
        HeartbeatData {
            client_id: "127.0.0.1@fuzz-regression".into(),
            producer_data_set: vec![ProducerData {
                group_name: PRODUCER_GROUP.into(),
            }],
            ..Default::default()
        }
        .encode(),
    );
    let expiry = [
        (
            "channelExpiredTimeout = i64::MAX: set",
            config("channelExpiredTimeout=9223372036854775807"),
        ),
        (
            "channelExpiredTimeout = i64::MAX: a producer, then a housekeeping pass",
            heartbeat,
        ),
        (
            "channelExpiredTimeout = i64::MAX: back to the default",
            config("channelExpiredTimeout=120000"),
        ),
    ];
    // A pull held for i64::MAX ms on a queue nothing is sent to, its connection closed by
    // the harness after 2 s: the held pull's task (and its request) lived on for good.
    let held = [
        (
            "a pull held past its connection: the topic",
            signed(request(
                RequestCode::UPDATE_AND_CREATE_TOPIC,
                &CreateTopicRequestHeader {
                    topic: "FuzzHeldTopic".into(),
                    default_topic: "TBW102".into(),
                    read_queue_nums: 1,
                    write_queue_nums: 1,
                    perm: 6,
                    topic_filter_type: "SINGLE_TAG".into(),
                    ..Default::default()
                },
            )),
        ),
        (
            "a pull held past its connection: the pull",
            request(
                RequestCode::PULL_MESSAGE,
                &PullMessageRequestHeader {
                    consumer_group: CONSUMER_GROUP.into(),
                    topic: "FuzzHeldTopic".into(),
                    queue_id: 0,
                    queue_offset: 0,
                    max_msg_nums: 32,
                    sys_flag: 2 | 4,
                    commit_offset: 0,
                    suspend_timeout_millis: i64::MAX,
                    subscription: Some("*".into()),
                    sub_version: 0,
                    expression_type: Some("TAG".into()),
                    ..Default::default()
                },
            ),
        ),
    ];
    // Transaction halves the checker reads: one born at i64::MIN (now - born overflowed),
    // one immune for i64::MAX seconds (x 1000 overflowed). Either killed the checker task.
    let half = |born: i64, extra: &str| {
        request(
            RequestCode::SEND_MESSAGE_V2,
            &SendMessageRequestHeaderV2::from_v1(SendMessageRequestHeader {
                producer_group: PRODUCER_GROUP.into(),
                topic: TOPIC.into(),
                default_topic: "TBW102".into(),
                default_topic_queue_nums: 4,
                sys_flag: 4,
                born_timestamp: born,
                properties: Some(format!(
                    "TRAN_MSG\u{1}true\u{2}PGROUP\u{1}{PRODUCER_GROUP}{extra}"
                )),
                ..Default::default()
            }),
        )
        .with_body(b"half".to_vec())
    };
    let halves = [
        (
            "transaction checker: a half born at i64::MIN",
            half(i64::MIN, ""),
        ),
        (
            "transaction checker: a half immune for i64::MAX s, then check passes",
            half(
                1_700_000_000_000,
                "\u{2}CHECK_IMMUNITY_TIME_IN_SECONDS\u{1}9223372036854775807",
            ),
        ),
    ];
    list.into_iter()
        .chain(too_large)
        .chain(expiry)
        .chain(held)
        .chain(halves)
        .map(|(name, cmd)| {
            let cmd = RemotingCommand { opaque: 1, ..cmd };
            let body = cmd.body.to_vec();
            let mut s = seed(
                format!("regression: {name}"),
                Shape::from_command(&cmd, 0, body).encode(),
            );
            if name.contains("housekeeping pass") {
                s.pause = HOUSEKEEPING + Duration::from_millis(500);
            }
            if name.contains("check passes") {
                s.pause = 2 * TRANSACTION_CHECKS + Duration::from_millis(500);
            }
            s
        })
        .collect()
}

/// How often the fuzzed broker checks transaction halves, and how old a half must be
/// (`transactionCheckInterval`, `transactionTimeOut`: 60 s and 6 s by default).
pub const TRANSACTION_CHECKS: Duration = Duration::from_secs(1);

/// How often the fuzzed broker runs its housekeeping (`flushConsumerOffsetInterval`; 5 s by
/// default, shorter here so settings a mutant changed meet it within a run).
pub const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// The request codes `BrokerProcessor::route` dispatches, read from its source so a code
/// added there without a seed here fails `every_handled_code_has_a_seed`.
pub fn handled_codes() -> Vec<(String, i32)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/processor/mod.rs");
    let src = std::fs::read_to_string(&path).unwrap();
    let start = src
        .find("async fn route")
        .expect("route() in processor/mod.rs");
    let end = start
        + src[start..]
            .find("other =>")
            .expect("route()'s fallback arm");
    let mut codes: Vec<(String, i32)> = src[start..end]
        .split("RequestCode::")
        .skip(1)
        .map(|s| {
            s.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .map(|name| {
            let code = RequestCode::from_name(&name)
                .unwrap_or_else(|| panic!("RequestCode::{name} is not in code.rs"));
            (name, code)
        })
        .collect();
    codes.sort_by_key(|c| c.1);
    codes.dedup();
    codes
}
