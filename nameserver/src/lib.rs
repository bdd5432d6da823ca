//! A RocketMQ-compatible name server: the route registry brokers register with and clients
//! ask for topic routes and cluster info.
//!
//! [`route_info`] holds the registry, [`processor`] answers requests, [`NameServer`] ties them
//! to a listening socket and the expiry scan.

pub mod config;
pub mod kvconfig;
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
    stop: CancellationToken,
    scan: JoinHandle<()>,
}

impl NameServer {
    /// Loads KV config, binds `bindAddress:listenPort` and starts the broker expiry scan.
    pub async fn start(config: NamesrvConfig) -> anyhow::Result<NameServer> {
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
            ..Default::default()
        };
        let processor = Arc::new(NamesrvProcessor::new(config, kv));
        let server = RemotingServer::bind(
            addr,
            Arc::new(NamesrvService(processor.clone())),
            conn_config,
        )
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
        let stop = CancellationToken::new();
        let scan = tokio::spawn(scan_loop(processor.clone(), stop.clone()));
        tracing::info!(addr = %server.local_addr(), "The Name Server boot success. serializeType=JSON");
        Ok(NameServer {
            processor,
            server,
            stop,
            scan,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    pub fn processor(&self) -> &Arc<NamesrvProcessor> {
        &self.processor
    }

    /// Stops accepting, closes connections, stops the scan and writes KV config.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.scan.await;
        self.server.shutdown().await;
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
