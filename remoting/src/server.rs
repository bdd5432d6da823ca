//! A remoting server: accepts connections and hands their requests to a processor.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::connection::{Connection, ConnectionConfig, RequestProcessor};
use crate::error::Result;

/// A running server.
pub struct RemotingServer {
    local_addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl RemotingServer {
    /// Binds `addr` (port 0 picks a free port) and starts accepting.
    pub async fn bind(
        addr: SocketAddr,
        processor: Arc<dyn RequestProcessor>,
        config: ConnectionConfig,
    ) -> Result<RemotingServer> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(1024)?;
        Ok(Self::serve(listener, processor, config))
    }

    /// Serves an already bound listener.
    pub fn serve(
        listener: TcpListener,
        processor: Arc<dyn RequestProcessor>,
        config: ConnectionConfig,
    ) -> RemotingServer {
        let local_addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = token.cancelled() => break,
                    a = listener.accept() => a,
                };
                match accepted {
                    Ok((stream, peer)) => {
                        match Connection::spawn(
                            stream,
                            Some(processor.clone()),
                            &config,
                            Some(&token),
                        ) {
                            Ok(conn) => {
                                tracing::debug!(%peer, id = conn.id(), "connection accepted")
                            }
                            Err(e) => {
                                tracing::warn!(%peer, error = %e, "could not set up connection")
                            }
                        }
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
            }
        });
        RemotingServer {
            local_addr,
            shutdown,
            task,
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting and closes every connection.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }

    /// A token cancelled when the server shuts down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}
