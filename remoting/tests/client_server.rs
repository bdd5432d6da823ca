//! The async client and server over real TCP: connection reuse, opaque matching with
//! out-of-order answers, timeouts, oneway sends, server-initiated requests answered by the
//! client's processor, and the frame-size limit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rmq_remoting::{
    ClientConfig, Connection, ConnectionConfig, RemotingClient, RemotingCommand, RemotingError,
    RemotingServer, RequestProcessor, ResponseCode,
};

const ECHO: i32 = 1000;
const SLOW: i32 = 1001;
const NEVER: i32 = 1002;
const CALL_BACK: i32 = 1003;
const COUNT: i32 = 1004;
const ASK_CLIENT: i32 = 2000;

#[derive(Default)]
struct Server {
    oneways: AtomicUsize,
}

impl RequestProcessor for Server {
    fn process(
        self: Arc<Self>,
        conn: Connection,
        req: RemotingCommand,
    ) -> BoxFuture<'static, Option<RemotingCommand>> {
        Box::pin(async move {
            match req.code {
                ECHO => Some(RemotingCommand::success().with_body(req.body.clone())),
                SLOW => {
                    // Answer later than requests sent after this one.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Some(RemotingCommand::success().with_body(req.body.clone()))
                }
                NEVER => None,
                COUNT => {
                    self.oneways.fetch_add(1, Ordering::SeqCst);
                    None
                }
                CALL_BACK => {
                    // The server asks the client something on the client's own connection.
                    let ask = RemotingCommand::request(ASK_CLIENT).with_body(&b"question"[..]);
                    match conn.invoke(ask, Duration::from_secs(2)).await {
                        Ok(answer) => Some(
                            RemotingCommand::response(answer.code, None).with_body(answer.body),
                        ),
                        Err(e) => Some(RemotingCommand::error(
                            ResponseCode::SYSTEM_ERROR,
                            e.to_string(),
                        )),
                    }
                }
                other => Some(RemotingCommand::not_supported(other)),
            }
        })
    }
}

struct Counting(Arc<Server>);

impl RequestProcessor for Counting {
    fn process(
        self: Arc<Self>,
        conn: Connection,
        req: RemotingCommand,
    ) -> BoxFuture<'static, Option<RemotingCommand>> {
        self.0.clone().process(conn, req)
    }
}

struct ClientCallbacks;

impl RequestProcessor for ClientCallbacks {
    fn process(
        self: Arc<Self>,
        _conn: Connection,
        req: RemotingCommand,
    ) -> BoxFuture<'static, Option<RemotingCommand>> {
        Box::pin(async move {
            assert_eq!(req.code, ASK_CLIENT);
            Some(RemotingCommand::success().with_body(&b"answer"[..]))
        })
    }
}

async fn start(max_frame: usize) -> (RemotingServer, Arc<Server>, String) {
    let state = Arc::new(Server::default());
    let server = RemotingServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(Counting(state.clone())),
        ConnectionConfig {
            max_frame_len: max_frame,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let addr = server.local_addr().to_string();
    (server, state, addr)
}

#[tokio::test]
async fn concurrent_requests_share_one_connection_and_match_by_opaque() {
    let (server, _state, addr) = start(1 << 20).await;
    let client = RemotingClient::default();
    let first = client.connection(&addr).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let client = client.clone();
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let code = if i % 10 == 0 { SLOW } else { ECHO };
            let req = RemotingCommand::request(code).with_body(i.to_be_bytes().to_vec());
            let resp = client
                .invoke(&addr, req, Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(resp.body.as_ref(), &i.to_be_bytes());
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        client.connection(&addr).await.unwrap(),
        first,
        "connection reused"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn timeouts_oneway_and_reconnect() {
    let (server, state, addr) = start(1 << 20).await;
    let client = RemotingClient::default();
    let err = client
        .invoke(
            &addr,
            RemotingCommand::request(NEVER),
            Duration::from_millis(200),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RemotingError::Timeout { .. }), "{err}");
    // The connection is still usable after a timeout.
    let resp = client
        .invoke(
            &addr,
            RemotingCommand::request(ECHO),
            Duration::from_secs(2),
        )
        .await
        .unwrap();
    assert_eq!(resp.code, ResponseCode::SUCCESS);

    for _ in 0..5 {
        client
            .invoke_oneway(&addr, RemotingCommand::request(COUNT))
            .await
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while state.oneways.load(Ordering::SeqCst) < 5 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Unknown codes get REQUEST_CODE_NOT_SUPPORTED.
    let resp = client
        .invoke(
            &addr,
            RemotingCommand::request(4242),
            Duration::from_secs(2),
        )
        .await
        .unwrap();
    assert_eq!(resp.code, ResponseCode::REQUEST_CODE_NOT_SUPPORTED);

    // A closed connection is replaced on the next request.
    let old = client.connection(&addr).await.unwrap();
    old.close();
    let resp = client
        .invoke(
            &addr,
            RemotingCommand::request(ECHO),
            Duration::from_secs(2),
        )
        .await
        .unwrap();
    assert_eq!(resp.code, ResponseCode::SUCCESS);
    assert_ne!(client.connection(&addr).await.unwrap(), old);
    server.shutdown().await;

    // Nothing listening: a connect error, not a hang.
    let err = client
        .invoke(
            &addr,
            RemotingCommand::request(ECHO),
            Duration::from_secs(2),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RemotingError::Connect { .. } | RemotingError::ConnectionClosed(_)
        ),
        "{err}"
    );
}

#[tokio::test]
async fn server_initiated_requests_reach_the_client_processor() {
    let (server, _state, addr) = start(1 << 20).await;
    let client = RemotingClient::new(ClientConfig::default(), Some(Arc::new(ClientCallbacks)));
    let resp = client
        .invoke(
            &addr,
            RemotingCommand::request(CALL_BACK),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(resp.code, ResponseCode::SUCCESS);
    assert_eq!(resp.body.as_ref(), b"answer");

    // A client without a processor answers REQUEST_CODE_NOT_SUPPORTED to the server.
    let plain = RemotingClient::default();
    let resp = plain
        .invoke(
            &addr,
            RemotingCommand::request(CALL_BACK),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(resp.code, ResponseCode::REQUEST_CODE_NOT_SUPPORTED);
    server.shutdown().await;
}

#[tokio::test]
async fn oversize_frame_closes_that_connection_only() {
    let (server, _state, addr) = start(4096).await;
    let big = RemotingClient::default();
    let small = RemotingClient::default();
    small
        .invoke(
            &addr,
            RemotingCommand::request(ECHO),
            Duration::from_secs(2),
        )
        .await
        .unwrap();
    let err = big
        .invoke(
            &addr,
            RemotingCommand::request(ECHO).with_body(vec![7u8; 8192]),
            Duration::from_secs(2),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RemotingError::ConnectionClosed(_)), "{err}");
    let resp = small
        .invoke(
            &addr,
            RemotingCommand::request(ECHO),
            Duration::from_secs(2),
        )
        .await
        .unwrap();
    assert_eq!(resp.code, ResponseCode::SUCCESS);
    server.shutdown().await;
}
