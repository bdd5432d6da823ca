//! Registration with the name servers: at start, every `registerNameServerPeriod` (clamped to
//! 10–60 s as RocketMQ does), right after a topic is created, and an unregistration at stop.

use std::sync::Arc;
use std::time::Duration;

use rmq_remoting::header::{RegisterBrokerRequestHeader, UnregisterBrokerRequestHeader};
use rmq_remoting::protocol::topic::RegisterBrokerBody;
use rmq_remoting::{JsonBody, RemotingCommand, RequestCode};
use tokio_util::sync::CancellationToken;

use crate::broker::BrokerInner;

/// Registers with every name server once; returns how many accepted.
pub async fn register_all(inner: &Arc<BrokerInner>) -> usize {
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
    // As RocketMQ 5 brokers do: the state version is the group's epoch, so a name server
    // keeps routing to the newer master and refuses a former one still registering.
    wrapper.data_version.state_version = i64::from(role.epoch.0);
    // Apply the broker-wide permission (wipeWritePerm / read-only brokers) to what is announced.
    // A fenced store (a flush failed) takes no writes: producers are routed elsewhere.
    let mut announced = role.permission.bits() | rmq_remoting::protocol::topic::perm::INHERIT;
    if inner.store.fenced().is_some() {
        announced &= !rmq_remoting::protocol::topic::perm::WRITE;
    }
    for tc in wrapper.topic_config_table.values_mut() {
        tc.perm &= announced;
    }
    let body = RegisterBrokerBody {
        topic_config_serialize_wrapper: wrapper,
        filter_server_list: vec![],
    }
    .encode();
    let crc = (crc32fast::hash(&body) & 0x7FFF_FFFF) as i32;
    let mut ok = 0;
    let servers = expand(&servers).await;
    let calls = servers.iter().map(|addr| {
        let mut h = header.clone();
        h.body_crc32 = Some(crc);
        let req = RemotingCommand::request_with_header(RequestCode::REGISTER_BROKER, &h)
            .with_body(body.clone());
        let client = inner.namesrv.clone();
        async move { (addr.clone(), client.invoke(addr, req, timeout).await) }
    });
    for (addr, result) in futures::future::join_all(calls).await {
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
    ok
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
        let n = register_all(&inner).await;
        tracing::debug!(accepted = n, "registered with name servers");
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

/// Registers now, in the background (after topic changes).
pub fn register_soon(inner: &Arc<BrokerInner>) {
    let inner = inner.clone();
    tokio::spawn(async move {
        register_all(&inner).await;
    });
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
