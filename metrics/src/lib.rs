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
    /// Listens on `addr` and answers `GET /metrics` with `gather()`.
    pub async fn start(addr: SocketAddr, gather: Gather) -> std::io::Result<MetricsServer> {
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
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app)
                .with_graceful_shutdown(async move { token.cancelled().await });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "metrics endpoint stopped");
            }
        });
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
