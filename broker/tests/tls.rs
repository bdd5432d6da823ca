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
use rustls::pki_types::pem::PemObject;

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

/// Whether a client from `client()` gets an answer from `addr` within six seconds (files
/// are looked at again at most once a second).
async fn answers_within(client: impl Fn() -> RemotingClient, addr: &str) -> bool {
    for _ in 0..30 {
        if runtime_info(&client(), addr).await == Ok(0) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
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
    new_ca.renew(&pem, "rotated");
    let rotated = answers_within(|| tls_client(&new_trust, None), &addr).await;
    assert!(rotated, "the new certificate is served");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_and_metrics_over_tls_and_plaintext_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster-ca");
    let trust = ca.write(&dir.path().join("ca.crt"));
    let pem = ca.issue(dir.path(), "broker", false);
    // The brokers' own connections are TLS (tls.enable), the name server's included: a
    // master asks it whether its term is current before it takes writes.
    let ns_pem = ca.issue(dir.path(), "namesrv", false);
    let ns = rmq_nameserver::NameServer::start_with_tls(
        rmq_testkit::namesrv_config(&dir.path().join("ns")),
        server_tls(TlsMode::Permissive, &ns_pem),
    )
    .await
    .unwrap();
    let ns_addr = ns.local_addr().to_string();
    let tls = |s: &mut rmq_broker::BrokerSettings| {
        s.tls = server_tls(TlsMode::Enforcing, &pem);
        s.tls.client_enable = true;
        s.tls.client_trust_cert_path = trust.display().to_string();
    };
    let mut ms = rmq_testkit::broker_settings(&dir.path().join("m"), &ns_addr, "broker-r");
    ms.broker.ha_listen_port = rmq_testkit::free_port();
    ms.broker.metrics_port = rmq_testkit::free_port();
    tls(&mut ms);
    let master = rmq_broker::Broker::start(ms.clone()).await.unwrap();
    let mut ss = rmq_testkit::broker_settings(&dir.path().join("s"), &ns_addr, "broker-r");
    ss.broker.broker_id = 1;
    ss.broker.broker_role = rmq_remoting::role::BrokerRole::Slave;
    ss.broker.ha_listen_port = rmq_testkit::free_port();
    ss.broker.ha_master_address = format!("127.0.0.1:{}", ms.broker.ha_listen_port());
    tls(&mut ss);
    let slave = rmq_broker::Broker::start(ss).await.unwrap();

    // Messages reach the slave over the TLS HA connection.
    let client = tls_client(&trust, None).with_credentials(Some(rmq_testkit::admin_credential()));
    let maddr = master.local_addr().to_string();
    for i in 0..20 {
        let req = rmq_testkit::send_request("Secured", format!("m{i}").as_bytes());
        let r = client.invoke(&maddr, req, T).await.unwrap();
        assert_eq!(r.code, ResponseCode::SUCCESS, "{:?}", r.remark);
    }
    let want = master.inner().store.max_phy_offset();
    assert!(
        rmq_testkit::wait_until(Duration::from_secs(20), || {
            slave.inner().store.max_phy_offset() >= want
        })
        .await,
        "replicated over TLS"
    );
    assert_eq!(master.inner().ha.slave_count(), 1);

    // A plaintext peer on the HA port gets no handshake and is closed.
    let mut plain = tokio::net::TcpStream::connect(("127.0.0.1", ms.broker.ha_listen_port()))
        .await
        .unwrap();
    plain.write_all(&[0u8; 64]).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(T, plain.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    // Nothing but, at most, a TLS alert record (0x15): no challenge, no log.
    assert!(n == 0 || buf[0] == 0x15, "{:?}", &buf[..n]);
    assert_eq!(master.inner().ha.slave_count(), 1);

    // /metrics over HTTPS; plain HTTP is closed.
    let metrics = master.metrics_addr().unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(&trust).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(metrics).await.unwrap();
    let mut https = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await
        .unwrap();
    https
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    https.read_to_string(&mut body).await.ok();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(
        body.contains("rocketmq_commitlog_max_offset_bytes"),
        "{body}"
    );
    let mut plain = tokio::net::TcpStream::connect(metrics).await.unwrap();
    plain
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let n = tokio::time::timeout(T, plain.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert!(
        n == 0 || buf[0] == 0x15,
        "plain HTTP is closed under enforcing: {:?}",
        &buf[..n]
    );
    slave.shutdown().await;
    master.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_replaced_on_disk_is_presented_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster-ca");
    let other = Ca::new("old-client-ca");
    let trust = ca.write(&dir.path().join("ca.crt"));
    let mut mutual = server_tls(TlsMode::Enforcing, &ca.issue(dir.path(), "server", false));
    mutual.server_need_client_auth = ClientAuth::Require;
    mutual.server_trust_cert_path = trust.display().to_string();
    let s = server(&mutual).await;
    let addr = s.local_addr().to_string();
    // The client starts with a certificate the server does not trust...
    let own = other.issue(dir.path(), "client", false);
    let client = tls_client(&trust, Some(&own));
    assert!(runtime_info(&client, &addr).await.is_err());
    // ...which is then replaced in place by one it does (cert-manager renewing it).
    ca.renew(&own, "client");
    let presented = answers_within(|| client.clone(), &addr).await;
    assert!(
        presented,
        "the same client presents the renewed certificate"
    );
    s.shutdown().await;
}
