//! A remoting server: accepts connections and hands their requests to a processor.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::connection::{Connection, ConnectionConfig, RequestProcessor, WriteBudget};
use crate::error::Result;
use crate::tls::{MaybeTls, ServerTls, HANDSHAKE_TIMEOUT};

/// A running server.
pub struct RemotingServer {
    local_addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
    admission: Arc<Admission>,
}

/// Open connections, in total and per IP address, against the configured caps.
#[derive(Default)]
struct Admission {
    max_total: usize,
    max_per_address: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
    refused: AtomicU64,
}

/// Connection counts of a running server.
#[derive(Clone)]
pub struct ServerStats(Arc<Admission>);

impl ServerStats {
    /// Connections open right now.
    pub fn open(&self) -> usize {
        self.0.open.lock().0
    }

    /// Connections closed on accept because a cap was reached, since start.
    pub fn refused(&self) -> u64 {
        self.0.refused.load(Ordering::Relaxed)
    }
}

/// One admitted connection's place; dropping it frees the place.
struct Ticket {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Admission {
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Ticket> {
        let mut open = self.open.lock();
        let (total, per) = &mut *open;
        let from_ip = per.get(&ip).copied().unwrap_or(0);
        if (self.max_total > 0 && *total >= self.max_total)
            || (self.max_per_address > 0 && from_ip >= self.max_per_address)
        {
            drop(open);
            let n = self.refused.fetch_add(1, Ordering::Relaxed);
            // One line per thousand: a flood must not become a log flood.
            if n.is_multiple_of(1000) {
                tracing::warn!(
                    %ip,
                    from_ip,
                    max_connections = self.max_total,
                    max_per_address = self.max_per_address,
                    refused_so_far = n + 1,
                    "connection refused: over the connection cap"
                );
            }
            return None;
        }
        *total += 1;
        *per.entry(ip).or_default() += 1;
        Some(Ticket {
            admission: self.clone(),
            ip,
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self.admission.open.lock();
        let (total, per) = &mut *open;
        *total -= 1;
        if let Some(n) = per.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per.remove(&self.ip);
            }
        }
    }
}

/// Frees the ticket when the connection closes.
fn hold_until_closed(conn: &Connection, ticket: Ticket) {
    let conn = conn.clone();
    tokio::spawn(async move {
        conn.closed().await;
        drop(ticket);
    });
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
        mut config: ConnectionConfig,
        tls: Option<Arc<ServerTls>>,
    ) -> RemotingServer {
        let local_addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        if config.budget.is_none() {
            config.budget = Some(WriteBudget::new(
                crate::connection::DEFAULT_SERVER_WRITE_BUDGET,
            ));
        }
        let admission = Arc::new(Admission {
            max_total: config.max_connections,
            max_per_address: config.max_connections_per_address,
            ..Default::default()
        });
        let admit = admission.clone();
        let task = tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = token.cancelled() => break,
                    a = listener.accept() => a,
                };
                // Over the cap the socket is closed at once, before any TLS handshake or
                // buffer is spent on it.
                let (stream, peer, ticket) = match accepted {
                    Ok((stream, peer)) => match admit.admit(peer.ip()) {
                        Some(ticket) => (stream, peer, ticket),
                        None => continue,
                    },
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                match (stream, peer) {
                    (stream, peer) if tls.is_some() => {
                        // The handshake runs in its own task: a slow or silent peer must not
                        // hold up the accept loop.
                        tokio::spawn(accept_tls(
                            stream,
                            peer,
                            tls.clone().expect("checked"),
                            processor.clone(),
                            config.clone(),
                            token.clone(),
                            ticket,
                        ));
                    }
                    (stream, peer) => {
                        match Connection::spawn(
                            stream,
                            Some(processor.clone()),
                            &config,
                            Some(&token),
                        ) {
                            Ok(conn) => {
                                tracing::debug!(%peer, id = conn.id(), "connection accepted");
                                hold_until_closed(&conn, ticket);
                            }
                            Err(e) => {
                                tracing::warn!(%peer, error = %e, "could not set up connection")
                            }
                        }
                    }
                }
            }
        });
        RemotingServer {
            local_addr,
            shutdown,
            task,
            admission,
        }
    }

    /// Connections open right now.
    pub fn open_connections(&self) -> usize {
        self.stats().open()
    }

    /// Connections closed on accept because a cap was reached, since start.
    pub fn refused_connections(&self) -> u64 {
        self.stats().refused()
    }

    /// A handle on the connection counts that outlives borrowing the server (metrics).
    pub fn stats(&self) -> ServerStats {
        ServerStats(self.admission.clone())
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
    ticket: Ticket,
) {
    let local = match stream.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    let wait = config.idle_timeout.unwrap_or(HANDSHAKE_TIMEOUT);
    match tls.accept(stream, wait).await {
        Ok(MaybeTls::Plain(stream)) => {
            match Connection::spawn(stream, Some(processor), &config, Some(&token)) {
                Ok(conn) => hold_until_closed(&conn, ticket),
                Err(e) => tracing::warn!(%peer, error = %e, "could not set up connection"),
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
            hold_until_closed(&conn, ticket);
        }
        // Health probes connect and close: not worth a warning.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            tracing::debug!(%peer, "closed before its first byte")
        }
        Err(e) => tracing::warn!(%peer, error = %e, "connection closed before it was served (TLS)"),
    }
}
