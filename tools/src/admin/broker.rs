//! `brokerStatus`, `getBrokerConfig`, `updateBrokerConfig`.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use rmq_remoting::config::parse_properties;
use rmq_remoting::protocol::route::MASTER_ID;
use rmq_remoting::protocol::topic::perm;
use rmq_remoting::{RemotingCommand, RequestCode, ResponseCode};

use super::cli::{BrokerTargetArgs, UpdateBrokerConfigArgs};
use super::client::{all_addrs, cluster_brokers, master_addrs, CodeError, Failures};
use super::{Admin, Out};

/// `PermName.isValid`.
pub fn perm_is_valid(p: i32) -> bool {
    (0..perm::PRIORITY).contains(&p)
}

pub async fn broker_status(admin: &Admin, args: &BrokerTargetArgs, out: Out<'_>) -> Result<()> {
    if let Some(addr) = &args.broker_addr {
        let table = admin.broker_runtime(addr.trim()).await?.table;
        for (k, v) in table.iter().collect::<BTreeMap<_, _>>() {
            writeln!(out, "{k:<32}: {v}")?;
        }
        return Ok(());
    }
    let cluster = args.cluster.as_deref().unwrap_or_default().trim();
    let addrs = all_addrs(&admin.cluster_info().await?, cluster)?;
    let mut failures = Failures::default();
    for addr in &addrs {
        match admin.broker_runtime(addr).await {
            Ok(kv) => {
                for (k, v) in kv.table.iter().collect::<BTreeMap<_, _>>() {
                    writeln!(out, "{addr:<24} {k:<32}: {v}")?;
                }
            }
            Err(e) => failures.record(addr, e),
        }
    }
    failures.finish()
}

/// GET_BROKER_CONFIG of `addr`, as sorted properties.
async fn broker_config(admin: &Admin, addr: &str) -> Result<BTreeMap<String, String>> {
    let resp = admin
        .call(
            addr,
            &RemotingCommand::request(RequestCode::GET_BROKER_CONFIG),
        )
        .await?;
    let text = String::from_utf8_lossy(&resp.body);
    parse_properties(&text).map_err(|e| anyhow!("{addr}: {e}"))
}

fn print_properties(out: Out<'_>, props: &BTreeMap<String, String>) -> Result<()> {
    for (k, v) in props {
        writeln!(out, "{k:<50}=  {v}")?;
    }
    writeln!(out)?;
    Ok(())
}

pub async fn get_broker_config(admin: &Admin, args: &BrokerTargetArgs, out: Out<'_>) -> Result<()> {
    if let Some(addr) = &args.broker_addr {
        let addr = addr.trim();
        writeln!(out, "============{addr}============")?;
        let props = broker_config(admin, addr).await?;
        return print_properties(out, &props);
    }
    let cluster = args.cluster.as_deref().unwrap_or_default().trim();
    let info = admin.cluster_info().await?;
    let mut failures = Failures::default();
    for bd in cluster_brokers(&info, cluster)? {
        let master = bd.broker_addrs.get(&MASTER_ID);
        let targets: Vec<(String, &String)> = match master {
            Some(m) => std::iter::once((format!("============Master: {m}============"), m))
                .chain(
                    bd.broker_addrs
                        .iter()
                        .filter(|(id, _)| **id != MASTER_ID)
                        .map(|(_, s)| {
                            (
                                format!("============My Master: {m}=====Slave: {s}============"),
                                s,
                            )
                        }),
                )
                .collect(),
            None => {
                writeln!(out, "============Master: NO_MASTER============")?;
                bd.broker_addrs
                    .values()
                    .map(|s| {
                        (
                            format!("============My Master: NO_MASTER=====Slave: {s}============"),
                            s,
                        )
                    })
                    .collect()
            }
        };
        for (title, addr) in targets {
            writeln!(out, "{title}")?;
            match broker_config(admin, addr).await {
                Ok(props) => print_properties(out, &props)?,
                Err(e) => failures.record(addr, e),
            }
        }
    }
    failures.finish()
}

pub async fn update_broker_config(
    admin: &Admin,
    args: &UpdateBrokerConfigArgs,
    out: Out<'_>,
) -> Result<()> {
    let key = args.key.trim();
    let value = args.value.trim();
    if key == "brokerPermission" {
        let valid = value.parse::<i32>().map(perm_is_valid).unwrap_or(false);
        if !valid {
            return Err(CodeError::new(
                None,
                ResponseCode::NO_PERMISSION,
                format!("brokerPermission value: {value} is invalid."),
            )
            .into());
        }
    }
    let req = RemotingCommand::request(RequestCode::UPDATE_BROKER_CONFIG)
        .with_body(format!("{key}={value}\n").into_bytes());
    let cluster = match (&args.broker_addr, &args.cluster) {
        (Some(addr), _) => {
            let addr = addr.trim();
            admin.call(addr, &req).await?;
            writeln!(out, "update broker config success, {addr}")?;
            return Ok(());
        }
        (None, Some(cluster)) => cluster.trim(),
        (None, None) => bail!("give -b brokerAddr or -c clusterName"),
    };
    let info = admin.cluster_info().await?;
    let addrs = if args.all_brokers {
        all_addrs(&info, cluster)?
    } else {
        master_addrs(&info, cluster)?
    };
    let mut failures = Failures::default();
    for addr in &addrs {
        match admin.call(addr, &req).await {
            Ok(_) => writeln!(out, "update broker config success, {addr}")?,
            Err(e) => failures.record(addr, e),
        }
    }
    failures.finish()
}

/// `haStatus`: each broker's role and commit-log offset; for a master, every connected slave
/// with the offset it acknowledged and how far behind it is; for a slave, its master.
pub async fn ha_status(admin: &Admin, args: &BrokerTargetArgs, out: Out<'_>) -> Result<()> {
    let addrs = match &args.broker_addr {
        Some(a) => vec![a.trim().to_string()],
        None => {
            let cluster = args.cluster.as_deref().unwrap_or_default().trim();
            all_addrs(&admin.cluster_info().await?, cluster)?
        }
    };
    let mut failures = Failures::default();
    for addr in &addrs {
        let kv = match admin.broker_runtime(addr).await {
            Ok(kv) => kv.table,
            Err(e) => {
                failures.record(addr, e);
                continue;
            }
        };
        let get = |k: &str| kv.get(k).cloned().unwrap_or_default();
        writeln!(
            out,
            "{addr}  role {}  epoch {}  commitLogMaxOffset {}",
            get("brokerRole"),
            get("brokerEpoch"),
            get("commitLogMaxOffset")
        )?;
        if let Some(master) = kv.get("haMasterAddress") {
            writeln!(out, "  following master {master}")?;
        }
        let slaves = get("haSlaves");
        if !slaves.is_empty() {
            writeln!(
                out,
                "  {:<24} {:>20} {:>16} {:>14}",
                "#Slave", "#AckOffset", "#LagBytes", "#LastReportMs"
            )?;
            for s in slaves.split(',') {
                let parts: Vec<&str> = s.rsplitn(4, ':').collect();
                if let [since, lag, acked, slave] = parts[..] {
                    writeln!(out, "  {slave:<24} {acked:>20} {lag:>16} {since:>14}")?;
                }
            }
        } else if get("brokerRole").to_ascii_uppercase().ends_with("MASTER") {
            writeln!(out, "  no slave connected")?;
        }
    }
    failures.finish()
}

/// `promote`: makes a slave its group's master with the next epoch. While the master is alive
/// this is a switchover that cuts nothing (the master read-only, the slave caught up, then
/// promoted, and the master stepping down to follow it); with the master gone (or `--force`),
/// NOTIFY_BROKER_ROLE_CHANGED at once, with the epoch after the highest the slave knows.
pub async fn promote(admin: &Admin, args: &super::cli::PromoteArgs, out: Out<'_>) -> Result<()> {
    use rmq_admin::broker::{broker_epoch, max_offset, promote_request, runtime_info, Promotion};
    use rmq_admin::switchover::{switchover, Switch};
    use rmq_remoting::role::{Epoch, Perm};
    let addr = args.broker_addr.trim();
    let role = args.role;
    if !role.is_master() {
        anyhow::bail!("role must be SYNC_MASTER or ASYNC_MASTER, not {role}");
    }
    let info = runtime_info(admin.client(), addr).await?;
    let is_slave = info.is_slave();
    let master = info.master_addr().map(String::from);
    let mut live_master = None;
    if let (Some(m), true) = (&master, is_slave) {
        // A slow master is not a dead one: ask three times before promoting past it.
        for _ in 0..3 {
            if max_offset(admin.client(), m).await.is_some() {
                live_master = Some(m.clone());
                break;
            }
        }
    }
    if is_slave && master.is_none() && info.get("haMasterAddress").is_some() && !args.force {
        // It replicates from a master whose remoting address it does not know: that master
        // could not be switched over, nor told to step down afterwards.
        anyhow::bail!(
            "{addr} is following a master whose address it has not learned from the name servers; \
             cannot check that master is gone (use --force to promote anyway)"
        );
    }
    if let (Some(master), false) = (&live_master, args.force) {
        let id = info.broker_id().filter(|i| *i > 0).unwrap_or(1);
        writeln!(
            out,
            "{master} is alive: switching over (read-only, catch-up, promote, step down)"
        )?;
        let switch = Switch {
            master: master.clone(),
            target: addr.to_string(),
            broker_name: info.broker_name().unwrap_or_default().to_string(),
            role,
            former_master_id: id,
            permission: Perm::READ_WRITE,
            catch_up: std::time::Duration::from_secs(args.catch_up_seconds),
            epoch_floor: args
                .epoch
                .map(|e| Epoch(e.saturating_sub(1)))
                .unwrap_or(Epoch::NONE),
        };
        let done = switchover(admin.client(), &switch).await?;
        let epoch = done.epoch;
        if done.former_stepped_down {
            writeln!(
                out,
                "promoted {addr} to {role}, epoch {epoch}; {master} follows it as broker {id}"
            )?;
        } else {
            writeln!(
                out,
                "promoted {addr} to {role}, epoch {epoch}; {master} has not confirmed it follows \
                 yet and stays read-only until it does (the new master keeps telling it)"
            )?;
        }
        return Ok(());
    }
    let epoch = match args.epoch {
        Some(e) => Epoch(e),
        None => broker_epoch(admin.client(), addr)
            .await
            .ok_or_else(|| anyhow::anyhow!("{addr} does not tell its epoch"))?
            .next(),
    };
    let promotion = Promotion {
        epoch,
        role,
        broker_name: String::new(),
        former_master_id: None,
    };
    // With mqadmin's --timeout and its error report, as every other subcommand.
    admin.call(addr, &promote_request(addr, &promotion)).await?;
    writeln!(out, "promoted {addr} to {role}, epoch {epoch}")?;
    Ok(())
}
