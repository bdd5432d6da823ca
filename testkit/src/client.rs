//! `rocketmq-client-rust` (crates.io) set up as its users would, for tests that prove the
//! servers against a client nobody here wrote. A glob import brings the cluster fixtures too.

use std::sync::{Arc, LazyLock};

use rocketmq_client_rust::{ClientConfig, ClientRuntime, ClientRuntimeConfig, TelemetryHandle};
use rocketmq_model::common::message::message_single::Message;
use rocketmq_runtime::{RuntimeConfig, RuntimeOwner};

pub use crate::{free_port, start_cluster, wait_until, Cluster};

/// The runtime every client of a test binary shares.
pub static OWNER: LazyLock<RuntimeOwner> = LazyLock::new(|| {
    let mut config = RuntimeConfig {
        thread_name: "broker-it".to_string(),
        ..Default::default()
    };
    // The client runs each consume request on this lane; its default depth (8 × cores) makes
    // it treat a burst of pulled messages as consume failures on a 2-core machine.
    config.blocking_lane_policies.metadata_io.max_queue_depth = 4096;
    RuntimeOwner::plan(config)
        .expect("runtime plan")
        .build()
        .expect("runtime owner")
});

pub fn client_runtime(scope: &'static str) -> Arc<ClientRuntime> {
    ClientRuntime::try_new(
        OWNER.root_context().component(scope),
        ClientRuntimeConfig::default(),
        TelemetryHandle::noop(),
    )
    .expect("client runtime")
}

/// A client config naming one name server (no VIP channel: tests bind one port per broker).
pub fn config(ns: &str) -> ClientConfig {
    ClientConfig {
        namesrv_addr: Some(ns.to_string().into()),
        vip_channel_enabled: false,
        ..Default::default()
    }
}

/// A message with a tag and the key `key-<body>`.
pub fn message(topic: &str, tag: &str, body: String) -> Message {
    Message::builder()
        .topic(topic.to_string())
        .tags(tag.to_string())
        .keys(vec![format!("key-{body}")])
        .body_slice(body.as_bytes())
        .build_unchecked()
}

/// The client's own ACL hook (`AclClientRPCHook`) signing with `ak`/`sk`, as its users set it.
pub fn acl_hook(ak: &str, sk: &str) -> Arc<dyn rocketmq_transport::api::RPCHook> {
    Arc::new(rocketmq_client_rust::AclClientRPCHook::new(
        rocketmq_client_rust::SessionCredentials::with_keys(ak.to_string(), sk.to_string()),
    ))
}

/// A concurrent listener that keeps the body of every message it gets, once each.
#[derive(Clone, Default)]
pub struct Bodies(pub Arc<std::sync::Mutex<std::collections::HashSet<String>>>);

impl rocketmq_client_rust::MessageListenerConcurrently for Bodies {
    fn consume_message(
        &self,
        msgs: &[&rocketmq_model::common::message::message_ext::MessageExt],
        _ctx: &rocketmq_client_rust::ConsumeConcurrentlyContext,
    ) -> rocketmq_client_rust::ClientResult<rocketmq_client_rust::ConsumeConcurrentlyStatus> {
        let mut got = self.0.lock().unwrap();
        for m in msgs {
            if let Some(b) = m.body() {
                got.insert(String::from_utf8_lossy(&b).to_string());
            }
        }
        Ok(rocketmq_client_rust::ConsumeConcurrentlyStatus::ConsumeSuccess)
    }
}
