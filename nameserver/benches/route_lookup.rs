//! Route lookups per second against a real `mqnamesrv` process.
//!
//! `cargo bench -p rmq-nameserver --bench route_lookup` starts the release `mqnamesrv` on a
//! free loopback port, registers a master and a slave serving `RMQ_BENCH_TOPICS` topics
//! (default 100), then for each connection count in `RMQ_BENCH_CONNECTIONS` (default `1,64`)
//! runs that many connections, each sending GET_ROUTEINFO_BY_TOPIC for random topics with
//! one request in flight, for `RMQ_BENCH_SECONDS` (default 5). It prints requests per second
//! and latency percentiles.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmq_remoting::header::{GetRouteInfoRequestHeader, RegisterBrokerRequestHeader};
use rmq_remoting::protocol::topic::{RegisterBrokerBody, TopicConfig, TopicConfigSerializeWrapper};
use rmq_remoting::protocol::DataVersion;
use rmq_remoting::{JsonBody, RemotingClient, RemotingCommand, RequestCode, ResponseCode};

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and expects a quick run.
    let quick = !std::env::args().any(|a| a == "--bench");
    let seconds: u64 = if quick {
        1
    } else {
        env_or("RMQ_BENCH_SECONDS", 5)
    };
    let topics: usize = env_or("RMQ_BENCH_TOPICS", 100);
    let conns: Vec<usize> = std::env::var("RMQ_BENCH_CONNECTIONS")
        .unwrap_or_else(|_| "1,64".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();

    let dir = std::env::temp_dir().join(format!("rmq-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.join("namesrv.conf");
    std::fs::write(
        &conf,
        format!(
            "listenPort={port}\nbindAddress=127.0.0.1\nkvConfigPath={}\nconfigStorePath={}\n",
            dir.join("kv.json").display(),
            dir.join("ns.properties").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mqnamesrv"))
        .arg("-c")
        .arg(&conf)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start mqnamesrv");
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "mqnamesrv did not start");
        std::thread::sleep(Duration::from_millis(20));
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = RemotingClient::default();
        let names: Vec<String> = (0..topics).map(|i| format!("BenchTopic{i}")).collect();
        for (id, baddr) in [(0, "127.0.0.1:10911"), (1, "127.0.0.1:10921")] {
            let body = RegisterBrokerBody {
                topic_config_serialize_wrapper: TopicConfigSerializeWrapper {
                    topic_config_table: names.iter().map(|t| (t.clone(), TopicConfig::new(t.clone(), 8, 6))).collect(),
                    data_version: DataVersion::now(),
                    ..Default::default()
                },
                filter_server_list: vec![],
            };
            let h = RegisterBrokerRequestHeader {
                broker_name: "broker-a".into(),
                broker_addr: baddr.into(),
                cluster_name: "DefaultCluster".into(),
                ha_server_addr: "127.0.0.1:10912".into(),
                broker_id: id,
                ..Default::default()
            };
            let req = RemotingCommand::request_with_header(RequestCode::REGISTER_BROKER, &h).with_body(body.encode());
            client.invoke(&addr, req, Duration::from_secs(5)).await.unwrap().ensure_success().unwrap();
        }
        println!(
            "route_lookup: {} topics, 2 brokers, {} s per run, one request in flight per connection",
            topics, seconds
        );
        let names = Arc::new(names);
        for &c in &conns {
            run(&addr, c, Duration::from_secs(seconds), names.clone()).await;
        }
    });
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

async fn run(addr: &str, connections: usize, dur: Duration, names: Arc<Vec<String>>) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..connections {
        let addr = addr.to_string();
        let names = names.clone();
        tasks.push(tokio::spawn(async move {
            let client = RemotingClient::default();
            let mut lat = Vec::with_capacity(100_000);
            let mut n = i * 7919;
            while start.elapsed() < dur {
                n = n.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let topic = &names[(n >> 8) % names.len()];
                let req = RemotingCommand::request_with_header(
                    RequestCode::GET_ROUTEINFO_BY_TOPIC,
                    &GetRouteInfoRequestHeader {
                        topic: topic.clone(),
                        accept_standard_json_only: None,
                    },
                );
                let t0 = Instant::now();
                let resp = client
                    .invoke(&addr, req, Duration::from_secs(5))
                    .await
                    .expect("route");
                assert_eq!(resp.code, ResponseCode::SUCCESS);
                lat.push(t0.elapsed().as_micros() as u32);
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "connections={connections:>3}  lookups={:>8}  rate={:>9.0}/s  p50={}us  p99={}us  p999={}us",
        all.len(),
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        pct(0.999)
    );
}
