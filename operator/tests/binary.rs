//! The `rocketmq-operator` process: health and metrics answer while it waits for the leader
//! Lease (here the API server is unreachable, so it never gets one), and SIGTERM stops it
//! cleanly.

use rmq_testkit::free_port;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn waits_for_the_lease_serving_health_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // An API server nobody listens on.
    let dead = free_port();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: t\n\
             clusters: [{{name: t, cluster: {{server: 'https://127.0.0.1:{dead}', insecure-skip-tls-verify: true}}}}]\n\
             users: [{{name: t, user: {{token: x}}}}]\n\
             contexts: [{{name: t, context: {{cluster: t, user: t}}}}]\n"
        ),
    )
    .unwrap();
    let http = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_rocketmq-operator"))
        .env("KUBECONFIG", &kubeconfig)
        .env("HTTP_ADDR", &http)
        .env("POD_NAMESPACE", "ops")
        .env("POD_NAME", "operator-0")
        .env("WATCH_NAMESPACE", "team-a,team-b")
        .env("RUST_LOG", "info")
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let health = loop {
        if let Some(r) = http_get(&http, "/healthz") {
            break r;
        }
        if let Some(s) = child.try_wait().unwrap() {
            panic!("the operator exited at start: {s}");
        }
        assert!(Instant::now() < deadline, "no /healthz");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let metrics = http_get(&http, "/metrics").unwrap();
    assert!(metrics.contains("rocketmq_operator_leader 0"), "{metrics}");

    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("operator ignored SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    // Structured logs: one JSON object per line.
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["level"] == "INFO"
            && l["fields"]["message"] == "waiting to become leader"
            && l["fields"]["identity"] == "operator-0"),
        "{out}"
    );
}

/// A stand-in API server: a Lease store, one NameServer in `team-a`, empty lists elsewhere,
/// watches that stay open, 404 for everything else. Records every request line.
mod fake_api {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{Method, StatusCode, Uri};
    use axum::response::IntoResponse;
    use serde_json::{json, Value};

    #[derive(Default)]
    pub struct Api {
        pub lease: Mutex<Option<Value>>,
        pub log: Mutex<Vec<String>>,
    }

    pub async fn serve(state: Arc<Api>) -> std::net::SocketAddr {
        let app = axum::Router::new().fallback(handle).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    fn json_resp(status: StatusCode, v: Value) -> axum::response::Response {
        (
            status,
            [("content-type", "application/json")],
            serde_json::to_string(&v).unwrap(),
        )
            .into_response()
    }

    async fn handle(
        State(api): State<Arc<Api>>,
        method: Method,
        uri: Uri,
        body: Bytes,
    ) -> axum::response::Response {
        let path = uri.path().to_string();
        let query = uri.query().unwrap_or("").to_string();
        api.log
            .lock()
            .unwrap()
            .push(format!("{method} {path}?{query}"));
        let lease_path = "/apis/coordination.k8s.io/v1/namespaces/ops/leases";
        let not_found = || {
            json_resp(
                StatusCode::NOT_FOUND,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
            )
        };
        if path.starts_with(lease_path) {
            let mut lease = api.lease.lock().unwrap();
            return match method {
                Method::GET => match lease.as_ref() {
                    Some(l) => json_resp(StatusCode::OK, l.clone()),
                    None => not_found(),
                },
                _ => {
                    let mut v: Value = serde_json::from_slice(&body).unwrap();
                    let rv = lease.as_ref().map_or(0, |l: &Value| {
                        l["metadata"]["resourceVersion"]
                            .as_str()
                            .unwrap()
                            .parse::<u64>()
                            .unwrap()
                    });
                    v["metadata"]["resourceVersion"] = json!((rv + 1).to_string());
                    *lease = Some(v.clone());
                    json_resp(StatusCode::OK, v)
                }
            };
        }
        if query.contains("watch=true") || query.contains("watch=1") {
            // Nothing changes: hold the watch open a while, as an idle API server does.
            tokio::time::sleep(Duration::from_secs(20)).await;
            return json_resp(StatusCode::OK, json!(null));
        }
        if method == Method::GET
            && path.starts_with("/apis/rocketmq.rs/v1alpha1/namespaces/team-a/nameservers")
        {
            return json_resp(
                StatusCode::OK,
                json!({
                    "apiVersion": "rocketmq.rs/v1alpha1", "kind": "NameServerList",
                    "metadata": { "resourceVersion": "5" },
                    "items": [{ "apiVersion": "rocketmq.rs/v1alpha1", "kind": "NameServer",
                                "metadata": { "name": "rocketmq", "namespace": "team-a", "uid": "u1", "resourceVersion": "5" },
                                "spec": { "replicas": 1 } }]
                }),
            );
        }
        if method == Method::GET && !path.ends_with("rocketmq") {
            return json_resp(
                StatusCode::OK,
                json!({ "apiVersion": "v1", "kind": "List", "metadata": { "resourceVersion": "5" }, "items": [] }),
            );
        }
        not_found()
    }
}

/// With an API server: the operator takes the Lease, watches each listed namespace, counts
/// what it manages, reconciles, and gives the Lease back when stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leads_watches_each_namespace_and_releases_the_lease() {
    let api = std::sync::Arc::new(fake_api::Api::default());
    let addr = fake_api::serve(api.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: t\n\
             clusters: [{{name: t, cluster: {{server: 'http://{addr}'}}}}]\n\
             users: [{{name: t, user: {{token: x}}}}]\n\
             contexts: [{{name: t, context: {{cluster: t, user: t}}}}]\n"
        ),
    )
    .unwrap();
    let http = format!("127.0.0.1:{}", free_port());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rocketmq-operator"))
        .env("KUBECONFIG", &kubeconfig)
        .env("HTTP_ADDR", &http)
        .env("POD_NAMESPACE", "ops")
        .env("POD_NAME", "operator-0")
        .env("WATCH_NAMESPACE", "team-a,team-b")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    // Leading, one NameServer managed, and its reconcile attempted (the fake refuses writes).
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let h = http.clone();
        let m = tokio::task::spawn_blocking(move || http_get(&h, "/metrics"))
            .await
            .unwrap()
            .unwrap_or_default();
        if m.contains("rocketmq_operator_leader 1")
            && m.contains(r#"rocketmq_operator_managed_objects{kind="NameServer"} 1"#)
            && m.contains(r#"rocketmq_operator_reconciles_total{controller="nameserver""#)
        {
            break m;
        }
        if let Some(s) = child.try_wait().unwrap() {
            panic!("the operator exited: {s}");
        }
        assert!(Instant::now() < deadline, "never led and reconciled:\n{m}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        metrics.contains(r#"rocketmq_operator_managed_objects{kind="Topic"} 0"#),
        "{metrics}"
    );
    let lease = api.lease.lock().unwrap().clone().unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "operator-0");
    {
        let log = api.log.lock().unwrap();
        for ns in ["team-a", "team-b"] {
            for kind in ["nameservers", "brokergroups", "topics", "consumergroups"] {
                let path = format!("GET /apis/rocketmq.rs/v1alpha1/namespaces/{ns}/{kind}?");
                assert!(
                    log.iter().any(|l| l.starts_with(&path)),
                    "no list of {kind} in {ns}"
                );
            }
        }
        assert!(
            !log.iter()
                .any(|l| l.starts_with("GET /apis/rocketmq.rs/v1alpha1/nameservers?")),
            "watched all namespaces"
        );
    }

    // SIGTERM: controllers stop and the Lease is released for the next replica.
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().unwrap().to_string())
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    let lease = api.lease.lock().unwrap().clone().unwrap();
    assert!(
        lease["spec"]
            .get("holderIdentity")
            .is_none_or(|h| h.is_null()),
        "lease not released: {lease}"
    );
}
