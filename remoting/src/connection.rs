//! One TCP connection carrying remoting frames in both directions.
//!
//! Both ends of the protocol use it: the server side answers requests and may call the client
//! back (transaction checks, consumer-list changes); the client side sends requests, matches
//! responses by `opaque`, and answers the requests the server initiates. A reader task decodes
//! frames and a writer task owns the socket's write half; malformed input closes the
//! connection with a log line and touches nothing else.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

use crate::codec::RemotingCodec;
use crate::command::RemotingCommand;
use crate::error::{RemotingError, Result};

/// Handles requests arriving on a connection (server processors and client callbacks).
pub trait RequestProcessor: Send + Sync + 'static {
    /// Processes one request. `None` sends no response (always the case for oneway requests,
    /// whatever this returns).
    fn process(
        self: Arc<Self>,
        conn: Connection,
        request: RemotingCommand,
    ) -> BoxFuture<'static, Option<RemotingCommand>>;

    /// Called once when a connection closes, for whatever reason.
    fn connection_closed(&self, _conn: &Connection) {}
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    pub max_frame_len: usize,
    /// Close the connection when nothing was read for this long.
    pub idle_timeout: Option<Duration>,
    /// Frames waiting to be written before senders wait.
    pub write_queue: usize,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            max_frame_len: crate::codec::DEFAULT_MAX_FRAME_LEN,
            idle_timeout: None,
            write_queue: 4096,
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A cheap, cloneable handle to a live connection.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

struct Inner {
    id: u64,
    peer: SocketAddr,
    local: SocketAddr,
    tx: mpsc::Sender<RemotingCommand>,
    pending: Mutex<HashMap<i32, oneshot::Sender<RemotingCommand>>>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.inner.id)
            .field("peer", &self.inner.peer)
            .finish()
    }
}

impl PartialEq for Connection {
    fn eq(&self, other: &Self) -> bool {
        self.inner.id == other.inner.id
    }
}

impl Eq for Connection {}

impl Connection {
    /// Starts the reader and writer tasks of `stream`. Requests from the peer go to
    /// `processor`; without one they are answered `REQUEST_CODE_NOT_SUPPORTED`.
    pub fn spawn(
        stream: TcpStream,
        processor: Option<Arc<dyn RequestProcessor>>,
        config: &ConnectionConfig,
        parent: Option<&CancellationToken>,
    ) -> Result<Connection> {
        let peer = stream.peer_addr()?;
        let local = stream.local_addr()?;
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        Ok(Self::spawn_halves(
            read, write, peer, local, processor, config, parent,
        ))
    }

    /// Like [`Connection::spawn`], over any stream (a TLS session over TCP).
    pub fn spawn_stream<S>(
        stream: S,
        peer: SocketAddr,
        local: SocketAddr,
        processor: Option<Arc<dyn RequestProcessor>>,
        config: &ConnectionConfig,
        parent: Option<&CancellationToken>,
    ) -> Connection
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(stream);
        Self::spawn_halves(read, write, peer, local, processor, config, parent)
    }

    fn spawn_halves<R, W>(
        read: R,
        write: W,
        peer: SocketAddr,
        local: SocketAddr,
        processor: Option<Arc<dyn RequestProcessor>>,
        config: &ConnectionConfig,
        parent: Option<&CancellationToken>,
    ) -> Connection
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
        W: tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(config.write_queue.max(1));
        let cancel = parent.map(|p| p.child_token()).unwrap_or_default();
        let conn = Connection {
            inner: Arc::new(Inner {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                peer,
                local,
                tx,
                pending: Mutex::new(HashMap::new()),
                cancel,
            }),
        };
        let codec = RemotingCodec::new(config.max_frame_len);
        tokio::spawn(write_loop(
            FramedWrite::new(write, codec.clone()),
            rx,
            conn.inner.cancel.clone(),
            peer,
        ));
        tokio::spawn(read_loop(
            conn.clone(),
            FramedRead::new(read, codec),
            processor,
            config.idle_timeout,
        ));
        conn
    }

    pub fn id(&self) -> u64 {
        self.inner.id
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.inner.peer
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    pub fn is_closed(&self) -> bool {
        self.inner.cancel.is_cancelled()
    }

    /// Closes the connection; pending requests fail with `ConnectionClosed`.
    pub fn close(&self) {
        self.inner.cancel.cancel();
    }

    /// Resolves once the connection is closed.
    pub async fn closed(&self) {
        self.inner.cancel.cancelled().await
    }

    /// Queues a frame for writing.
    pub async fn send(&self, cmd: RemotingCommand) -> Result<()> {
        if self.is_closed() {
            return Err(RemotingError::ConnectionClosed(self.inner.peer.to_string()));
        }
        self.inner
            .tx
            .send(cmd)
            .await
            .map_err(|_| RemotingError::ConnectionClosed(self.inner.peer.to_string()))
    }

    /// Sends a request and waits for the response with the same opaque.
    pub async fn invoke(
        &self,
        request: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand> {
        let opaque = request.opaque;
        let (tx, rx) = oneshot::channel();
        self.inner.pending.lock().insert(opaque, tx);
        let peer = self.inner.peer.to_string();
        if let Err(e) = self.send(request).await {
            self.inner.pending.lock().remove(&opaque);
            return Err(e);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(_)) => Err(RemotingError::ConnectionClosed(peer)),
            Err(_) => {
                self.inner.pending.lock().remove(&opaque);
                Err(RemotingError::Timeout {
                    addr: peer,
                    timeout,
                })
            }
        }
    }

    /// Sends a request flagged oneway; no response is expected.
    pub async fn invoke_oneway(&self, mut request: RemotingCommand) -> Result<()> {
        request.mark_oneway();
        self.send(request).await
    }

    fn complete(&self, response: RemotingCommand) {
        let waiter = self.inner.pending.lock().remove(&response.opaque);
        match waiter {
            Some(tx) => {
                let _ = tx.send(response);
            }
            None => tracing::debug!(
                peer = %self.inner.peer,
                opaque = response.opaque,
                "response for no pending request (timed out?)"
            ),
        }
    }
}

async fn write_loop<W: tokio::io::AsyncWrite + Unpin>(
    mut sink: FramedWrite<W, RemotingCodec>,
    mut rx: mpsc::Receiver<RemotingCommand>,
    cancel: CancellationToken,
    peer: SocketAddr,
) {
    loop {
        let cmd = tokio::select! {
            biased;
            cmd = rx.recv() => match cmd {
                Some(cmd) => cmd,
                None => break,
            },
            _ = cancel.cancelled() => break,
        };
        if let Err(e) = feed(&mut sink, cmd, peer).await {
            tracing::debug!(%peer, error = %e, "write failed, closing connection");
            cancel.cancel();
            return;
        }
        // Batch whatever else is queued into the same flush.
        while let Ok(cmd) = rx.try_recv() {
            if let Err(e) = feed(&mut sink, cmd, peer).await {
                tracing::debug!(%peer, error = %e, "write failed, closing connection");
                cancel.cancel();
                return;
            }
        }
        if let Err(e) = sink.flush().await {
            tracing::debug!(%peer, error = %e, "flush failed, closing connection");
            cancel.cancel();
            return;
        }
    }
    // Closing: write what was already queued (responses of finished requests), briefly.
    let drain = async {
        while let Ok(cmd) = rx.try_recv() {
            if feed(&mut sink, cmd, peer).await.is_err() {
                return;
            }
        }
        let _ = sink.flush().await;
        let _ = sink.get_mut().shutdown().await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

use tokio::io::AsyncWriteExt;

async fn feed<W: tokio::io::AsyncWrite + Unpin>(
    sink: &mut FramedWrite<W, RemotingCodec>,
    cmd: RemotingCommand,
    peer: SocketAddr,
) -> Result<()> {
    match sink.feed(cmd).await {
        Ok(()) => Ok(()),
        // A frame we cannot encode (too large) is dropped with a log; the connection lives on.
        Err(RemotingError::FrameTooLarge { len, max }) => {
            tracing::warn!(%peer, len, max, "dropping an outgoing frame over the size limit");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

async fn read_loop<R: tokio::io::AsyncRead + Unpin>(
    conn: Connection,
    mut frames: FramedRead<R, RemotingCodec>,
    processor: Option<Arc<dyn RequestProcessor>>,
    idle: Option<Duration>,
) {
    let peer = conn.inner.peer;
    let cancel = conn.inner.cancel.clone();
    loop {
        let next = async {
            match idle {
                Some(d) => tokio::time::timeout(d, frames.next()).await.map_err(|_| ()),
                None => Ok(frames.next().await),
            }
        };
        let item = tokio::select! {
            _ = cancel.cancelled() => break,
            item = next => item,
        };
        let cmd = match item {
            Err(()) => {
                tracing::info!(%peer, "closing idle connection");
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                match e {
                    RemotingError::Io(ref io)
                        if matches!(
                            io.kind(),
                            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                        ) =>
                    {
                        tracing::debug!(%peer, error = %e, "connection reset")
                    }
                    _ => tracing::warn!(%peer, error = %e, "bad input, closing connection"),
                }
                break;
            }
            Ok(Some(Ok(cmd))) => cmd,
        };
        if cmd.is_response() {
            conn.complete(cmd);
            continue;
        }
        let conn2 = conn.clone();
        match &processor {
            Some(p) => {
                let p = p.clone();
                tokio::spawn(async move {
                    let oneway = cmd.is_oneway();
                    let opaque = cmd.opaque;
                    let st = cmd.serialize_type;
                    let resp = p.process(conn2.clone(), cmd).await;
                    if let (false, Some(mut resp)) = (oneway, resp) {
                        resp.opaque = opaque;
                        resp.flag |= crate::command::FLAG_RESPONSE;
                        resp.serialize_type = st;
                        let _ = conn2.send(resp).await;
                    }
                });
            }
            None => {
                if !cmd.is_oneway() {
                    let resp = RemotingCommand::not_supported(cmd.code).answer(&cmd);
                    tokio::spawn(async move {
                        let _ = conn2.send(resp).await;
                    });
                }
            }
        }
    }
    cancel.cancel();
    // Fail every request still waiting on this connection.
    conn.inner.pending.lock().clear();
    if let Some(p) = &processor {
        p.connection_closed(&conn);
    }
}
