//! What the operator's mock-API tests share: a kube `Client` over tower-test, answering its
//! requests one by one in the expected order, and a name server on 127.0.0.1.
#![allow(dead_code)]

use std::time::Duration;

use http::{Method, Request, Response};
use kube::client::Body;
use kube::Client;
use rmq_nameserver::NameServer;
use serde_json::Value;

pub type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// A client whose every request the test answers through the handle.
pub fn mock() -> (Client, Handle) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(svc, "default"), handle)
}

/// Answers the next request: checks method and path, returns its JSON body, and replies
/// with `reply(body)`.
pub async fn expect(
    handle: &mut Handle,
    method: Method,
    path: &str,
    reply: impl FnOnce(&Value) -> Value,
) -> Value {
    let (req, send) = tokio::time::timeout(Duration::from_secs(30), handle.next_request())
        .await
        .unwrap_or_else(|_| panic!("no request, expected {method} {path}"))
        .unwrap_or_else(|| panic!("client gone, expected {method} {path}"));
    assert_eq!(
        (req.method().clone(), req.uri().path()),
        (method, path),
        "query: {:?}",
        req.uri().query()
    );
    let bytes = req.into_body().collect_bytes().await.unwrap();
    let body: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    send.send_response(
        Response::builder()
            .body(Body::from(serde_json::to_vec(&reply(&body)).unwrap()))
            .unwrap(),
    );
    body
}

/// Replies with what was sent (an apply's result).
pub fn echo(body: &Value) -> Value {
    body.clone()
}

/// A name server on 127.0.0.1, its files under `dir`.
pub async fn namesrv(dir: &std::path::Path) -> NameServer {
    rmq_testkit::start_namesrv(dir).await
}
