//! The broker: the store, the metadata managers, the request processors and their servers,
//! registration with the name servers, and the periodic housekeeping.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rmq_remoting::{ClientConfig, ConnectionConfig, RemotingClient, RemotingServer};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::BrokerSettings;
use crate::long_polling::PullRequestHoldService;
use crate::manager::clients::ClientManager;
use crate::manager::offsets::ConsumerOffsetManager;
use crate::manager::subscriptions::SubscriptionGroupManager;
use crate::manager::topics::TopicConfigManager;
use crate::processor::BrokerProcessor;
use crate::store::MessageStore;

/// Where a master keeps the end of what it acknowledged to SYNC_MASTER producers.
const ACKNOWLEDGED_FILE: &str = "haAcknowledged.json";

/// The broker's background tasks: one stop for all of them, and the handles awaited at
/// shutdown (those started at boot and those a promotion or step-down starts later).
#[derive(Default)]
pub struct Tasks {
    stop: CancellationToken,
    running: parking_lot::Mutex<Vec<JoinHandle<()>>>,
}

impl Tasks {
    /// Cancelled at shutdown; every background task watches it (or a child of it).
    pub fn stop_token(&self) -> &CancellationToken {
        &self.stop
    }

    /// Runs `task` until it ends; shutdown waits for it.
    pub fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.running.lock().push(tokio::spawn(task));
    }

    /// Stops every task and waits for them, including any started while stopping.
    async fn stop_and_join(&self) {
        self.stop.cancel();
        loop {
            let batch: Vec<_> = self.running.lock().drain(..).collect();
            if batch.is_empty() {
                return;
            }
            for t in batch {
                let _ = t.await;
            }
        }
    }
}

/// The parts of a broker, each a handle over its own private state, shared by the request
/// processors and the background tasks.
pub struct BrokerInner {
    /// `broker.conf` as read at start, and the keys changed at run time.
    pub settings: crate::config::Settings,
    /// Role, broker id, permission and epochs: the one owner of what a promotion changes.
    pub role: crate::role::Role,
    pub store: MessageStore,
    pub topics: TopicConfigManager,
    pub groups: SubscriptionGroupManager,
    pub offsets: ConsumerOffsetManager,
    pub clients: ClientManager,
    pub holds: PullRequestHoldService,
    /// Talks to name servers and the other brokers of the group, signing with the admin
    /// credential.
    pub namesrv: RemotingClient,
    /// Who may send what: the plain ACL and the control plane.
    pub gate: rmq_acl::Gate,
    /// The admin credential, if there is one (signs outgoing requests and the HA handshake).
    pub admin: Option<rmq_remoting::Credentials>,
    /// TLS of the listening ports (remoting, VIP, HA); `None`: plaintext only.
    pub server_tls: Option<Arc<rmq_remoting::tls::ServerTls>>,
    /// TLS of the broker's own connections (`tls.enable`); `None`: plaintext.
    pub client_tls: Option<rmq_remoting::tls::ClientTls>,
    /// The address stored in every record (`brokerIP1:listenPort`).
    pub store_host: SocketAddr,
    pub broker_addr: String,
    /// Message counts and rates, uptime, and the bound on sends in flight.
    pub traffic: crate::traffic::Traffic,
    pub metrics: Arc<crate::metrics::BrokerMetrics>,
    /// Delivery progress of each delay level.
    pub schedule: crate::schedule::ScheduleOffsets,
    /// Queue locks of orderly consumers.
    pub locks: crate::manager::locks::RebalanceLockManager,
    /// Which transaction halves are finished.
    pub transactions: crate::transaction::TransactionState,
    /// Compiled SQL92 subscriptions.
    pub sql_filters: crate::filter::SqlCache,
    /// Replication: connected slaves (master) or the master followed (slave).
    pub ha: crate::ha::HaState,
    pub tasks: Tasks,
    /// Registrations asked for by changes, coalesced.
    pub registrations: crate::namesrv::Registrations,
    /// A master started from its config: the check that its term is current.
    pub term_check: crate::term_check::TermCheck,
    /// Connection counts of the listening ports (metrics), set once they listen.
    pub servers: std::sync::OnceLock<Vec<rmq_remoting::server::ServerStats>>,
}

impl BrokerInner {
    pub fn cluster_name(&self) -> String {
        self.settings.cluster_name()
    }

    pub fn broker_name(&self) -> String {
        self.settings.broker_name()
    }

    /// The settings as they are now: `broker.conf` with the role, broker id, permission and
    /// configured master address a promotion or step-down changed (what GET_BROKER_CONFIG
    /// shows, and what a restart in the same role would take).
    pub fn current_settings(&self) -> BrokerSettings {
        let mut s = self.settings.snapshot();
        let r = self.role.snapshot();
        s.broker.broker_role = r.role;
        s.broker.broker_id = r.broker_id;
        s.broker.broker_permission = r.permission;
        s.broker.ha_master_address = self.role.configured_master_ha();
        s
    }
}

/// A running broker.
pub struct Broker {
    inner: Arc<BrokerInner>,
    servers: Vec<RemotingServer>,
    metrics_server: Option<rmq_metrics::MetricsServer>,
}

impl Broker {
    /// Opens the store (recovering it), loads metadata, listens on `listenPort` (and the VIP
    /// port `listenPort - 2`), and registers with every name server.
    pub async fn start(mut settings: BrokerSettings) -> anyhow::Result<Broker> {
        settings
            .broker
            .resolve_addresses()
            .map_err(|e| anyhow::anyhow!(e))?;
        let store_config = settings.store.clone();
        let store = tokio::task::spawn_blocking(move || MessageStore::open(store_config))
            .await
            .context("store thread")?
            .context("cannot open the message store")?;
        let b = &settings.broker;
        let ip = store_host_ip(&b.broker_ip1()).await;
        let config_dir = settings.store.root().join("config");
        let topics = TopicConfigManager::load(config_dir.join("topics.json"), b);
        topics
            .persist()
            .context("cannot write the topic configs (config/topics.json)")?;
        let groups = SubscriptionGroupManager::load(
            config_dir.join("subscriptionGroup.json"),
            b.auto_create_subscription_group_limit,
        );
        let offsets = ConsumerOffsetManager::load(config_dir.join("consumerOffset.json"));
        let schedule = crate::schedule::ScheduleOffsets::load(config_dir.join("delayOffset.json"));
        let conn_config = ConnectionConfig {
            max_frame_len: b.frame_max_length,
            idle_timeout: match b.channel_expired_timeout {
                0 => None,
                ms => Some(Duration::from_millis(ms)),
            },
            max_connections: b.server_max_connections,
            max_connections_per_address: b.server_max_connections_per_address,
            max_in_flight: b.server_max_in_flight_requests,
            write_high_water: b.write_buffer_high_water_mark,
            write_timeout: Duration::from_millis(b.server_write_timeout_millis.max(1)),
            // One budget for the main and VIP ports: they serve the same clients.
            budget: Some(rmq_remoting::connection::WriteBudget::new(
                rmq_remoting::connection::DEFAULT_SERVER_WRITE_BUDGET,
            )),
            ..Default::default()
        };
        let bind: IpAddr = b.bind_address.parse().context("bindAddress")?;
        let (admin, gate) = security(b)?;
        let server_tls = rmq_remoting::tls::ServerTls::new(&settings.tls)
            .context("TLS settings for the listening ports")?;
        let client_tls = rmq_remoting::tls::ClientTls::new(&settings.tls)
            .context("TLS settings for the broker's own connections (tls.enable)")?;
        let listen_port = b.listen_port;
        let fast_port = b.fast_listen_port();
        let inner = Arc::new(BrokerInner {
            store_host: SocketAddr::new(ip, b.advertised_port()),
            broker_addr: b.broker_addr(),
            traffic: crate::traffic::Traffic::new(b.max_in_flight_sends),
            metrics: crate::metrics::BrokerMetrics::new(&b.broker_cluster_name, &b.broker_name),
            role: crate::role::Role::new(b, config_dir.join("epoch.json")),
            settings: crate::config::Settings::new(settings),
            store,
            topics,
            groups,
            offsets,
            clients: ClientManager::default(),
            holds: PullRequestHoldService::default(),
            namesrv: RemotingClient::new(
                ClientConfig {
                    credentials: admin.clone(),
                    tls: client_tls.clone(),
                    ..Default::default()
                },
                None,
            ),
            gate,
            admin,
            server_tls: server_tls.clone(),
            client_tls,
            schedule,
            locks: Default::default(),
            transactions: Default::default(),
            sql_filters: Default::default(),
            ha: Default::default(),
            tasks: Tasks::default(),
            registrations: Default::default(),
            term_check: Default::default(),
            servers: std::sync::OnceLock::new(),
        });
        inner
            .ha
            .load_acknowledged(&config_dir.join(ACKNOWLEDGED_FILE));
        {
            let weak = Arc::downgrade(&inner);
            inner
                .store
                .set_dispatch_listener(Arc::new(move |topic, queue_id, max| {
                    if let Some(i) = weak.upgrade() {
                        i.holds.notify(topic, queue_id, max);
                    }
                }));
            // Slaves are sent new records as soon as they are appended: a SYNC_MASTER send
            // waits for them, not for the dispatcher's next round.
            let weak = Arc::downgrade(&inner);
            inner.store.set_append_listener(Arc::new(move || {
                if let Some(i) = weak.upgrade() {
                    i.ha.records_appended();
                }
            }));
        }
        {
            let m = inner.metrics.clone();
            inner
                .store
                .set_flush_observer(Arc::new(move |secs| m.flush.observe(secs)));
        }
        let metrics_port = inner.settings.broker(|b| b.metrics_port);
        let metrics_server = if metrics_port != 0 {
            let weak = Arc::downgrade(&inner);
            let gather: rmq_metrics::Gather = Arc::new(move || {
                weak.upgrade()
                    .map(|i| i.metrics.gather(&i))
                    .unwrap_or_default()
            });
            Some(
                rmq_metrics::MetricsServer::start_tls(
                    SocketAddr::new(bind, metrics_port),
                    gather,
                    server_tls.clone(),
                )
                .await
                .with_context(|| format!("cannot listen on metricsPort {metrics_port}"))?,
            )
        } else {
            None
        };
        let processor = Arc::new(BrokerProcessor::new(inner.clone()));
        let mut servers = Vec::new();
        let main = RemotingServer::bind_tls(
            SocketAddr::new(bind, listen_port),
            processor.clone(),
            conn_config.clone(),
            server_tls.clone(),
        )
        .await
        .with_context(|| format!("cannot listen on port {listen_port}"))?;
        servers.push(main);
        if let Some(port) = fast_port.filter(|p| *p != 0 && *p != listen_port) {
            match RemotingServer::bind_tls(
                SocketAddr::new(bind, port),
                processor.clone(),
                conn_config,
                server_tls.clone(),
            )
            .await
            {
                Ok(s) => servers.push(s),
                Err(e) => {
                    tracing::warn!(port, error = %e, "cannot listen on the VIP port; old clients using it will fail")
                }
            }
        }
        let _ = inner
            .servers
            .set(servers.iter().map(RemotingServer::stats).collect());
        let stop = inner.tasks.stop_token().clone();
        inner
            .tasks
            .spawn(crate::namesrv::register_loop(inner.clone(), stop.clone()));
        inner.tasks.spawn(housekeeping(inner.clone(), stop));
        if inner.role.is_slave() {
            start_slave_services(&inner);
        } else {
            // Bound now, so a SYNC_MASTER that cannot listen for slaves does not start; used
            // once the term is confirmed (`broker.conf` may predate a failover).
            if let Some(l) = bind_ha(&inner).await? {
                inner.ha.reserve_listener(l);
            }
            crate::term_check::start(&inner).await;
        }
        tracing::info!(
            addr = %inner.broker_addr,
            listen = %servers[0].local_addr(),
            "The broker[{}, {}] boot success.",
            inner.broker_name(),
            inner.broker_addr
        );
        Ok(Broker {
            inner,
            servers,
            metrics_server,
        })
    }

    pub fn inner(&self) -> &Arc<BrokerInner> {
        &self.inner
    }

    /// Where `/metrics` is served, if `metricsPort` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_server.as_ref().map(|m| m.local_addr)
    }

    /// The main listening address.
    pub fn local_addr(&self) -> SocketAddr {
        self.servers[0].local_addr()
    }

    /// Unregisters from the name servers, stops serving, persists metadata and offsets, and
    /// shuts the store down cleanly.
    pub async fn shutdown(self) {
        self.inner.tasks.stop_and_join().await;
        crate::namesrv::unregister_all(&self.inner).await;
        self.inner.holds.wake_all();
        for s in self.servers {
            s.shutdown().await;
        }
        if let Some(m) = self.metrics_server {
            m.shutdown().await;
        }
        let inner = self.inner.clone();
        let _ = tokio::task::spawn_blocking(move || {
            inner.offsets.persist();
            let config_dir = inner.store.config().root().join("config");
            inner
                .ha
                .persist_acknowledged(&config_dir.join(ACKNOWLEDGED_FILE));
            for (what, r) in [
                ("topic configs", inner.topics.persist()),
                ("subscription groups", inner.groups.persist()),
            ] {
                if let Err(e) = r {
                    tracing::error!(error = %e, "cannot write the {what} at shutdown");
                }
            }
            inner.store.shutdown();
        })
        .await;
        self.inner.namesrv.close_all();
        tracing::info!("broker stopped");
    }
}

/// What a master runs besides serving requests: the HA port for slaves, the delay-level
/// and transaction-check services, its first epoch. Once its term is confirmed at start,
/// and again on promotion.
pub async fn start_master_services(inner: &Arc<BrokerInner>) -> anyhow::Result<()> {
    let stop = inner.role.new_term(inner.tasks.stop_token());
    inner
        .role
        .ensure_first_term()
        .context("cannot write the first epoch (config/epoch.json)")?;
    // Delay levels and transaction checks first: they must run even if the HA port fails.
    let tasks = &inner.tasks;
    tasks.spawn(crate::schedule::run(inner.clone(), stop.clone()));
    tasks.spawn(crate::transaction::run(inner.clone(), stop.clone()));
    let listener = match inner.ha.take_reserved_listener() {
        Some(l) => Some(l),
        None => bind_ha(inner).await?,
    };
    if let Some(l) = listener {
        tasks.spawn(crate::ha::serve(inner.clone(), l, stop));
    }
    Ok(())
}

/// The HA port's listener. A SYNC_MASTER cannot keep its promise without slaves: failing
/// to listen is an error; an ASYNC_MASTER can still serve, unreplicated (`None`).
async fn bind_ha(inner: &Arc<BrokerInner>) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    let (bind, ha_port) = inner
        .settings
        .broker(|b| (b.bind_address.parse::<IpAddr>(), b.ha_listen_port()));
    let bind = bind.context("bindAddress")?;
    match tokio::net::TcpListener::bind(SocketAddr::new(bind, ha_port)).await {
        Ok(l) => Ok(Some(l)),
        Err(e) if inner.role.snapshot().sync_master() => {
            Err(e).with_context(|| format!("cannot listen on haListenPort {ha_port}"))
        }
        Err(e) => {
            tracing::error!(port = ha_port, error = %e, "cannot listen on haListenPort: no slave can replicate");
            Ok(None)
        }
    }
}

/// What a slave runs: following the master over the HA port and copying its metadata. At
/// start, and again on demotion. Both end by themselves once the broker is promoted.
pub fn start_slave_services(inner: &Arc<BrokerInner>) {
    let stop = inner.role.new_term(inner.tasks.stop_token());
    inner
        .tasks
        .spawn(crate::ha::replicate(inner.clone(), stop.clone()));
    inner
        .tasks
        .spawn(crate::slave_sync::sync_metadata(inner.clone(), stop));
}

/// The admin credential and the gate built from the security settings.
fn security(
    b: &crate::config::BrokerConfig,
) -> anyhow::Result<(Option<rmq_remoting::Credentials>, rmq_acl::Gate)> {
    let admin = rmq_acl::credential::resolve(b.control_plane_auth_enable, &b.admin_credential_file)
        .context("the admin credential (adminCredentialFile)")?;
    let acl = if b.acl_enable {
        let (main, dir) = b.acl_paths();
        let acl = rmq_acl::PlainAcl::load(main.clone(), dir)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| {
                format!(
                    "aclEnable=true but the ACL does not load ({})",
                    main.display()
                )
            })?;
        Some(Arc::new(acl))
    } else {
        None
    };
    if !b.control_plane_auth_enable {
        tracing::warn!("controlPlaneAuthEnable=false: anyone who reaches this broker can change its role, config and topics");
    }
    let gate = rmq_acl::Gate::new(
        admin.clone().filter(|_| b.control_plane_auth_enable),
        acl,
        rmq_acl::broker_control_plane,
    );
    Ok((admin, gate))
}

/// The IP written into every stored message as its store host (and so into every
/// `offsetMsgId`). `brokerIP1` may be a host name (a cloud load balancer's): resolve it, and
/// fall back to this host's address if it does not resolve.
async fn store_host_ip(broker_ip1: &str) -> IpAddr {
    if let Ok(ip) = broker_ip1.parse() {
        return ip;
    }
    let resolved = tokio::net::lookup_host((broker_ip1, 0)).await.map(|addrs| {
        let addrs: Vec<SocketAddr> = addrs.collect();
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .map(|a| a.ip())
    });
    match resolved {
        Ok(Some(ip)) => ip,
        other => {
            let fallback: IpAddr = crate::config::local_ip()
                .parse()
                .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
            tracing::warn!(
                broker_ip1,
                error = ?other.err(),
                %fallback,
                "brokerIP1 does not resolve; message ids carry this host's address"
            );
            fallback
        }
    }
}

/// Offsets to disk every `flushConsumerOffsetInterval`; idle clients dropped; TPS sampled.
async fn housekeeping(inner: Arc<BrokerInner>, stop: CancellationToken) {
    let interval = Duration::from_millis(
        inner
            .settings
            .broker(|b| b.flush_consumer_offset_interval)
            .max(100),
    );
    // TPS samples once a second (putTps / getTransferredTps in runtime info).
    let sampler = {
        let inner = inner.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => inner.traffic.sample(),
                }
            }
        })
    };
    let _sampler = AbortOnDrop(sampler);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let i = inner.clone();
        let _ = tokio::task::spawn_blocking(move || {
            i.offsets.persist();
            i.ha.persist_acknowledged(
                &i.store
                    .config()
                    .root()
                    .join("config")
                    .join(ACKNOWLEDGED_FILE),
            );
            if let Some(acl) = i.gate.acl() {
                acl.reload_if_changed();
            }
        })
        .await;
        // Any u64 is a valid setting; past i64::MAX / 2 it means never (ClientManager::expired
        // adds it to a heartbeat time: at i64::MAX that overflowed and killed this task).
        let timeout = inner
            .settings
            .broker(|b| b.channel_expired_timeout)
            .min(i64::MAX as u64 / 2) as i64;
        for conn in inner
            .clients
            .expired(rmq_remoting::util::now_millis(), timeout)
        {
            tracing::info!(peer = %conn.peer_addr(), "closing a client that stopped heartbeating");
            conn.close();
        }
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
