//! Leader election against a mock API server: create, renew, respect a live holder, take over
//! a lease whose holder stopped renewing, lose a race with 409 Conflict, release at shutdown.

use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::coordination::v1::Lease;
use kube::client::Body;
use kube::{Api, Client};
use rmq_operator::leader::{ElectionConfig, LeaderElector};
use serde_json::{json, Value};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/ops/leases";
const LOCK: &str = "/apis/coordination.k8s.io/v1/namespaces/ops/leases/lock";

fn elector(identity: &str) -> (LeaderElector, Handle) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(svc, "ops");
    let api: Api<Lease> = Api::namespaced(client, "ops");
    let config = ElectionConfig {
        lease_duration: Duration::from_secs(1),
        renew_deadline: Duration::from_millis(800),
        retry_period: Duration::from_millis(100),
    };
    (LeaderElector::new(api, "lock", identity, config), handle)
}

/// Answers the next request after checking its method and path with `reply(body)`:
/// a status code and a JSON body. Returns the request's body.
async fn answer(
    handle: &mut Handle,
    method: Method,
    path: &str,
    reply: impl FnOnce(&Value) -> (u16, Value),
) -> Value {
    let (req, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .unwrap_or_else(|_| panic!("no request, expected {method} {path}"))
        .expect("client gone");
    assert_eq!((req.method(), req.uri().path()), (&method, path));
    let bytes = req.into_body().collect_bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    let (status, reply) = reply(&body);
    send.send_response(
        Response::builder()
            .status(StatusCode::from_u16(status).unwrap())
            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
            .unwrap(),
    );
    body
}

fn status(code: u16, reason: &str) -> Value {
    json!({ "apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": reason, "code": code, "message": reason })
}

fn lease(holder: &str, renewed: &str, duration: i64, transitions: i64, rv: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": { "name": "lock", "namespace": "ops", "resourceVersion": rv },
        "spec": { "holderIdentity": holder, "leaseDurationSeconds": duration,
                  "acquireTime": "2026-01-01T00:00:00.000000Z", "renewTime": renewed,
                  "leaseTransitions": transitions }
    })
}

/// The written lease as the API server would return it, with a new resourceVersion.
fn stored(rv: &'static str) -> impl FnOnce(&Value) -> (u16, Value) {
    move |body| {
        let mut b = body.clone();
        b["metadata"]["resourceVersion"] = json!(rv);
        (200, b)
    }
}

#[tokio::test]
async fn creates_a_missing_lease_then_renews_it() {
    let (mut e, mut h) = elector("pod-a");
    let task = tokio::spawn(async move {
        let first = e.try_acquire_or_renew().await.unwrap();
        let leading = e.is_leading();
        let second = e.try_acquire_or_renew().await.unwrap();
        (first, leading, second)
    });
    answer(&mut h, Method::GET, LOCK, |_| {
        (404, status(404, "NotFound"))
    })
    .await;
    let created = answer(&mut h, Method::POST, LEASES, stored("1")).await;
    assert_eq!(created["spec"]["holderIdentity"], "pod-a");
    assert_eq!(created["spec"]["leaseTransitions"], 0);
    assert_eq!(created["spec"]["leaseDurationSeconds"], 1);
    let acquired = created["spec"]["acquireTime"].clone();
    // Renewal: read, then write back with the version read and a new renew time.
    answer(&mut h, Method::GET, LOCK, |_| (200, with_rv(&created, "1"))).await;
    let renewed = answer(&mut h, Method::PUT, LOCK, stored("2")).await;
    assert_eq!(renewed["metadata"]["resourceVersion"], "1");
    assert_eq!(renewed["spec"]["holderIdentity"], "pod-a");
    assert_eq!(
        renewed["spec"]["acquireTime"], acquired,
        "still the same term"
    );
    assert_eq!(renewed["spec"]["leaseTransitions"], 0);
    assert_eq!(task.await.unwrap(), (true, true, true));
}

fn with_rv(v: &Value, rv: &str) -> Value {
    let mut v = v.clone();
    v["metadata"]["resourceVersion"] = json!(rv);
    v
}

#[tokio::test]
async fn a_live_holder_is_respected_and_a_silent_one_replaced() {
    let (mut e, mut h) = elector("pod-b");
    let task = tokio::spawn(async move {
        // pod-a renews between our first two looks: still live.
        let a = e.try_acquire_or_renew().await.unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let b = e.try_acquire_or_renew().await.unwrap();
        // Then pod-a goes silent for longer than its lease: we take over.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let c = e.try_acquire_or_renew().await.unwrap();
        (a, b, c, e.is_leading())
    });
    let t1 = "2026-01-01T00:00:01.000000Z";
    let t2 = "2026-01-01T00:00:02.000000Z";
    answer(&mut h, Method::GET, LOCK, |_| {
        (200, lease("pod-a", t1, 1, 3, "10"))
    })
    .await;
    answer(&mut h, Method::GET, LOCK, |_| {
        (200, lease("pod-a", t2, 1, 3, "11"))
    })
    .await;
    answer(&mut h, Method::GET, LOCK, |_| {
        (200, lease("pod-a", t2, 1, 3, "11"))
    })
    .await;
    let taken = answer(&mut h, Method::PUT, LOCK, stored("12")).await;
    assert_eq!(taken["metadata"]["resourceVersion"], "11");
    assert_eq!(taken["spec"]["holderIdentity"], "pod-b");
    assert_eq!(taken["spec"]["leaseTransitions"], 4);
    assert_ne!(taken["spec"]["acquireTime"], "2026-01-01T00:00:00.000000Z");
    assert_eq!(task.await.unwrap(), (false, false, true, true));
}

#[tokio::test]
async fn losing_the_race_is_not_leading() {
    let (mut e, mut h) = elector("pod-b");
    let task = tokio::spawn(async move {
        let won = e.try_acquire_or_renew().await.unwrap();
        (won, e.is_leading())
    });
    // A released lease (no holder) is free at once; another replica writes first.
    answer(&mut h, Method::GET, LOCK, |_| {
        (200, lease("", "2026-01-01T00:00:01.000000Z", 1, 1, "20"))
    })
    .await;
    answer(&mut h, Method::PUT, LOCK, |_| {
        (409, status(409, "Conflict"))
    })
    .await;
    assert_eq!(task.await.unwrap(), (false, false));
}

#[tokio::test]
async fn a_leader_that_cannot_renew_steps_down_and_releases_at_shutdown() {
    let (mut e, mut h) = elector("pod-a");
    let task = tokio::spawn(async move {
        assert!(e.try_acquire_or_renew().await.unwrap());
        // The API server fails: the error is reported and, past the renew deadline, the
        // replica no longer counts itself leader.
        assert!(e.try_acquire_or_renew().await.is_err());
        tokio::time::sleep(Duration::from_millis(900)).await;
        let leading_after_deadline = e.is_leading();
        e.release().await.unwrap();
        leading_after_deadline
    });
    answer(&mut h, Method::GET, LOCK, |_| {
        (
            200,
            lease("pod-a", "2026-01-01T00:00:01.000000Z", 1, 0, "30"),
        )
    })
    .await;
    answer(&mut h, Method::PUT, LOCK, stored("31")).await;
    answer(&mut h, Method::GET, LOCK, |_| {
        (500, status(500, "InternalError"))
    })
    .await;
    answer(&mut h, Method::GET, LOCK, |_| {
        (
            200,
            lease("pod-a", "2026-01-01T00:00:01.000000Z", 1, 0, "31"),
        )
    })
    .await;
    let released = answer(&mut h, Method::PUT, LOCK, stored("32")).await;
    assert!(released["spec"]
        .get("holderIdentity")
        .is_none_or(|h| h.is_null()));
    assert_eq!(released["spec"]["leaseDurationSeconds"], 1);
    assert!(!task.await.unwrap());
}
