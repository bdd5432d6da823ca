//! The admin side of the protocol: name server list, timeouts, and the lookups every
//! subcommand shares (cluster info, routes, masters of a cluster), as `DefaultMQAdminExt`.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use rmq_remoting::command::next_opaque;
use rmq_remoting::header::{GetRouteInfoRequestHeader, PutKvConfigRequestHeader};
use rmq_remoting::protocol::route::{BrokerData, ClusterInfo, TopicRouteData, MASTER_ID};
use rmq_remoting::protocol::{KvTable, TopicList};
use rmq_remoting::{
    ClientConfig, JsonBody, RemotingClient, RemotingCommand, RemotingError, RequestCode,
    ResponseCode,
};

/// Java's message when a cluster is not in the name server's cluster info.
pub const NO_CLUSTER: &str =
    "Make sure the specified clusterName exists or the name server connected to is correct.";

/// A response code other than `SUCCESS`, or a failure Java reports with a response code.
#[derive(Debug, thiserror::Error)]
#[error("{}{name} ({code}): {remark}", .addr.as_ref().map(|a| format!("{a} answered ")).unwrap_or_default())]
pub struct CodeError {
    /// Who answered; `None` for failures found by the tool itself.
    pub addr: Option<String>,
    pub code: i32,
    pub name: &'static str,
    pub remark: String,
}

impl CodeError {
    pub fn new(addr: Option<&str>, code: i32, remark: impl Into<String>) -> Self {
        CodeError {
            addr: addr.map(String::from),
            code,
            name: ResponseCode::name(code).unwrap_or("UNKNOWN"),
            remark: remark.into(),
        }
    }

    /// The response code carried by `err`, if it is a [`CodeError`].
    pub fn code_of(err: &anyhow::Error) -> Option<i32> {
        err.downcast_ref::<CodeError>().map(|e| e.code)
    }
}

/// A connection to the name servers and brokers of one cluster.
pub struct Admin {
    client: RemotingClient,
    namesrv: Vec<String>,
    timeout: Duration,
}

/// Splits `host:9876;host2:9876`.
pub fn split_namesrv(list: &str) -> Vec<String> {
    list.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

impl Admin {
    pub fn new(namesrv: Option<&str>, timeout: Duration) -> Self {
        let config = ClientConfig {
            connect_timeout: timeout,
            ..Default::default()
        };
        Admin {
            client: RemotingClient::new(config, None),
            namesrv: namesrv.map(split_namesrv).unwrap_or_default(),
            timeout,
        }
    }

    /// Signs every request with `credentials` (the cluster's admin credential or an ACL
    /// account).
    pub fn with_credentials(mut self, credentials: Option<rmq_remoting::Credentials>) -> Self {
        self.client = self.client.with_credentials(credentials);
        self
    }

    /// Connects over `tls`.
    pub fn with_tls(mut self, tls: Option<rmq_remoting::tls::ClientTls>) -> Self {
        if tls.is_some() {
            self.client = self.client.with_tls(tls);
        }
        self
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The name servers given with `-n` (or `NAMESRV_ADDR`); an error when there are none.
    pub fn namesrv(&self) -> Result<&[String]> {
        if self.namesrv.is_empty() {
            bail!("no name server address: give -n 'host:9876;host2:9876' or set NAMESRV_ADDR");
        }
        Ok(&self.namesrv)
    }

    /// Sends `req` to `addr` and returns whatever it answers.
    pub async fn invoke(
        &self,
        addr: &str,
        req: &RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand> {
        let mut req = req.clone();
        req.opaque = next_opaque();
        self.client
            .invoke(addr, req, timeout)
            .await
            .map_err(|e| match e {
                // These name the address already.
                RemotingError::Connect { .. }
                | RemotingError::Timeout { .. }
                | RemotingError::ConnectionClosed(_) => anyhow!("{e}"),
                other => anyhow!("{addr}: {other}"),
            })
    }

    /// Sends `req` to `addr`; anything but `SUCCESS` is an error.
    /// The connection pool, for the shared request helpers.
    pub fn client(&self) -> &RemotingClient {
        &self.client
    }

    pub async fn call(&self, addr: &str, req: &RemotingCommand) -> Result<RemotingCommand> {
        self.call_with_timeout(addr, req, self.timeout).await
    }

    pub async fn call_with_timeout(
        &self,
        addr: &str,
        req: &RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand> {
        let resp = self.invoke(addr, req, timeout).await?;
        success(addr, resp)
    }

    /// Sends `req` to the first name server that answers (the next one on connection
    /// failures, as Java's client does); anything but `SUCCESS` is an error.
    pub async fn call_namesrv(&self, req: &RemotingCommand) -> Result<RemotingCommand> {
        let mut last = None;
        for addr in self.namesrv()? {
            match self.invoke(addr, req, self.timeout).await {
                Ok(resp) => return success(addr, resp),
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "name server did not answer");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("no name server answered")))
    }

    /// GET_BROKER_CLUSTER_INFO.
    pub async fn cluster_info(&self) -> Result<ClusterInfo> {
        let resp = self
            .call_namesrv(&RemotingCommand::request(
                RequestCode::GET_BROKER_CLUSTER_INFO,
            ))
            .await?;
        Ok(ClusterInfo::decode(&resp.body)?)
    }

    /// GET_ROUTEINFO_BY_TOPIC.
    pub async fn route(&self, topic: &str) -> Result<TopicRouteData> {
        let header = GetRouteInfoRequestHeader {
            topic: topic.to_string(),
            accept_standard_json_only: None,
        };
        let resp = self
            .call_namesrv(&RemotingCommand::request_with_header(
                RequestCode::GET_ROUTEINFO_BY_TOPIC,
                &header,
            ))
            .await?;
        Ok(TopicRouteData::decode(&resp.body)?)
    }

    /// GET_ALL_TOPIC_LIST_FROM_NAMESERVER.
    pub async fn all_topics(&self) -> Result<TopicList> {
        let resp = self
            .call_namesrv(&RemotingCommand::request(
                RequestCode::GET_ALL_TOPIC_LIST_FROM_NAMESERVER,
            ))
            .await?;
        Ok(TopicList::decode(&resp.body)?)
    }

    /// GET_BROKER_RUNTIME_INFO.
    pub async fn broker_runtime(&self, addr: &str) -> Result<KvTable> {
        let resp = self
            .call(
                addr,
                &RemotingCommand::request(RequestCode::GET_BROKER_RUNTIME_INFO),
            )
            .await?;
        Ok(KvTable::decode(&resp.body)?)
    }

    /// PUT_KV_CONFIG to every name server; the last refusal is the error.
    pub async fn put_kv(&self, namespace: &str, key: &str, value: &str) -> Result<()> {
        let header = PutKvConfigRequestHeader {
            namespace: namespace.into(),
            key: key.into(),
            value: value.into(),
        };
        let req = RemotingCommand::request_with_header(RequestCode::PUT_KV_CONFIG, &header);
        self.call_every_namesrv(&req).await
    }

    /// Sends `req` to every name server, all of them even when one refuses.
    pub async fn call_every_namesrv(&self, req: &RemotingCommand) -> Result<()> {
        let mut failure = None;
        for addr in self.namesrv()? {
            if let Err(e) = self.call(addr, req).await {
                failure = Some(e);
            }
        }
        failure.map_or(Ok(()), Err)
    }
}

/// Failures of a subcommand that goes on to its next target after one fails, as Java's do:
/// each is printed when it happens, and the subcommand fails at the end.
#[derive(Debug, Default)]
pub struct Failures {
    targets: Vec<String>,
}

impl Failures {
    pub fn record(&mut self, target: &str, err: anyhow::Error) {
        eprintln!("{err:#}");
        self.targets.push(target.to_string());
    }

    /// `Ok` when nothing failed.
    pub fn finish(self) -> Result<()> {
        if self.targets.is_empty() {
            Ok(())
        } else {
            Err(anyhow!("failed for {}", self.targets.join(", ")))
        }
    }
}

/// `Ok` for `SUCCESS`, else a [`CodeError`] naming `addr`.
pub fn success(addr: &str, resp: RemotingCommand) -> Result<RemotingCommand> {
    if resp.code == ResponseCode::SUCCESS {
        Ok(resp)
    } else {
        Err(CodeError::new(Some(addr), resp.code, resp.remark.unwrap_or_default()).into())
    }
}

/// `BrokerData.selectBrokerAddr`: the master, else the lowest-numbered slave.
pub fn select_broker_addr(bd: &BrokerData) -> Option<&str> {
    bd.master_addr()
        .or_else(|| bd.broker_addrs.values().next().map(String::as_str))
}

/// The broker names of `cluster`, sorted; an error when the cluster is unknown.
pub fn cluster_brokers<'a>(info: &'a ClusterInfo, cluster: &str) -> Result<Vec<&'a BrokerData>> {
    let names = info
        .cluster_addr_table
        .get(cluster)
        .ok_or_else(|| anyhow!("cluster `{cluster}` not found. {NO_CLUSTER}"))?;
    let names: BTreeSet<&String> = names.iter().collect();
    Ok(names
        .into_iter()
        .filter_map(|n| info.broker_addr_table.get(n))
        .collect())
}

/// `CommandUtil.fetchMasterAddrByClusterName`: every master address of `cluster`.
pub fn master_addrs(info: &ClusterInfo, cluster: &str) -> Result<Vec<String>> {
    Ok(cluster_brokers(info, cluster)?
        .into_iter()
        .filter_map(|bd| bd.broker_addrs.get(&MASTER_ID).cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect())
}

/// `CommandUtil.fetchMasterAndSlaveAddrByClusterName`: every address of `cluster`.
pub fn all_addrs(info: &ClusterInfo, cluster: &str) -> Result<Vec<String>> {
    Ok(cluster_brokers(info, cluster)?
        .into_iter()
        .flat_map(|bd| bd.broker_addrs.values().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect())
}

/// `CommandUtil.fetchBrokerNameByAddr`.
pub fn broker_name_of(info: &ClusterInfo, addr: &str) -> Result<String> {
    let mut names: Vec<&String> = info.broker_addr_table.keys().collect();
    names.sort();
    names
        .into_iter()
        .find(|n| {
            info.broker_addr_table[*n]
                .broker_addrs
                .values()
                .any(|a| a == addr)
        })
        .cloned()
        .ok_or_else(|| anyhow!("no broker at {addr}. {NO_CLUSTER}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namesrv_lists() {
        assert_eq!(
            split_namesrv(" a:1; b:2;;"),
            vec!["a:1".to_string(), "b:2".to_string()]
        );
        let admin = Admin::new(None, Duration::from_secs(1));
        assert!(admin.namesrv().is_err());
    }

    #[test]
    fn code_errors_read_well() {
        let e = CodeError::new(Some("h:1"), 17, "no route");
        assert_eq!(e.to_string(), "h:1 answered TOPIC_NOT_EXIST (17): no route");
        let e = CodeError::new(None, 206, "offline");
        assert_eq!(e.to_string(), "CONSUMER_NOT_ONLINE (206): offline");
        let any: anyhow::Error = e.into();
        assert_eq!(CodeError::code_of(&any), Some(206));
    }

    #[test]
    fn cluster_lookups() {
        let info = ClusterInfo::decode(
            br#"{"brokerAddrTable":{"b":{"cluster":"C","brokerName":"b","brokerAddrs":{0:"m:1",1:"s:1"}},"a":{"cluster":"C","brokerName":"a","brokerAddrs":{1:"s:2"}}},"clusterAddrTable":{"C":["a","b"]}}"#,
        )
        .unwrap();
        assert_eq!(master_addrs(&info, "C").unwrap(), vec!["m:1"]);
        assert_eq!(all_addrs(&info, "C").unwrap(), vec!["m:1", "s:1", "s:2"]);
        assert_eq!(broker_name_of(&info, "s:2").unwrap(), "a");
        assert!(master_addrs(&info, "X").is_err());
        assert_eq!(
            select_broker_addr(&info.broker_addr_table["a"]),
            Some("s:2")
        );
    }
}
