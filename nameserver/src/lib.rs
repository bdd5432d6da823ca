//! A RocketMQ-compatible name server: the route registry brokers register with and clients
//! ask for topic routes and cluster info.
//!
//! [`route_info`] holds the registry, [`processor`] answers requests, [`NameServer`] ties them
//! to a listening socket and the expiry scan.

pub mod config;
pub mod kvconfig;
pub mod metrics;
pub mod processor;
pub mod route_info;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rmq_remoting::util::now_millis;
use rmq_remoting::{ConnectionConfig, RemotingServer};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::NamesrvConfig;
use kvconfig::KvConfigManager;
use processor::{NamesrvProcessor, NamesrvService};

/// A running name server.
pub struct NameServer {
    processor: Arc<NamesrvProcessor>,
    server: RemotingServer,
    metrics_server: Option<rmq_metrics::MetricsServer>,
    stop: CancellationToken,
    scan: JoinHandle<()>,
}

impl NameServer {
    /// Loads KV config, binds `bindAddress:listenPort` and starts the broker expiry scan.
    pub async fn start(config: NamesrvConfig) -> anyhow::Result<NameServer> {
        Self::start_with_tls(config, rmq_remoting::tls::TlsConfig::default()).await
    }

    /// As [`NameServer::start`], with RocketMQ's `tls.*` settings for the listening port.
    pub async fn start_with_tls(
        config: NamesrvConfig,
        tls: rmq_remoting::tls::TlsConfig,
    ) -> anyhow::Result<NameServer> {
        let server_tls = rmq_remoting::tls::ServerTls::new(&tls)
            .context("TLS settings for the listening port")?;
        let kv = KvConfigManager::load(&config.kv_config_path)?;
        let addr: SocketAddr = format!("{}:{}", config.bind_address, config.listen_port)
            .parse()
            .with_context(|| format!("bad bindAddress `{}`", config.bind_address))?;
        let conn_config = ConnectionConfig {
            max_frame_len: config.frame_max_length,
            idle_timeout: match config.server_channel_max_idle_time_seconds {
                0 => None,
                s => Some(Duration::from_secs(s)),
            },
            max_connections: config.server_max_connections,
            max_connections_per_address: config.server_max_connections_per_address,
            max_in_flight: config.server_max_in_flight_requests,
            write_high_water: config.write_buffer_high_water_mark,
            write_timeout: Duration::from_millis(config.server_write_timeout_millis.max(1)),
            ..Default::default()
        };
        let admin = rmq_acl::credential::resolve(
            config.control_plane_auth_enable,
            &config.admin_credential_file,
        )
        .context("the admin credential (adminCredentialFile)")?;
        if !config.control_plane_auth_enable {
            tracing::warn!("controlPlaneAuthEnable=false: anyone who reaches this name server can register brokers and change routes");
        }
        let gate = rmq_acl::Gate::new(
            admin.filter(|_| config.control_plane_auth_enable),
            None,
            rmq_acl::namesrv_control_plane,
        );
        let processor = Arc::new(NamesrvProcessor::new(config, kv).with_gate(gate));
        let metrics_tls = server_tls.clone();
        let server = RemotingServer::bind_tls(
            addr,
            Arc::new(NamesrvService(processor.clone())),
            conn_config,
            server_tls,
        )
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
        let metrics_port = processor.config.read().metrics_port;
        let metrics_server = if metrics_port != 0 {
            let p = processor.clone();
            let gather: rmq_metrics::Gather = Arc::new(move || p.metrics.gather(&p));
            let maddr = SocketAddr::new(addr.ip(), metrics_port);
            Some(
                rmq_metrics::MetricsServer::start_tls(maddr, gather, metrics_tls)
                    .await
                    .with_context(|| format!("cannot listen on metricsPort {metrics_port}"))?,
            )
        } else {
            None
        };
        let stop = CancellationToken::new();
        let scan = tokio::spawn(scan_loop(processor.clone(), stop.clone()));
        tracing::info!(addr = %server.local_addr(), "The Name Server boot success. serializeType=JSON");
        Ok(NameServer {
            processor,
            server,
            metrics_server,
            stop,
            scan,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Where `/metrics` is served, if `metricsPort` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_server.as_ref().map(|m| m.local_addr)
    }

    pub fn processor(&self) -> &Arc<NamesrvProcessor> {
        &self.processor
    }

    /// Stops accepting, closes connections, stops the scan and writes KV config.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.scan.await;
        self.server.shutdown().await;
        if let Some(m) = self.metrics_server {
            m.shutdown().await;
        }
        let p = self.processor.clone();
        let _ = tokio::task::spawn_blocking(move || p.kv.flush()).await;
        tracing::info!("name server stopped");
    }
}

async fn scan_loop(processor: Arc<NamesrvProcessor>, stop: CancellationToken) {
    loop {
        let interval = processor
            .config
            .read()
            .scan_not_active_broker_interval
            .max(100) as u64;
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(interval)) => {}
        }
        for removed in processor.route.scan_not_active_brokers(now_millis()) {
            if let Some(conn) = removed.conn {
                conn.close();
            }
        }
    }
}
