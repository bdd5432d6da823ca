//! `mqbench` as a process against a real name server and broker (in-process, loopback).

use std::process::Command;

use rmq_broker::Broker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_then_consume_counts_every_message() {
    let dir = tempfile::tempdir().unwrap();
    let ns = rmq_testkit::start_namesrv(dir.path()).await;
    let ns_addr = ns.local_addr().to_string();
    let mut s = rmq_testkit::broker_settings(dir.path(), &ns_addr, "bench-broker");
    s.store.mapped_file_size_commit_log = 8 << 20;
    s.store.mapped_file_size_consume_queue = 20 * 10_000;
    s.store.max_index_num = 8192;
    let metrics_port = rmq_testkit::free_port();
    s.broker.metrics_port = metrics_port;
    let broker = Broker::start(s).await.unwrap();
    // Wait until the broker is registered.
    for _ in 0..50 {
        if ns.processor().route.live_broker_count() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let bench = env!("CARGO_BIN_EXE_mqbench");
    let ns2 = ns_addr.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bench)
            .args([
                "producer",
                "-n",
                &ns2,
                "-t",
                "BenchIt",
                "-w",
                "4",
                "-s",
                "256",
                "--count",
                "400",
                "--seconds",
                "20",
                "--queues",
                "4",
                "-k",
                "-c",
                "3",
                "--brokerMetrics",
                &format!("127.0.0.1:{metrics_port}"),
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("[summary] Send TPS"), "{text}");
    assert!(text.contains("failed: 0"), "{text}");
    // The broker's CPU per message, from its process counters (here the test process's).
    let cpu_line = text
        .lines()
        .find(|l| l.starts_with("[broker] CPU:"))
        .unwrap_or_else(|| panic!("no broker CPU line: {text}"));
    assert!(
        cpu_line.contains("for 400 messages") && cpu_line.ends_with("us/msg"),
        "{cpu_line}"
    );
    let batch_out = tokio::task::spawn_blocking({
        let ns2 = ns_addr.clone();
        move || {
            Command::new(bench)
                .args([
                    "producer", "-n", &ns2, "-t", "BenchIt", "-w", "2", "-s", "100", "--count",
                    "100", "--batch", "10", "--mode", "async",
                ])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        batch_out.status.success(),
        "{}",
        String::from_utf8_lossy(&batch_out.stderr)
    );
    let stored: i64 = (0..4)
        .map(|q| {
            broker
                .inner()
                .store
                .max_offset_in_queue("BenchIt", q, false)
        })
        .sum();
    assert_eq!(stored, 500, "every acknowledged message is stored");

    let ns2 = ns_addr.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bench)
            .args([
                "consumer",
                "-n",
                &ns2,
                "-t",
                "BenchIt",
                "-g",
                "bench_group",
                "--from-first",
                "--count",
                "500",
                "--seconds",
                "20",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("[summary] Consume TPS"), "{text}");
    // The consumer committed its progress with its pulls.
    let committed: i64 = (0..4)
        .map(|q| {
            broker
                .inner()
                .offsets
                .query("bench_group", "BenchIt", q)
                .max(0)
        })
        .sum();
    assert!(committed > 0, "{text}");
    broker.shutdown().await;
    ns.shutdown().await;
}

/// A name server and one broker (with its metrics endpoint) on 127.0.0.1.
struct Node {
    ns: rmq_nameserver::NameServer,
    broker: Broker,
    ns_addr: String,
    metrics: String,
    _dir: tempfile::TempDir,
}

async fn node(name: &str, flush: rmq_remoting::role::FlushDiskType) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let ns = rmq_testkit::start_namesrv(dir.path()).await;
    let ns_addr = ns.local_addr().to_string();
    let mut s = rmq_testkit::broker_settings(dir.path(), &ns_addr, name);
    s.store.flush_disk_type = flush;
    let metrics_port = rmq_testkit::free_port();
    s.broker.metrics_port = metrics_port;
    let broker = Broker::start(s).await.unwrap();
    assert!(
        rmq_testkit::wait_until(std::time::Duration::from_secs(10), || {
            ns.processor().route.live_broker_count() > 0
        })
        .await,
        "broker registered"
    );
    Node {
        ns,
        broker,
        ns_addr,
        metrics: format!("127.0.0.1:{metrics_port}"),
        _dir: dir,
    }
}

impl Node {
    fn stored(&self, topic: &str, queues: i32) -> i64 {
        (0..queues)
            .map(|q| {
                self.broker
                    .inner()
                    .store
                    .max_offset_in_queue(topic, q, false)
            })
            .sum()
    }

    async fn stop(self) {
        self.broker.shutdown().await;
        self.ns.shutdown().await;
    }
}

/// Runs mqbench; its exit status, stdout and stderr.
async fn mqbench(args: &[&str]) -> (bool, String, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_mqbench"))
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The result table's rows, by column name.
fn rows(text: &str) -> Vec<std::collections::HashMap<String, String>> {
    let head: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("[table] "))
        .unwrap_or_else(|| panic!("no result table: {text}"))
        .split_whitespace()
        .skip(1)
        .collect();
    text.lines()
        .filter(|l| l.starts_with("[row] "))
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().skip(1).collect();
            assert_eq!(cells.len(), head.len(), "{l}");
            head.iter()
                .zip(cells)
                .map(|(h, c)| (h.to_string(), c.to_string()))
                .collect()
        })
        .collect()
}

fn number(row: &std::collections::HashMap<String, String>, col: &str) -> f64 {
    row[col]
        .parse()
        .unwrap_or_else(|_| panic!("{col} is not a number: {row:?}"))
}

fn shipped(file: &str) -> String {
    format!("{}/workloads/{file}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_files_drive_a_run_and_its_row() {
    use rmq_remoting::role::FlushDiskType;
    let n = node("wl-broker", FlushDiskType::SyncFlush).await;
    let file = shipped("send-1k-64-syncflush.toml");
    // Flags given on the command line win over the file: 4 senders, 200 messages.
    let (ok, out, err) = mqbench(&[
        "producer",
        "--workload",
        &file,
        "-n",
        &n.ns_addr,
        "-w",
        "4",
        "--count",
        "200",
        "--seconds",
        "20",
        "--brokerMetrics",
        &n.metrics,
    ])
    .await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("4 senders, 1024 B bodies, mode Sync"), "{out}");
    assert!(out.contains("workload: send-1k-64-syncflush ("), "{out}");
    assert!(
        out.contains("(wl-broker): flushDiskType SYNC_FLUSH, brokerRole ASYNC_MASTER"),
        "{out}"
    );
    assert!(out.contains("[broker] RSS: "), "{out}");
    let r = rows(&out);
    assert_eq!(r.len(), 1, "{out}");
    let r = &r[0];
    assert_eq!(r["label"], n.ns_addr);
    assert_eq!(r["workload"], "send-1k-64-syncflush");
    assert_eq!(r["msgs"], "200");
    assert_eq!(
        (r["flush"].as_str(), r["role"].as_str()),
        ("SYNC_FLUSH", "ASYNC_MASTER")
    );
    assert!(number(r, "tps") > 0.0, "{r:?}");
    for col in ["p50_ms", "p99_ms", "p999_ms", "cpu_us_msg"] {
        assert!(number(r, col) >= 0.0, "{r:?}");
    }
    assert!(number(r, "p50_ms") <= number(r, "p999_ms"), "{r:?}");
    assert!(number(r, "rss_mib") > 0.0, "{r:?}");
    // The file's topic and queues.
    assert_eq!(n.stored("BenchSend", 8), 200);

    // A consumer workload; --flushDiskType on the command line wins over its ASYNC_FLUSH.
    let (ok, out, err) = mqbench(&[
        "consumer",
        "--workload",
        &shipped("consume-32.toml"),
        "-n",
        &n.ns_addr,
        "--count",
        "200",
        "--seconds",
        "20",
        "--flushDiskType",
        "SYNC_FLUSH",
        "--label",
        "drain",
    ])
    .await;
    assert!(ok, "{out}\n{err}");
    let r = rows(&out);
    assert_eq!(r.len(), 1, "{out}");
    assert_eq!(
        (r[0]["label"].as_str(), r[0]["workload"].as_str()),
        ("drain", "consume-32")
    );
    assert_eq!(r[0]["msgs"], "200", "from the first message: {out}");
    assert_eq!(r[0]["cpu_us_msg"], "-", "no --brokerMetrics");
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_in_another_flush_mode_is_refused() {
    use rmq_remoting::role::FlushDiskType;
    let n = node("async-broker", FlushDiskType::AsyncFlush).await;
    let (ok, out, err) = mqbench(&[
        "producer",
        "--workload",
        &shipped("send-1k-64-syncflush.toml"),
        "-n",
        &n.ns_addr,
        "--count",
        "10",
        "--seconds",
        "2",
    ])
    .await;
    assert!(!ok, "{out}");
    assert!(
        err.contains("(async-broker) runs flushDiskType=ASYNC_FLUSH (brokerRole ASYNC_MASTER)")
            && err.contains("the workload expects SYNC_FLUSH: not running"),
        "{err}"
    );
    assert!(
        !out.contains("[summary]") && !out.contains("[row]"),
        "{out}"
    );
    assert_eq!(n.stored("BenchSend", 8), 0, "nothing was sent");
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_runs_the_workload_on_both_clusters() {
    use rmq_remoting::role::FlushDiskType;
    let (a, b) = (
        node("broker-one", FlushDiskType::AsyncFlush).await,
        node("broker-two", FlushDiskType::AsyncFlush).await,
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("small.toml");
    std::fs::write(
        &file,
        "name = \"small\"\ntopic = \"Cmp\"\nsize = 64\nsenders = 2\ncount = 100\n\
         seconds = 20\nqueues = 2\nflush_disk_type = \"ASYNC_FLUSH\"\n",
    )
    .unwrap();
    let (ok, out, err) = mqbench(&[
        "producer",
        "--workload",
        file.to_str().unwrap(),
        "-n",
        &a.ns_addr,
        "--compare",
        &b.ns_addr,
        "--brokerMetrics",
        &a.metrics,
        "--compareBrokerMetrics",
        &b.metrics,
        "--compareLabel",
        "second",
    ])
    .await;
    assert!(ok, "{out}\n{err}");
    let r = rows(&out);
    assert_eq!(r.len(), 2, "{out}");
    assert_eq!(r[0]["label"], a.ns_addr);
    assert_eq!(r[1]["label"], "second");
    for row in &r {
        assert_eq!(
            (row["workload"].as_str(), row["msgs"].as_str()),
            ("small", "100")
        );
        assert_eq!(row["flush"], "ASYNC_FLUSH");
        for col in [
            "tps",
            "p50_ms",
            "p99_ms",
            "p999_ms",
            "cpu_us_msg",
            "rss_mib",
        ] {
            number(row, col);
        }
    }
    // One run after the other, each on its own cluster.
    let first = out.find(&format!("== {} (name server", a.ns_addr)).unwrap();
    let second = out.find("== second (name server").unwrap();
    assert!(first < second, "{out}");
    assert!(
        out[first..second].contains("(broker-one): flushDiskType"),
        "{out}"
    );
    assert!(
        out[second..].contains("(broker-two): flushDiskType"),
        "{out}"
    );
    assert_eq!((a.stored("Cmp", 2), b.stored("Cmp", 2)), (100, 100));
    // The rows are aligned under the header.
    let col = |l: &str| l.find(&r[0]["workload"]).unwrap();
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("[row]")).collect();
    assert_eq!(col(lines[0]), col(lines[1]), "{out}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn bad_workload_files_and_flags_are_refused_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.toml");
    std::fs::write(&file, "name = \"typo\"\nsenders = 4\nsizee = 1024\n").unwrap();
    // Port 1: nothing listens, so any request would fail with another error.
    let (ok, out, err) = mqbench(&[
        "producer",
        "--workload",
        file.to_str().unwrap(),
        "-n",
        "127.0.0.1:1",
    ])
    .await;
    assert!(!ok, "{out}");
    assert!(
        err.contains(&format!("workload file {}", file.display()))
            && err.contains("unknown field `sizee`"),
        "{err}"
    );
    let (ok, _, err) = mqbench(&[
        "consumer",
        "--workload",
        &shipped("send-128b-16.toml"),
        "-n",
        "127.0.0.1:1",
    ])
    .await;
    assert!(!ok && err.contains("is for `mqbench producer`"), "{err}");
    let (ok, _, err) = mqbench(&[
        "producer",
        "-n",
        "127.0.0.1:1",
        "--compare",
        "127.0.0.1:2",
        "--brokerMetrics",
        "127.0.0.1:3",
    ])
    .await;
    assert!(!ok && err.contains("needs --compareBrokerMetrics"), "{err}");
}
