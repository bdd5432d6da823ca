//! Connected producers and consumers, by group, learnt from heartbeats; consumer membership
//! changes are reported so the broker can tell the group (NOTIFY_CONSUMER_IDS_CHANGED).

use std::collections::HashMap;

use parking_lot::RwLock;
use rmq_remoting::protocol::heartbeat::{
    ConsumeFromWhere, ConsumeType, MessageModel, SubscriptionData,
};
use rmq_remoting::{Connection, LanguageCode};

/// One client connection of a group.
#[derive(Debug, Clone)]
pub struct ClientChannel {
    pub conn: Connection,
    pub client_id: String,
    pub language: LanguageCode,
    pub version: i32,
    pub last_update_ms: i64,
}

/// What the broker knows of one consumer group.
#[derive(Debug, Clone)]
pub struct ConsumerGroupInfo {
    pub group: String,
    pub channels: HashMap<u64, ClientChannel>,
    pub subscriptions: HashMap<String, SubscriptionData>,
    pub consume_type: ConsumeType,
    pub message_model: MessageModel,
    pub consume_from_where: ConsumeFromWhere,
}

#[derive(Default)]
pub struct ClientManager {
    consumers: RwLock<HashMap<String, ConsumerGroupInfo>>,
    producers: RwLock<HashMap<String, HashMap<u64, ClientChannel>>>,
}

impl ClientManager {
    /// Records a consumer heartbeat; true when the group's membership changed.
    pub fn register_consumer(
        &self,
        group: &str,
        channel: ClientChannel,
        consume_type: ConsumeType,
        message_model: MessageModel,
        consume_from_where: ConsumeFromWhere,
        subscriptions: Vec<SubscriptionData>,
    ) -> bool {
        let mut consumers = self.consumers.write();
        let info = consumers
            .entry(group.to_string())
            .or_insert_with(|| ConsumerGroupInfo {
                group: group.to_string(),
                channels: HashMap::new(),
                subscriptions: HashMap::new(),
                consume_type,
                message_model,
                consume_from_where,
            });
        info.consume_type = consume_type;
        info.message_model = message_model;
        info.consume_from_where = consume_from_where;
        let id = channel.conn.id();
        let new_member = match info.channels.get_mut(&id) {
            Some(c) => {
                c.last_update_ms = channel.last_update_ms;
                c.client_id = channel.client_id;
                false
            }
            None => {
                tracing::info!(group, client = %channel.client_id, "new consumer connected");
                info.channels.insert(id, channel);
                true
            }
        };
        // A heartbeat without subscriptions (heartbeat v2 "withoutSub") keeps the old ones.
        if !subscriptions.is_empty() {
            let mut subs: HashMap<String, SubscriptionData> = HashMap::new();
            for s in subscriptions {
                match subs.get(&s.topic) {
                    Some(old) if old.sub_version > s.sub_version => {}
                    _ => {
                        subs.insert(s.topic.clone(), s);
                    }
                }
            }
            info.subscriptions = subs;
        }
        new_member
    }

    pub fn register_producer(&self, group: &str, channel: ClientChannel) {
        let mut producers = self.producers.write();
        let g = producers.entry(group.to_string()).or_default();
        g.insert(channel.conn.id(), channel);
    }

    /// Removes one client from a consumer group; true when membership changed.
    pub fn unregister_consumer(&self, group: &str, conn: &Connection) -> bool {
        let mut consumers = self.consumers.write();
        let Some(info) = consumers.get_mut(group) else {
            return false;
        };
        let removed = info.channels.remove(&conn.id()).is_some();
        if info.channels.is_empty() {
            consumers.remove(group);
        }
        removed
    }

    pub fn unregister_producer(&self, group: &str, conn: &Connection) {
        let mut producers = self.producers.write();
        if let Some(g) = producers.get_mut(group) {
            g.remove(&conn.id());
            if g.is_empty() {
                producers.remove(group);
            }
        }
    }

    /// A connection closed: removes it everywhere; returns the consumer groups that lost a
    /// member.
    pub fn connection_closed(&self, conn: &Connection) -> Vec<String> {
        let mut changed = Vec::new();
        {
            let mut consumers = self.consumers.write();
            for (group, info) in consumers.iter_mut() {
                if info.channels.remove(&conn.id()).is_some() {
                    changed.push(group.clone());
                }
            }
            consumers.retain(|_, i| !i.channels.is_empty());
        }
        let mut producers = self.producers.write();
        for g in producers.values_mut() {
            g.remove(&conn.id());
        }
        producers.retain(|_, g| !g.is_empty());
        changed
    }

    /// Connections silent for longer than `timeout_ms` (their heartbeats stopped).
    pub fn expired(&self, now_ms: i64, timeout_ms: i64) -> Vec<Connection> {
        let mut out = Vec::new();
        for info in self.consumers.read().values() {
            out.extend(
                info.channels
                    .values()
                    .filter(|c| c.last_update_ms.saturating_add(timeout_ms) < now_ms)
                    .map(|c| c.conn.clone()),
            );
        }
        for g in self.producers.read().values() {
            out.extend(
                g.values()
                    .filter(|c| c.last_update_ms.saturating_add(timeout_ms) < now_ms)
                    .map(|c| c.conn.clone()),
            );
        }
        out
    }

    pub fn consumer_group(&self, group: &str) -> Option<ConsumerGroupInfo> {
        self.consumers.read().get(group).cloned()
    }

    pub fn consumer_ids(&self, group: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .consumers
            .read()
            .get(group)
            .map(|i| i.channels.values().map(|c| c.client_id.clone()).collect())
            .unwrap_or_default();
        ids.sort();
        ids.dedup();
        ids
    }

    pub fn find_subscription(&self, group: &str, topic: &str) -> Option<SubscriptionData> {
        self.consumers
            .read()
            .get(group)?
            .subscriptions
            .get(topic)
            .cloned()
    }

    /// Connections of a consumer group (for notifications).
    pub fn consumer_connections(&self, group: &str) -> Vec<Connection> {
        self.consumers
            .read()
            .get(group)
            .map(|i| i.channels.values().map(|c| c.conn.clone()).collect())
            .unwrap_or_default()
    }

    pub fn producer_channels(&self, group: &str) -> Vec<ClientChannel> {
        self.producers
            .read()
            .get(group)
            .map(|g| g.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn consumer_groups(&self) -> Vec<String> {
        self.consumers.read().keys().cloned().collect()
    }

    /// Producer and consumer channels.
    pub fn connection_counts(&self) -> (usize, usize) {
        let c: usize = self
            .consumers
            .read()
            .values()
            .map(|i| i.channels.len())
            .sum();
        let p: usize = self.producers.read().values().map(|g| g.len()).sum();
        (p, c)
    }

    pub fn connection_count(&self) -> usize {
        let c: usize = self
            .consumers
            .read()
            .values()
            .map(|i| i.channels.len())
            .sum();
        let p: usize = self.producers.read().values().map(|g| g.len()).sum();
        c + p
    }
}
