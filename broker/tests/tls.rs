//! TLS on the remoting ports, in each server mode, with RocketMQ's `tls.*` settings: plaintext
//! and TLS on one port (permissive), TLS only (enforcing, a broker registering over TLS),
//! untrusted, expired and missing certificates refused, and a certificate rotated on disk
//! taken without a restart.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rmq_remoting::tls::{ClientAuth, ClientTls, ServerTls, TlsConfig, TlsMode};
use rmq_remoting::{
    ClientConfig, Connection, ConnectionConfig, RemotingClient, RemotingCommand, RemotingServer,
    RequestCode, RequestProcessor, ResponseCode,
};
use rmq_testkit::tls::{Ca, Pem};

const T: Duration = Duration::from_secs(5);

fn server_tls(mode: TlsMode, pem: &Pem) -> TlsConfig {
    TlsConfig {
        server_mode: mode,
        server_cert_path: pem.cert.display().to_string(),
        server_key_path: pem.key.display().to_string(),
        config_file: String::new(),
        ..Default::default()
    }
}

fn tls_client(trust: &std::path::Path, own: Option<&Pem>) -> RemotingClient {
    let mut c = TlsConfig {
        client_enable: true,
        client_trust_cert_path: trust.display().to_string(),
        config_file: String::new(),
        ..Default::default()
    };
    if let Some(p) = own {
        c.client_cert_path = p.cert.display().to_string();
        c.client_key_path = p.key.display().to_string();
    }
    RemotingClient::new(
        ClientConfig {
            tls: ClientTls::new(&c).unwrap(),
            connect_timeout: Duration::from_secs(3),
            ..Default::default()
        },
        None,
    )
}

async fn runtime_info(client: &RemotingClient, addr: &str) -> Result<i32, String> {
    let req = RemotingCommand::request(RequestCode::GET_BROKER_RUNTIME_INFO);
    client
        .invoke(addr, req, T)
        .await
        .map(|r| r.code)
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissive_serves_tls_and_plaintext_on_one_port_and_enforcing_only_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster-ca");
    let trust = ca.write(&dir.path().join("ca.crt"));
    let pem = ca.issue(dir.path(), "broker", false);

    // Permissive: both kinds of client on the same port.
    let c = rmq_testkit::start_cluster(|s| s.tls = server_tls(TlsMode::Permissive, &pem)).await;
    let addr = c.broker.local_addr().to_string();
    assert_eq!(
        runtime_info(&RemotingClient::default(), &addr).await,
        Ok(ResponseCode::SUCCESS)
    );
    assert_eq!(
        runtime_info(&tls_client(&trust, None), &addr).await,
        Ok(ResponseCode::SUCCESS)
    );
    c.stop().await;

    // Enforcing on the name server and the broker; the broker registers over TLS.
    let ns_dir = tempfile::tempdir().unwrap();
    let ns_pem = ca.issue(dir.path(), "namesrv", false);
    let ns = rmq_nameserver::NameServer::start_with_tls(
        rmq_testkit::namesrv_config(ns_dir.path()),
        server_tls(TlsMode::Enforcing, &ns_pem),
    )
    .await
    .unwrap();
    let ns_addr = ns.local_addr().to_string();
    let mut s = rmq_testkit::broker_settings(dir.path(), &ns_addr, "broker-tls");
    s.tls = server_tls(TlsMode::Enforcing, &pem);
    s.tls.client_enable = true;
    s.tls.client_trust_cert_path = trust.display().to_string();
    let broker = rmq_broker::Broker::start(s).await.unwrap();
    let addr = broker.local_addr().to_string();
    assert!(
        rmq_testkit::wait_until(T, || ns.processor().route.live_broker_count() == 1).await,
        "the broker registered over TLS"
    );
    assert!(
        runtime_info(&RemotingClient::default(), &addr)
            .await
            .is_err(),
        "plaintext is closed under enforcing"
    );
    assert!(runtime_info(&RemotingClient::default(), &ns_addr)
        .await
        .is_err());
    assert_eq!(
        runtime_info(&tls_client(&trust, None), &addr).await,
        Ok(ResponseCode::SUCCESS)
    );
    broker.shutdown().await;
    ns.shutdown().await;
}

/// Answers every request with SUCCESS.
struct Ok200;

impl RequestProcessor for Ok200 {
    fn process(
        self: Arc<Self>,
        _conn: Connection,
        _request: RemotingCommand,
    ) -> BoxFuture<'static, Option<RemotingCommand>> {
        Box::pin(async { Some(RemotingCommand::success()) })
    }
}

async fn server(config: &TlsConfig) -> RemotingServer {
    RemotingServer::bind_tls(
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(Ok200),
        ConnectionConfig::default(),
        ServerTls::new(config).unwrap(),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_expired_and_missing_certificates_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster-ca");
    let other = Ca::new("someone-else");
    let trust = ca.write(&dir.path().join("ca.crt"));
    let other_trust = other.write(&dir.path().join("other.crt"));

    let good = server(&server_tls(
        TlsMode::Enforcing,
        &ca.issue(dir.path(), "good", false),
    ))
    .await;
    let addr = good.local_addr().to_string();
    assert_eq!(runtime_info(&tls_client(&trust, None), &addr).await, Ok(0));
    let e = runtime_info(&tls_client(&other_trust, None), &addr)
        .await
        .unwrap_err();
    assert!(
        e.contains("UnknownIssuer") || e.contains("invalid peer certificate"),
        "{e}"
    );

    let expired = server(&server_tls(
        TlsMode::Enforcing,
        &ca.issue(dir.path(), "old", true),
    ))
    .await;
    let e = runtime_info(&tls_client(&trust, None), &expired.local_addr().to_string())
        .await
        .unwrap_err();
    assert!(e.contains("Expired") || e.contains("expired"), "{e}");

    // Client certificates required: none, or one from another CA, is refused.
    let mut mutual = server_tls(TlsMode::Enforcing, &ca.issue(dir.path(), "mutual", false));
    mutual.server_need_client_auth = ClientAuth::Require;
    mutual.server_trust_cert_path = trust.display().to_string();
    let mutual = server(&mutual).await;
    let addr = mutual.local_addr().to_string();
    assert!(runtime_info(&tls_client(&trust, None), &addr)
        .await
        .is_err());
    let stranger = other.issue(dir.path(), "stranger", false);
    assert!(runtime_info(&tls_client(&trust, Some(&stranger)), &addr)
        .await
        .is_err());
    let member = ca.issue(dir.path(), "member", false);
    assert_eq!(
        runtime_info(&tls_client(&trust, Some(&member)), &addr).await,
        Ok(0)
    );
    for s in [good, expired, mutual] {
        s.shutdown().await;
    }

    // A server told to serve TLS with a certificate that is not there does not start.
    let missing = TlsConfig {
        server_mode: TlsMode::Enforcing,
        server_cert_path: dir.path().join("nope.crt").display().to_string(),
        server_key_path: dir.path().join("nope.key").display().to_string(),
        config_file: String::new(),
        ..Default::default()
    };
    assert!(ServerTls::new(&missing).is_err());
    // Verifying clients need something to verify with.
    let no_trust = TlsConfig {
        client_enable: true,
        config_file: String::new(),
        ..Default::default()
    };
    assert!(ClientTls::new(&no_trust).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_replaced_on_disk_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let old_ca = Ca::new("old-ca");
    let new_ca = Ca::new("new-ca");
    let old_trust = old_ca.write(&dir.path().join("old.crt"));
    let new_trust = new_ca.write(&dir.path().join("new.crt"));
    let pem = old_ca.issue(dir.path(), "server", false);
    let s = server(&server_tls(TlsMode::Enforcing, &pem)).await;
    let addr = s.local_addr().to_string();
    assert_eq!(
        runtime_info(&tls_client(&old_trust, None), &addr).await,
        Ok(0)
    );
    assert!(runtime_info(&tls_client(&new_trust, None), &addr)
        .await
        .is_err());

    // cert-manager style: the same paths, new contents.
    let staging = dir.path().join("staging");
    std::fs::create_dir(&staging).unwrap();
    let fresh = new_ca.issue(&staging, "rotated", false);
    std::fs::copy(&fresh.cert, &pem.cert).unwrap();
    std::fs::copy(&fresh.key, &pem.key).unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(2);
    for f in [&pem.cert, &pem.key] {
        std::fs::File::options()
            .write(true)
            .open(f)
            .unwrap()
            .set_modified(later)
            .unwrap();
    }
    let mut rotated = false;
    for _ in 0..30 {
        if runtime_info(&tls_client(&new_trust, None), &addr).await == Ok(0) {
            rotated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(rotated, "the new certificate is served");
    s.shutdown().await;
}
