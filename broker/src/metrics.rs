//! The broker's Prometheus metrics. Counters are bumped on the data path; gauges that need a
//! walk over queues and offsets (lag, offsets, disk) are computed at scrape time.

use std::sync::Arc;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

pub struct BrokerMetrics {
    pub registry: Registry,
    pub messages_in: IntCounterVec,
    pub bytes_in: IntCounterVec,
    pub messages_out: IntCounterVec,
    pub bytes_out: IntCounterVec,
    pub pulls: IntCounterVec,
    pub denied: IntCounterVec,
    pub requests: HistogramVec,
    pub flush: Histogram,
    lag: IntGaugeVec,
    commitlog_max: IntGauge,
    commitlog_min: IntGauge,
    dispatch_behind: IntGauge,
    disk_ratio: prometheus::Gauge,
    connections: IntGaugeVec,
    held_pulls: IntGauge,
    store_fenced: IntGauge,
    open_connections: IntGauge,
    refused_connections: prometheus::IntCounter,
    cpu_seconds: prometheus::Counter,
    resident_bytes: IntGauge,
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
}

impl BrokerMetrics {
    pub fn new(cluster: &str, broker: &str) -> Arc<BrokerMetrics> {
        let mut labels = std::collections::HashMap::new();
        labels.insert("cluster".to_string(), cluster.to_string());
        labels.insert("broker".to_string(), broker.to_string());
        let registry =
            Registry::new_custom(Some("rocketmq".into()), Some(labels)).expect("registry");
        let m = BrokerMetrics {
            messages_in: counter(
                "messages_in_total",
                "Messages stored, by topic.",
                &["topic"],
            ),
            bytes_in: counter(
                "messages_in_bytes_total",
                "Message body bytes stored, by topic.",
                &["topic"],
            ),
            messages_out: counter(
                "messages_out_total",
                "Messages delivered to consumers, by topic and group.",
                &["topic", "group"],
            ),
            bytes_out: counter(
                "messages_out_bytes_total",
                "Record bytes delivered to consumers, by topic and group.",
                &["topic", "group"],
            ),
            pulls: counter(
                "pull_requests_total",
                "Pull requests, by consumer group.",
                &["group"],
            ),
            denied: counter(
                "requests_denied_total",
                "Requests refused by the ACL or the control-plane check, by request code and reason.",
                &["code", "reason"],
            ),
            requests: HistogramVec::new(
                HistogramOpts::new(
                    "request_duration_seconds",
                    "Time to answer a request, by request code.",
                )
                .buckets(rmq_metrics::latency_buckets()),
                &["code"],
            )
            .expect("valid metric"),
            flush: Histogram::with_opts(
                HistogramOpts::new(
                    "commitlog_flush_duration_seconds",
                    "Time of one commit-log flush.",
                )
                .buckets(rmq_metrics::latency_buckets()),
            )
            .expect("valid metric"),
            lag: IntGaugeVec::new(
                Opts::new(
                    "consumer_lag_messages",
                    "Messages not yet consumed, by group, topic and queue.",
                ),
                &["group", "topic", "queue"],
            )
            .expect("valid metric"),
            commitlog_max: IntGauge::new("commitlog_max_offset_bytes", "End of the commit log.")
                .expect("valid metric"),
            commitlog_min: IntGauge::new(
                "commitlog_min_offset_bytes",
                "First commit-log offset still stored.",
            )
            .expect("valid metric"),
            dispatch_behind: IntGauge::new(
                "dispatch_behind_bytes",
                "Commit-log bytes not yet in consume queues.",
            )
            .expect("valid metric"),
            disk_ratio: prometheus::Gauge::new(
                "disk_usage_ratio",
                "Used fraction of the commit log's file system.",
            )
            .expect("valid metric"),
            connections: IntGaugeVec::new(
                Opts::new("client_connections", "Connected clients, by role."),
                &["role"],
            )
            .expect("valid metric"),
            held_pulls: IntGauge::new(
                "held_pull_requests",
                "Pulls waiting for messages (long polling).",
            )
            .expect("valid metric"),
            open_connections: IntGauge::new(
                "remoting_connections_open",
                "Connections open on the broker's ports (clients, tools, other brokers).",
            )
            .expect("valid metric"),
            refused_connections: prometheus::IntCounter::new(
                "remoting_connections_refused_total",
                "Connections closed on accept since start: serverMaxConnections or serverMaxConnectionsPerAddress reached.",
            )
            .expect("valid metric"),
            // Microsecond CPU time (getrusage), not the process collector's whole seconds:
            // mqbench divides it by the messages of an 8 s run.
            cpu_seconds: prometheus::Counter::new(
                "process_cpu_seconds_total",
                "User and system CPU time of the broker process, seconds.",
            )
            .expect("valid metric"),
            resident_bytes: IntGauge::new(
                "process_resident_memory_bytes",
                "Resident memory of the broker process, bytes (mapped store files included).",
            )
            .expect("valid metric"),
            store_fenced: IntGauge::new(
                "store_fenced",
                "1 once a flush failed and the store stopped taking writes (restart to recover).",
            )
            .expect("valid metric"),
            registry,
        };
        for c in [
            &m.messages_in,
            &m.bytes_in,
            &m.messages_out,
            &m.bytes_out,
            &m.pulls,
            &m.denied,
        ] {
            m.registry.register(Box::new(c.clone())).expect("register");
        }
        m.registry
            .register(Box::new(m.requests.clone()))
            .expect("register");
        m.registry
            .register(Box::new(m.flush.clone()))
            .expect("register");
        m.registry
            .register(Box::new(m.lag.clone()))
            .expect("register");
        m.registry
            .register(Box::new(m.commitlog_max.clone()))
            .expect("register");
        m.registry
            .register(Box::new(m.commitlog_min.clone()))
            .expect("register");
        m.registry
            .register(Box::new(m.dispatch_behind.clone()))
            .expect("register");
        m.registry
            .register(Box::new(m.disk_ratio.clone()))
            .expect("register");
        m.registry
            .register(Box::new(m.connections.clone()))
            .expect("register");
        m.registry
            .register(Box::new(m.held_pulls.clone()))
            .expect("register");
        for g in [&m.store_fenced, &m.open_connections] {
            m.registry.register(Box::new(g.clone())).expect("register");
        }
        m.registry
            .register(Box::new(m.refused_connections.clone()))
            .expect("register");
        m.registry
            .register(Box::new(m.cpu_seconds.clone()))
            .expect("register");
        m.registry
            .register(Box::new(m.resident_bytes.clone()))
            .expect("register");
        Arc::new(m)
    }

    /// Refreshes the scrape-time gauges and encodes everything.
    pub fn gather(&self, inner: &crate::broker::BrokerInner) -> String {
        let store = &inner.store;
        self.commitlog_max.set(store.max_phy_offset());
        self.commitlog_min.set(store.min_phy_offset());
        self.dispatch_behind
            .set((store.max_phy_offset() - store.dispatched_phy_offset()).max(0));
        let ratio = crate::store::retention::disk_usage_percent(&store.config().commit_log_dir())
            .unwrap_or(0.0)
            / 100.0;
        self.disk_ratio.set(ratio);
        self.held_pulls.set(inner.holds.held_count() as i64);
        self.store_fenced.set(i64::from(store.fenced().is_some()));
        let (cpu, rss) = process_usage();
        let shown = self.cpu_seconds.get();
        if cpu > shown {
            self.cpu_seconds.inc_by(cpu - shown);
        }
        self.resident_bytes.set(rss as i64);
        let servers = inner.servers.get().map(Vec::as_slice).unwrap_or_default();
        self.open_connections
            .set(servers.iter().map(|s| s.open() as i64).sum());
        // The servers count; the counter follows them.
        let refused: u64 = servers.iter().map(|s| s.refused()).sum();
        let shown = self.refused_connections.get();
        if refused > shown {
            self.refused_connections.inc_by(refused - shown);
        }
        let (producers, consumers) = inner.clients.connection_counts();
        self.connections
            .with_label_values(&["producer"])
            .set(producers as i64);
        self.connections
            .with_label_values(&["consumer"])
            .set(consumers as i64);
        self.lag.reset();
        for (topic, group, queues) in inner.offsets.all() {
            for (queue, committed) in queues {
                let max = store.max_offset_in_queue(&topic, queue, true);
                let lag = (max - committed).max(0);
                self.lag
                    .with_label_values(&[group.as_str(), topic.as_str(), &queue.to_string()])
                    .set(lag);
            }
        }
        rmq_metrics::encode(&self.registry)
    }
}

/// CPU seconds (user + system, microsecond resolution) and resident bytes of this process.
fn process_usage() -> (f64, u64) {
    // SAFETY: getrusage fills the struct it is given; zeroed is a valid rusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let cpu = if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } == 0 {
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        secs(ru.ru_utime) + secs(ru.ru_stime)
    } else {
        0.0
    };
    // statm's second field: resident pages.
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        // SAFETY: sysconf has no preconditions.
        .map(|pages| pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64)
        .unwrap_or(0);
    (cpu, rss)
}
