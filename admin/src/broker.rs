//! What these procedures ask a broker and tell it, each request a short call so a dead
//! address does not hold the caller long.

use std::collections::HashMap;
use std::time::Duration;

use rmq_remoting::header::NotifyBrokerRoleChangedRequestHeader;
use rmq_remoting::protocol::KvTable;
use rmq_remoting::role::{BrokerRole, Epoch, Perm};
use rmq_remoting::{JsonBody, RemotingClient, RemotingCommand, RequestCode};

use crate::{Error, Result};

/// One request to a broker.
pub const CALL: Duration = Duration::from_secs(3);

pub(crate) async fn call(
    client: &RemotingClient,
    addr: &str,
    req: RemotingCommand,
) -> Result<RemotingCommand> {
    client
        .invoke(addr, req, CALL)
        .await
        .and_then(|r| r.ensure_success())
        .map_err(|source| Error::Call {
            addr: addr.to_string(),
            source,
        })
}

/// A broker's runtime info (GET_BROKER_RUNTIME_INFO), with typed readers for what the
/// procedures use.
#[derive(Debug, Clone, Default)]
pub struct RuntimeInfo(pub HashMap<String, String>);

impl RuntimeInfo {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// `brokerRole`; `None` if absent or not a role.
    pub fn role(&self) -> Option<BrokerRole> {
        self.get("brokerRole")?.parse().ok()
    }

    /// Leads its group (a master role).
    pub fn is_master(&self) -> bool {
        self.role().is_some_and(BrokerRole::is_master)
    }

    pub fn is_slave(&self) -> bool {
        self.role().is_some_and(BrokerRole::is_slave)
    }

    pub fn max_offset(&self) -> Option<i64> {
        self.get("commitLogMaxOffset")?.parse().ok()
    }

    pub fn epoch(&self) -> Option<Epoch> {
        self.get("brokerEpoch")?.parse().ok()
    }

    pub fn broker_name(&self) -> Option<&str> {
        self.get("brokerName").filter(|n| !n.is_empty())
    }

    /// The master a slave follows.
    pub fn master_addr(&self) -> Option<&str> {
        self.get("masterAddr").filter(|m| !m.is_empty())
    }

    pub fn broker_id(&self) -> Option<i64> {
        self.get("brokerId")?.parse().ok()
    }

    /// False for a master started from its config that has not yet confirmed no newer
    /// master leads (it takes no writes); true otherwise, and for brokers that do not say.
    pub fn term_confirmed(&self) -> bool {
        self.get("termConfirmed") != Some("false")
    }
}

pub async fn runtime_info(client: &RemotingClient, addr: &str) -> Result<RuntimeInfo> {
    let r = call(
        client,
        addr,
        RemotingCommand::request(RequestCode::GET_BROKER_RUNTIME_INFO),
    )
    .await?;
    let kv = KvTable::decode(&r.body).map_err(|e| Error::BadAnswer {
        addr: addr.to_string(),
        what: "runtime info",
        detail: e.to_string(),
    })?;
    Ok(RuntimeInfo(kv.table.into_iter().collect()))
}

/// A broker's commit-log max offset; `None` if it does not answer.
pub async fn max_offset(client: &RemotingClient, addr: &str) -> Option<i64> {
    runtime_info(client, addr).await.ok()?.max_offset()
}

/// The newest epoch a broker knows (GET_BROKER_EPOCH_CACHE), including one it was told of
/// when it stepped down; `None` if it does not answer.
pub async fn broker_epoch(client: &RemotingClient, addr: &str) -> Option<Epoch> {
    let r = call(
        client,
        addr,
        RemotingCommand::request(RequestCode::GET_BROKER_EPOCH_CACHE),
    )
    .await
    .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    let listed = v["epochList"]
        .as_array()?
        .iter()
        .filter_map(|e| e["epoch"].as_i64())
        .max()
        .unwrap_or(0);
    // A broker told to step down at a newer epoch refuses promotions up to it.
    let known = listed.max(v["fencedEpoch"].as_i64().unwrap_or(0));
    Some(Epoch(i32::try_from(known).unwrap_or(i32::MAX)))
}

/// `brokerPermission` at run time (UPDATE_BROKER_CONFIG): read-only while a switchover
/// catches up, read-write after.
pub async fn set_permission(client: &RemotingClient, addr: &str, perm: Perm) -> Result<()> {
    let req = RemotingCommand::request(RequestCode::UPDATE_BROKER_CONFIG)
        .with_body(format!("brokerPermission={perm}\n").into_bytes());
    call(client, addr, req).await.map(|_| ())
}

/// A promotion: the broker at `addr` leads its group from `epoch` on.
#[derive(Debug, Clone)]
pub struct Promotion {
    pub epoch: Epoch,
    /// SYNC_MASTER or ASYNC_MASTER.
    pub role: BrokerRole,
    /// The group; the broker refuses a promotion meant for another one. Empty: not checked.
    pub broker_name: String,
    /// The id its former master takes when it steps down (the operator keeps ids tied to
    /// pods); `None`: the id the promoted broker leaves.
    pub former_master_id: Option<i64>,
}

/// NOTIFY_BROKER_ROLE_CHANGED naming `addr` the master.
pub async fn promote(client: &RemotingClient, addr: &str, p: &Promotion) -> Result<()> {
    call(client, addr, promote_request(addr, p))
        .await
        .map(|_| ())
}

/// The request [`promote`] sends (for callers with their own timeout and error reporting).
pub fn promote_request(addr: &str, p: &Promotion) -> RemotingCommand {
    let header = NotifyBrokerRoleChangedRequestHeader {
        master_address: Some(addr.to_string()),
        master_epoch: Some(p.epoch),
        master_broker_id: Some(0),
        broker_role: Some(p.role),
        broker_name: Some(p.broker_name.clone()).filter(|n| !n.is_empty()),
        former_master_broker_id: p.former_master_id,
        ..Default::default()
    };
    RemotingCommand::request_with_header(RequestCode::NOTIFY_BROKER_ROLE_CHANGED, &header)
}

/// A step-down: another broker leads the group from `epoch` on.
#[derive(Debug, Clone)]
pub struct StepDown {
    /// The new master's remoting address.
    pub new_master: String,
    /// Where to follow it (its HA address); `None`: learnt from the name servers.
    pub new_master_ha: Option<String>,
    pub epoch: Epoch,
    /// The id the stepping-down master takes as a slave (> 0).
    pub broker_id: i64,
    pub broker_name: String,
}

/// NOTIFY_BROKER_ROLE_CHANGED telling the master at `addr` that another broker leads.
pub async fn step_down(client: &RemotingClient, addr: &str, s: &StepDown) -> Result<()> {
    call(client, addr, step_down_request(s)).await.map(|_| ())
}

/// The request [`step_down`] sends (a promoted broker sends it to its former master too).
pub fn step_down_request(s: &StepDown) -> RemotingCommand {
    let header = NotifyBrokerRoleChangedRequestHeader {
        master_address: Some(s.new_master.clone()),
        master_ha_address: s.new_master_ha.clone().filter(|a| !a.is_empty()),
        master_epoch: Some(s.epoch),
        master_broker_id: Some(0),
        broker_id: Some(s.broker_id),
        broker_name: Some(s.broker_name.clone()).filter(|n| !n.is_empty()),
        ..Default::default()
    };
    RemotingCommand::request_with_header(RequestCode::NOTIFY_BROKER_ROLE_CHANGED, &header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unconfirmed_master_says_so_and_older_brokers_count_as_confirmed() {
        let info = |kv: &[(&str, &str)]| {
            RuntimeInfo(
                kv.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        let waiting = info(&[("brokerRole", "SYNC_MASTER"), ("termConfirmed", "false")]);
        assert!(waiting.is_master() && !waiting.term_confirmed());
        assert!(info(&[("brokerRole", "SYNC_MASTER"), ("termConfirmed", "true")]).term_confirmed());
        assert!(info(&[("brokerRole", "ASYNC_MASTER")]).term_confirmed());
    }
}
