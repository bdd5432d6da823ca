//! Moving a broker group's master from a live broker to a slave, losing and cutting nothing:
//! the master is made read-only (`brokerPermission=4`, so clients send elsewhere), the target
//! catches up to the master's last byte, is promoted with the next epoch, and the former
//! master is told to step down (which also makes it writable again for the day it leads). A
//! switch called off gives the master its permission back.

use std::time::Duration;

use rmq_remoting::role::{BrokerRole, Epoch, Perm};
use rmq_remoting::RemotingClient;

use crate::broker::{
    broker_epoch, max_offset, promote, runtime_info, set_permission, step_down, Promotion, StepDown,
};
use crate::{Error, Result};

/// A target further behind than this is not switched to yet: the master would be read-only
/// for as long as it takes to catch up.
pub const MAX_SWITCH_LAG: i64 = 64 * 1024 * 1024;

/// What a switchover needs to know.
#[derive(Debug, Clone)]
pub struct Switch {
    /// The live master's remoting address.
    pub master: String,
    /// The slave to promote.
    pub target: String,
    /// The group (`brokerName`); the brokers refuse a request for another group.
    pub broker_name: String,
    /// The promoted broker's role: SYNC_MASTER or ASYNC_MASTER.
    pub role: BrokerRole,
    /// The id the former master takes as a slave.
    pub former_master_id: i64,
    /// `brokerPermission` given back to the master if the switch is called off.
    pub permission: Perm,
    /// How long the target may take to catch up before the switch is called off.
    pub catch_up: Duration,
    /// The switch takes an epoch above this and above anything the two brokers know.
    pub epoch_floor: Epoch,
}

/// A switchover that happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switched {
    pub epoch: Epoch,
    /// The former master confirmed it follows now. If not, it stays read-only (no second
    /// writer) until the new master's own notice reaches it, which also makes it writable
    /// again for the day it leads.
    pub former_stepped_down: bool,
}

/// Gives the master its permission back after a switch was called off, trying a few times.
async fn restore(client: &RemotingClient, s: &Switch) -> Result<()> {
    let mut tries = 1;
    loop {
        match set_permission(client, &s.master, s.permission).await {
            Ok(()) => return Ok(()),
            Err(e) if tries == 3 => return Err(e),
            Err(_) => tries += 1,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Calls the switch off for `reason`, giving the master its permission back.
async fn called_off(client: &RemotingClient, s: &Switch, reason: Error) -> Error {
    Error::CalledOff {
        reason: Box::new(reason),
        still_read_only: restore(client, s).await.err().map(Box::new),
    }
}

/// Runs a switchover, or says why it was called off (the master then has its permission
/// back and stays master).
pub async fn switchover(client: &RemotingClient, s: &Switch) -> Result<Switched> {
    // Not while the target is far behind: that would be a long read-only window.
    match max_offset(client, &s.master)
        .await
        .zip(max_offset(client, &s.target).await)
    {
        Some((m, t)) if m - t <= MAX_SWITCH_LAG => {}
        Some(_) => {
            return Err(Error::TargetBehind {
                target: s.target.clone(),
                max_mib: MAX_SWITCH_LAG >> 20,
            })
        }
        None => return Err(Error::OffsetsUnknown),
    }
    if let Err(e) = set_permission(client, &s.master, Perm::READ_ONLY).await {
        // It may have become read-only with sends still in flight: give writes back.
        return Err(called_off(client, s, Error::ReadOnly(Box::new(e))).await);
    }
    let deadline = tokio::time::Instant::now() + s.catch_up;
    loop {
        let offsets = max_offset(client, &s.master)
            .await
            .zip(max_offset(client, &s.target).await);
        if offsets.is_some_and(|(m, t)| t >= m) {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            let lag = offsets
                .map(|(m, t)| format!("{} bytes behind", m - t))
                .unwrap_or_else(|| "offsets unknown".into());
            let reason = Error::CatchUp {
                target: s.target.clone(),
                within: s.catch_up,
                lag,
            };
            return Err(called_off(client, s, reason).await);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut epoch = s.epoch_floor.max(Epoch(1));
    for a in [&s.master, &s.target] {
        if let Some(e) = broker_epoch(client, a).await {
            epoch = epoch.max(e);
        }
    }
    let epoch = epoch.next();
    let promotion = Promotion {
        epoch,
        role: s.role,
        broker_name: s.broker_name.clone(),
        former_master_id: Some(s.former_master_id),
    };
    if let Err(e) = promote(client, &s.target, &promotion).await {
        // The promotion may have happened with only its answer lost: ask before giving
        // writes back to the master.
        let leads = runtime_info(client, &s.target)
            .await
            .is_ok_and(|i| i.is_master());
        if !leads {
            let reason = Error::Promote {
                target: s.target.clone(),
                source: Box::new(e),
            };
            return Err(called_off(client, s, reason).await);
        }
    }
    // Step the former master down now rather than when the new master's own notice reaches it.
    let notice = StepDown {
        new_master: s.target.clone(),
        new_master_ha: None,
        epoch,
        broker_id: s.former_master_id,
        broker_name: s.broker_name.clone(),
    };
    if let Err(e) = step_down(client, &s.master, &notice).await {
        tracing::warn!(error = %e, "the former master did not step down yet; the new master keeps telling it");
    }
    let former_stepped_down = runtime_info(client, &s.master)
        .await
        .is_ok_and(|i| i.is_slave());
    Ok(Switched {
        epoch,
        former_stepped_down,
    })
}
