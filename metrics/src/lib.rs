//! Serving Prometheus metrics over HTTP (`GET /metrics`), for the name server and the broker.
//!
//! The exposition runs on its own listener and task; the data path only bumps counters.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Produces the text exposition on each scrape.
pub type Gather = Arc<dyn Fn() -> String + Send + Sync>;

/// A running metrics endpoint.
pub struct MetricsServer {
    pub local_addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// Listens on `addr` and answers `GET /metrics` with `gather()`, in plaintext.
    pub async fn start(addr: SocketAddr, gather: Gather) -> std::io::Result<MetricsServer> {
        Self::start_tls(addr, gather, None).await
    }

    /// As [`MetricsServer::start`], with TLS as the server's `tls.server.mode` says (HTTPS for
    /// scrapers with `scheme: https`; a permissive port also answers plain HTTP).
    pub async fn start_tls(
        addr: SocketAddr,
        gather: Gather,
        tls: Option<Arc<rmq_remoting::tls::ServerTls>>,
    ) -> std::io::Result<MetricsServer> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let app = Router::new().route(
            "/metrics",
            get(move || {
                let gather = gather.clone();
                async move {
                    // Gathering walks the store and the offset tables: off the async workers.
                    let body = tokio::task::spawn_blocking(move || gather())
                        .await
                        .unwrap_or_default();
                    (
                        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                        body,
                    )
                        .into_response()
                }
            }),
        );
        let token = stop.clone();
        let task = match tls {
            None => tokio::spawn(async move {
                let serve = axum::serve(listener, app)
                    .with_graceful_shutdown(async move { token.cancelled().await });
                if let Err(e) = serve.await {
                    tracing::warn!(error = %e, "metrics endpoint stopped");
                }
            }),
            Some(tls) => {
                let accepted = Handshaken::start(listener, tls, token.clone());
                tokio::spawn(async move {
                    let serve = axum::serve(accepted, app)
                        .with_graceful_shutdown(async move { token.cancelled().await });
                    if let Err(e) = serve.await {
                        tracing::warn!(error = %e, "metrics endpoint stopped");
                    }
                })
            }
        };
        tracing::info!(%local_addr, "metrics endpoint listening on /metrics");
        Ok(MetricsServer {
            local_addr,
            stop,
            task,
        })
    }

    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Connections whose TLS handshake is done (or plaintext ones on a permissive port): each
/// handshake runs in its own task, so a slow client does not hold up a scrape.
struct Handshaken {
    rx: tokio::sync::mpsc::Receiver<(rmq_remoting::tls::MaybeTls, SocketAddr)>,
    local: SocketAddr,
}

impl Handshaken {
    fn start(
        listener: tokio::net::TcpListener,
        tls: Arc<rmq_remoting::tls::ServerTls>,
        stop: CancellationToken,
    ) -> Handshaken {
        let local = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    _ = stop.cancelled() => return,
                    r = listener.accept() => match r {
                        Ok(x) => x,
                        Err(_) => {
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let (tls, tx) = (tls.clone(), tx.clone());
                tokio::spawn(async move {
                    match tls
                        .accept(stream, rmq_remoting::tls::HANDSHAKE_TIMEOUT)
                        .await
                    {
                        Ok(s) => {
                            let _ = tx.send((s, peer)).await;
                        }
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "metrics connection closed (TLS)")
                        }
                    }
                });
            }
        });
        Handshaken { rx, local }
    }
}

impl axum::serve::Listener for Handshaken {
    type Io = rmq_remoting::tls::MaybeTls;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(x) => x,
            // The accept task ended (shutdown): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Encodes a registry in the text format.
pub fn encode(registry: &prometheus::Registry) -> String {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    if let Err(e) = prometheus::TextEncoder::new().encode(&registry.gather(), &mut buf) {
        tracing::error!(error = %e, "encoding metrics failed");
    }
    String::from_utf8(buf).unwrap_or_default()
}

/// Request latency buckets, seconds: 100 µs to 10 s.
pub fn latency_buckets() -> Vec<f64> {
    vec![
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0,
    ]
}
