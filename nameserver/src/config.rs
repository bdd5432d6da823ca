//! Name server configuration: `NamesrvConfig` and the server settings, with RocketMQ's
//! property names and defaults.

use rmq_remoting::java_config;

fn home() -> String {
    std::env::var("HOME").unwrap_or_else(|_| ".".into())
}

java_config! {
    /// Everything `mqnamesrv -c` reads and `mqnamesrv -p` prints.
    pub struct NamesrvConfig {
        rocketmq_home: String = std::env::var("ROCKETMQ_HOME").unwrap_or_default() => "rocketmqHome",
        /// Where KV config (order-topic config and friends) persists.
        kv_config_path: String = format!("{}/namesrv/kvConfig.json", home()) => "kvConfigPath",
        /// Where UPDATE_NAMESRV_CONFIG persists the effective config.
        config_store_path: String = format!("{}/namesrv/namesrv.properties", home()) => "configStorePath",
        /// Put `orderTopicConf` (from the ORDER_TOPIC_CONFIG namespace) into routes.
        order_message_enable: bool = false => "orderMessageEnable",
        return_order_topic_config_to_broker: bool = true => "returnOrderTopicConfigToBroker",
        /// How often to look for brokers that stopped heartbeating, in ms.
        scan_not_active_broker_interval: i64 = 5000 => "scanNotActiveBrokerInterval",
        /// A broker silent for this long (ms) is dropped, unless its registration carries its
        /// own `heartbeatTimeoutMillis`.
        broker_channel_expired_time: i64 = 120_000 => "brokerChannelExpiredTime",
        enable_all_topic_list: bool = true => "enableAllTopicList",
        enable_topic_list: bool = true => "enableTopicList",
        /// Drop a broker's topics that vanish from its registration.
        delete_topic_with_broker_registration: bool = false => "deleteTopicWithBrokerRegistration",
        /// Answer routes with "name server not ready" for `waitSecondsForService` after start.
        need_wait_for_service: bool = false => "needWaitForService",
        wait_seconds_for_service: i64 = 45 => "waitSecondsForService",
        /// Keys UPDATE_NAMESRV_CONFIG may not change.
        config_black_list: String = "configBlackList;configStorePath;kvConfigPath".into() => "configBlackList",
        listen_port: u16 = 9876 => "listenPort",
        bind_address: String = "0.0.0.0".into() => "bindAddress",
        /// Connections silent for this long are closed (0 disables).
        server_channel_max_idle_time_seconds: u64 = 120 => "serverChannelMaxIdleTimeSeconds",
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
        /// Prometheus `/metrics` port; 0 disables it.
        metrics_port: u16 = 0 => "metricsPort",
        /// Frames longer than this are refused and their connection closed.
        frame_max_length: usize = rmq_remoting::codec::DEFAULT_MAX_FRAME_LEN => "frameMaxLength",
        /// Broker registrations, route and KV changes need the cluster's admin credential
        /// (ours; on by default, off only by choice).
        control_plane_auth_enable: bool = true => "controlPlaneAuthEnable",
        /// The admin credential (`accessKey:` / `secretKey:` YAML). Empty:
        /// `~/.rocketmq/admin-credential.yml`, created on first start.
        admin_credential_file: String = String::new() => "adminCredentialFile",
    }
}

impl NamesrvConfig {
    /// Keys that UPDATE_NAMESRV_CONFIG refuses.
    pub fn black_list(&self) -> Vec<String> {
        self.config_black_list
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }
}
