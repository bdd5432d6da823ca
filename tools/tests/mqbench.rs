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
