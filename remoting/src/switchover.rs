//! Moving a broker group's master over the wire, shared by `mqadmin promote` and the operator.
//!
//! A **switchover** (the master alive) loses and cuts nothing: the master is made read-only
//! (`brokerPermission=4`, so clients are told to go elsewhere), the target slave catches up to
//! the master's last byte, is promoted with the next epoch (NOTIFY_BROKER_ROLE_CHANGED), and
//! the former master is told to step down (the same request naming the new master), which also
//! makes it writable again for the day it leads. A switch called off gives the master its
//! permission back.

use std::time::Duration;

use crate::code::RequestCode;
use crate::protocol::KvTable;
use crate::{JsonBody, RemotingClient, RemotingCommand};

/// One request to a broker; short, so a dead address does not hold the caller long.
const CALL: Duration = Duration::from_secs(3);

/// What a switchover needs to know.
#[derive(Debug, Clone)]
pub struct Switch {
    /// The live master's remoting address.
    pub master: String,
    /// The slave to promote.
    pub target: String,
    /// The group (`brokerName`); the brokers refuse a request for another group.
    pub broker_name: String,
    /// The promoted broker's role: `SYNC_MASTER` or `ASYNC_MASTER`.
    pub role: String,
    /// The id the former master takes as a slave.
    pub former_master_id: i64,
    /// `brokerPermission` given back to the former master afterwards (normally 6).
    pub permission: String,
    /// How long the target may take to catch up before the switch is called off.
    pub catch_up: Duration,
    /// The switch takes an epoch above this and above anything the two brokers know.
    pub epoch_floor: i64,
}

async fn call(
    client: &RemotingClient,
    addr: &str,
    req: RemotingCommand,
) -> Result<RemotingCommand, String> {
    client
        .invoke(addr, req, CALL)
        .await
        .and_then(|r| r.ensure_success())
        .map_err(|e| format!("{addr}: {e}"))
}

/// A broker's runtime info (GET_BROKER_RUNTIME_INFO) as key/value pairs.
pub async fn runtime_info(
    client: &RemotingClient,
    addr: &str,
) -> Result<std::collections::HashMap<String, String>, String> {
    let r = call(
        client,
        addr,
        RemotingCommand::request(RequestCode::GET_BROKER_RUNTIME_INFO),
    )
    .await?;
    let kv = KvTable::decode(&r.body).map_err(|e| format!("{addr}: runtime info: {e}"))?;
    Ok(kv.table.into_iter().collect())
}

/// A broker's commit-log max offset; `None` if it does not answer.
pub async fn max_offset(client: &RemotingClient, addr: &str) -> Option<i64> {
    runtime_info(client, addr)
        .await
        .ok()?
        .get("commitLogMaxOffset")?
        .parse()
        .ok()
}

/// The newest epoch a broker knows (GET_BROKER_EPOCH_CACHE); `None` if it does not answer.
pub async fn broker_epoch(client: &RemotingClient, addr: &str) -> Option<i64> {
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
    Some(listed.max(v["fencedEpoch"].as_i64().unwrap_or(0)))
}

/// NOTIFY_BROKER_ROLE_CHANGED with these fields.
pub fn role_change(fields: &[(&str, String)]) -> RemotingCommand {
    let mut req = RemotingCommand::request(RequestCode::NOTIFY_BROKER_ROLE_CHANGED);
    for (k, v) in fields {
        req.ext_fields.insert((*k).into(), v.clone());
    }
    req
}

/// Promotes `addr` to master of `epoch` (`former_master_id`: the id its former master takes
/// when it steps down).
pub async fn promote(
    client: &RemotingClient,
    addr: &str,
    epoch: i64,
    role: &str,
    broker_name: &str,
    former_master_id: Option<i64>,
) -> Result<(), String> {
    let mut fields = vec![
        ("masterAddress", addr.to_string()),
        ("masterEpoch", epoch.to_string()),
        ("masterBrokerId", "0".to_string()),
        ("brokerRole", role.to_string()),
    ];
    if !broker_name.is_empty() {
        fields.push(("brokerName", broker_name.to_string()));
    }
    if let Some(id) = former_master_id {
        fields.push(("formerMasterBrokerId", id.to_string()));
    }
    call(client, addr, role_change(&fields)).await.map(|_| ())
}

/// `brokerPermission` at run time (UPDATE_BROKER_CONFIG): 4 read-only, 6 read-write.
pub async fn set_permission(client: &RemotingClient, addr: &str, perm: &str) -> Result<(), String> {
    let req = RemotingCommand::request(RequestCode::UPDATE_BROKER_CONFIG)
        .with_body(format!("brokerPermission={perm}\n").into_bytes());
    call(client, addr, req).await.map(|_| ())
}

/// A target further behind than this is not switched to yet: the master would be read-only
/// for as long as it takes to catch up.
pub const MAX_SWITCH_LAG: i64 = 64 * 1024 * 1024;

/// A switchover that happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switched {
    pub epoch: i64,
    /// The former master confirmed it follows now. If not, it stays read-only (no second
    /// writer) until the new master's own notice reaches it, which also makes it writable
    /// again for the day it leads.
    pub former_stepped_down: bool,
}

/// Gives the master its permission back after a switch was called off, trying a few times.
async fn restore(client: &RemotingClient, s: &Switch) -> Result<(), String> {
    let mut last = String::new();
    for _ in 0..3 {
        match set_permission(client, &s.master, &s.permission).await {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!(
        "and the master stays read-only (brokerPermission=4): {last}"
    ))
}

/// Runs a switchover, or says why it was called off (the master then has its permission
/// back and stays master).
pub async fn switchover(client: &RemotingClient, s: &Switch) -> Result<Switched, String> {
    let offsets = |m: Option<i64>, t: Option<i64>| m.zip(t);
    // Not while the target is far behind: that would be a long read-only window.
    match offsets(
        max_offset(client, &s.master).await,
        max_offset(client, &s.target).await,
    ) {
        Some((m, t)) if m - t <= MAX_SWITCH_LAG => {}
        Some(_) => {
            return Err(format!(
                "{} is more than {} MiB behind the master; the switch waits for it to catch up",
                s.target,
                MAX_SWITCH_LAG >> 20
            ))
        }
        None => return Err("the master or the target does not report its offset".into()),
    }
    set_permission(client, &s.master, "4")
        .await
        .map_err(|e| format!("cannot make the master read-only: {e}"))?;
    let called_off = |why: String| async move {
        match restore(client, s).await {
            Ok(()) => why,
            Err(e) => format!("{why} {e}"),
        }
    };
    let deadline = tokio::time::Instant::now() + s.catch_up;
    loop {
        let (m, t) = (
            max_offset(client, &s.master).await,
            max_offset(client, &s.target).await,
        );
        if let Some((m, t)) = offsets(m, t) {
            if t >= m {
                break;
            }
        }
        if tokio::time::Instant::now() > deadline {
            let lag = offsets(m, t)
                .map(|(m, t)| format!("{} bytes behind", m - t))
                .unwrap_or_else(|| "offsets unknown".into());
            return Err(called_off(format!(
                "{} did not catch up with the master within {:?} ({lag})",
                s.target, s.catch_up
            ))
            .await);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut epoch = s.epoch_floor.max(1);
    for a in [&s.master, &s.target] {
        if let Some(e) = broker_epoch(client, a).await {
            epoch = epoch.max(e);
        }
    }
    let epoch = epoch + 1;
    if let Err(e) = promote(
        client,
        &s.target,
        epoch,
        &s.role,
        &s.broker_name,
        Some(s.former_master_id),
    )
    .await
    {
        // The promotion may have happened with only its answer lost: ask before giving
        // writes back to the master.
        let leads = runtime_info(client, &s.target).await.is_ok_and(|i| {
            i.get("brokerRole")
                .is_some_and(|r| !r.eq_ignore_ascii_case("SLAVE"))
        });
        if !leads {
            return Err(called_off(format!("promoting {} failed: {e}", s.target)).await);
        }
    }
    // Step the former master down now rather than when the new master's own notice reaches it.
    let mut fields = vec![
        ("masterAddress", s.target.clone()),
        ("masterEpoch", epoch.to_string()),
        ("masterBrokerId", "0".to_string()),
        ("brokerId", s.former_master_id.to_string()),
    ];
    if !s.broker_name.is_empty() {
        fields.push(("brokerName", s.broker_name.clone()));
    }
    if let Err(e) = call(client, &s.master, role_change(&fields)).await {
        tracing::warn!(error = %e, "the former master did not step down yet; the new master keeps telling it");
    }
    let former_stepped_down = runtime_info(client, &s.master).await.is_ok_and(|i| {
        i.get("brokerRole")
            .is_some_and(|r| r.eq_ignore_ascii_case("SLAVE"))
    });
    Ok(Switched {
        epoch,
        former_stepped_down,
    })
}
