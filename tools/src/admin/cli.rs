//! Command line: RocketMQ's `mqadmin <subcommand>` names and options.

use clap::{ArgAction, ArgGroup, Args, Parser, Subcommand};

use super::java::parse_bool;

#[derive(Parser, Debug)]
#[command(
    name = "mqadmin",
    version,
    about = "RocketMQ admin tool",
    subcommand_help_heading = "The most commonly used mqadmin commands are"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Args, Debug, Clone, Default)]
pub struct Common {
    /// Name server address list, eg: '192.168.0.1:9876;192.168.0.2:9876' (default: $NAMESRV_ADDR)
    #[arg(short = 'n', long = "namesrvAddr", value_name = "ADDRS")]
    pub namesrv_addr: Option<String>,
    /// Request timeout in milliseconds
    #[arg(long = "timeout", value_name = "MS", default_value_t = 3000)]
    pub timeout_ms: u64,
    /// Sign requests with this access key (with --authSecretKey); -a/-s of the ACL
    /// subcommands name the account they change
    #[arg(
        long = "authAccessKey",
        value_name = "AK",
        requires = "auth_secret_key"
    )]
    pub auth_access_key: Option<String>,
    /// The signing access key's secret
    #[arg(
        long = "authSecretKey",
        value_name = "SK",
        requires = "auth_access_key"
    )]
    pub auth_secret_key: Option<String>,
    /// Sign requests with the credential in this file (`accessKey:` / `secretKey:` YAML).
    /// Default: $ROCKETMQ_HOME/conf/tools.yml, else ~/.rocketmq/admin-credential.yml, if present
    #[arg(long = "credentialFile", value_name = "FILE")]
    pub credential_file: Option<std::path::PathBuf>,
    /// Connect over TLS (RocketMQ's -Dtls.enable=true), with the tls.client.* keys of
    /// --tlsConfigFile or /etc/rocketmq/tls.properties
    #[arg(long = "tls")]
    pub tls: bool,
    /// A properties file of RocketMQ's tls.* keys (tls.client.trustCertPath, ...); implies --tls
    #[arg(long = "tlsConfigFile", value_name = "FILE")]
    pub tls_config_file: Option<std::path::PathBuf>,
}

impl Common {
    /// TLS for the tool's connections, if asked for.
    pub fn client_tls(&self) -> anyhow::Result<Option<rmq_remoting::tls::ClientTls>> {
        rmq_remoting::tls::ClientTls::for_tool(self.tls, self.tls_config_file.as_deref())
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// The credential to sign with: given keys, the given file, then RocketMQ's tools.yml,
    /// then the local cluster's admin credential; none if none of them exists.
    pub fn credentials(&self) -> anyhow::Result<Option<rmq_remoting::Credentials>> {
        if let (Some(ak), Some(sk)) = (&self.auth_access_key, &self.auth_secret_key) {
            return Ok(Some(rmq_remoting::Credentials::new(ak, sk)));
        }
        if let Some(f) = &self.credential_file {
            return Ok(Some(rmq_acl::credential::load(f)?));
        }
        let tools_yml = std::env::var_os("ROCKETMQ_HOME")
            .map(|h| std::path::Path::new(&h).join("conf").join("tools.yml"));
        for path in tools_yml
            .into_iter()
            .chain([rmq_acl::credential::default_path()])
        {
            if path.exists() {
                return Ok(Some(rmq_acl::credential::load(&path)?));
            }
        }
        Ok(None)
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List cluster infos
    #[command(name = "clusterList")]
    ClusterList(ClusterListArgs),
    /// Fetch all topic list from name server
    #[command(name = "topicList")]
    TopicList(TopicListArgs),
    /// Examine topic route info
    #[command(name = "topicRoute")]
    TopicRoute(TopicRouteArgs),
    /// Update or create topic
    #[command(name = "updateTopic")]
    UpdateTopic(UpdateTopicArgs),
    /// Delete topic from broker and NameServer
    #[command(name = "deleteTopic")]
    DeleteTopic(DeleteTopicArgs),
    /// Examine topic Status info
    #[command(name = "topicStatus")]
    TopicStatus(TopicStatusArgs),
    /// Query consumer's progress, speed
    #[command(name = "consumerProgress")]
    ConsumerProgress(ConsumerProgressArgs),
    /// Fetch broker runtime status data
    /// Reset a group's consumer offsets of a topic to a point in time
    #[command(name = "resetOffsetByTime")]
    ResetOffsetByTime(ResetOffsetByTimeArgs),
    /// Promote a slave to master of its group, with the next epoch
    #[command(name = "promote")]
    Promote(PromoteArgs),
    /// Replication state of a broker or of every broker of a cluster
    #[command(name = "haStatus")]
    HaStatus(BrokerTargetArgs),
    #[command(name = "brokerStatus")]
    BrokerStatus(BrokerTargetArgs),
    /// Get broker config by cluster or special broker
    #[command(name = "getBrokerConfig")]
    GetBrokerConfig(BrokerTargetArgs),
    /// Update broker's config
    #[command(name = "updateBrokerConfig")]
    UpdateBrokerConfig(UpdateBrokerConfigArgs),
    /// Update or create subscription group
    #[command(name = "updateSubGroup")]
    UpdateSubGroup(UpdateSubGroupArgs),
    /// Query Message by Id
    #[command(name = "queryMsgById")]
    QueryMsgById(QueryMsgByIdArgs),
    /// Query Message by Key
    #[command(name = "queryMsgByKey")]
    QueryMsgByKey(QueryMsgByKeyArgs),
    /// Create or update KV config
    #[command(name = "updateKvConfig")]
    UpdateKvConfig(UpdateKvConfigArgs),
    /// Delete KV config
    #[command(name = "deleteKvConfig")]
    DeleteKvConfig(DeleteKvConfigArgs),
    /// Wipe write perm of broker in all name server you defined in the -n param
    #[command(name = "wipeWritePerm")]
    WipeWritePerm(BrokerNameArgs),
    /// Add write perm of broker in all name server you defined in the -n param
    #[command(name = "addWritePerm")]
    AddWritePerm(BrokerNameArgs),
    /// Get configs of name server
    #[command(name = "getNamesrvConfig")]
    GetNamesrvConfig(CommonOnly),
    /// Update configs of name server
    #[command(name = "updateNamesrvConfig")]
    UpdateNamesrvConfig(KeyValueArgs),
    /// Update acl config yaml file in broker
    #[command(name = "updateAclConfig")]
    UpdateAclConfig(UpdateAclConfigArgs),
    /// Delete Acl Config Account in broker
    #[command(name = "deleteAclConfig", alias = "deleteAccessConfig")]
    DeleteAclConfig(DeleteAclConfigArgs),
    /// Update global white address for acl Config File in broker
    #[command(name = "updateGlobalWhiteAddr")]
    UpdateGlobalWhiteAddr(UpdateGlobalWhiteAddrArgs),
    /// List all of acl config version information in cluster
    #[command(name = "clusterAclConfigVersion")]
    ClusterAclConfigVersion(BrokerOrClusterArgs),
}

impl Command {
    pub fn common(&self) -> &Common {
        match self {
            Command::ClusterList(a) => &a.common,
            Command::TopicList(a) => &a.common,
            Command::TopicRoute(a) => &a.common,
            Command::UpdateTopic(a) => &a.common,
            Command::DeleteTopic(a) => &a.common,
            Command::TopicStatus(a) => &a.common,
            Command::ConsumerProgress(a) => &a.common,
            Command::ResetOffsetByTime(a) => &a.common,
            Command::HaStatus(a) => &a.common,
            Command::Promote(a) => &a.common,
            Command::BrokerStatus(a) | Command::GetBrokerConfig(a) => &a.common,
            Command::UpdateBrokerConfig(a) => &a.common,
            Command::UpdateSubGroup(a) => &a.common,
            Command::QueryMsgById(a) => &a.common,
            Command::QueryMsgByKey(a) => &a.common,
            Command::UpdateKvConfig(a) => &a.common,
            Command::DeleteKvConfig(a) => &a.common,
            Command::WipeWritePerm(a) | Command::AddWritePerm(a) => &a.common,
            Command::GetNamesrvConfig(a) => &a.common,
            Command::UpdateNamesrvConfig(a) => &a.common,
            Command::UpdateAclConfig(a) => &a.target.common,
            Command::DeleteAclConfig(a) => &a.target.common,
            Command::UpdateGlobalWhiteAddr(a) => &a.target.common,
            Command::ClusterAclConfigVersion(a) => &a.common,
        }
    }

    /// The subcommand's name as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::ClusterList(_) => "clusterList",
            Command::TopicList(_) => "topicList",
            Command::TopicRoute(_) => "topicRoute",
            Command::UpdateTopic(_) => "updateTopic",
            Command::DeleteTopic(_) => "deleteTopic",
            Command::TopicStatus(_) => "topicStatus",
            Command::ConsumerProgress(_) => "consumerProgress",
            Command::ResetOffsetByTime(_) => "resetOffsetByTime",
            Command::HaStatus(_) => "haStatus",
            Command::Promote(_) => "promote",
            Command::BrokerStatus(_) => "brokerStatus",
            Command::GetBrokerConfig(_) => "getBrokerConfig",
            Command::UpdateBrokerConfig(_) => "updateBrokerConfig",
            Command::UpdateSubGroup(_) => "updateSubGroup",
            Command::QueryMsgById(_) => "queryMsgById",
            Command::QueryMsgByKey(_) => "queryMsgByKey",
            Command::UpdateKvConfig(_) => "updateKvConfig",
            Command::DeleteKvConfig(_) => "deleteKvConfig",
            Command::WipeWritePerm(_) => "wipeWritePerm",
            Command::AddWritePerm(_) => "addWritePerm",
            Command::GetNamesrvConfig(_) => "getNamesrvConfig",
            Command::UpdateNamesrvConfig(_) => "updateNamesrvConfig",
            Command::UpdateAclConfig(_) => "updateAclConfig",
            Command::DeleteAclConfig(_) => "deleteAclConfig",
            Command::UpdateGlobalWhiteAddr(_) => "updateGlobalWhiteAddr",
            Command::ClusterAclConfigVersion(_) => "clusterAclConfigVersion",
        }
    }
}

#[derive(Args, Debug)]
pub struct CommonOnly {
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug)]
pub struct ClusterListArgs {
    #[command(flatten)]
    pub common: Common,
    /// Print more stats
    #[arg(short = 'm', long = "moreStats")]
    pub more_stats: bool,
    /// Repeat every this many seconds
    #[arg(short = 'i', long = "interval")]
    pub interval: Option<u64>,
    /// Only this cluster
    #[arg(short = 'c', long = "clusterName")]
    pub cluster: Option<String>,
}

#[derive(Args, Debug)]
pub struct TopicListArgs {
    #[command(flatten)]
    pub common: Common,
    /// Print the cluster and consumer groups of every topic
    #[arg(short = 'c', long = "clusterModel")]
    pub cluster_model: bool,
}

#[derive(Args, Debug)]
pub struct TopicRouteArgs {
    #[command(flatten)]
    pub common: Common,
    /// Topic name
    #[arg(short = 't', long = "topic")]
    pub topic: String,
    /// Use list format to print data
    #[arg(short = 'l', long = "list")]
    pub list: bool,
}

#[derive(Args, Debug)]
pub struct ResetOffsetByTimeArgs {
    #[command(flatten)]
    pub common: Common,
    /// Consumer group name
    #[arg(short = 'g', long = "group")]
    pub group: String,
    /// Topic name
    #[arg(short = 't', long = "topic")]
    pub topic: String,
    /// Timestamp: `now`, milliseconds since the epoch, or yyyy-MM-dd#HH:mm:ss:SSS (local time)
    #[arg(short = 's', long = "timestamp")]
    pub timestamp: String,
    /// Also move offsets forward (true|false)
    #[arg(short = 'f', long = "force", value_parser = parse_bool, action = ArgAction::Set, default_value = "true")]
    pub force: bool,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("target").required(true).args(["broker_addr", "cluster"])))]
pub struct UpdateTopicArgs {
    #[command(flatten)]
    pub common: Common,
    /// Create topic to which broker
    #[arg(short = 'b', long = "brokerAddr")]
    pub broker_addr: Option<String>,
    /// Create topic to which cluster
    #[arg(short = 'c', long = "clusterName")]
    pub cluster: Option<String>,
    /// Topic name
    #[arg(short = 't', long = "topic")]
    pub topic: String,
    /// Set read queue nums
    #[arg(short = 'r', long = "readQueueNums", default_value_t = 8)]
    pub read_queue_nums: i32,
    /// Set write queue nums
    #[arg(short = 'w', long = "writeQueueNums", default_value_t = 8)]
    pub write_queue_nums: i32,
    /// Set topic's permission(2|4|6), intro[2:W 4:R; 6:RW]
    #[arg(short = 'p', long = "perm", default_value_t = 6)]
    pub perm: i32,
    /// Set topic's order(true|false)
    #[arg(short = 'o', long = "order", value_parser = parse_bool, action = ArgAction::Set, default_value = "false")]
    pub order: bool,
    /// Is unit topic (true|false)
    #[arg(short = 'u', long = "unit", value_parser = parse_bool, action = ArgAction::Set, default_value = "false")]
    pub unit: bool,
    /// Has unit sub (true|false)
    #[arg(short = 's', long = "hasUnitSub", value_parser = parse_bool, action = ArgAction::Set, default_value = "false")]
    pub has_unit_sub: bool,
    /// Attributes (+a=b,+c=d,-e)
    #[arg(short = 'a', long = "attributes")]
    pub attributes: Option<String>,
}

#[derive(Args, Debug)]
pub struct DeleteTopicArgs {
    #[command(flatten)]
    pub common: Common,
    /// Topic name
    #[arg(short = 't', long = "topic")]
    pub topic: String,
    /// Delete topic from which cluster
    #[arg(short = 'c', long = "clusterName")]
    pub cluster: String,
}

#[derive(Args, Debug)]
pub struct TopicStatusArgs {
    #[command(flatten)]
    pub common: Common,
    /// Topic name
    #[arg(short = 't', long = "topic")]
    pub topic: String,
    /// Cluster name or lmq parent topic, used to find the route
    #[arg(short = 'c', long = "cluster")]
    pub cluster: Option<String>,
}

#[derive(Args, Debug)]
pub struct ConsumerProgressArgs {
    #[command(flatten)]
    pub common: Common,
    /// Consumer group name (all groups when absent)
    #[arg(short = 'g', long = "groupName")]
    pub group: Option<String>,
    /// Topic name
    #[arg(short = 't', long = "topicName")]
    pub topic: Option<String>,
    /// Show Client IP per Queue (true|false)
    #[arg(short = 's', long = "showClientIP", value_parser = parse_bool, action = ArgAction::Set, default_value = "false")]
    pub show_client_ip: bool,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("target").required(true).args(["broker_addr", "cluster"])))]
pub struct BrokerTargetArgs {
    #[command(flatten)]
    pub common: Common,
    /// Broker address
    #[arg(short = 'b', long = "brokerAddr")]
    pub broker_addr: Option<String>,
    /// Which cluster
    #[arg(short = 'c', long = "clusterName")]
    pub cluster: Option<String>,
}

#[derive(Args, Debug)]
pub struct PromoteArgs {
    #[command(flatten)]
    pub common: Common,
    /// The slave to promote
    #[arg(short = 'b', long = "brokerAddr")]
    pub broker_addr: String,
    /// Its role as master: SYNC_MASTER or ASYNC_MASTER
    #[arg(short = 'r', long = "role", default_value = "ASYNC_MASTER")]
    pub role: rmq_remoting::role::BrokerRole,
    /// The new epoch (default: one above the slave's)
    #[arg(short = 'e', long = "epoch")]
    pub epoch: Option<i32>,
    /// Promote at once even while the master is alive: what it has not replicated is cut
    /// when it steps down
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// How long a switchover waits for the slave to catch up before it is called off
    #[arg(long = "catchUpSeconds", default_value_t = 10)]
    pub catch_up_seconds: u64,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("target").required(true).args(["broker_addr", "cluster"])))]
pub struct UpdateBrokerConfigArgs {
    #[command(flatten)]
    pub common: Common,
    /// Update which broker
    #[arg(short = 'b', long = "brokerAddr")]
    pub broker_addr: Option<String>,
    /// Update which cluster
    #[arg(short = 'c', long = "clusterName")]
    pub cluster: Option<String>,
    /// With -c, update slaves too
    #[arg(short = 'a', long = "updateAllBroker", value_parser = parse_bool, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    pub all_brokers: bool,
    /// Config key
    #[arg(short = 'k', long = "key")]
    pub key: String,
    /// Config value
    #[arg(short = 'v', long = "value")]
    pub value: String,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("target").required(true).args(["broker_addr", "cluster"])))]
pub struct UpdateSubGroupArgs {
    #[command(flatten)]
    pub common: Common,
    /// Create subscription group to which broker
    #[arg(short = 'b', long = "brokerAddr")]
    pub broker_addr: Option<String>,
    /// Create subscription group to which cluster
    #[arg(short = 'c', long = "clusterName")]
    pub cluster: Option<String>,
    /// Consumer group name
    #[arg(short = 'g', long = "groupName")]
    pub group: String,
    /// Consume enable
    #[arg(short = 's', long = "consumeEnable", value_parser = parse_bool)]
    pub consume_enable: Option<bool>,
    /// From min offset
    #[arg(short = 'm', long = "consumeFromMinEnable", value_parser = parse_bool)]
    pub consume_from_min_enable: Option<bool>,
    /// Broadcast
    #[arg(short = 'd', long = "consumeBroadcastEnable", value_parser = parse_bool)]
    pub consume_broadcast_enable: Option<bool>,
    /// Consume message orderly
    #[arg(short = 'o', long = "consumeMessageOrderly", value_parser = parse_bool)]
    pub consume_message_orderly: Option<bool>,
    /// Retry queue nums
    #[arg(short = 'q', long = "retryQueueNums")]
    pub retry_queue_nums: Option<i32>,
    /// Retry max times
    #[arg(short = 'r', long = "retryMaxTimes")]
    pub retry_max_times: Option<i32>,
    /// The JSON of the retry policy, eg: {"type":"CUSTOMIZED","customizedRetryPolicy":{"next":[1000,5000]}}
    #[arg(short = 'p', long = "groupRetryPolicy")]
    pub group_retry_policy: Option<String>,
    /// Consume from which broker id
    #[arg(short = 'i', long = "brokerId")]
    pub broker_id: Option<i64>,
    /// Which broker id when consume slowly
    #[arg(short = 'w', long = "whichBrokerWhenConsumeSlowly")]
    pub which_broker_when_consume_slowly: Option<i64>,
    /// Notify consumerId changed
    #[arg(short = 'a', long = "notifyConsumerIdsChanged", value_parser = parse_bool)]
    pub notify_consumer_ids_changed: Option<bool>,
    /// Attributes (+a=b,+c=d,-e)
    #[arg(long = "attributes")]
    pub attributes: Option<String>,
}

#[derive(Args, Debug)]
pub struct QueryMsgByIdArgs {
    #[command(flatten)]
    pub common: Common,
    /// Message id(s), comma separated: offset message ids, or unique keys with -t
    #[arg(short = 'i', long = "msgId")]
    pub msg_id: String,
    /// Topic name (needed to look up unique keys)
    #[arg(short = 't', long = "topic")]
    pub topic: Option<String>,
    /// Print the message body, decoded with this charset (UTF-8)
    #[arg(short = 'f', long = "bodyFormat")]
    pub body_format: Option<String>,
    /// Cluster name, to query only its brokers
    #[arg(short = 'c', long = "cluster")]
    pub cluster: Option<String>,
}

#[derive(Args, Debug)]
pub struct QueryMsgByKeyArgs {
    #[command(flatten)]
    pub common: Common,
    /// Topic name
    #[arg(short = 't', long = "topic")]
    pub topic: String,
    /// Message key
    #[arg(short = 'k', long = "msgKey")]
    pub key: String,
    /// Begin timestamp (ms), default 0
    #[arg(short = 'b', long = "beginTimestamp", default_value_t = 0)]
    pub begin: i64,
    /// End timestamp (ms), default Long.MAX_VALUE
    #[arg(short = 'e', long = "endTimestamp", default_value_t = i64::MAX)]
    pub end: i64,
    /// The maximum number of messages returned by the query
    #[arg(short = 'm', long = "maxNum", default_value_t = 64)]
    pub max_num: i32,
    /// Cluster name, to query only its brokers
    #[arg(short = 'c', long = "cluster")]
    pub cluster: Option<String>,
}

#[derive(Args, Debug)]
pub struct UpdateKvConfigArgs {
    #[command(flatten)]
    pub common: Common,
    /// Set the namespace
    #[arg(short = 's', long = "namespace")]
    pub namespace: String,
    /// Set the key name
    #[arg(short = 'k', long = "key")]
    pub key: String,
    /// Set the key value
    #[arg(short = 'v', long = "value")]
    pub value: String,
}

#[derive(Args, Debug)]
pub struct DeleteKvConfigArgs {
    #[command(flatten)]
    pub common: Common,
    /// Set the namespace
    #[arg(short = 's', long = "namespace")]
    pub namespace: String,
    /// Set the key name
    #[arg(short = 'k', long = "key")]
    pub key: String,
}

#[derive(Args, Debug)]
pub struct BrokerNameArgs {
    #[command(flatten)]
    pub common: Common,
    /// Broker name
    #[arg(short = 'b', long = "brokerName")]
    pub broker_name: String,
}

#[derive(Args, Debug)]
pub struct KeyValueArgs {
    #[command(flatten)]
    pub common: Common,
    /// Config key
    #[arg(short = 'k', long = "key")]
    pub key: String,
    /// Config value
    #[arg(short = 'v', long = "value")]
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_java_style_options() {
        let cli = Cli::try_parse_from([
            "mqadmin",
            "updateTopic",
            "-n",
            "h:9876",
            "-c",
            "DefaultCluster",
            "-t",
            "T",
            "-o",
            "true",
        ])
        .unwrap();
        match cli.command {
            Command::UpdateTopic(a) => {
                assert_eq!(a.cluster.as_deref(), Some("DefaultCluster"));
                assert!(a.order);
                assert_eq!((a.read_queue_nums, a.write_queue_nums, a.perm), (8, 8, 6));
                assert_eq!(a.common.namesrv_addr.as_deref(), Some("h:9876"));
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["mqadmin", "updateTopic", "-t", "T"]).is_err());
        assert!(Cli::try_parse_from(["mqadmin", "brokerStatus", "-b", "a:1", "-c", "C"]).is_err());
    }
}

/// `-b brokerAddr` or `-c clusterName`, one of them.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("target").required(true).args(["broker_addr", "cluster"])))]
pub struct BrokerOrClusterArgs {
    #[command(flatten)]
    pub common: Common,
    /// The broker's address
    #[arg(short = 'b', long = "brokerAddr")]
    pub broker_addr: Option<String>,
    /// Every broker of this cluster
    #[arg(short = 'c', long = "clusterName")]
    pub cluster: Option<String>,
}

#[derive(Args, Debug)]
pub struct UpdateAclConfigArgs {
    #[command(flatten)]
    pub target: BrokerOrClusterArgs,
    /// Access key
    #[arg(short = 'a', long = "accessKey")]
    pub access_key: String,
    /// Secret key
    #[arg(short = 's', long = "secretKey")]
    pub secret_key: String,
    /// White remote address
    #[arg(short = 'w', long = "whiteRemoteAddress")]
    pub white_remote_address: Option<String>,
    /// Default topic perm
    #[arg(short = 'i', long = "defaultTopicPerm")]
    pub default_topic_perm: Option<String>,
    /// Default group perm
    #[arg(short = 'u', long = "defaultGroupPerm")]
    pub default_group_perm: Option<String>,
    /// Topic perms, e.g. topicA=PUB,topicB=SUB
    #[arg(short = 't', long = "topicPerms")]
    pub topic_perms: Option<String>,
    /// Group perms, e.g. groupA=SUB
    #[arg(short = 'g', long = "groupPerms")]
    pub group_perms: Option<String>,
    /// Is admin
    #[arg(short = 'm', long = "admin", value_parser = parse_bool)]
    pub admin: Option<bool>,
}

#[derive(Args, Debug)]
pub struct DeleteAclConfigArgs {
    #[command(flatten)]
    pub target: BrokerOrClusterArgs,
    /// Access key to delete
    #[arg(short = 'a', long = "accessKey")]
    pub access_key: String,
}

#[derive(Args, Debug)]
pub struct UpdateGlobalWhiteAddrArgs {
    #[command(flatten)]
    pub target: BrokerOrClusterArgs,
    /// Global white remote addresses, comma-separated
    #[arg(short = 'g', long = "globalWhiteRemoteAddresses")]
    pub addrs: String,
    /// The ACL file to change (default: the broker's main file)
    #[arg(short = 'p', long = "aclFileFullPath")]
    pub file: Option<String>,
}
