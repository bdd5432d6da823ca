//! One TCP connection carrying remoting frames in both directions.
//!
//! Both ends of the protocol use it: the server side answers requests and may call the client
//! back (transaction checks, consumer-list changes); the client side sends requests, matches
//! responses by `opaque`, and answers the requests the server initiates. A reader task decodes
//! frames and a writer task owns the socket's write half; malformed input closes the
//! connection with a log line and touches nothing else.
//!
//! Backpressure: a connection processes at most `max_in_flight` requests at once (a request
//! counts until its response is written), and stops reading while more than
//! `write_high_water` bytes of its responses wait to be written, or while the server's shared
//! [`WriteBudget`] is spent and it holds more than its small share. A peer that stops reading
//! therefore stops being read, and one whose writes make no progress for `write_timeout` is
//! closed: no client can grow the process's memory by pipelining requests it never reads.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore};
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
    /// Requests of the peer processed at once; reading pauses while this many are open.
    pub max_in_flight: usize,
    /// Bytes of responses waiting to be written before reading pauses.
    pub write_high_water: usize,
    /// A write that makes no progress for this long closes the connection.
    pub write_timeout: Duration,
    /// Bytes waiting to be written across every connection sharing it; a server makes one
    /// of [`DEFAULT_SERVER_WRITE_BUDGET`] for its connections when this is `None`.
    pub budget: Option<Arc<WriteBudget>>,
    /// Servers only: connections open at once (0: no limit); more are closed on accept.
    pub max_connections: usize,
    /// Servers only: connections open at once from one IP address (0: no limit).
    pub max_connections_per_address: usize,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            max_frame_len: crate::codec::DEFAULT_MAX_FRAME_LEN,
            idle_timeout: None,
            write_queue: 4096,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            write_high_water: DEFAULT_WRITE_HIGH_WATER,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            budget: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
        }
    }
}

/// Requests one connection has open at once by default. RocketMQ clients share one
/// connection per broker between all their threads, so this is generous.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
/// Unwritten response bytes on one connection before it stops being read.
pub const DEFAULT_WRITE_HIGH_WATER: usize = 4 << 20;
/// How long a write may stall before the peer counts as gone.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Unwritten response bytes across a server's connections before the ones holding more than
/// a small share stop being read.
pub const DEFAULT_SERVER_WRITE_BUDGET: usize = 256 << 20;
/// Connections a server keeps open at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 20_000;
/// Connections a server keeps open at once from one IP address.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 2_000;
/// Over a spent [`WriteBudget`], connections holding more than this stop being read; those
/// below it (clients that read their responses) go on.
const FAIR_SHARE: usize = 64 << 10;

/// Bytes queued for writing across many connections, with a limit.
#[derive(Debug)]
pub struct WriteBudget {
    queued: AtomicUsize,
    limit: usize,
}

impl WriteBudget {
    pub fn new(limit: usize) -> Arc<WriteBudget> {
        Arc::new(WriteBudget {
            queued: AtomicUsize::new(0),
            limit,
        })
    }

    /// Bytes waiting to be written right now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    fn spent(&self) -> bool {
        self.queued() > self.limit
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
    tx: mpsc::Sender<Outgoing>,
    pending: Mutex<HashMap<i32, oneshot::Sender<RemotingCommand>>>,
    cancel: CancellationToken,
    /// Bytes queued for writing and not yet flushed.
    queued: AtomicUsize,
    budget: Option<Arc<WriteBudget>>,
    /// Signalled by the writer after each flush: a paused reader looks again.
    drained: Notify,
}

/// A frame on its way out, with its size as counted and the request slot it frees once
/// written.
struct Outgoing {
    cmd: RemotingCommand,
    len: usize,
    _slot: Option<OwnedSemaphorePermit>,
}

impl Inner {
    fn unqueue(&self, len: usize) {
        self.queued.fetch_sub(len, Ordering::AcqRel);
        if let Some(b) = &self.budget {
            b.queued.fetch_sub(len, Ordering::AcqRel);
        }
    }

    /// Whether reading should wait for the writer to catch up.
    fn backed_up(&self, high_water: usize) -> bool {
        let own = self.queued.load(Ordering::Acquire);
        own > high_water || (own > FAIR_SHARE && self.budget.as_ref().is_some_and(|b| b.spent()))
    }
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
                queued: AtomicUsize::new(0),
                budget: config.budget.clone(),
                drained: Notify::new(),
            }),
        };
        let codec = RemotingCodec::new(config.max_frame_len);
        let progress = Arc::new(AtomicU64::new(0));
        let write = Progress {
            inner: write,
            stamp: progress.clone(),
        };
        tokio::spawn(write_loop(
            conn.inner.clone(),
            FramedWrite::new(write, codec.clone()),
            rx,
            Stall {
                limit: config.write_timeout,
                progress,
            },
        ));
        tokio::spawn(read_loop(
            conn.clone(),
            FramedRead::new(read, codec),
            processor,
            config.clone(),
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
        match self.inner.tx.send(self.outgoing(cmd, None)).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendError(out)) => {
                self.inner.unqueue(out.len);
                Err(RemotingError::ConnectionClosed(self.inner.peer.to_string()))
            }
        }
    }

    /// Bytes queued on this connection and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.inner.queued.load(Ordering::Relaxed)
    }

    /// `cmd` on its way out, counted as queued until written; `slot` (the request it answers)
    /// is released then.
    fn outgoing(&self, cmd: RemotingCommand, slot: Option<OwnedSemaphorePermit>) -> Outgoing {
        let len = approx_len(&cmd);
        self.inner.queued.fetch_add(len, Ordering::AcqRel);
        if let Some(b) = &self.inner.budget {
            b.queued.fetch_add(len, Ordering::AcqRel);
        }
        Outgoing {
            cmd,
            len,
            _slot: slot,
        }
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

    /// Queues the answer to a request (none for oneway requests); its slot is freed once it
    /// is written. Never waits: a full write queue hands the answer to a task that does.
    fn respond(
        &self,
        oneway: bool,
        resp: Option<RemotingCommand>,
        opaque: i32,
        serialize_type: crate::command::SerializeType,
        slot: OwnedSemaphorePermit,
    ) {
        let (false, Some(mut resp)) = (oneway, resp) else {
            return;
        };
        resp.opaque = opaque;
        resp.flag |= crate::command::FLAG_RESPONSE;
        resp.serialize_type = serialize_type;
        if self.is_closed() {
            return;
        }
        match self.inner.tx.try_send(self.outgoing(resp, Some(slot))) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Closed(out)) => self.inner.unqueue(out.len),
            Err(mpsc::error::TrySendError::Full(out)) => {
                let inner = self.inner.clone();
                tokio::spawn(async move {
                    if let Err(mpsc::error::SendError(out)) = inner.tx.send(out).await {
                        inner.unqueue(out.len);
                    }
                });
            }
        }
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

/// A frame's size on the wire, near enough for accounting: the header is small next to
/// any body worth counting.
fn approx_len(cmd: &RemotingCommand) -> usize {
    let fields: usize = cmd
        .ext_fields
        .iter()
        .map(|(k, v)| k.len() + v.len() + 8)
        .sum();
    128 + fields + cmd.remark.as_ref().map_or(0, String::len) + cmd.body.len()
}

async fn write_loop<W: tokio::io::AsyncWrite + Unpin>(
    inner: Arc<Inner>,
    mut sink: FramedWrite<W, RemotingCodec>,
    mut rx: mpsc::Receiver<Outgoing>,
    stall: Stall,
) {
    let peer = inner.peer;
    let cancel = inner.cancel.clone();
    let mut written = 0usize;
    let result: Result<()> = async {
        loop {
            let out = tokio::select! {
                biased;
                out = rx.recv() => match out {
                    Some(out) => out,
                    None => return Ok(()),
                },
                _ = cancel.cancelled() => return Ok(()),
            };
            written += out.len;
            stall.guard(feed(&mut sink, out.cmd, peer)).await?;
            // Batch whatever else is queued into the same flush. The responses of one store
            // batch finish together, but the scheduler runs this task as soon as the first
            // wakes it: one yield lets the others queue theirs first, so a burst of answers
            // costs one write system call instead of one each.
            let mut yielded = false;
            loop {
                while let Ok(out) = rx.try_recv() {
                    written += out.len;
                    stall.guard(feed(&mut sink, out.cmd, peer)).await?;
                }
                if yielded {
                    break;
                }
                yielded = true;
                tokio::task::yield_now().await;
            }
            stall.guard(async { sink.flush().await }).await?;
            inner.unqueue(std::mem::take(&mut written));
            inner.drained.notify_one();
        }
    }
    .await;
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "write failed, closing connection");
        inner.unqueue(written);
        cancel.cancel();
        while let Ok(out) = rx.try_recv() {
            inner.unqueue(out.len);
        }
        return;
    }
    // Closing: write what was already queued (responses of finished requests), briefly.
    let drain = async {
        while let Ok(out) = rx.try_recv() {
            inner.unqueue(out.len);
            if feed(&mut sink, out.cmd, peer).await.is_err() {
                return;
            }
        }
        let _ = sink.flush().await;
        let _ = sink.get_mut().shutdown().await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    while let Ok(out) = rx.try_recv() {
        inner.unqueue(out.len);
    }
}

/// Milliseconds since the process's first connection, for progress stamps.
fn now_ms() -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    EPOCH
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

/// The socket's write half, stamping the time of every write that moved bytes.
struct Progress<W> {
    inner: W,
    stamp: Arc<AtomicU64>,
}

impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Progress<W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.stamp.store(now_ms(), Ordering::Relaxed);
        }
        r
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Ends a write that stalls: a slow reader that takes bytes keeps its connection, a peer
/// that takes none for `limit` loses it (it would hold its responses forever otherwise).
struct Stall {
    limit: Duration,
    progress: Arc<AtomicU64>,
}

impl Stall {
    async fn guard<T>(&self, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        tokio::pin!(f);
        // Most writes land in the buffer at once: no timer for those.
        if let Some(r) = futures::FutureExt::now_or_never(f.as_mut()) {
            return r;
        }
        let started = now_ms();
        loop {
            let last = self.progress.load(Ordering::Relaxed).max(started);
            let waited = Duration::from_millis(now_ms().saturating_sub(last));
            if waited >= self.limit {
                return Err(RemotingError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "no write progress for {:?}: the peer does not read",
                        self.limit
                    ),
                )));
            }
            tokio::select! {
                r = &mut f => return r,
                _ = tokio::time::sleep(self.limit - waited) => {}
            }
        }
    }
}

use tokio::io::AsyncWriteExt;

async fn feed<W: tokio::io::AsyncWrite + Unpin>(
    sink: &mut FramedWrite<W, RemotingCodec>,
    cmd: RemotingCommand,
    peer: SocketAddr,
) -> Result<()> {
    // Kept apart: the command is consumed by the sink.
    let answer = cmd
        .is_response()
        .then_some((cmd.opaque, cmd.flag, cmd.serialize_type));
    match sink.feed(cmd).await {
        Ok(()) => Ok(()),
        // A frame we cannot encode (over the frame limit, or a header over the 24-bit length):
        // a response becomes an error answer naming why, so the peer is not left waiting; a
        // request is dropped (its caller times out).
        Err(e @ (RemotingError::FrameTooLarge { .. } | RemotingError::BadHeader(_))) => {
            tracing::warn!(%peer, error = %e, "an outgoing frame cannot be sent");
            if let Some((opaque, flag, serialize_type)) = answer {
                let mut r = RemotingCommand::error(
                    crate::code::ResponseCode::SYSTEM_ERROR,
                    format!("the response is over the frame size limit: {e}"),
                );
                r.opaque = opaque;
                r.flag = flag;
                r.serialize_type = serialize_type;
                sink.feed(r).await?;
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

async fn read_loop<R: tokio::io::AsyncRead + Unpin>(
    conn: Connection,
    mut frames: FramedRead<R, RemotingCodec>,
    processor: Option<Arc<dyn RequestProcessor>>,
    config: ConnectionConfig,
) {
    let peer = conn.inner.peer;
    let cancel = conn.inner.cancel.clone();
    let slots = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    loop {
        // Backpressure before reading on: a peer whose responses pile up is not read until
        // it takes them (the write timeout ends one that never does).
        while conn.inner.backed_up(config.write_high_water) {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = conn.inner.drained.notified() => {}
                // The shared budget frees up through other connections' writers.
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
        let next = async {
            match config.idle_timeout {
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
        // A slot per open request, held until its response is written: reading stops while
        // `max_in_flight` are open.
        let slot = tokio::select! {
            _ = cancel.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        match &processor {
            Some(p) => {
                let oneway = cmd.is_oneway();
                let (opaque, st) = (cmd.opaque, cmd.serialize_type);
                let mut work = p.clone().process(conn.clone(), cmd);
                // Most requests (a send under ASYNC_FLUSH, an offset commit, a pull that finds
                // messages) finish without waiting: answer those right here and spare a task
                // per frame; only those that wait (long polls, flushes, replicas) get a task.
                match futures::FutureExt::now_or_never(&mut work) {
                    Some(resp) => conn.respond(oneway, resp, opaque, st, slot),
                    None => {
                        let conn2 = conn.clone();
                        tokio::spawn(async move {
                            let resp = work.await;
                            conn2.respond(oneway, resp, opaque, st, slot);
                        });
                    }
                }
            }
            None => {
                if !cmd.is_oneway() {
                    let resp = RemotingCommand::not_supported(cmd.code).answer(&cmd);
                    conn.respond(false, Some(resp), cmd.opaque, cmd.serialize_type, slot);
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
