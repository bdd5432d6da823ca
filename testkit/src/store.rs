//! The message store on its own: small configs, messages to put, reading back what was stored.

use std::collections::HashMap;
use std::net::SocketAddr;

use bytes::Bytes;
use rmq_broker::store::{MessageStore, MessageStoreConfig, PutMessage};
use rmq_remoting::message::MessageExt;

/// A store config with small files, under `dir`.
pub fn small_config(dir: &std::path::Path) -> MessageStoreConfig {
    MessageStoreConfig {
        store_path_root_dir: dir.display().to_string(),
        mapped_file_size_commit_log: 64 * 1024,
        mapped_file_size_consume_queue: 20 * 200,
        max_hash_slot_num: 64,
        max_index_num: 256,
        flush_interval_commit_log: 50,
        flush_interval_consume_queue: 50,
        // No hour is a delete hour: the cleaner deletes only when a test asks (`clean_now`),
        // never because the suite happens to run at 04:00 (`deleteWhen`'s default).
        delete_when: "none".into(),
        ..Default::default()
    }
}

pub fn msg(
    topic: &str,
    queue_id: i32,
    body: &[u8],
    tags: Option<&str>,
    keys: Option<&str>,
) -> PutMessage {
    let mut properties = HashMap::new();
    if let Some(t) = tags {
        properties.insert("TAGS".to_string(), t.to_string());
    }
    if let Some(k) = keys {
        properties.insert("KEYS".to_string(), k.to_string());
    }
    properties.insert(
        "UNIQ_KEY".to_string(),
        rmq_remoting::message::create_uniq_id(std::net::Ipv4Addr::LOCALHOST),
    );
    PutMessage {
        topic: topic.to_string(),
        queue_id,
        flag: 0,
        body: Bytes::copy_from_slice(body),
        properties: rmq_remoting::message::Properties::from_map(&properties),
        sys_flag: 0,
        born_timestamp: rmq_remoting::util::now_millis(),
        born_host: "127.0.0.1:40000".parse::<SocketAddr>().unwrap(),
        store_host: "127.0.0.1:10911".parse::<SocketAddr>().unwrap(),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        wait_store_msg_ok: true,
    }
}

pub fn decode(rec: &Bytes) -> MessageExt {
    let mut b = rec.clone();
    MessageExt::decode(&mut b).expect("stored record decodes")
}

/// Waits until everything appended is in the consume queues and index.
pub fn wait_dispatched(store: &MessageStore) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while store.dispatched_phy_offset() < store.max_phy_offset() {
        assert!(
            std::time::Instant::now() < deadline,
            "dispatch did not catch up"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Reads every message of a queue from its min offset.
pub fn read_all(store: &MessageStore, topic: &str, queue_id: i32) -> Vec<MessageExt> {
    wait_dispatched(store);
    let mut out = Vec::new();
    let mut offset = store.min_offset_in_queue(topic, queue_id);
    loop {
        let r = store.get_messages(topic, queue_id, offset, 32, 1 << 20, None);
        if r.messages.is_empty() {
            break;
        }
        out.extend(r.messages.iter().map(decode));
        offset = r.next_begin_offset;
    }
    out
}
