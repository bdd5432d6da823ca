//! The name server's Prometheus metrics.

use std::sync::Arc;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

use crate::processor::NamesrvProcessor;

pub struct NamesrvMetrics {
    pub registry: Registry,
    pub requests: HistogramVec,
    pub denied: IntCounterVec,
    live_brokers: IntGauge,
    topics: IntGauge,
}

impl NamesrvMetrics {
    pub fn new() -> Arc<NamesrvMetrics> {
        let registry =
            Registry::new_custom(Some("rocketmq_namesrv".into()), None).expect("registry");
        let requests = HistogramVec::new(
            HistogramOpts::new(
                "request_duration_seconds",
                "Time to answer a request, by request code.",
            )
            .buckets(rmq_metrics::latency_buckets()),
            &["code"],
        )
        .expect("valid metric");
        let denied = IntCounterVec::new(
            Opts::new(
                "requests_denied_total",
                "Requests refused by the control-plane check, by request code and reason.",
            ),
            &["code", "reason"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(denied.clone()))
            .expect("register");
        let live_brokers = IntGauge::new("live_brokers", "Broker addresses registered and alive.")
            .expect("valid metric");
        let topics =
            IntGauge::new("topics", "Topics with at least one route.").expect("valid metric");
        registry
            .register(Box::new(requests.clone()))
            .expect("register");
        registry
            .register(Box::new(live_brokers.clone()))
            .expect("register");
        registry
            .register(Box::new(topics.clone()))
            .expect("register");
        Arc::new(NamesrvMetrics {
            registry,
            requests,
            denied,
            live_brokers,
            topics,
        })
    }

    pub fn gather(&self, p: &NamesrvProcessor) -> String {
        self.live_brokers.set(p.route.live_broker_count() as i64);
        self.topics
            .set(p.route.all_topics().topic_list.len() as i64);
        rmq_metrics::encode(&self.registry)
    }
}
