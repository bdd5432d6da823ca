//! A remoting server: accepts connections and hands their requests to a processor.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::connection::{Connection, ConnectionConfig, RequestProcessor};
use crate::error::Result;
use crate::tls::{MaybeTls, ServerTls, HANDSHAKE_TIMEOUT};

/// A running server.
pub struct RemotingServer {
    local_addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl RemotingServer {
    /// Binds `addr` (port 0 picks a free port) and starts accepting, in plaintext.
    pub async fn bind(
        addr: SocketAddr,
        processor: Arc<dyn RequestProcessor>,
        config: ConnectionConfig,
    ) -> Result<RemotingServer> {
        Self::bind_tls(addr, processor, config, None).await
    }

    /// Binds `addr` and starts accepting, with TLS as `tls` says (`None`: plaintext only).
    pub async fn bind_tls(
        addr: SocketAddr,
        processor: Arc<dyn RequestProcessor>,
        config: ConnectionConfig,
        tls: Option<Arc<ServerTls>>,
    ) -> Result<RemotingServer> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(1024)?;
        Ok(Self::serve_tls(listener, processor, config, tls))
    }

    /// Serves an already bound listener, in plaintext.
    pub fn serve(
        listener: TcpListener,
        processor: Arc<dyn RequestProcessor>,
        config: ConnectionConfig,
    ) -> RemotingServer {
        Self::serve_tls(listener, processor, config, None)
    }

    /// Serves an already bound listener, with TLS as `tls` says.
    pub fn serve_tls(
        listener: TcpListener,
        processor: Arc<dyn RequestProcessor>,
        config: ConnectionConfig,
        tls: Option<Arc<ServerTls>>,
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
                    Ok((stream, peer)) if tls.is_some() => {
                        // The handshake runs in its own task: a slow or silent peer must not
                        // hold up the accept loop.
                        tokio::spawn(accept_tls(
                            stream,
                            peer,
                            tls.clone().expect("checked"),
                            processor.clone(),
                            config.clone(),
                            token.clone(),
                        ));
                    }
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

/// One accepted connection on a TLS-capable port: plaintext or TLS as the mode and the
/// first byte say ([`ServerTls::accept`]); a failed handshake closes it.
async fn accept_tls(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: Arc<ServerTls>,
    processor: Arc<dyn RequestProcessor>,
    config: ConnectionConfig,
    token: CancellationToken,
) {
    let local = match stream.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    let wait = config.idle_timeout.unwrap_or(HANDSHAKE_TIMEOUT);
    match tls.accept(stream, wait).await {
        Ok(MaybeTls::Plain(stream)) => {
            if let Err(e) = Connection::spawn(stream, Some(processor), &config, Some(&token)) {
                tracing::warn!(%peer, error = %e, "could not set up connection");
            }
        }
        Ok(MaybeTls::Tls(session)) => {
            let conn = Connection::spawn_stream(
                *session,
                peer,
                local,
                Some(processor),
                &config,
                Some(&token),
            );
            tracing::debug!(%peer, id = conn.id(), "TLS connection accepted");
        }
        // Health probes connect and close: not worth a warning.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            tracing::debug!(%peer, "closed before its first byte")
        }
        Err(e) => tracing::warn!(%peer, error = %e, "connection closed before it was served (TLS)"),
    }
}
