//! `/metrics` on the broker and the name server: the series operators need, in a format that
//! Debian's `promtool check metrics` accepts; and the Grafana dashboard shipped with the cluster
//! chart asks only for series the broker exports, in PromQL that `promtool check rules` parses.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use rmq_broker::Broker;
use rmq_remoting::header::*;
use rmq_remoting::message::encode_properties;
use rmq_remoting::{RemotingCommand, RequestCode};
use rmq_testkit::free_port;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(5);

async fn scrape(addr: std::net::SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(T, s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let body = text.split_once("\r\n\r\n").unwrap().1.to_string();
    // Chunked encoding: keep only the exposition lines.
    body.lines()
        .filter(|l| l.starts_with('#') || l.starts_with("rocketmq"))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The value of the series `name` whose labels include all of `labels`.
fn value(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines().find_map(|l| {
        let (series, v) = l.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, ""));
        (n == name && labels.iter().all(|lb| rest.contains(lb)))
            .then(|| v.parse().ok())
            .flatten()
    })
}

fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (scripts/test-deps installs Debian's prometheus package)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- metrics ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every query of `charts/rocketmq-cluster/dashboards/rocketmq-brokers.json` names metrics
/// present in `scraped` and parses as PromQL (each becomes a recording rule for promtool, with
/// Grafana's variables replaced by what Grafana would put there).
fn dashboard_matches(scraped: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../charts/rocketmq-cluster/dashboards/rocketmq-brokers.json");
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut exprs = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    for v in dash["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["query"]
            .as_str()
            .and_then(|q| q.strip_prefix("label_values("))
        {
            exprs.push(q.split(',').next().unwrap().to_string());
        }
    }
    assert!(exprs.len() >= 13, "{exprs:?}");
    let exported: std::collections::HashSet<&str> = scraped
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap())
        .collect();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        for word in e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("rocketmq_") {
                assert!(
                    exported.contains(word),
                    "dashboard uses {word}, which the broker does not export"
                );
            }
        }
        let promql = e
            .replace("$__rate_interval", "1m")
            .replace("$cluster", ".*")
            .replace("$broker", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:q{i}\n        expr: '{}'\n",
            promql.replace('\'', "''")
        ));
    }
    let file = tempfile::Builder::new().suffix(".yml").tempfile().unwrap();
    std::fs::write(file.path(), &rules).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(file.path())
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "promtool check rules:\n{}{}\n{rules}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn broker_and_name_server_metrics_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let ns = rmq_nameserver::NameServer::start(rmq_nameserver::NamesrvConfig {
        metrics_port: free_port(),
        ..rmq_testkit::namesrv_config(dir.path())
    })
    .await
    .unwrap();
    let mut s = rmq_testkit::broker_settings(dir.path(), &ns.local_addr().to_string(), "broker-m");
    s.broker.metrics_port = free_port();
    s.store.flush_interval_commit_log = 50;
    s.store.flush_commit_log_least_pages = 0;
    let broker = Broker::start(s.clone()).await.unwrap();
    let addr = format!("127.0.0.1:{}", s.broker.listen_port);
    let c = rmq_testkit::admin_client();

    // Traffic: 10 sends, one pull by group "mg" committing offset 4.
    let mut props = HashMap::new();
    props.insert("TAGS".to_string(), "a".to_string());
    for _ in 0..10 {
        let h = SendMessageRequestHeaderV2::from_v1(SendMessageRequestHeader {
            producer_group: "pg".into(),
            topic: "MetricTopic".into(),
            default_topic: "TBW102".into(),
            default_topic_queue_nums: 1,
            queue_id: 0,
            born_timestamp: rmq_remoting::util::now_millis(),
            properties: Some(encode_properties(&props)),
            ..Default::default()
        });
        let req = RemotingCommand::request_with_header(RequestCode::SEND_MESSAGE_V2, &h)
            .with_body(&b"0123456789"[..]);
        c.invoke(&addr, req, T)
            .await
            .unwrap()
            .ensure_success()
            .unwrap();
    }
    // Acknowledged sends become pullable once dispatched (as in RocketMQ): wait for that.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let q = RemotingCommand::request_with_header(
            RequestCode::GET_MAX_OFFSET,
            &GetMaxOffsetRequestHeader {
                topic: "MetricTopic".into(),
                queue_id: 0,
                committed: Some(true),
            },
        );
        let r = c.invoke(&addr, q, T).await.unwrap();
        let h: GetMaxOffsetResponseHeader = r.decode_header().unwrap();
        if h.offset >= 10 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never dispatched");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pull = RemotingCommand::request_with_header(
        RequestCode::PULL_MESSAGE,
        &PullMessageRequestHeader {
            consumer_group: "mg".into(),
            topic: "MetricTopic".into(),
            queue_id: 0,
            queue_offset: 0,
            max_msg_nums: 32,
            sys_flag: 0x1 | 0x4,
            commit_offset: 4,
            suspend_timeout_millis: 0,
            subscription: Some("*".into()),
            expression_type: Some("TAG".into()),
            ..Default::default()
        },
    );
    c.invoke(&addr, pull, T)
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let text = scrape(broker.metrics_addr().unwrap()).await;
    let v = |name: &str, labels: &[&str]| value(&text, name, labels);
    assert_eq!(
        v("rocketmq_messages_in_total", &["topic=\"MetricTopic\""]),
        Some(10.0),
        "{text}"
    );
    assert_eq!(
        v(
            "rocketmq_messages_in_bytes_total",
            &["topic=\"MetricTopic\""]
        ),
        Some(100.0)
    );
    assert_eq!(
        v(
            "rocketmq_messages_out_total",
            &["topic=\"MetricTopic\"", "group=\"mg\""]
        ),
        Some(10.0)
    );
    assert_eq!(
        v("rocketmq_pull_requests_total", &["group=\"mg\""]),
        Some(1.0)
    );
    assert_eq!(
        v(
            "rocketmq_consumer_lag_messages",
            &["group=\"mg\"", "topic=\"MetricTopic\"", "queue=\"0\""]
        ),
        Some(6.0),
        "10 stored, offset 4 committed"
    );
    assert_eq!(
        v(
            "rocketmq_request_duration_seconds_count",
            &["code=\"SEND_MESSAGE_V2\""]
        ),
        Some(10.0)
    );
    assert!(v("rocketmq_commitlog_max_offset_bytes", &[]).unwrap() > 0.0);
    assert!(v("rocketmq_commitlog_flush_duration_seconds_count", &[]).unwrap() >= 1.0);
    let ratio = v("rocketmq_disk_usage_ratio", &[]).unwrap();
    assert!(ratio > 0.0 && ratio < 1.0);
    assert!(v("rocketmq_client_connections", &["role=\"producer\""]).is_some());
    promtool_check(&text);
    dashboard_matches(&text);

    let ns_text = scrape(ns.metrics_addr().unwrap()).await;
    assert_eq!(
        value(&ns_text, "rocketmq_namesrv_live_brokers", &[]),
        Some(1.0),
        "{ns_text}"
    );
    assert!(
        value(
            &ns_text,
            "rocketmq_namesrv_request_duration_seconds_count",
            &["code=\"REGISTER_BROKER\""]
        )
        .unwrap()
            >= 1.0
    );
    promtool_check(&ns_text);

    broker.shutdown().await;
    ns.shutdown().await;
}
