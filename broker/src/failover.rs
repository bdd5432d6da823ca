//! Promotion and step-down over the wire (RocketMQ 5's NOTIFY_BROKER_ROLE_CHANGED, 1008),
//! and the epoch cache (GET_BROKER_EPOCH_CACHE, 1007). The state itself — role, id,
//! permission, epochs — belongs to [`crate::role::Role`]; these are the requests that change
//! it and the services that start and stop with it.
//!
//! Naming this broker the master with a higher epoch promotes it: it records the new epoch at
//! its current end, takes `brokerId` 0 and the master role, starts serving writes and the HA
//! port, and re-registers. A lower or equal epoch is refused (CONTROLLER_FENCED_MASTER_EPOCH),
//! so two masters never share one. The same request naming another broker demotes a master;
//! a promoted broker sends it to its former master until that one answers, so a master cut
//! off by a partition steps down as soon as it can be reached.

use std::sync::Arc;

use rmq_remoting::header::NotifyBrokerRoleChangedRequestHeader;
use rmq_remoting::role::{BrokerRole, Epoch};
use rmq_remoting::{RemotingCommand, ResponseCode};

use crate::broker::BrokerInner;
pub use crate::role::EpochEntry;

/// GET_BROKER_EPOCH_CACHE (1007): this broker's epochs and max offset (RocketMQ 5's
/// `EpochEntryCache` shape).
pub fn epoch_cache(
    inner: &Arc<BrokerInner>,
) -> Result<RemotingCommand, rmq_remoting::RemotingError> {
    let (cluster, name) = inner
        .settings
        .broker(|b| (b.broker_cluster_name.clone(), b.broker_name.clone()));
    let id = inner.role.snapshot().broker_id;
    let max = inner.store.max_phy_offset();
    let list = inner.role.epochs().list();
    let entries: Vec<serde_json::Value> = list
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let end = list.get(i + 1).map(|n| n.start_offset).unwrap_or(max);
            serde_json::json!({ "epoch": e.epoch, "startOffset": e.start_offset, "endOffset": end })
        })
        .collect();
    let body = serde_json::json!({
        "clusterName": cluster, "brokerName": name, "brokerId": id,
        "epochList": entries, "maxOffset": max,
        // Ours: the newest epoch another broker announced (a demotion), which a promotion
        // of this broker must exceed.
        "fencedEpoch": inner.role.epochs().seen(),
    });
    Ok(RemotingCommand::success().with_body(serde_json::to_vec(&body).unwrap_or_default()))
}

/// NOTIFY_BROKER_ROLE_CHANGED (1008). Naming this broker the master with a newer epoch
/// promotes it; naming another broker, with a newer epoch, while this one is master demotes
/// it (a switchover, or a former master back from a partition). See
/// [`NotifyBrokerRoleChangedRequestHeader`] for the fields.
pub async fn role_changed(
    inner: &Arc<BrokerInner>,
    req: &RemotingCommand,
) -> Result<RemotingCommand, rmq_remoting::RemotingError> {
    let change = inner.role.change().await;
    let h: NotifyBrokerRoleChangedRequestHeader = req.decode_header()?;
    let master_addr = h.master_address.clone().unwrap_or_default();
    let epoch = h.master_epoch.unwrap_or_default();
    if let Some(group) = h
        .broker_name
        .as_deref()
        .filter(|g| !g.is_empty() && *g != inner.broker_name())
    {
        return Ok(RemotingCommand::error(
            ResponseCode::CONTROLLER_INVALID_REQUEST,
            format!(
                "this broker is in group {}, not {group}",
                inner.broker_name()
            ),
        ));
    }
    let known = inner.role.known_epoch();
    if !master_addr.is_empty() && master_addr != inner.broker_addr {
        // Another broker leads: a slave notes it (and follows it, if its term is newer than
        // the one this slave's log follows); a master steps down.
        if inner.role.is_slave() {
            inner.role.saw(epoch);
            // An admin letting a slave that refuses to follow cut what it acknowledged as a
            // master (it stays stuck otherwise).
            if h.force_truncate == Some(true) {
                inner.ha.set_force_truncate(true);
            }
            if epoch > inner.role.epochs().current() {
                // Its former master's term is over: acknowledging more of its writes would
                // let it answer SEND_OK for records the new master does not have.
                let ha = h.master_ha_address.clone().filter(|a| !a.is_empty());
                inner.role.forget_configured_master();
                inner.ha.follow_master(master_addr.clone(), ha);
                crate::namesrv::register_now(inner);
                tracing::warn!(%epoch, master = %master_addr, "a newer term leads: following its master");
            }
            return Ok(RemotingCommand::success());
        }
        if epoch <= known {
            return Ok(fenced(epoch, known));
        }
        let Some(id) = h.broker_id.filter(|id| *id > 0) else {
            return Ok(RemotingCommand::error(
                ResponseCode::CONTROLLER_INVALID_REQUEST,
                "demoting a master needs the brokerId (> 0) it is to take as a slave",
            ));
        };
        inner.role.step_down(&change, epoch, id);
        // A master still checking its term kept its HA port for later: no longer needed.
        drop(inner.ha.take_reserved_listener());
        inner
            .ha
            .set_force_truncate(h.force_truncate.unwrap_or(false));
        let ha = h.master_ha_address.clone().filter(|a| !a.is_empty());
        // Without `ha`, the name servers' answer at the next registration says where to follow.
        inner.ha.follow_master(master_addr.clone(), ha);
        crate::broker::start_slave_services(inner);
        crate::namesrv::register_now(inner);
        tracing::warn!(
            %epoch,
            master = %master_addr,
            broker_id = id,
            offset = inner.store.max_phy_offset(),
            "demoted to slave: another broker leads this group"
        );
        return Ok(RemotingCommand::success());
    }
    if epoch <= known {
        return Ok(fenced(epoch, known));
    }
    // A master started from a config that has not confirmed its term may be promoted: the
    // new epoch is the proof it waits for (an admin's way out when no name server answers).
    let snapshot = inner.role.snapshot();
    if !snapshot.is_slave() && !snapshot.unconfirmed_master() {
        return Ok(RemotingCommand::error(
            ResponseCode::CONTROLLER_INVALID_REQUEST,
            "this broker is a master already",
        ));
    }
    let role = h
        .broker_role
        .filter(|r| r.is_master())
        .unwrap_or(BrokerRole::AsyncMaster);
    let at = inner.store.max_phy_offset();
    let former_id = match inner.role.promote(&change, epoch, at, role) {
        Ok(id) => id,
        Err(crate::role::Refused::Fenced(current)) => return Ok(fenced(epoch, current)),
        Err(crate::role::Refused::NotDurable(e)) => {
            return Ok(RemotingCommand::error(
                ResponseCode::SYSTEM_ERROR,
                format!("not promoted: the epoch file cannot be written: {e}"),
            ))
        }
    };
    let former_master = inner.ha.forget_master();
    if let Err(e) = crate::broker::start_master_services(inner).await {
        tracing::error!(error = %e, "promoted, but master services did not all start");
    }
    crate::namesrv::register_now(inner);
    tracing::warn!(%epoch, offset = at, %role, "promoted to master");
    // The former master's id as a slave: what the caller says (the operator keeps ids tied
    // to pods), else the one this broker leaves.
    let its_id = h
        .former_master_broker_id
        .filter(|id| *id > 0)
        .unwrap_or(former_id);
    if let Some(former) = former_master.filter(|f| !f.is_empty() && *f != inner.broker_addr) {
        let task = fence_former_master(inner.clone(), former, epoch, its_id);
        inner.tasks.spawn(task);
    }
    Ok(RemotingCommand::success())
}

fn fenced(epoch: Epoch, current: Epoch) -> RemotingCommand {
    RemotingCommand::error(
        ResponseCode::CONTROLLER_FENCED_MASTER_EPOCH,
        format!("epoch {epoch} is not newer than this group's epoch {current}"),
    )
}

/// After a promotion: tells the former master, whenever it can be reached again (it may be
/// alive behind a partition, still taking writes), that this broker leads from `epoch` on, so
/// it steps down instead of competing. Ends once it answers, or when a newer epoch begins.
pub(crate) async fn fence_former_master(
    inner: Arc<BrokerInner>,
    former: String,
    epoch: Epoch,
    its_id: i64,
) {
    let stop = inner.role.term();
    let give_up = tokio::time::Instant::now() + std::time::Duration::from_secs(3600);
    while tokio::time::Instant::now() < give_up && inner.role.snapshot().epoch == epoch {
        // Read one at a time: a settings guard held while taking another could deadlock
        // behind a queued writer.
        let ha_addr = inner.settings.broker(|b| b.ha_server_addr());
        let broker_name = inner.broker_name();
        let header = NotifyBrokerRoleChangedRequestHeader {
            master_address: Some(inner.broker_addr.clone()),
            master_ha_address: Some(ha_addr),
            master_epoch: Some(epoch),
            master_broker_id: Some(0),
            broker_id: Some(its_id),
            broker_name: Some(broker_name),
            ..Default::default()
        };
        let req = RemotingCommand::request_with_header(
            rmq_remoting::RequestCode::NOTIFY_BROKER_ROLE_CHANGED,
            &header,
        );
        let timeout = std::time::Duration::from_secs(3);
        match inner.namesrv.invoke(&former, req, timeout).await {
            Ok(r) if r.code == ResponseCode::SUCCESS => {
                tracing::info!(%former, %epoch, "the former master follows this broker now");
                return;
            }
            Ok(r) => {
                tracing::warn!(%former, code = r.code, remark = ?r.remark, "the former master refused to step down");
                if r.code != ResponseCode::SYSTEM_ERROR {
                    return;
                }
            }
            Err(e) => tracing::debug!(%former, error = %e, "former master not reachable yet"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
        }
    }
}
