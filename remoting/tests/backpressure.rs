//! Hostile peers against a real server on 127.0.0.1: one that pipelines requests with large
//! responses and never reads, and floods of connections. The server must keep its memory
//! bounded, keep serving everyone else, and close the peer that never reads.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rmq_remoting::connection::WriteBudget;
use rmq_remoting::{
    Connection, ConnectionConfig, RemotingClient, RemotingCodec, RemotingCommand, RemotingServer,
    RequestProcessor,
};
use tokio_util::codec::Encoder;

const BIG: i32 = 3000;
const ECHO: i32 = 3001;
const RESPONSE_LEN: usize = 64 << 10;

/// Answers BIG with 64 KiB and ECHO with its body; counts what it processed and closings.
#[derive(Default)]
struct Big {
    processed: AtomicUsize,
    closed: AtomicUsize,
}

impl RequestProcessor for Big {
    fn process(
        self: Arc<Self>,
        _conn: Connection,
        req: RemotingCommand,
    ) -> BoxFuture<'static, Option<RemotingCommand>> {
        Box::pin(async move {
            self.processed.fetch_add(1, Ordering::SeqCst);
            match req.code {
                BIG => Some(RemotingCommand::success().with_body(vec![7u8; RESPONSE_LEN])),
                _ => Some(RemotingCommand::success().with_body(req.body.clone())),
            }
        })
    }

    fn connection_closed(&self, _conn: &Connection) {
        self.closed.fetch_add(1, Ordering::SeqCst);
    }
}

fn frames(code: i32, n: usize) -> Vec<u8> {
    let mut codec = RemotingCodec::default();
    let mut buf = bytes::BytesMut::new();
    for _ in 0..n {
        codec
            .encode(RemotingCommand::request(code), &mut buf)
            .unwrap();
    }
    buf.to_vec()
}

async fn serve(config: ConnectionConfig) -> (RemotingServer, Arc<Big>, SocketAddr) {
    let state = Arc::new(Big::default());
    let server = RemotingServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(Wrap(state.clone())),
        config,
    )
    .await
    .unwrap();
    let addr = server.local_addr();
    (server, state, addr)
}

struct Wrap(Arc<Big>);

impl RequestProcessor for Wrap {
    fn process(
        self: Arc<Self>,
        conn: Connection,
        req: RemotingCommand,
    ) -> BoxFuture<'static, Option<RemotingCommand>> {
        self.0.clone().process(conn, req)
    }

    fn connection_closed(&self, conn: &Connection) {
        self.0.connection_closed(conn)
    }
}

/// The attack from the issue: 20,000 pipelined requests with 64 KiB answers (1.3 GB of
/// responses) from a client that never reads. The server stops reading that connection after
/// a bounded amount of work, serves another client meanwhile, and closes the attacker once its
/// writes stall for the write timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_is_paused_then_closed_and_others_are_served() {
    let budget = WriteBudget::new(8 << 20);
    let config = ConnectionConfig {
        max_in_flight: 64,
        write_high_water: 1 << 20,
        write_timeout: Duration::from_secs(2),
        budget: Some(budget.clone()),
        ..Default::default()
    };
    let (server, state, addr) = serve(config).await;

    let flood = frames(BIG, 20_000);
    let writer = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        // The kernel buffers fill and this write stalls: the server stopped reading.
        let wrote = s.write_all(&flood).is_ok();
        (s, wrote)
    });

    // Give the server time to do whatever it is going to do with the flood.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let processed = state.processed.load(Ordering::SeqCst);
    assert!(
        processed < 2_000,
        "the server kept reading a peer that takes no responses: {processed} processed"
    );
    assert!(
        budget.queued() <= (2 << 20) + 64 * (RESPONSE_LEN + 1024),
        "unwritten responses grew to {} bytes",
        budget.queued()
    );

    // Another client is served while the attacker is paused.
    let client = RemotingClient::default();
    let started = Instant::now();
    let resp = client
        .invoke(
            &addr.to_string(),
            RemotingCommand::request(ECHO).with_body(&b"hello"[..]),
            Duration::from_secs(3),
        )
        .await
        .expect("an honest client is answered");
    assert_eq!(&resp.body[..], b"hello");
    assert!(started.elapsed() < Duration::from_secs(2));

    // The attacker's writes stall for longer than the write timeout: the server closes it.
    let closed = tokio::time::timeout(Duration::from_secs(15), async {
        while state.closed.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(closed.is_ok(), "the peer that never reads was not closed");
    let (_s, _) = tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
    assert_eq!(
        budget.queued(),
        0,
        "a closed connection's responses are released"
    );
    server.shutdown().await;
}

/// A peer that reads slowly but steadily is not cut off: only writes without progress are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_that_reads_keeps_its_connection() {
    let config = ConnectionConfig {
        max_in_flight: 16,
        write_high_water: 256 << 10,
        write_timeout: Duration::from_millis(1500),
        ..Default::default()
    };
    let (server, state, addr) = serve(config).await;
    let n = 200;
    let want = n * RESPONSE_LEN;
    let reader = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&frames(BIG, n)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = 0usize;
        let mut buf = vec![0u8; 256 << 10];
        let deadline = Instant::now() + Duration::from_secs(40);
        // About 2.5 MB/s: far slower than the server writes, never stalled for 1.5 s.
        while got < want && Instant::now() < deadline {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => got += k,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // The socket stays open until the server's side is checked.
        (got, s)
    });
    let (got, _open) = tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap();
    assert!(
        got >= want,
        "read {got} of {want} bytes before the server closed"
    );
    assert_eq!(state.processed.load(Ordering::SeqCst), n);
    assert_eq!(state.closed.load(Ordering::SeqCst), 0);
    server.shutdown().await;
}

fn closed_by_server(mut s: TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}

/// Caps on open connections, total and per address: over either, a new connection is closed
/// at once; other addresses and freed places are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_caps_per_address_and_in_total() {
    let config = ConnectionConfig {
        max_connections: 5,
        max_connections_per_address: 3,
        ..Default::default()
    };
    let (server, _state, addr) = serve(config).await;
    let port = addr.port();
    let from = |ip: [u8; 4]| {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.bind(&SocketAddr::from((ip, 0)).into()).unwrap();
        s.connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
            .unwrap();
        TcpStream::from(s)
    };
    let echo_ok = |s: &mut TcpStream| {
        s.write_all(&frames(ECHO, 1)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut len = [0u8; 4];
        s.read_exact(&mut len).is_ok()
    };
    let mut a: Vec<TcpStream> = (0..3).map(|_| from([127, 0, 0, 1])).collect();
    for s in &mut a {
        assert!(echo_ok(s));
    }
    assert!(
        closed_by_server(from([127, 0, 0, 1])),
        "4th from one address"
    );
    let mut b: Vec<TcpStream> = (0..2).map(|_| from([127, 0, 0, 2])).collect();
    for s in &mut b {
        assert!(echo_ok(s), "another address has its own places");
    }
    assert!(closed_by_server(from([127, 0, 0, 3])), "6th in total");
    assert!(server.refused_connections() >= 2);
    // A freed place is taken again.
    drop(a.pop());
    let mut again = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if server.open_connections() < 5 {
            again = Some(from([127, 0, 0, 1]));
            break;
        }
    }
    let mut again = again.expect("the closed connection's place is freed");
    assert!(echo_ok(&mut again));
    server.shutdown().await;
}

/// A response too large for the frame limit is answered SYSTEM_ERROR, not dropped: the
/// client must not wait for an answer that never comes.
#[tokio::test]
async fn a_response_over_the_frame_limit_becomes_an_error_answer() {
    let config = ConnectionConfig {
        max_frame_len: 32 << 10,
        ..Default::default()
    };
    let (server, _state, addr) = serve(config).await;
    let client = RemotingClient::default();
    let resp = client
        .invoke(
            &addr.to_string(),
            RemotingCommand::request(BIG),
            Duration::from_secs(3),
        )
        .await
        .expect("an answer, not a timeout");
    assert_eq!(resp.code, rmq_remoting::ResponseCode::SYSTEM_ERROR);
    assert!(resp.remark.unwrap().contains("frame size limit"));
    server.shutdown().await;
}
