//! Hostile input: garbage, truncated and oversize frames, bad JSON, unknown codes. Each
//! affects only the connection that sent it; the server keeps serving everyone else.

mod common;

use std::time::Duration;

use common::*;
use rmq_remoting::codec::encode_frame;
use rmq_remoting::header::GetRouteInfoRequestHeader;
use rmq_remoting::{RemotingClient, RemotingCommand, RequestCode, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until EOF (the server closed) or `timeout`; returns whether EOF came.
async fn closed_by_server(stream: &mut TcpStream, timeout: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

async fn still_serves(client: &RemotingClient, addr: &str) {
    let req = RemotingCommand::request_with_header(
        RequestCode::GET_ROUTEINFO_BY_TOPIC,
        &GetRouteInfoRequestHeader {
            topic: "T".into(),
            accept_standard_json_only: None,
        },
    );
    let resp = client
        .invoke(addr, req, TIMEOUT)
        .await
        .expect("server still answers");
    assert_eq!(resp.code, ResponseCode::SUCCESS);
}

#[tokio::test]
async fn bad_frames_close_only_their_connection() {
    let ns = start_namesrv(|c| c.frame_max_length = 64 * 1024).await;
    let good = rmq_testkit::admin_client();
    register(
        &good,
        &ns.addr,
        "C1",
        "broker-a",
        0,
        "127.0.0.1:10911",
        &[("T", 4), ("a", 1)],
    )
    .await;

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("oversize length", {
            let mut v = (64 * 1024 + 1u32).to_be_bytes().to_vec();
            v.extend_from_slice(&[0; 64]);
            v
        }),
        ("length below header word", 2u32.to_be_bytes().to_vec()),
        ("header longer than frame", {
            let mut v = 8u32.to_be_bytes().to_vec();
            v.extend_from_slice(&500u32.to_be_bytes());
            v.extend_from_slice(&[0; 4]);
            v
        }),
        ("unknown serialize type", {
            let mut v = 6u32.to_be_bytes().to_vec();
            v.extend_from_slice(&((7u32 << 24) | 2).to_be_bytes());
            v.extend_from_slice(b"{}");
            v
        }),
        ("header not JSON", {
            let h = b"{\"code\":105,";
            let mut v = ((4 + h.len()) as u32).to_be_bytes().to_vec();
            v.extend_from_slice(&(h.len() as u32).to_be_bytes());
            v.extend_from_slice(h);
            v
        }),
        ("binary header truncated", {
            let h = [0u8, 105, 0, 1];
            let mut v = ((4 + h.len()) as u32).to_be_bytes().to_vec();
            v.extend_from_slice(&((1u32 << 24) | h.len() as u32).to_be_bytes());
            v.extend_from_slice(&h);
            v
        }),
    ];
    for (name, bytes) in cases {
        let mut s = TcpStream::connect(&ns.addr).await.unwrap();
        s.write_all(&bytes).await.unwrap();
        assert!(
            closed_by_server(&mut s, Duration::from_secs(3)).await,
            "{name}: connection not closed"
        );
        still_serves(&good, &ns.addr).await;
    }

    // A truncated frame followed by a hang-up: the server just drops the connection.
    let mut s = TcpStream::connect(&ns.addr).await.unwrap();
    let frame = encode_frame(&RemotingCommand::request(
        RequestCode::GET_BROKER_CLUSTER_INFO,
    ))
    .unwrap();
    s.write_all(&frame[..frame.len() - 3]).await.unwrap();
    drop(s);
    still_serves(&good, &ns.addr).await;

    // The broker registered on the good connection is untouched by all of this.
    assert_eq!(ns.server.processor().route.live_broker_count(), 1);
    ns.server.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_errors_and_the_connection_lives_on() {
    let ns = start_namesrv(|_| {}).await;
    let client = rmq_testkit::admin_client();

    // Unknown request code.
    let resp = client
        .invoke(&ns.addr, RemotingCommand::request(9999), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(resp.code, ResponseCode::REQUEST_CODE_NOT_SUPPORTED);
    assert_eq!(
        resp.remark.as_deref(),
        Some(" request type 9999 not supported")
    );
    // A broker-only code sent to the name server.
    let resp = client
        .invoke(
            &ns.addr,
            RemotingCommand::request(RequestCode::SEND_MESSAGE),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(resp.code, ResponseCode::REQUEST_CODE_NOT_SUPPORTED);

    // Missing required header field.
    let resp = client
        .invoke(
            &ns.addr,
            RemotingCommand::request(RequestCode::GET_ROUTEINFO_BY_TOPIC),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(resp.code, ResponseCode::SYSTEM_ERROR);
    assert!(resp.remark.unwrap().contains("topic"));

    // Register with a body that is not JSON, and one with the wrong shape.
    for body in [
        &b"{\"topicConfigSerializeWrapper\": [1,2"[..],
        &b"[1,2,3]"[..],
        &b"\xff\xfe"[..],
    ] {
        let mut req = register_request(
            "C1",
            "broker-a",
            0,
            "127.0.0.1:10911",
            &[("T", 4), ("a", 1)],
            1,
        );
        req.ext_fields.remove("bodyCrc32");
        req.body = body.to_vec().into();
        let resp = client.invoke(&ns.addr, req, TIMEOUT).await.unwrap();
        assert_eq!(resp.code, ResponseCode::SYSTEM_ERROR, "body {body:?}");
    }
    // Compressed flag with garbage.
    let mut req = register_request(
        "C1",
        "broker-a",
        0,
        "127.0.0.1:10911",
        &[("T", 4), ("a", 1)],
        1,
    );
    req.ext_fields.insert("compressed".into(), "true".into());
    req.ext_fields.remove("bodyCrc32");
    let resp = client.invoke(&ns.addr, req, TIMEOUT).await.unwrap();
    assert_eq!(resp.code, ResponseCode::SYSTEM_ERROR);
    // A non-numeric broker id.
    let mut req = register_request(
        "C1",
        "broker-a",
        0,
        "127.0.0.1:10911",
        &[("T", 4), ("a", 1)],
        1,
    );
    req.ext_fields.insert("brokerId".into(), "zero".into());
    let resp = client.invoke(&ns.addr, req, TIMEOUT).await.unwrap();
    assert_eq!(resp.code, ResponseCode::SYSTEM_ERROR);

    // Bad bodies for the other body-carrying requests.
    for code in [
        RequestCode::REGISTER_TOPIC_IN_NAMESRV,
        RequestCode::QUERY_DATA_VERSION,
        RequestCode::UPDATE_NAMESRV_CONFIG,
    ] {
        let mut req = RemotingCommand::request(code).with_body(&b"\xff{{{"[..]);
        for (k, v) in [
            ("topic", "T"),
            ("brokerName", "b"),
            ("brokerAddr", "a"),
            ("clusterName", "c"),
            ("brokerId", "0"),
        ] {
            req.ext_fields.insert(k.into(), v.into());
        }
        let resp = client.invoke(&ns.addr, req, TIMEOUT).await.unwrap();
        assert_ne!(resp.code, ResponseCode::SUCCESS, "code {code}");
    }

    // Oneway requests get no answer, even when bad; the next request still works.
    let mut oneway = RemotingCommand::request(9999);
    oneway.mark_oneway();
    client.invoke_oneway(&ns.addr, oneway).await.unwrap();

    // Nothing registered and the same connection still serves.
    assert_eq!(ns.server.processor().route.live_broker_count(), 0);
    let resp = client
        .invoke(
            &ns.addr,
            RemotingCommand::request(RequestCode::GET_BROKER_CLUSTER_INFO),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(resp.code, ResponseCode::SUCCESS);
    ns.server.shutdown().await;
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let ns = start_namesrv(|c| c.server_channel_max_idle_time_seconds = 1).await;
    let mut s = TcpStream::connect(&ns.addr).await.unwrap();
    assert!(closed_by_server(&mut s, Duration::from_secs(4)).await);
    ns.server.shutdown().await;
}
