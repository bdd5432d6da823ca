//! The route registry: clusters, brokers, topics' queues and broker liveness.
//!
//! A plain data structure behind one lock, as Java's `RouteInfoManager`. Time comes in as an
//! argument so expiry is testable without waiting.

use std::collections::{HashMap, HashSet};

use parking_lot::RwLock;
use rmq_remoting::protocol::route::{
    BrokerData, BrokerMemberGroup, ClusterInfo, QueueData, TopicRouteData, MASTER_ID,
};
use rmq_remoting::protocol::topic::{perm, TopicConfig, TopicConfigSerializeWrapper};
use rmq_remoting::protocol::{DataVersion, TopicList};
use rmq_remoting::Connection;

/// Topic sys flags (`TopicSysFlag`).
const FLAG_UNIT: i32 = 0x1;
const FLAG_UNIT_SUB: i32 = 0x2;

/// A broker address within its cluster: the key of the live table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BrokerAddrInfo {
    pub cluster: String,
    pub addr: String,
}

/// What the registry knows of a live broker.
#[derive(Debug, Clone)]
pub struct BrokerLiveInfo {
    pub last_update_ms: i64,
    pub timeout_ms: i64,
    pub data_version: DataVersion,
    pub conn: Option<Connection>,
    pub ha_server_addr: String,
}

/// One REGISTER_BROKER, decoded.
#[derive(Debug, Clone, Default)]
pub struct Registration {
    pub cluster: String,
    pub broker_addr: String,
    pub broker_name: String,
    pub broker_id: i64,
    pub ha_server_addr: String,
    pub zone_name: Option<String>,
    pub timeout_ms: Option<i64>,
    /// `None` for brokers older than the acting-master feature.
    pub enable_acting_master: Option<bool>,
    pub topics: TopicConfigSerializeWrapper,
    pub filter_servers: Option<Vec<String>>,
}

/// The answer to a registration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegisterResult {
    pub ha_server_addr: Option<String>,
    pub master_addr: Option<String>,
}

/// Why a registration was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RegisterError {
    #[error("broker {0} has not registered yet; a single-topic registration cannot come first")]
    NotRegistered(String),
    #[error("broker id {id} of {broker} is held by {holder} with a newer state version ({holder_version})")]
    StaleStateVersion {
        broker: String,
        id: i64,
        holder: String,
        /// The holder's state version (a master's epoch, as RocketMQ 5 brokers send it).
        holder_version: i64,
    },
}

/// A broker the registry dropped (expired or its connection closed).
#[derive(Debug, Clone)]
pub struct RemovedBroker {
    pub info: BrokerAddrInfo,
    pub broker_name: Option<String>,
    pub conn: Option<Connection>,
}

#[derive(Default)]
struct Tables {
    topic_queue: HashMap<String, HashMap<String, QueueData>>,
    broker_addr: HashMap<String, BrokerData>,
    cluster_addr: HashMap<String, HashSet<String>>,
    broker_live: HashMap<BrokerAddrInfo, BrokerLiveInfo>,
    filter_server: HashMap<BrokerAddrInfo, Vec<String>>,
    /// Static-topic mapping per topic and broker name, passed through to routes.
    topic_queue_mapping: HashMap<String, HashMap<String, serde_json::Value>>,
}

/// The registry.
#[derive(Default)]
pub struct RouteInfoManager {
    tables: RwLock<Tables>,
}

impl RouteInfoManager {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or re-registers: the 30-second heartbeat) a broker.
    pub fn register_broker(
        &self,
        reg: Registration,
        conn: Option<Connection>,
        now_ms: i64,
        default_timeout_ms: i64,
        delete_topic_with_broker_registration: bool,
    ) -> Result<RegisterResult, RegisterError> {
        let mut t = self.tables.write();
        let t = &mut *t;
        t.cluster_addr
            .entry(reg.cluster.clone())
            .or_default()
            .insert(reg.broker_name.clone());

        let mut register_first = false;
        let broker_data = t
            .broker_addr
            .entry(reg.broker_name.clone())
            .or_insert_with(|| {
                register_first = true;
                BrokerData {
                    cluster: reg.cluster.clone(),
                    broker_name: reg.broker_name.clone(),
                    ..Default::default()
                }
            });
        let old_version_broker = reg.enable_acting_master.is_none();
        broker_data.enable_acting_master = reg.enable_acting_master.unwrap_or(false);
        broker_data.zone_name = reg.zone_name.clone();

        // A slave switching to master: one address holds one broker id only.
        broker_data
            .broker_addrs
            .retain(|id, addr| !(*addr == reg.broker_addr && *id != reg.broker_id));

        // Another address holds this id: refuse a registration older than its state.
        if let Some(old_addr) = broker_data.broker_addrs.get(&reg.broker_id) {
            if *old_addr != reg.broker_addr {
                let old_info = BrokerAddrInfo {
                    cluster: reg.cluster.clone(),
                    addr: old_addr.clone(),
                };
                if let Some(old) = t.broker_live.get(&old_info) {
                    if old.data_version.state_version > reg.topics.data_version.state_version {
                        let holder = old_addr.clone();
                        let holder_version = old.data_version.state_version;
                        t.broker_live.remove(&BrokerAddrInfo {
                            cluster: reg.cluster.clone(),
                            addr: reg.broker_addr.clone(),
                        });
                        return Err(RegisterError::StaleStateVersion {
                            broker: reg.broker_name.clone(),
                            id: reg.broker_id,
                            holder,
                            holder_version,
                        });
                    }
                }
            }
        }

        if !broker_data.broker_addrs.contains_key(&reg.broker_id)
            && reg.topics.topic_config_table.len() == 1
        {
            return Err(RegisterError::NotRegistered(reg.broker_name.clone()));
        }

        let old_addr = broker_data
            .broker_addrs
            .insert(reg.broker_id, reg.broker_addr.clone());
        register_first = register_first || old_addr.map(|a| a.is_empty()).unwrap_or(true);

        let is_master = reg.broker_id == MASTER_ID;
        let min_id = broker_data
            .broker_addrs
            .keys()
            .next()
            .copied()
            .unwrap_or(MASTER_ID);
        let is_prime_slave = !old_version_broker && !is_master && reg.broker_id == min_id;
        let acting = broker_data.enable_acting_master;
        let broker_data_snapshot = broker_data.clone();

        let addr_info = BrokerAddrInfo {
            cluster: reg.cluster.clone(),
            addr: reg.broker_addr.clone(),
        };
        let version_changed = t
            .broker_live
            .get(&addr_info)
            .map(|l| l.data_version != reg.topics.data_version)
            .unwrap_or(true);

        if is_master || is_prime_slave {
            let table = &reg.topics.topic_config_table;
            if delete_topic_with_broker_registration
                && reg.topics.topic_queue_mapping_info_map.is_empty()
            {
                let stale: Vec<String> = t
                    .topic_queue
                    .iter()
                    .filter(|(topic, qds)| {
                        qds.contains_key(&reg.broker_name) && !table.contains_key(*topic)
                    })
                    .map(|(topic, _)| topic.clone())
                    .collect();
                for topic in stale {
                    remove_queue_data(&mut t.topic_queue, &topic, &reg.broker_name);
                }
            }
            for tc in table.values() {
                let missing = t
                    .topic_queue
                    .get(&tc.topic_name)
                    .map(|q| !q.contains_key(&reg.broker_name))
                    .unwrap_or(true);
                if register_first || version_changed || missing {
                    let mut tc = tc.clone();
                    if is_prime_slave && acting {
                        tc.perm &= !perm::WRITE;
                    }
                    create_or_update_queue_data(&mut t.topic_queue, &reg.broker_name, &tc);
                }
            }
            if version_changed || register_first {
                for (topic, info) in &reg.topics.topic_queue_mapping_info_map {
                    let bname = info
                        .get("bname")
                        .and_then(|v| v.as_str())
                        .unwrap_or(&reg.broker_name)
                        .to_string();
                    t.topic_queue_mapping
                        .entry(topic.clone())
                        .or_default()
                        .insert(bname, info.clone());
                }
            }
        }

        let prev = t.broker_live.insert(
            addr_info.clone(),
            BrokerLiveInfo {
                last_update_ms: now_ms,
                timeout_ms: reg
                    .timeout_ms
                    .filter(|t| *t > 0)
                    .unwrap_or(default_timeout_ms),
                data_version: reg.topics.data_version.clone(),
                conn,
                ha_server_addr: reg.ha_server_addr.clone(),
            },
        );
        if prev.is_none() {
            tracing::info!(
                cluster = %reg.cluster, broker = %reg.broker_name, id = reg.broker_id,
                addr = %reg.broker_addr, ha = %reg.ha_server_addr, "new broker registered"
            );
        }
        if let Some(list) = reg.filter_servers {
            if list.is_empty() {
                t.filter_server.remove(&addr_info);
            } else {
                t.filter_server.insert(addr_info, list);
            }
        }

        let mut result = RegisterResult::default();
        if !is_master {
            if let Some(master_addr) = broker_data_snapshot.master_addr() {
                let master = BrokerAddrInfo {
                    cluster: reg.cluster.clone(),
                    addr: master_addr.to_string(),
                };
                if let Some(live) = t.broker_live.get(&master) {
                    result.ha_server_addr = Some(live.ha_server_addr.clone());
                    result.master_addr = Some(master_addr.to_string());
                }
            }
        }
        Ok(result)
    }

    /// Removes one broker address, as UNREGISTER_BROKER, expiry and connection close do.
    pub fn unregister_broker(
        &self,
        cluster: &str,
        broker_addr: &str,
        broker_name: &str,
        broker_id: i64,
    ) {
        let mut t = self.tables.write();
        unregister_locked(&mut t, cluster, broker_addr, broker_name, broker_id);
    }

    /// Refreshes a broker's heartbeat time (QUERY_DATA_VERSION and BROKER_HEARTBEAT count).
    pub fn touch(&self, cluster: &str, broker_addr: &str, now_ms: i64, timeout_ms: Option<i64>) {
        let mut t = self.tables.write();
        let key = BrokerAddrInfo {
            cluster: cluster.to_string(),
            addr: broker_addr.to_string(),
        };
        if let Some(live) = t.broker_live.get_mut(&key) {
            live.last_update_ms = now_ms;
            if let Some(timeout) = timeout_ms.filter(|t| *t > 0) {
                live.timeout_ms = timeout;
            }
        }
    }

    /// Whether `version` differs from what `broker_addr` last registered.
    pub fn is_broker_topic_config_changed(
        &self,
        cluster: &str,
        broker_addr: &str,
        version: &DataVersion,
    ) -> bool {
        self.data_version(cluster, broker_addr).as_ref() != Some(version)
    }

    pub fn data_version(&self, cluster: &str, broker_addr: &str) -> Option<DataVersion> {
        let key = BrokerAddrInfo {
            cluster: cluster.to_string(),
            addr: broker_addr.to_string(),
        };
        self.tables
            .read()
            .broker_live
            .get(&key)
            .map(|l| l.data_version.clone())
    }

    /// Drops brokers whose last heartbeat is older than their timeout.
    pub fn scan_not_active_brokers(&self, now_ms: i64) -> Vec<RemovedBroker> {
        let mut t = self.tables.write();
        let expired: Vec<(BrokerAddrInfo, Option<Connection>)> = t
            .broker_live
            .iter()
            .filter(|(_, l)| l.last_update_ms + l.timeout_ms < now_ms)
            .map(|(k, l)| (k.clone(), l.conn.clone()))
            .collect();
        let mut removed = Vec::new();
        for (info, conn) in expired {
            tracing::warn!(cluster = %info.cluster, addr = %info.addr, "broker expired: no heartbeat within its timeout");
            let broker_name = remove_by_addr(&mut t, &info);
            removed.push(RemovedBroker {
                info,
                broker_name,
                conn,
            });
        }
        removed
    }

    /// Drops every broker registered through `conn` (its channel closed).
    pub fn connection_closed(&self, conn: &Connection) -> Vec<RemovedBroker> {
        let mut t = self.tables.write();
        let gone: Vec<BrokerAddrInfo> = t
            .broker_live
            .iter()
            .filter(|(_, l)| l.conn.as_ref() == Some(conn))
            .map(|(k, _)| k.clone())
            .collect();
        let mut removed = Vec::new();
        for info in gone {
            tracing::info!(cluster = %info.cluster, addr = %info.addr, "broker connection closed, removing it");
            let broker_name = remove_by_addr(&mut t, &info);
            removed.push(RemovedBroker {
                info,
                broker_name,
                conn: None,
            });
        }
        removed
    }

    /// The route of `topic`, or `None` when no live broker serves it.
    pub fn topic_route(&self, topic: &str) -> Option<TopicRouteData> {
        let t = self.tables.read();
        let queues = t.topic_queue.get(topic)?;
        let mut route = TopicRouteData::default();
        let mut names: Vec<&String> = queues.keys().collect();
        names.sort();
        for name in names {
            route.queue_datas.push(queues[name].clone());
            if let Some(bd) = t.broker_addr.get(name) {
                for addr in bd.broker_addrs.values() {
                    let key = BrokerAddrInfo {
                        cluster: bd.cluster.clone(),
                        addr: addr.clone(),
                    };
                    if let Some(list) = t.filter_server.get(&key) {
                        route.filter_server_table.insert(addr.clone(), list.clone());
                    }
                }
                route.broker_datas.push(bd.clone());
            }
        }
        if route.broker_datas.is_empty() || route.queue_datas.is_empty() {
            return None;
        }
        if let Some(mapping) = t.topic_queue_mapping.get(topic) {
            route.topic_queue_mapping_by_broker = serde_json::to_value(mapping).ok();
        }
        Some(route)
    }

    pub fn cluster_info(&self) -> ClusterInfo {
        let t = self.tables.read();
        ClusterInfo {
            broker_addr_table: t.broker_addr.clone(),
            cluster_addr_table: t.cluster_addr.clone(),
        }
    }

    pub fn all_topics(&self) -> TopicList {
        let t = self.tables.read();
        let mut topics: Vec<String> = t.topic_queue.keys().cloned().collect();
        topics.sort();
        TopicList {
            topic_list: topics,
            broker_addr: None,
        }
    }

    pub fn topics_by_cluster(&self, cluster: &str) -> TopicList {
        let t = self.tables.read();
        let mut topics = Vec::new();
        if let Some(names) = t.cluster_addr.get(cluster) {
            for (topic, qds) in &t.topic_queue {
                if qds.keys().any(|b| names.contains(b)) {
                    topics.push(topic.clone());
                }
            }
        }
        topics.sort();
        TopicList {
            topic_list: topics,
            broker_addr: None,
        }
    }

    /// Cluster and broker names (the topics every broker creates for itself), plus one
    /// broker address.
    pub fn system_topics(&self) -> TopicList {
        let t = self.tables.read();
        let mut topics: Vec<String> = Vec::new();
        for (cluster, names) in &t.cluster_addr {
            topics.push(cluster.clone());
            topics.extend(names.iter().cloned());
        }
        topics.sort();
        topics.dedup();
        let broker_addr = t
            .broker_addr
            .values()
            .find_map(|bd| bd.broker_addrs.values().next().cloned());
        TopicList {
            topic_list: topics,
            broker_addr,
        }
    }

    /// Topics with the given sys-flag predicate over their queue data (unit topics).
    pub fn topics_with_flag(&self, pred: fn(i32) -> bool) -> TopicList {
        let t = self.tables.read();
        let mut topics: Vec<String> = t
            .topic_queue
            .iter()
            .filter(|(_, qds)| qds.values().any(|q| pred(q.topic_sys_flag)))
            .map(|(k, _)| k.clone())
            .collect();
        topics.sort();
        TopicList {
            topic_list: topics,
            broker_addr: None,
        }
    }

    pub fn unit_topics(&self) -> TopicList {
        self.topics_with_flag(|f| f & FLAG_UNIT != 0)
    }

    pub fn unit_sub_topics(&self) -> TopicList {
        self.topics_with_flag(|f| f & FLAG_UNIT_SUB != 0)
    }

    pub fn unit_sub_non_unit_topics(&self) -> TopicList {
        self.topics_with_flag(|f| f & FLAG_UNIT_SUB != 0 && f & FLAG_UNIT == 0)
    }

    /// Deletes a topic's route, or only its queues on `cluster`'s brokers.
    pub fn delete_topic(&self, topic: &str, cluster: Option<&str>) {
        let mut t = self.tables.write();
        match cluster.filter(|c| !c.is_empty()) {
            None => {
                t.topic_queue.remove(topic);
            }
            Some(cluster) => {
                let names: Vec<String> = t
                    .cluster_addr
                    .get(cluster)
                    .map(|s| s.iter().cloned().collect())
                    .unwrap_or_default();
                for name in names {
                    remove_queue_data(&mut t.topic_queue, topic, &name);
                }
            }
        }
        t.topic_queue_mapping.remove(topic);
    }

    /// REGISTER_TOPIC_IN_NAMESRV: adds queue data of known brokers. Refuses (returns false)
    /// when a queue names a broker the registry does not know.
    pub fn register_topic(&self, topic: &str, queue_datas: &[QueueData]) -> bool {
        if queue_datas.is_empty() {
            return true;
        }
        let mut t = self.tables.write();
        if let Some(unknown) = queue_datas
            .iter()
            .find(|q| !t.broker_addr.contains_key(&q.broker_name))
        {
            tracing::warn!(topic, broker = %unknown.broker_name, "register topic names an unknown broker");
            return false;
        }
        let entry = t.topic_queue.entry(topic.to_string()).or_default();
        for q in queue_datas {
            entry.insert(q.broker_name.clone(), q.clone());
        }
        true
    }

    /// Clears the write permission of every topic on `broker_name`; returns how many.
    pub fn wipe_write_perm(&self, broker_name: &str) -> i32 {
        self.change_write_perm(broker_name, false)
    }

    /// Sets the write permission of every topic on `broker_name`; returns how many.
    pub fn add_write_perm(&self, broker_name: &str) -> i32 {
        self.change_write_perm(broker_name, true)
    }

    fn change_write_perm(&self, broker_name: &str, add: bool) -> i32 {
        let mut t = self.tables.write();
        let mut count = 0;
        for qds in t.topic_queue.values_mut() {
            if let Some(q) = qds.get_mut(broker_name) {
                q.perm = if add {
                    q.perm | perm::WRITE
                } else {
                    q.perm & !perm::WRITE
                };
                count += 1;
            }
        }
        count
    }

    pub fn broker_member_group(&self, cluster: &str, broker_name: &str) -> BrokerMemberGroup {
        let t = self.tables.read();
        BrokerMemberGroup {
            cluster: cluster.to_string(),
            broker_name: broker_name.to_string(),
            broker_addrs: t
                .broker_addr
                .get(broker_name)
                .map(|b| b.broker_addrs.clone())
                .unwrap_or_default(),
        }
    }

    /// Number of live broker addresses (for logs and tests).
    pub fn live_broker_count(&self) -> usize {
        self.tables.read().broker_live.len()
    }
}

fn create_or_update_queue_data(
    topic_queue: &mut HashMap<String, HashMap<String, QueueData>>,
    broker_name: &str,
    tc: &TopicConfig,
) {
    let qd = QueueData {
        broker_name: broker_name.to_string(),
        read_queue_nums: tc.read_queue_nums,
        write_queue_nums: tc.write_queue_nums,
        perm: tc.perm,
        topic_sys_flag: tc.topic_sys_flag,
    };
    let queues = topic_queue.entry(tc.topic_name.clone()).or_default();
    match queues.insert(broker_name.to_string(), qd.clone()) {
        None => tracing::info!(topic = %tc.topic_name, broker = broker_name, "new topic route"),
        Some(old) if old != qd => {
            tracing::info!(topic = %tc.topic_name, broker = broker_name, ?old, new = ?qd, "topic route changed")
        }
        _ => {}
    }
}

fn remove_queue_data(
    topic_queue: &mut HashMap<String, HashMap<String, QueueData>>,
    topic: &str,
    broker_name: &str,
) {
    if let Some(qds) = topic_queue.get_mut(topic) {
        qds.remove(broker_name);
        if qds.is_empty() {
            topic_queue.remove(topic);
        }
    }
}

/// Finds the broker name and id of an address and unregisters it.
fn remove_by_addr(t: &mut Tables, info: &BrokerAddrInfo) -> Option<String> {
    let found = t.broker_addr.values().find_map(|bd| {
        bd.broker_addrs
            .iter()
            .find(|(_, a)| **a == info.addr)
            .map(|(id, _)| (bd.broker_name.clone(), *id))
    });
    match found {
        Some((name, id)) => {
            unregister_locked(t, &info.cluster, &info.addr, &name, id);
            Some(name)
        }
        None => {
            t.broker_live.remove(info);
            t.filter_server.remove(info);
            None
        }
    }
}

fn unregister_locked(
    t: &mut Tables,
    cluster: &str,
    broker_addr: &str,
    broker_name: &str,
    broker_id: i64,
) {
    let key = BrokerAddrInfo {
        cluster: cluster.to_string(),
        addr: broker_addr.to_string(),
    };
    let was_live = t.broker_live.remove(&key).is_some();
    t.filter_server.remove(&key);
    let mut remove_name = false;
    let mut reduced = false;
    if let Some(bd) = t.broker_addr.get_mut(broker_name) {
        let before = bd.broker_addrs.len();
        bd.broker_addrs.retain(|_, a| a != broker_addr);
        if bd.broker_addrs.is_empty() {
            remove_name = true;
        } else if bd.broker_addrs.len() != before {
            reduced = true;
        }
    }
    tracing::info!(
        cluster,
        broker = broker_name,
        id = broker_id,
        addr = broker_addr,
        was_live,
        "broker unregistered"
    );
    if remove_name {
        t.broker_addr.remove(broker_name);
        if let Some(names) = t.cluster_addr.get_mut(cluster) {
            names.remove(broker_name);
            if names.is_empty() {
                t.cluster_addr.remove(cluster);
            }
        }
        let topics: Vec<String> = t.topic_queue.keys().cloned().collect();
        for topic in topics {
            remove_queue_data(&mut t.topic_queue, &topic, broker_name);
        }
    } else if reduced {
        // With acting master, a broker name that lost its master is read-only until one returns.
        if let Some(bd) = t.broker_addr.get(broker_name) {
            if bd.enable_acting_master && !bd.broker_addrs.contains_key(&MASTER_ID) {
                for qds in t.topic_queue.values_mut() {
                    if let Some(q) = qds.get_mut(broker_name) {
                        q.perm &= !perm::WRITE;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(name: &str, id: i64, addr: &str, topics: &[(&str, i32)], version: i64) -> Registration {
        Registration {
            cluster: "DefaultCluster".into(),
            broker_addr: addr.into(),
            broker_name: name.into(),
            broker_id: id,
            ha_server_addr: format!("{addr}-ha"),
            enable_acting_master: Some(false),
            topics: TopicConfigSerializeWrapper {
                topic_config_table: topics
                    .iter()
                    .map(|(t, q)| (t.to_string(), TopicConfig::new(*t, *q, 6)))
                    .collect(),
                data_version: DataVersion {
                    state_version: 0,
                    timestamp: version,
                    counter: version,
                },
                ..Default::default()
            },
            ..Default::default()
        }
    }

    const T: i64 = 120_000;

    #[test]
    fn master_and_slave_merge_into_one_route() {
        let m = RouteInfoManager::new();
        m.register_broker(
            reg("b", 0, "m:1", &[("T", 4), ("U", 2)], 1),
            None,
            0,
            T,
            false,
        )
        .unwrap();
        let r = m
            .register_broker(
                reg("b", 1, "s:1", &[("T", 4), ("U", 2)], 1),
                None,
                0,
                T,
                false,
            )
            .unwrap();
        assert_eq!(r.master_addr.as_deref(), Some("m:1"));
        assert_eq!(r.ha_server_addr.as_deref(), Some("m:1-ha"));
        let route = m.topic_route("T").unwrap();
        assert_eq!(route.broker_datas.len(), 1);
        assert_eq!(route.broker_datas[0].broker_addrs.len(), 2);
        assert_eq!(route.queue_datas[0].write_queue_nums, 4);
        assert!(m.topic_route("nope").is_none());
    }

    #[test]
    fn expiry_removes_broker_and_its_topics() {
        let m = RouteInfoManager::new();
        m.register_broker(
            reg("a", 0, "a:1", &[("T", 4), ("a", 1)], 1),
            None,
            0,
            T,
            false,
        )
        .unwrap();
        m.register_broker(
            reg("b", 0, "b:1", &[("T", 4), ("b", 1)], 1),
            None,
            100_000,
            T,
            false,
        )
        .unwrap();
        assert!(m.scan_not_active_brokers(T).is_empty());
        let gone = m.scan_not_active_brokers(T + 1);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].broker_name.as_deref(), Some("a"));
        let route = m.topic_route("T").unwrap();
        assert_eq!(route.queue_datas.len(), 1);
        assert_eq!(route.queue_datas[0].broker_name, "b");
        m.scan_not_active_brokers(100_000 + T + 1);
        assert!(m.topic_route("T").is_none());
        assert!(m.cluster_info().broker_addr_table.is_empty());
        assert!(m.cluster_info().cluster_addr_table.is_empty());
    }

    #[test]
    fn slave_promoted_to_master_takes_id_zero() {
        let m = RouteInfoManager::new();
        m.register_broker(
            reg("b", 1, "s:1", &[("T", 4), ("b", 1)], 1),
            None,
            0,
            T,
            false,
        )
        .unwrap();
        m.register_broker(
            reg("b", 0, "s:1", &[("T", 4), ("b", 1)], 2),
            None,
            0,
            T,
            false,
        )
        .unwrap();
        let bd = &m.topic_route("T").unwrap().broker_datas[0];
        assert_eq!(bd.broker_addrs.len(), 1);
        assert_eq!(bd.master_addr(), Some("s:1"));
    }

    #[test]
    fn single_topic_registration_before_full_one_is_refused() {
        let m = RouteInfoManager::new();
        let err = m
            .register_broker(reg("b", 0, "m:1", &[("T", 4)], 1), None, 0, T, false)
            .unwrap_err();
        assert!(matches!(err, RegisterError::NotRegistered(_)));
    }

    #[test]
    fn stale_state_version_is_refused() {
        let m = RouteInfoManager::new();
        let mut newer = reg("b", 0, "m:1", &[("T", 4), ("U", 1)], 1);
        newer.topics.data_version.state_version = 5;
        m.register_broker(newer, None, 0, T, false).unwrap();
        let err = m
            .register_broker(
                reg("b", 0, "old:1", &[("T", 4), ("U", 1)], 1),
                None,
                0,
                T,
                false,
            )
            .unwrap_err();
        assert!(matches!(
            &err,
            RegisterError::StaleStateVersion { holder, holder_version: 5, .. } if holder == "m:1"
        ));
        assert_eq!(
            m.topic_route("T").unwrap().broker_datas[0].master_addr(),
            Some("m:1")
        );
    }

    #[test]
    fn queue_data_changes_only_with_a_new_data_version() {
        let m = RouteInfoManager::new();
        m.register_broker(
            reg("b", 0, "m:1", &[("T", 4), ("U", 1)], 1),
            None,
            0,
            T,
            false,
        )
        .unwrap();
        m.wipe_write_perm("b");
        // Same version: the wiped permission stays (as Java's namesrv).
        m.register_broker(
            reg("b", 0, "m:1", &[("T", 4), ("U", 1)], 1),
            None,
            1,
            T,
            false,
        )
        .unwrap();
        assert_eq!(m.topic_route("T").unwrap().queue_datas[0].perm, 4);
        m.register_broker(
            reg("b", 0, "m:1", &[("T", 8), ("U", 1)], 2),
            None,
            2,
            T,
            false,
        )
        .unwrap();
        let q = &m.topic_route("T").unwrap().queue_datas[0];
        assert_eq!((q.perm, q.write_queue_nums), (6, 8));
    }

    #[test]
    fn delete_topic_with_broker_registration() {
        let m = RouteInfoManager::new();
        m.register_broker(
            reg("b", 0, "m:1", &[("T", 4), ("U", 1)], 1),
            None,
            0,
            T,
            true,
        )
        .unwrap();
        m.register_broker(
            reg("b", 0, "m:1", &[("T", 4), ("V", 1)], 2),
            None,
            0,
            T,
            true,
        )
        .unwrap();
        assert!(m.topic_route("U").is_none());
        assert!(m.topic_route("V").is_some());
    }

    #[test]
    fn unregister_slave_keeps_master_route() {
        let m = RouteInfoManager::new();
        m.register_broker(
            reg("b", 0, "m:1", &[("T", 4), ("U", 1)], 1),
            None,
            0,
            T,
            false,
        )
        .unwrap();
        m.register_broker(
            reg("b", 1, "s:1", &[("T", 4), ("U", 1)], 1),
            None,
            0,
            T,
            false,
        )
        .unwrap();
        m.unregister_broker("DefaultCluster", "s:1", "b", 1);
        let bd = &m.topic_route("T").unwrap().broker_datas[0];
        assert_eq!(bd.broker_addrs.len(), 1);
        m.unregister_broker("DefaultCluster", "m:1", "b", 0);
        assert!(m.topic_route("T").is_none());
        assert_eq!(m.live_broker_count(), 0);
    }

    #[test]
    fn topic_lists() {
        let m = RouteInfoManager::new();
        m.register_broker(
            reg("a", 0, "a:1", &[("T", 4), ("a", 1)], 1),
            None,
            0,
            T,
            false,
        )
        .unwrap();
        let mut other = reg("x", 0, "x:1", &[("X", 4), ("x", 1)], 1);
        other.cluster = "Other".into();
        m.register_broker(other, None, 0, T, false).unwrap();
        assert_eq!(m.all_topics().topic_list, vec!["T", "X", "a", "x"]);
        assert_eq!(m.topics_by_cluster("Other").topic_list, vec!["X", "x"]);
        let sys = m.system_topics();
        assert_eq!(sys.topic_list, vec!["DefaultCluster", "Other", "a", "x"]);
        assert!(sys.broker_addr.is_some());
        m.delete_topic("T", Some("Other"));
        assert!(m.topic_route("T").is_some());
        m.delete_topic("T", None);
        assert!(m.topic_route("T").is_none());
        assert!(!m.register_topic(
            "N",
            &[QueueData {
                broker_name: "ghost".into(),
                ..Default::default()
            }]
        ));
        assert!(m.register_topic(
            "N",
            &[QueueData {
                broker_name: "a".into(),
                read_queue_nums: 2,
                write_queue_nums: 2,
                perm: 6,
                topic_sys_flag: 0
            }]
        ));
        assert_eq!(
            m.topic_route("N").unwrap().queue_datas[0].read_queue_nums,
            2
        );
    }
}
