//! `broker.conf`: RocketMQ's `BrokerConfig` and server keys (the store's keys live in
//! [`crate::store::MessageStoreConfig`]; one properties file feeds both).

use std::collections::BTreeMap;

use rmq_remoting::config::{ConfigError, JavaConfig};
use rmq_remoting::java_config;
use rmq_remoting::role::{BrokerRole, Perm};

use crate::store::MessageStoreConfig;

fn default_broker_name() -> String {
    hostname().unwrap_or_else(|| "DEFAULT_BROKER".into())
}

fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into our buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).to_string();
    (!name.is_empty()).then_some(name)
}

/// The first non-loopback IPv4 address, as RocketMQ picks `brokerIP1` by default.
pub fn local_ip() -> String {
    // Connecting a UDP socket sends nothing but makes the kernel choose the outgoing address.
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| {
        s.connect("10.255.255.255:9")?;
        s.local_addr()
    });
    match probe {
        Ok(a) if !a.ip().is_loopback() && !a.ip().is_unspecified() => a.ip().to_string(),
        _ => "127.0.0.1".into(),
    }
}

java_config! {
    /// Broker identity, roles and behaviour.
    pub struct BrokerConfig {
        rocketmq_home: String = std::env::var("ROCKETMQ_HOME").unwrap_or_default() => "rocketmqHome",
        namesrv_addr: String = std::env::var("NAMESRV_ADDR").unwrap_or_default() => "namesrvAddr",
        broker_cluster_name: String = "DefaultCluster".into() => "brokerClusterName",
        broker_name: String = default_broker_name() => "brokerName",
        broker_id: i64 = 0 => "brokerId",
        /// `ASYNC_MASTER`, `SYNC_MASTER` or `SLAVE`; anything else is refused at start.
        broker_role: BrokerRole = BrokerRole::AsyncMaster => "brokerRole",
        /// Empty: the first non-loopback address.
        broker_ip1: String = String::new() => "brokerIP1",
        broker_ip2: String = String::new() => "brokerIP2",
        /// Take `brokerIP1` from this interface (multi-NIC hosts), e.g. `net1`.
        broker_ip1_interface: String = String::new() => "brokerIP1Interface",
        /// Or from the first local address inside this CIDR, e.g. `10.20.0.0/16`.
        broker_ip1_cidr: String = String::new() => "brokerIP1Cidr",
        /// Take `brokerIP2` (replication) from this interface.
        broker_ip2_interface: String = String::new() => "brokerIP2Interface",
        /// Or from the first local address inside this CIDR.
        broker_ip2_cidr: String = String::new() => "brokerIP2Cidr",
        listen_port: u16 = 10911 => "listenPort",
        /// The port clients are told (name-server registration, message ids) when it is not
        /// `listenPort`: behind NAT or a Kubernetes NodePort. 0: `listenPort`.
        broker_advertised_port: u16 = 0 => "brokerAdvertisedPort",
        /// 0: `listenPort + 1`.
        ha_listen_port: u16 = 0 => "haListenPort",
        /// A slave's master HA address (`host:port`); empty: the one the name server gives.
        ha_master_address: String = String::new() => "haMasterAddress",
        /// A slave whose reports stop for this long no longer counts (a partition leaves no
        /// reset to notice), ms.
        ha_housekeeping_interval: u64 = 20_000 => "haHousekeepingInterval",
        bind_address: String = "0.0.0.0".into() => "bindAddress",
        broker_permission: Perm = Perm::READ_WRITE => "brokerPermission",
        auto_create_topic_enable: bool = true => "autoCreateTopicEnable",
        auto_create_subscription_group: bool = true => "autoCreateSubscriptionGroup",
        /// Auto-creation (sends, retry topics) stops once the broker has this many topics;
        /// mqadmin still creates them (0: no limit).
        auto_create_topic_limit: usize = 10_000 => "autoCreateTopicLimit",
        /// Auto-creation (heartbeats, pulls, send-backs) stops once the broker has this many
        /// subscription groups; mqadmin still creates them (0: no limit).
        auto_create_subscription_group_limit: usize = 10_000 => "autoCreateSubscriptionGroupLimit",
        default_topic_queue_nums: i32 = 8 => "defaultTopicQueueNums",
        cluster_topic_enable: bool = true => "clusterTopicEnable",
        broker_topic_enable: bool = true => "brokerTopicEnable",
        register_name_server_period: u64 = 30_000 => "registerNameServerPeriod",
        register_broker_timeout_mills: u64 = 24_000 => "registerBrokerTimeoutMills",
        /// Register in parts of `splitRegistrationSize` topics (ours splits one too large for
        /// a frame anyway).
        enable_split_registration: bool = false => "enableSplitRegistration",
        split_registration_size: usize = 800 => "splitRegistrationSize",
        long_polling_enable: bool = true => "longPollingEnable",
        short_polling_time_mills: u64 = 1000 => "shortPollingTimeMills",
        /// Longest a pull is held, whatever `suspendTimeoutMillis` it asks for, ms.
        pull_suspend_max_time_millis: u64 = 30_000 => "pullSuspendMaxTimeMillis",
        /// Pulls held at once; more get SYSTEM_BUSY (clients back off and pull again).
        max_held_pulls: usize = 50_000 => "maxHeldPulls",
        flush_consumer_offset_interval: u64 = 5000 => "flushConsumerOffsetInterval",
        /// Client connections silent this long are closed, ms.
        channel_expired_timeout: u64 = 120_000 => "channelExpiredTimeout",
        /// Sends queued longer than this get SYSTEM_BUSY, ms.
        wait_time_mills_in_send_queue: u64 = 200 => "waitTimeMillsInSendQueue",
        /// Most sends in flight at once before SYSTEM_BUSY.
        max_in_flight_sends: usize = 10_000 => "maxInFlightSends",
        reject_transaction_message: bool = false => "rejectTransactionMessage",
        /// A transaction half still open this long after it was sent is checked with its
        /// producer, ms.
        transaction_time_out: u64 = 6000 => "transactionTimeOut",
        /// Checks of one half before it is discarded.
        transaction_check_max: i32 = 15 => "transactionCheckMax",
        /// How often open halves are looked at, ms.
        transaction_check_interval: u64 = 60_000 => "transactionCheckInterval",
        slave_read_enable: bool = false => "slaveReadEnable",
        /// Allow SQL92 subscriptions (`MessageSelector.bySql`).
        enable_property_filter: bool = false => "enablePropertyFilter",
        /// A queue lock of an orderly consumer lapses after this long without renewal, ms.
        rebalance_lock_max_live_time: u64 = 60_000 => "rebalanceLockMaxLiveTime",
        max_transfer_bytes_on_message_in_memory: usize = 256 * 1024 => "maxTransferBytesOnMessageInMemory",
        max_transfer_count_on_message_in_memory: usize = 32 => "maxTransferCountOnMessageInMemory",
        /// 0 disables the VIP channel on `listenPort - 2`.
        fast_listen_port: u16 = 0 => "fastListenPort",
        enable_vip_channel: bool = true => "enableVipChannel",
        /// Prometheus `/metrics` port; 0 disables.
        metrics_port: u16 = 0 => "metricsPort",
        /// Threads serving connections (RocketMQ's Netty worker count). 0: half the cores,
        /// 1 to 8; the store's threads and the kernel's network work need the rest.
        server_worker_threads: usize = 0 => "serverWorkerThreads",
        /// Connections open at once; more are closed on accept (0: no limit).
        server_max_connections: usize = rmq_remoting::connection::DEFAULT_MAX_CONNECTIONS => "serverMaxConnections",
        /// Connections open at once from one IP address (0: no limit).
        server_max_connections_per_address: usize = rmq_remoting::connection::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS => "serverMaxConnectionsPerAddress",
        /// Requests one connection has open at once; reading it pauses beyond that.
        server_max_in_flight_requests: usize = rmq_remoting::connection::DEFAULT_MAX_IN_FLIGHT => "serverMaxInFlightRequests",
        /// Bytes of unwritten responses on one connection before it stops being read.
        write_buffer_high_water_mark: usize = rmq_remoting::connection::DEFAULT_WRITE_HIGH_WATER => "writeBufferHighWaterMark",
        /// A connection whose writes make no progress for this long is closed, ms.
        server_write_timeout_millis: u64 = 30_000 => "serverWriteTimeoutMillis",
        /// Frames longer than this are refused and their connection closed.
        frame_max_length: usize = rmq_remoting::codec::DEFAULT_MAX_FRAME_LEN => "frameMaxLength",
        /// RocketMQ's plain ACL: accounts and permissions from `plain_acl.yml`.
        acl_enable: bool = false => "aclEnable",
        /// The ACL file, relative to `rocketmqHome` unless absolute (RocketMQ's
        /// `-Drocketmq.acl.plain.file`); every YAML file below `conf/acl/` is read too.
        acl_plain_file: String = "conf/plain_acl.yml".into() => "rocketmq.acl.plain.file",
        /// Role changes, config updates, deletions and the HA handshake need the cluster's admin
        /// credential (ours; on by default, off only by choice).
        control_plane_auth_enable: bool = true => "controlPlaneAuthEnable",
        /// The admin credential (`accessKey:` / `secretKey:` YAML, RocketMQ's tools.yml shape).
        /// Empty: `~/.rocketmq/admin-credential.yml`, created on first start.
        admin_credential_file: String = String::new() => "adminCredentialFile",
    }
}

impl BrokerConfig {
    pub fn broker_ip1(&self) -> String {
        if self.broker_ip1.is_empty() {
            local_ip()
        } else {
            self.broker_ip1.clone()
        }
    }

    /// The port in the address clients are given.
    pub fn advertised_port(&self) -> u16 {
        if self.broker_advertised_port == 0 {
            self.listen_port
        } else {
            self.broker_advertised_port
        }
    }

    pub fn broker_addr(&self) -> String {
        format!("{}:{}", self.broker_ip1(), self.advertised_port())
    }

    pub fn ha_listen_port(&self) -> u16 {
        if self.ha_listen_port == 0 {
            self.listen_port.wrapping_add(1)
        } else {
            self.ha_listen_port
        }
    }

    pub fn ha_server_addr(&self) -> String {
        let ip = if self.broker_ip2.is_empty() {
            self.broker_ip1()
        } else {
            self.broker_ip2.clone()
        };
        format!("{ip}:{}", self.ha_listen_port())
    }

    /// The VIP ("fast") port older Java clients send to: `listenPort - 2`.
    pub fn fast_listen_port(&self) -> Option<u16> {
        if !self.enable_vip_channel {
            return None;
        }
        Some(if self.fast_listen_port != 0 {
            self.fast_listen_port
        } else {
            self.listen_port.wrapping_sub(2)
        })
    }

    pub fn name_servers(&self) -> Vec<String> {
        self.namesrv_addr
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }

    /// Resolves `brokerIP1Interface`/`brokerIP1Cidr` (and the IP2 pair) into `brokerIP1` /
    /// `brokerIP2` from this host's interfaces.
    pub fn resolve_addresses(&mut self) -> Result<(), String> {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        if let Some(ip) = crate::netif::select(
            opt(&self.broker_ip1_interface).as_deref(),
            opt(&self.broker_ip1_cidr).as_deref(),
        )? {
            self.broker_ip1 = ip.to_string();
        }
        if let Some(ip) = crate::netif::select(
            opt(&self.broker_ip2_interface).as_deref(),
            opt(&self.broker_ip2_cidr).as_deref(),
        )? {
            self.broker_ip2 = ip.to_string();
        }
        Ok(())
    }

    pub fn is_slave(&self) -> bool {
        self.broker_role.is_slave()
    }

    /// The plain ACL's main file and its directory of further files.
    pub fn acl_paths(&self) -> (std::path::PathBuf, std::path::PathBuf) {
        let home = std::path::Path::new(&self.rocketmq_home);
        (
            home.join(&self.acl_plain_file),
            home.join("conf").join("acl"),
        )
    }
}

/// Both halves of a broker's configuration.
#[derive(Debug, Clone, Default)]
pub struct BrokerSettings {
    pub broker: BrokerConfig,
    pub store: MessageStoreConfig,
    /// RocketMQ's `tls.*` keys: the listening ports and the broker's own connections.
    pub tls: rmq_remoting::tls::TlsConfig,
}

impl BrokerSettings {
    /// Applies properties to whichever half knows each key; returns the unknown keys.
    pub fn apply(&mut self, props: &BTreeMap<String, String>) -> Result<Vec<String>, ConfigError> {
        let mut unknown = Vec::new();
        for (k, v) in props {
            let a = self.broker.set_property(k, v)?;
            let b = self.store.set_property(k, v)?;
            let c = self.tls.set_property(k, v)?;
            if !a && !b && !c {
                unknown.push(k.clone());
            }
        }
        // Masters are broker id 0, whatever the file says.
        if !self.broker.is_slave() {
            self.broker.broker_id = 0;
        }
        Ok(unknown)
    }

    /// Every property, both halves.
    pub fn properties(&self) -> BTreeMap<String, String> {
        let mut p = self.broker.properties();
        p.extend(self.store.properties());
        p.extend(self.tls.properties());
        p
    }
}

/// A running broker's settings: `broker.conf` as read at start plus the keys changed at run
/// time. The lock is private and only held inside these calls, so no reader can keep it
/// across an await or see a half-applied update.
///
/// Its `brokerRole`, `brokerId`, `brokerPermission` and `haMasterAddress` are only where the
/// broker started: [`crate::role::Role`] owns the live values, and
/// `BrokerInner::current_settings()` shows them.
#[derive(Debug, Default)]
pub struct Settings(parking_lot::RwLock<BrokerSettings>);

impl Settings {
    pub fn new(settings: BrokerSettings) -> Settings {
        Settings(parking_lot::RwLock::new(settings))
    }

    /// Reads the broker half.
    pub fn broker<R>(&self, read: impl FnOnce(&BrokerConfig) -> R) -> R {
        read(&self.0.read().broker)
    }

    /// Reads the store half (as configured: the store keeps its own copy of what it opened
    /// with).
    pub fn store<R>(&self, read: impl FnOnce(&MessageStoreConfig) -> R) -> R {
        read(&self.0.read().store)
    }

    /// Reads both halves at once (one lock for fields from each).
    pub fn read<R>(&self, read: impl FnOnce(&BrokerSettings) -> R) -> R {
        read(&self.0.read())
    }

    /// A copy of everything (config dumps; not for the data path).
    pub fn snapshot(&self) -> BrokerSettings {
        self.0.read().clone()
    }

    pub fn cluster_name(&self) -> String {
        self.broker(|b| b.broker_cluster_name.clone())
    }

    pub fn broker_name(&self) -> String {
        self.broker(|b| b.broker_name.clone())
    }

    /// Applies run-time changes, all or none: a bad value leaves every setting as it was.
    /// Returns the settings as they are after.
    pub fn update(&self, props: &BTreeMap<String, String>) -> Result<BrokerSettings, ConfigError> {
        let mut current = self.0.write();
        let mut updated = current.clone();
        updated.apply(props)?;
        *current = updated.clone();
        Ok(updated)
    }
}
