//! `rocketmq-operator`: once it holds the leader lease, runs the `NameServer`, `BrokerGroup`,
//! `Topic` and `ConsumerGroup` controllers for each watched namespace; serves `/metrics`,
//! `/healthz` and `/readyz` throughout.
//!
//! Environment: `WATCH_NAMESPACE` (comma-separated; empty = all), `HTTP_ADDR`,
//! `LEADER_ELECTION` (`false` to run without a lease), `POD_NAMESPACE` (where the Lease
//! lives), `POD_NAME` (this replica's identity), `LEASE_NAME`, `RUST_LOG`, `LOG_FORMAT`
//! (`json` for JSON lines).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use rmq_operator::controller::{broker_group, consumer_group, nameserver, topic, Context, Error};
use rmq_operator::crd::{BrokerGroup, ConsumerGroup, NameServer, Topic};
use rmq_operator::leader::{ElectionConfig, LeaderElector, LEASE_NAME};

struct Metrics {
    registry: Registry,
    reconciles: IntCounterVec,
    /// Failed reconciliations, by controller and [`Error::kind`].
    failures: IntCounterVec,
    durations: HistogramVec,
    /// Objects in the controllers' caches, by kind.
    managed: IntGaugeVec,
    /// 1 while this replica holds the leader lease.
    leader: IntGauge,
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
    let failures = IntCounterVec::new(
        Opts::new(
            "reconcile_failures_total",
            "Failed reconciliations, by controller and kind of error.",
        ),
        &["controller", "error"],
    )
    .expect("metric");
    let durations = HistogramVec::new(
        HistogramOpts::new("reconcile_duration_seconds", "Time of one reconciliation."),
        &["controller"],
    )
    .expect("metric");
    let managed = IntGaugeVec::new(
        Opts::new(
            "managed_objects",
            "Custom resources the operator watches, by kind.",
        ),
        &["kind"],
    )
    .expect("metric");
    let leader =
        IntGauge::new("leader", "1 while this replica holds the leader lease.").expect("metric");
    registry
        .register(Box::new(reconciles.clone()))
        .expect("register");
    registry
        .register(Box::new(failures.clone()))
        .expect("register");
    registry
        .register(Box::new(durations.clone()))
        .expect("register");
    registry
        .register(Box::new(managed.clone()))
        .expect("register");
    registry
        .register(Box::new(leader.clone()))
        .expect("register");
    Arc::new(Metrics {
        registry,
        reconciles,
        failures,
        durations,
        managed,
        leader,
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

/// Counts the failure by kind and retries in 15 s.
fn error_policy(m: &Metrics, controller: &'static str, err: &Error) -> Action {
    m.failures
        .with_label_values(&[controller, err.kind()])
        .inc();
    tracing::warn!(controller, error = %err, kind = err.kind(), "reconcile failed, retrying");
    Action::requeue(Duration::from_secs(15))
}

/// The namespaces to watch: `WATCH_NAMESPACE` as a comma-separated list; empty means all.
fn watched_namespaces() -> Vec<Option<String>> {
    let list: Vec<Option<String>> = std::env::var("WATCH_NAMESPACE")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| Some(n.to_string()))
        .collect();
    if list.is_empty() {
        vec![None]
    } else {
        list
    }
}

fn api<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    match namespace {
        Some(n) => Api::namespaced(client.clone(), n),
        None => Api::all(client.clone()),
    }
}

/// One controller for kind `K`: its future (ends at SIGTERM/SIGINT) and its object cache,
/// which the `managed_objects` gauge counts.
fn controller<K, R, Fut>(
    api: Api<K>,
    owned: Option<Api<StatefulSet>>,
    kind: &'static str,
    reconcile: R,
    ctx: Arc<Context>,
    m: Arc<Metrics>,
) -> (BoxFuture<'static, ()>, Store<K>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    R: Fn(Arc<K>, Arc<Context>) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<Action, Error>> + Send + 'static,
{
    let mut ctl = Controller::new(api, watcher::Config::default());
    if let Some(sts) = owned {
        ctl = ctl.owns(sts, watcher::Config::default());
    }
    let store = ctl.store();
    let timing = m.clone();
    let failures = m.clone();
    let fut = ctl
        .shutdown_on_signal()
        .run(
            move |obj: Arc<K>, ctx| {
                let m = timing.clone();
                let reconcile = reconcile.clone();
                async move {
                    let t = Instant::now();
                    let name = obj.name_any();
                    let r = reconcile(obj, ctx).await;
                    m.durations
                        .with_label_values(&[kind])
                        .observe(t.elapsed().as_secs_f64());
                    tracing::debug!(kind, %name, ok = r.is_ok(), "reconciled");
                    r
                }
            },
            move |_obj: Arc<K>, err: &Error, _ctx: Arc<Context>| error_policy(&failures, kind, err),
            ctx,
        )
        .for_each(record(m, kind))
        .boxed();
    (fut, store)
}

/// How many objects one controller's cache holds.
type ObjectCount = Box<dyn Fn() -> usize + Send>;

/// The controllers started so far, and their caches for the `managed_objects` gauge.
struct Controllers {
    ctx: Arc<Context>,
    m: Arc<Metrics>,
    futures: Vec<BoxFuture<'static, ()>>,
    stores: Arc<std::sync::Mutex<Vec<(&'static str, ObjectCount)>>>,
}

impl Controllers {
    /// Starts the controller of kind `K` (`label`: its metrics label).
    fn add<K, R, Fut>(
        &mut self,
        kind: &'static str,
        label: &'static str,
        api: Api<K>,
        owned: Option<Api<StatefulSet>>,
        reconcile: R,
    ) where
        K: kube::Resource<DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
        R: Fn(Arc<K>, Arc<Context>) -> Fut + Send + Sync + Clone + 'static,
        Fut: std::future::Future<Output = Result<Action, Error>> + Send + 'static,
    {
        let (f, store) = controller(
            api,
            owned,
            label,
            reconcile,
            self.ctx.clone(),
            self.m.clone(),
        );
        self.futures.push(f);
        self.stores
            .lock()
            .expect("stores")
            .push((kind, Box::new(move || store.state().len())));
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Keeps renewing the lease; resolves when this replica no longer leads.
async fn hold_leadership(elector: &mut LeaderElector) {
    loop {
        tokio::time::sleep(elector.config.retry_period).await;
        if let Err(e) = elector.try_acquire_or_renew().await {
            tracing::warn!(error = %e, "renewing the leader lease failed");
        }
        if !elector.is_leading() {
            return;
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // kube's TLS is rustls with ring; when another crate in the build turns on aws-lc-rs as
    // well (a workspace build does), rustls cannot choose by itself and panics.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // JSON lines for log collectors (the chart's default); text for people at a terminal.
    if std::env::var("LOG_FORMAT").is_ok_and(|f| f == "json") {
        tracing_subscriber::fmt()
            .json()
            .with_current_span(false)
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let namespaces = watched_namespaces();
    let http: SocketAddr = std::env::var("HTTP_ADDR")
        .unwrap_or_else(|_| "0.0.0.0:8080".into())
        .parse()?;
    let client = Client::try_default().await?;
    let admin = match rmq_operator::controller::admin_credential() {
        Some(a) => Some(a),
        // No mounted credential (installed without the chart): keep one in a Secret of our own.
        None => {
            let ns = std::env::var("POD_NAMESPACE")
                .ok()
                .filter(|n| !n.is_empty())
                .or_else(|| namespaces[0].clone())
                .unwrap_or_else(|| "default".into());
            match rmq_operator::controller::ensure_admin_secret(&client, &ns).await {
                Ok(a) => Some(a),
                Err(e) => {
                    tracing::warn!(error = %e, "no admin credential: clusters run with controlPlaneAuthEnable=false");
                    None
                }
            }
        }
    };
    let tls = match rmq_operator::controller::operator_tls() {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "ROCKETMQ_TLS_DIR does not hold a usable ca.crt");
            return Err(anyhow::anyhow!("{e}"));
        }
    };
    let ctx = Arc::new(Context::new(client.clone()).with_admin(admin).with_tls(tls));
    let m = metrics();

    // Health and metrics answer from the start, while this replica waits to lead.
    let stores: Arc<std::sync::Mutex<Vec<(&'static str, ObjectCount)>>> = Arc::default();
    let app = {
        let m = m.clone();
        let stores = stores.clone();
        Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(|| async { "ok" }))
            .route(
                "/metrics",
                get(move || {
                    let m = m.clone();
                    let stores = stores.clone();
                    async move {
                        m.managed.reset();
                        for (kind, count) in stores.lock().expect("stores").iter() {
                            m.managed.with_label_values(&[kind]).add(count() as i64);
                        }
                        rmq_remoting_encode(&m.registry)
                    }
                }),
            )
    };
    let listener = tokio::net::TcpListener::bind(http).await?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    tracing::info!(%http, namespaces = ?namespaces, "rocketmq-operator started");

    let election = std::env::var("LEADER_ELECTION")
        .map(|v| v != "false")
        .unwrap_or(true);
    let mut elector = None;
    if election {
        let lease_ns = std::env::var("POD_NAMESPACE")
            .ok()
            .filter(|n| !n.is_empty())
            .or_else(|| namespaces[0].clone())
            .unwrap_or_else(|| "default".into());
        let identity = std::env::var("POD_NAME")
            .ok()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("rocketmq-operator-{}", std::process::id()));
        let mut e = LeaderElector::new(
            Api::namespaced(client.clone(), &lease_ns),
            &std::env::var("LEASE_NAME").unwrap_or_else(|_| LEASE_NAME.into()),
            &identity,
            ElectionConfig::default(),
        );
        tracing::info!(%identity, namespace = %lease_ns, "waiting to become leader");
        let wait = async {
            loop {
                match e.try_acquire_or_renew().await {
                    Ok(true) => return,
                    Ok(false) => {}
                    Err(err) => tracing::warn!(error = %err, "leader election"),
                }
                tokio::time::sleep(e.config.retry_period).await;
            }
        };
        tokio::select! {
            _ = wait => {}
            _ = shutdown_signal() => {
                tracing::info!("stopped before becoming leader");
                return Ok(());
            }
        }
        m.leader.set(1);
        elector = Some(e);
    } else {
        m.leader.set(1);
    }

    let mut controllers = Controllers {
        ctx: ctx.clone(),
        m: m.clone(),
        futures: Vec::new(),
        stores: stores.clone(),
    };
    for ns in &namespaces {
        let sts: Api<StatefulSet> = api(&client, ns);
        controllers.add(
            "NameServer",
            "nameserver",
            api::<NameServer>(&client, ns),
            Some(sts.clone()),
            nameserver::reconcile,
        );
        controllers.add(
            "BrokerGroup",
            "broker_group",
            api::<BrokerGroup>(&client, ns),
            Some(sts),
            broker_group::reconcile,
        );
        controllers.add(
            "Topic",
            "topic",
            api::<Topic>(&client, ns),
            None,
            topic::reconcile,
        );
        controllers.add(
            "ConsumerGroup",
            "consumer_group",
            api::<ConsumerGroup>(&client, ns),
            None,
            consumer_group::reconcile,
        );
    }

    let lost = async {
        match elector.as_mut() {
            Some(e) => hold_leadership(e).await,
            None => futures::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        _ = futures::future::join_all(controllers.futures) => Ok(()),
        _ = lost => Err(anyhow::anyhow!("lost the leader lease; exiting so that only the leader reconciles")),
        r = server => match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.into()),
            Err(e) => Err(e.into()),
        },
    };
    if let Some(e) = elector.as_mut() {
        if outcome.is_ok() {
            if let Err(err) = e.release().await {
                tracing::warn!(error = %err, "could not release the leader lease");
            }
        }
    }
    m.leader.set(0);
    tracing::info!("rocketmq-operator stopped");
    outcome
}

fn rmq_remoting_encode(registry: &Registry) -> String {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    let _ = prometheus::TextEncoder::new().encode(&registry.gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}
