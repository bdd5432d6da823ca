//! queryMsgById and queryMsgByKey.

use rmq_remoting::header::{QueryMessageRequestHeader, ViewMessageRequestHeader};
use rmq_remoting::message::encode_offset_msg_id;
use rmq_remoting::RequestCode;

use crate::harness::{mqadmin, start_cluster};

/// A client message id whose bytes, read as an offset message id, name 127.0.0.1:1 (IP,
/// then pid 0x1234 and a class-loader hash starting 0x0001: port 1), where nothing listens.
const UNIQ: &str = "7F00000112340001ABCD5678ABCD0001";
/// Another client message id (each test its own: bodies are written to files named by it).
const UNIQ2: &str = "7F00000112340001ABCD5678ABCD0002";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_msg_by_offset_id_views_it_at_its_store() {
    let c = start_cluster().await;
    let msg = c.a.store_message(
        4096,
        7,
        &[("KEYS", "k1 k2"), ("TAGS", "TagA"), ("UNIQ_KEY", UNIQ2)],
    );
    let id = encode_offset_msg_id(msg.store_host, 4096);
    let run = mqadmin(&["queryMsgById", "-n", &c.ns.addr, "-i", &id, "-f", "UTF-8"])
        .await
        .ok();
    let field = |name: &str, value: &str| format!("{name:<20} {value}");
    for (name, value) in [
        ("OffsetID:", id.as_str()),
        ("Topic:", "T"),
        ("Tags:", "[TagA]"),
        ("Keys:", "[k1 k2]"),
        ("Queue ID:", "1"),
        ("Queue Offset:", "7"),
        ("CommitLog Offset:", "4096"),
        ("Reconsume Times:", "0"),
        ("Born Host:", "127.0.0.1:40000"),
        ("Store Host:", &c.a.addr),
        ("System Flag:", "0"),
        (
            "Properties:",
            &format!("{{KEYS=k1 k2, TAGS=TagA, UNIQ_KEY={UNIQ2}}}"),
        ),
        ("Message Body:", "hello body"),
    ] {
        assert_eq!(run.line(name), field(name, value));
    }
    assert!(run.line("Born Timestamp:").ends_with(",000"));
    assert!(run.line("Store Timestamp:").ends_with(",005"));
    let path = format!("/tmp/rocketmq/msgbodys/{UNIQ2}");
    assert_eq!(
        run.line("Message Body Path:"),
        field("Message Body Path:", &path)
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"hello body");
    // Group G consumed queue 1 up to 91 > 7: consumed.
    run.line("MessageTrack [consumerGroup=G, trackType=CONSUMED, exceptionDesc=null]");

    let views = c.a.requests(RequestCode::VIEW_MESSAGE_BY_ID);
    assert_eq!(views.len(), 1);
    let h: ViewMessageRequestHeader = views[0].decode_header().unwrap();
    assert_eq!(h.offset, 4096);
    assert!(c.b.requests(RequestCode::VIEW_MESSAGE_BY_ID).is_empty());
    assert!(c.a.requests(RequestCode::QUERY_MESSAGE).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_msg_by_id_falls_back_to_the_unique_key() {
    let c = start_cluster().await;
    let msg = c.a.store_message(8192, 3, &[("UNIQ_KEY", UNIQ)]);
    // UNIQ decodes to 127.0.0.1:1: the view fails, the unique-key query finds it.
    let run = mqadmin(&["queryMsgById", "-n", &c.ns.addr, "-i", UNIQ, "-t", "T"])
        .await
        .ok();
    assert_eq!(
        run.line("OffsetID:"),
        format!(
            "{:<20} {}",
            "OffsetID:",
            encode_offset_msg_id(msg.store_host, 8192)
        )
    );
    run.line("Tags:                [null]");
    for master in [&c.a, &c.b] {
        let reqs = master.requests(RequestCode::QUERY_MESSAGE);
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].ext_fields["_UNIQUE_KEY_QUERY"], "true");
        let h: QueryMessageRequestHeader = reqs[0].decode_header().unwrap();
        assert_eq!(
            (h.topic.as_str(), h.key.as_str(), h.max_num),
            ("T", UNIQ, 32)
        );
        assert_eq!(h.end_timestamp, i64::MAX);
    }
    assert!(c.a_slave.requests(RequestCode::QUERY_MESSAGE).is_empty());

    // Not hex at all: straight to the unique-key query; not found there: exit 1.
    let run = mqadmin(&[
        "queryMsgById",
        "-n",
        &c.ns.addr,
        "-i",
        "no-such-id",
        "-t",
        "T",
    ])
    .await
    .failed();
    assert!(run.stdout.contains("Message not found!"), "{}", run.stdout);
    // Without a topic there is nothing to fall back on.
    let run = mqadmin(&["queryMsgById", "-n", &c.ns.addr, "-i", "no-such-id"])
        .await
        .failed();
    assert!(
        run.stderr.contains("not an offset message id"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_msg_by_key_asks_every_master() {
    let c = start_cluster().await;
    c.a.store_message(100, 7, &[("KEYS", "k1 k2"), ("UNIQ_KEY", UNIQ)]);
    let run = mqadmin(&["queryMsgByKey", "-n", &c.ns.addr, "-t", "T", "-k", "k2"])
        .await
        .ok();
    assert_eq!(
        run.stdout,
        format!(
            "{:<50} {:>4} {:>40}\n{:<50} {:>4} {:>40}\n",
            "#Message ID", "#QID", "#Offset", UNIQ, 1, 7
        )
    );
    for master in [&c.a, &c.b] {
        let reqs = master.requests(RequestCode::QUERY_MESSAGE);
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].ext_fields["_UNIQUE_KEY_QUERY"], "false");
        let h: QueryMessageRequestHeader = reqs[0].decode_header().unwrap();
        assert_eq!(h.key, "k2");
        assert_eq!(h.max_num, 64);
        assert_eq!((h.begin_timestamp, h.end_timestamp), (0, i64::MAX));
    }
    let run = mqadmin(&[
        "queryMsgByKey",
        "-n",
        &c.ns.addr,
        "-t",
        "T",
        "-k",
        "k2",
        "-b",
        "5",
        "-e",
        "6",
        "-m",
        "3",
    ])
    .await
    .ok();
    assert!(run.stdout.contains(UNIQ));
    let h: QueryMessageRequestHeader = c.b.requests(RequestCode::QUERY_MESSAGE)[1]
        .decode_header()
        .unwrap();
    assert_eq!((h.begin_timestamp, h.end_timestamp, h.max_num), (5, 6, 3));

    let run = mqadmin(&["queryMsgByKey", "-n", &c.ns.addr, "-t", "T", "-k", "zzz"])
        .await
        .failed();
    assert!(run.stderr.contains("NO_MESSAGE"), "{}", run.stderr);
}
