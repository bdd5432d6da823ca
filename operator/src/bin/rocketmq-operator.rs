//! `rocketmq-operator`: runs the `NameServer` and `BrokerGroup` controllers, and serves
//! `/metrics`, `/healthz` and `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use rmq_operator::controller::{broker_group, consumer_group, nameserver, topic, Context, Error};
use rmq_operator::crd::{BrokerGroup, ConsumerGroup, NameServer, Topic};

struct Metrics {
    registry: Registry,
    reconciles: IntCounterVec,
    durations: HistogramVec,
}

fn metrics() -> Arc<Metrics> {
    let registry = Registry::new_custom(Some("rocketmq_operator".into()), None).expect("registry");
    let reconciles = IntCounterVec::new(
        Opts::new(
            "reconciles_total",
            "Reconciliations, by controller and result.",
        ),
        &["controller", "result"],
    )
    .expect("metric");
    let durations = HistogramVec::new(
        HistogramOpts::new("reconcile_duration_seconds", "Time of one reconciliation."),
        &["controller"],
    )
    .expect("metric");
    registry
        .register(Box::new(reconciles.clone()))
        .expect("register");
    registry
        .register(Box::new(durations.clone()))
        .expect("register");
    Arc::new(Metrics {
        registry,
        reconciles,
        durations,
    })
}

/// Counts each reconciliation's outcome.
fn record<T, E: std::fmt::Display>(
    m: Arc<Metrics>,
    controller: &'static str,
) -> impl Fn(Result<T, E>) -> futures::future::Ready<()> {
    move |res| {
        let result = if res.is_ok() { "ok" } else { "error" };
        m.reconciles.with_label_values(&[controller, result]).inc();
        if let Err(e) = res {
            tracing::debug!(controller, error = %e, "reconcile error");
        }
        futures::future::ready(())
    }
}

fn error_policy<K>(_obj: Arc<K>, err: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(error = %err, "reconcile failed, retrying");
    Action::requeue(Duration::from_secs(15))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let namespace = std::env::var("WATCH_NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty());
    let http: SocketAddr = std::env::var("HTTP_ADDR")
        .unwrap_or_else(|_| "0.0.0.0:8080".into())
        .parse()?;
    let client = Client::try_default().await?;
    let ctx = Arc::new(Context::new(client.clone()));
    let m = metrics();

    let (ns_api, bg_api, sts_api): (Api<NameServer>, Api<BrokerGroup>, Api<StatefulSet>) =
        match &namespace {
            Some(n) => (
                Api::namespaced(client.clone(), n),
                Api::namespaced(client.clone(), n),
                Api::namespaced(client.clone(), n),
            ),
            None => (
                Api::all(client.clone()),
                Api::all(client.clone()),
                Api::all(client.clone()),
            ),
        };
    let ns_metrics = m.clone();
    let ns_ctl = Controller::new(ns_api, watcher::Config::default())
        .owns(sts_api.clone(), watcher::Config::default())
        .shutdown_on_signal()
        .run(
            move |obj: Arc<NameServer>, ctx| {
                let m = ns_metrics.clone();
                async move {
                    let t = Instant::now();
                    let r = nameserver::reconcile(obj.clone(), ctx).await;
                    m.durations
                        .with_label_values(&["nameserver"])
                        .observe(t.elapsed().as_secs_f64());
                    tracing::info!(name = %obj.name_any(), ok = r.is_ok(), "reconciled NameServer");
                    r
                }
            },
            error_policy,
            ctx.clone(),
        )
        .for_each(record(m.clone(), "nameserver"));
    let bg_metrics = m.clone();
    let bg_ctl = Controller::new(bg_api, watcher::Config::default())
        .owns(sts_api, watcher::Config::default())
        .shutdown_on_signal()
        .run(
            move |obj: Arc<BrokerGroup>, ctx| {
                let m = bg_metrics.clone();
                async move {
                    let t = Instant::now();
                    let r = broker_group::reconcile(obj.clone(), ctx).await;
                    m.durations.with_label_values(&["broker_group"]).observe(t.elapsed().as_secs_f64());
                    tracing::info!(name = %obj.name_any(), ok = r.is_ok(), "reconciled BrokerGroup");
                    r
                }
            },
            error_policy,
            ctx.clone(),
        )
        .for_each(record(m.clone(), "broker_group"));

    let topic_api: Api<Topic> = match &namespace {
        Some(n) => Api::namespaced(client.clone(), n),
        None => Api::all(client.clone()),
    };
    let topic_ctl = Controller::new(topic_api, watcher::Config::default())
        .shutdown_on_signal()
        .run(topic::reconcile, error_policy, ctx.clone())
        .for_each(record(m.clone(), "topic"));

    let group_api: Api<ConsumerGroup> = match &namespace {
        Some(n) => Api::namespaced(client.clone(), n),
        None => Api::all(client.clone()),
    };
    let group_ctl = Controller::new(group_api, watcher::Config::default())
        .shutdown_on_signal()
        .run(consumer_group::reconcile, error_policy, ctx.clone())
        .for_each(record(m.clone(), "consumer_group"));

    let reg = m.clone();
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let reg = reg.clone();
                async move { rmq_remoting_encode(&reg.registry) }
            }),
        );
    let listener = tokio::net::TcpListener::bind(http).await?;
    let server = axum::serve(listener, app);
    tracing::info!(%http, namespace = ?namespace, "rocketmq-operator started");
    tokio::select! {
        _ = futures::future::join4(ns_ctl, bg_ctl, topic_ctl, group_ctl) => {}
        r = server => r?,
    }
    tracing::info!("rocketmq-operator stopped");
    Ok(())
}

fn rmq_remoting_encode(registry: &Registry) -> String {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    let _ = prometheus::TextEncoder::new().encode(&registry.gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}
