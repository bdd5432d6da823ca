//! Registration with the name servers: at start, every `registerNameServerPeriod` (clamped to
//! 10–60 s as RocketMQ does), right after a topic is created, and an unregistration at stop.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rmq_remoting::header::{RegisterBrokerRequestHeader, UnregisterBrokerRequestHeader};
use rmq_remoting::protocol::topic::{RegisterBrokerBody, TopicConfigSerializeWrapper};
use rmq_remoting::{JsonBody, RemotingCommand, RequestCode};
use tokio_util::sync::CancellationToken;

use crate::broker::BrokerInner;

/// Registers with every name server once; returns how many accepted.
pub async fn register_all(inner: &Arc<BrokerInner>) -> usize {
    register(inner, None).await.0
}

/// Registers every topic, or only `only` (RocketMQ's `registerIncrementBrokerData`: the
/// topics that changed, with the new data version; name servers update those and keep the
/// rest). Returns how many name servers accepted, of how many.
async fn register(inner: &Arc<BrokerInner>, only: Option<&BTreeSet<String>>) -> (usize, usize) {
    let role = inner.role.snapshot();
    let (servers, header, timeout) = inner.settings.broker(|b| {
        (
            b.name_servers(),
            RegisterBrokerRequestHeader {
                broker_name: b.broker_name.clone(),
                broker_addr: inner.broker_addr.clone(),
                cluster_name: b.broker_cluster_name.clone(),
                ha_server_addr: b.ha_server_addr(),
                broker_id: role.broker_id,
                heartbeat_timeout_millis: None,
                enable_acting_master: Some(false),
                compressed: Some(false),
                body_crc32: None,
            },
            Duration::from_millis(b.register_broker_timeout_mills.max(1000)),
        )
    });
    let mut wrapper = inner.topics.wrapper();
    if let Some(only) = only {
        wrapper.topic_config_table.retain(|t, _| only.contains(t));
        if wrapper.topic_config_table.is_empty() {
            return (0, 0); // all deleted meanwhile
        }
    }
    // As RocketMQ 5 brokers do: the state version is the group's epoch, so a name server
    // keeps routing to the newer master and refuses a former one still registering.
    wrapper.data_version.state_version = i64::from(role.epoch.0);
    // Apply the broker-wide permission (wipeWritePerm / read-only brokers) to what is announced.
    // A fenced store (a flush failed) takes no writes: producers are routed elsewhere.
    let mut announced = role.permission.bits() | rmq_remoting::protocol::topic::perm::INHERIT;
    // Nor does a master whose term is not confirmed (its config may predate a failover).
    if inner.store.fenced().is_some() || role.unconfirmed_master() {
        announced &= !rmq_remoting::protocol::topic::perm::WRITE;
    }
    for tc in wrapper.topic_config_table.values_mut() {
        tc.perm &= announced;
    }
    let (split, chunk, frame_max) = inner.settings.broker(|b| {
        (
            b.enable_split_registration,
            b.split_registration_size.max(1),
            b.frame_max_length,
        )
    });
    let topics = wrapper.topic_config_table.len();
    let bodies = registration_bodies(wrapper, split, chunk, frame_max);
    let bytes: usize = bodies.iter().map(|b| b.len()).sum();
    let started = std::time::Instant::now();
    let mut ok = 0;
    let servers = expand(&servers).await;
    let calls = servers.iter().map(|addr| {
        let requests: Vec<RemotingCommand> = bodies
            .iter()
            .map(|body| {
                let mut h = header.clone();
                h.body_crc32 = Some((crc32fast::hash(body) & 0x7FFF_FFFF) as i32);
                RemotingCommand::request_with_header(RequestCode::REGISTER_BROKER, &h)
                    .with_body(body.clone())
            })
            .collect();
        let client = inner.namesrv.clone();
        async move {
            // The parts in order; the answer that counts is the last, or the first refusal.
            let mut last = None;
            for req in requests {
                let r = client.invoke(addr, req, timeout).await;
                let stop =
                    !matches!(&r, Ok(resp) if resp.code == rmq_remoting::ResponseCode::SUCCESS);
                last = Some(r);
                if stop {
                    break;
                }
            }
            (addr.clone(), last.expect("at least one part"))
        }
    });
    // Each answer is acted on as it comes: a name server that hangs must not hold back what
    // the others say (where a slave's master is, that this master is fenced).
    let mut answers: futures::stream::FuturesUnordered<_> = calls.collect();
    while let Some((addr, result)) = futures::StreamExt::next(&mut answers).await {
        match result {
            Ok(resp) if resp.code != rmq_remoting::ResponseCode::SUCCESS => {
                fenced_by_name_server(inner, &addr, &resp);
                tracing::warn!(namesrv = %addr, code = resp.code, remark = ?resp.remark, "register broker refused");
            }
            Ok(resp) => {
                ok += 1;
                // For a slave: where its master's HA port is.
                if let Ok(h) =
                    resp.decode_header::<rmq_remoting::header::RegisterBrokerResponseHeader>()
                {
                    inner.ha.learn_master(h.master_addr, h.ha_server_addr);
                }
            }
            Err(e) => tracing::warn!(namesrv = %addr, error = %e, "register broker failed"),
        }
    }
    tracing::debug!(
        accepted = ok,
        servers = servers.len(),
        topics,
        parts = bodies.len(),
        bytes,
        increment = only.is_some(),
        ms = started.elapsed().as_millis() as u64,
        "registered with name servers"
    );
    (ok, servers.len())
}

/// Registrations asked for by topic changes, run one at a time in the background: what is
/// asked while one runs goes in the next, together. A burst of ten thousand topic creations
/// then costs a few registrations of the new topics, not ten thousand registrations of every
/// topic (which once kept the name server busy for a minute, timed out the broker's periodic
/// registration, and would have let it expire).
#[derive(Default)]
pub struct Registrations {
    state: parking_lot::Mutex<Wanted>,
}

#[derive(Default)]
struct Wanted {
    running: bool,
    all: bool,
    topics: BTreeSet<String>,
}

impl Registrations {
    fn ask(&self, inner: &Arc<BrokerInner>, f: impl FnOnce(&mut Wanted)) {
        let mut w = self.state.lock();
        f(&mut w);
        if w.running {
            return;
        }
        w.running = true;
        drop(w);
        let inner = inner.clone();
        tokio::spawn(async move {
            loop {
                let (all, topics) = {
                    let mut w = inner.registrations.state.lock();
                    if !w.all && w.topics.is_empty() {
                        w.running = false;
                        return;
                    }
                    (std::mem::take(&mut w.all), std::mem::take(&mut w.topics))
                };
                if all {
                    register_all(&inner).await;
                    continue;
                }
                let (ok, servers) = register(&inner, Some(&topics)).await;
                if ok < servers {
                    // Refused (not registered yet) or failed: the whole table, next.
                    inner.registrations.state.lock().all = true;
                }
            }
        });
    }
}

/// The registration's body, or its parts: RocketMQ 5 splits a registration into parts of
/// `splitRegistrationSize` topics when `enableSplitRegistration` is set, all with the same
/// data version (name servers add each part's topics). Ours also splits one that would not
/// fit in half a frame whatever the setting says: an oversize registration is refused by
/// every name server and the broker silently expires from all of them.
fn registration_bodies(
    wrapper: TopicConfigSerializeWrapper,
    split: bool,
    chunk: usize,
    frame_max: usize,
) -> Vec<bytes::Bytes> {
    let topics = wrapper.topic_config_table.len();
    let mut reg = RegisterBrokerBody {
        topic_config_serialize_wrapper: wrapper,
        filter_server_list: vec![],
    };
    let mut chunk = chunk.max(1);
    if topics <= chunk || !split {
        let body = bytes::Bytes::from(reg.encode());
        if body.len() <= frame_max / 2 || topics <= 1 {
            return vec![body];
        }
        // Parts of about a quarter frame each.
        let parts = body.len().div_ceil((frame_max / 4).max(1));
        chunk = chunk.min(topics.div_ceil(parts)).max(1);
        tracing::warn!(
            topics,
            bytes = body.len(),
            parts = topics.div_ceil(chunk),
            "registration too large for one frame: sent in parts"
        );
    }
    let wrapper = std::mem::take(&mut reg.topic_config_serialize_wrapper);
    let mut table: Vec<_> = wrapper.topic_config_table.into_iter().collect();
    table.sort_by(|a, b| a.0.cmp(&b.0));
    table
        .chunks(chunk)
        .map(|part| {
            reg.topic_config_serialize_wrapper = TopicConfigSerializeWrapper {
                topic_config_table: part.iter().cloned().collect(),
                data_version: wrapper.data_version.clone(),
                ..Default::default()
            };
            bytes::Bytes::from(reg.encode())
        })
        .collect()
}

/// A name server refused this master's registration because another broker holds id 0 with
/// a newer epoch: this master's term is over (it was cut off while a slave was promoted).
/// It stops taking writes at once, so it cannot diverge further; the new master's notice,
/// when it gets through, or the operator makes it a slave (which makes it writable again).
fn fenced_by_name_server(
    inner: &Arc<BrokerInner>,
    namesrv: &str,
    resp: &rmq_remoting::RemotingCommand,
) {
    let Some(newer) = resp
        .ext_fields
        .get("holderStateVersion")
        .and_then(|v| v.parse::<i64>().ok())
    else {
        return;
    };
    let holder = resp
        .ext_fields
        .get("holderAddr")
        .cloned()
        .unwrap_or_default();
    let mine = inner.role.snapshot().epoch;
    let newer = rmq_remoting::role::Epoch(newer.clamp(i32::MIN.into(), i32::MAX.into()) as i32);
    if !inner.role.fence(newer) {
        return;
    }
    tracing::error!(
        %namesrv, %holder, epoch = %newer, %mine,
        "fenced: another broker leads this group from a newer epoch; no more writes here"
    );
}

/// Every address the configured name servers resolve to, re-resolved on each call: a DNS name
/// with several records (a headless Service in Kubernetes) means one name server per record,
/// so scaling the name servers needs no broker restart.
pub async fn expand(servers: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in servers {
        match tokio::net::lookup_host(s.as_str()).await {
            Ok(addrs) => {
                let before = out.len();
                for a in addrs {
                    let a = a.to_string();
                    if !out.contains(&a) {
                        out.push(a);
                    }
                }
                if out.len() == before {
                    out.push(s.clone());
                }
            }
            Err(e) => {
                tracing::warn!(namesrv = %s, error = %e, "cannot resolve name server address");
                out.push(s.clone());
            }
        }
    }
    out
}

pub async fn register_loop(inner: Arc<BrokerInner>, stop: CancellationToken) {
    loop {
        register_all(&inner).await;
        let period = inner
            .settings
            .broker(|b| b.register_name_server_period)
            .clamp(10_000, 60_000);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(period)) => {}
        }
    }
}

/// Registers every topic soon, in the background, after whatever registration runs (after a
/// topic was deleted).
pub fn register_soon(inner: &Arc<BrokerInner>) {
    inner.registrations.ask(inner, |w| w.all = true);
}

/// Registers every topic now, in the background, without waiting for a registration in
/// flight (after a role or permission change: a promoted broker must not wait behind a
/// registration stuck on an unreachable name server).
pub fn register_now(inner: &Arc<BrokerInner>) {
    let inner = inner.clone();
    tokio::spawn(async move {
        register_all(&inner).await;
    });
}

/// Registers these topics soon, in the background (after they were created or changed).
pub fn register_topics_soon(inner: &Arc<BrokerInner>, topics: impl IntoIterator<Item = String>) {
    inner.registrations.ask(inner, |w| w.topics.extend(topics));
}

pub async fn unregister_all(inner: &Arc<BrokerInner>) {
    let broker_id = inner.role.snapshot().broker_id;
    let (servers, header) = inner.settings.broker(|b| {
        (
            b.name_servers(),
            UnregisterBrokerRequestHeader {
                broker_name: b.broker_name.clone(),
                broker_addr: inner.broker_addr.clone(),
                cluster_name: b.broker_cluster_name.clone(),
                broker_id,
            },
        )
    });
    for addr in expand(&servers).await {
        let req = RemotingCommand::request_with_header(RequestCode::UNREGISTER_BROKER, &header);
        if let Err(e) = inner
            .namesrv
            .invoke(&addr, req, Duration::from_secs(3))
            .await
        {
            tracing::warn!(namesrv = %addr, error = %e, "unregister broker failed");
        }
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn names_expand_to_every_address() {
        let out =
            super::expand(&["127.0.0.1:9876".to_string(), "localhost:9877".to_string()]).await;
        assert_eq!(out[0], "127.0.0.1:9876");
        assert!(out.contains(&"127.0.0.1:9877".to_string()), "{out:?}");
        // An unresolvable name is kept (and its failures logged), not dropped silently.
        let out = super::expand(&["no-such-host.invalid:9876".to_string()]).await;
        assert_eq!(out, vec!["no-such-host.invalid:9876".to_string()]);
    }
}

#[cfg(test)]
mod split_tests {
    use super::*;
    use rmq_remoting::protocol::topic::TopicConfig;

    fn wrapper(n: usize) -> TopicConfigSerializeWrapper {
        let mut w = TopicConfigSerializeWrapper::default();
        for i in 0..n {
            let t = format!("Topic{i:05}");
            w.topic_config_table
                .insert(t.clone(), TopicConfig::new(t, 8, 6));
        }
        w.data_version.counter = 42;
        w
    }

    fn parts(bodies: &[bytes::Bytes]) -> Vec<TopicConfigSerializeWrapper> {
        bodies
            .iter()
            .map(|b| {
                RegisterBrokerBody::decode(b)
                    .unwrap()
                    .topic_config_serialize_wrapper
            })
            .collect()
    }

    #[test]
    fn registrations_split_when_asked_or_when_too_large_for_a_frame() {
        // Small: one body, whatever the setting.
        assert_eq!(
            registration_bodies(wrapper(10), true, 800, 1 << 24).len(),
            1
        );
        // Asked: parts of splitRegistrationSize topics, one data version.
        let p = parts(&registration_bodies(wrapper(2000), true, 800, 1 << 24));
        assert_eq!(
            p.iter()
                .map(|w| w.topic_config_table.len())
                .collect::<Vec<_>>(),
            [800, 800, 400]
        );
        assert!(p.iter().all(|w| w.data_version.counter == 42));
        // Not asked, but over half a frame: parts of about a quarter frame each.
        let frame = 64 << 10;
        let bodies = registration_bodies(wrapper(2000), false, 800, frame);
        assert!(bodies.len() > 1 && bodies.iter().all(|b| b.len() <= frame / 2));
        let all: std::collections::HashSet<String> = parts(&bodies)
            .into_iter()
            .flat_map(|w| w.topic_config_table.into_keys())
            .collect();
        assert_eq!(all.len(), 2000);
    }
}
