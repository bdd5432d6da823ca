//! Route lookups per second against a real `mqnamesrv` process, by number of topics.
//!
//! `cargo bench -p rmq-nameserver --bench route_lookup` starts the release `mqnamesrv` on a
//! free loopback port for each topic count in `RMQ_BENCH_TOPICS` (default `100,1000,10000`),
//! registers a master and a slave serving that many topics of 8 queues (timing the
//! registrations: the first, then the median of 5 of the same again, as the periodic one is,
//! and of 5 with a new data version), then for each connection count in `RMQ_BENCH_CONNECTIONS` (default `1,64`) runs
//! that many connections, each sending GET_ROUTEINFO_BY_TOPIC for random topics with one
//! request in flight, for `RMQ_BENCH_SECONDS` (default 5), and prints requests per second and
//! latency percentiles; last, the median time of GET_ALL_TOPIC_LIST_FROM_NAMESERVER and
//! GET_BROKER_CLUSTER_INFO over 20 calls.

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
    let list = |key: &str, default: &str| -> Vec<usize> {
        std::env::var(key)
            .unwrap_or_else(|_| default.into())
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect()
    };
    let conns = list("RMQ_BENCH_CONNECTIONS", "1,64");
    for topics in list("RMQ_BENCH_TOPICS", "100,1000,10000") {
        bench_topics(topics, &conns, seconds);
    }
}

fn bench_topics(topics: usize, conns: &[usize], seconds: u64) {
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
    let child = Command::new(env!("CARGO_BIN_EXE_mqnamesrv"))
        .arg("-c")
        .arg(&conf)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start mqnamesrv");
    // Stopped however this ends (a failed request panics).
    let _namesrv = Stop(child, dir.clone());
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
        // Registering is the control plane: signed with the local admin credential, which
        // the name server started here checks (its adminCredentialFile is the default).
        let admin = rmq_acl::credential::load_or_create(&rmq_acl::credential::default_path())
            .expect("the local admin credential");
        let client = RemotingClient::default().with_credentials(Some(admin));
        let names: Vec<String> = (0..topics).map(|i| format!("BenchTopic{i}")).collect();
        let register = |id: i64, baddr: &str, version: &DataVersion| {
            let body = RegisterBrokerBody {
                topic_config_serialize_wrapper: TopicConfigSerializeWrapper {
                    topic_config_table: names
                        .iter()
                        .map(|t| (t.clone(), TopicConfig::new(t.clone(), 8, 6)))
                        .collect(),
                    data_version: version.clone(),
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
            RemotingCommand::request_with_header(RequestCode::REGISTER_BROKER, &h)
                .with_body(body.encode())
        };
        let timed = |req: RemotingCommand| {
            let client = client.clone();
            let addr = addr.clone();
            async move {
                let t0 = Instant::now();
                client
                    .invoke(&addr, req, Duration::from_secs(30))
                    .await
                    .unwrap()
                    .ensure_success()
                    .unwrap();
                t0.elapsed()
            }
        };
        let mut version = DataVersion::now();
        let bytes = register(0, "127.0.0.1:10911", &version).body.len();
        let first = timed(register(0, "127.0.0.1:10911", &version)).await;
        timed(register(1, "127.0.0.1:10921", &version)).await;
        // Medians of 5: the periodic registration (same data version) and one after a change.
        let (mut same, mut changed) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            same.push(timed(register(0, "127.0.0.1:10911", &version)).await);
            version.next();
            changed.push(timed(register(0, "127.0.0.1:10911", &version)).await);
        }
        same.sort();
        changed.sort();
        let (same, changed) = (same[2], changed[2]);
        println!(
            "route_lookup: {topics} topics of 8 queues, 2 brokers, {seconds} s per run, one \
             request in flight per connection"
        );
        println!(
            "  registration of {bytes} bytes: first {:.1} ms, unchanged {:.1} ms, new data \
             version {:.1} ms (medians of 5)",
            ms(first),
            ms(same),
            ms(changed)
        );
        let names = Arc::new(names);
        for &c in conns {
            run(&addr, c, Duration::from_secs(seconds), names.clone()).await;
        }
        for (what, code) in [
            (
                "topic list",
                RequestCode::GET_ALL_TOPIC_LIST_FROM_NAMESERVER,
            ),
            ("cluster info", RequestCode::GET_BROKER_CLUSTER_INFO),
        ] {
            let mut t = Vec::new();
            for _ in 0..20 {
                t.push(timed(RemotingCommand::request(code)).await);
            }
            t.sort();
            println!("  {what}: median {:.2} ms over 20 calls", ms(t[10]));
        }
    });
}

struct Stop(std::process::Child, std::path::PathBuf);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
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
