//! The ACL admin requests (codes 50–53): accounts and global white lists written to the ACL
//! files, and their versions. Only with `aclEnable=true`; the gate has already checked that
//! the sender is an admin.

use std::collections::BTreeMap;
use std::sync::Arc;

use rmq_acl::code;
use rmq_acl::edit::AccountUpdate;
use rmq_remoting::header::{
    CreateAccessConfigRequestHeader, DeleteAccessConfigRequestHeader,
    GetBrokerAclConfigResponseHeader, UpdateGlobalWhiteAddrsConfigRequestHeader,
};
use rmq_remoting::{RemotingCommand, ResponseCode};

use super::{Refusal, Response};
use crate::broker::BrokerInner;

/// The ACL, or the answer that there is none.
fn acl(inner: &BrokerInner, failed: i32) -> Result<&Arc<rmq_acl::PlainAcl>, Refusal> {
    inner
        .gate
        .acl()
        .ok_or_else(|| Refusal::new(failed, "the broker does not have aclEnable=true"))
}

fn list(s: Option<String>) -> Option<Vec<String>> {
    s.map(|s| {
        s.split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect()
    })
}

pub fn update_account(inner: &Arc<BrokerInner>, req: &RemotingCommand) -> Response {
    let h: CreateAccessConfigRequestHeader = req.decode_header()?;
    let acl = match acl(inner, code::UPDATE_AND_CREATE_ACL_CONFIG_FAILED) {
        Ok(a) => a,
        Err(r) => return Ok(r.into()),
    };
    let ak = h.access_key.clone();
    let update = AccountUpdate {
        access_key: h.access_key,
        secret_key: h.secret_key.unwrap_or_default(),
        white_remote_address: h.white_remote_address,
        admin: h.admin.unwrap_or(false),
        default_topic_perm: h.default_topic_perm,
        default_group_perm: h.default_group_perm,
        topic_perms: list(h.topic_perms),
        group_perms: list(h.group_perms),
    };
    Ok(match acl.update_account(update) {
        Ok(()) => {
            tracing::info!(access_key = %ak, "ACL account created or updated");
            RemotingCommand::success()
        }
        Err(e) => RemotingCommand::error(code::UPDATE_AND_CREATE_ACL_CONFIG_FAILED, e.0),
    })
}

pub fn delete_account(inner: &Arc<BrokerInner>, req: &RemotingCommand) -> Response {
    let h: DeleteAccessConfigRequestHeader = req.decode_header()?;
    let acl = match acl(inner, code::DELETE_ACL_CONFIG_FAILED) {
        Ok(a) => a,
        Err(r) => return Ok(r.into()),
    };
    Ok(match acl.delete_account(&h.access_key) {
        Ok(()) => {
            tracing::info!(access_key = %h.access_key, "ACL account deleted");
            RemotingCommand::success()
        }
        Err(e) => RemotingCommand::error(code::DELETE_ACL_CONFIG_FAILED, e.0),
    })
}

pub fn update_global_white(inner: &Arc<BrokerInner>, req: &RemotingCommand) -> Response {
    let h: UpdateGlobalWhiteAddrsConfigRequestHeader = req.decode_header()?;
    let acl = match acl(inner, code::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG_FAILED) {
        Ok(a) => a,
        Err(r) => return Ok(r.into()),
    };
    let addrs = list(Some(h.global_white_addrs)).unwrap_or_default();
    let file = h
        .acl_file_full_path
        .filter(|p| !p.trim().is_empty())
        .map(std::path::PathBuf::from);
    Ok(match acl.update_global_white(&addrs, file.as_deref()) {
        Ok(()) => RemotingCommand::success(),
        Err(e) => RemotingCommand::error(
            code::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG_FAILED,
            format!("The globalWhiteAddresses[{addrs:?}] has been updated failed: {e}"),
        ),
    })
}

pub fn versions(inner: &Arc<BrokerInner>) -> Response {
    let Some(acl) = inner.gate.acl() else {
        return Ok(RemotingCommand::error(
            ResponseCode::SYSTEM_ERROR,
            "the broker does not have aclEnable=true",
        ));
    };
    let (main, all) = acl.versions();
    let json = |v: &rmq_acl::plain::DataVersion| serde_json::json!({ "counter": v.counter, "timestamp": v.timestamp, "stateVersion": 0 });
    let all: BTreeMap<String, serde_json::Value> = all
        .iter()
        .map(|(p, v)| (p.display().to_string(), json(v)))
        .collect();
    Ok(
        RemotingCommand::success().with_header(&GetBrokerAclConfigResponseHeader {
            version: json(&main).to_string(),
            all_acl_file_version: Some(
                serde_json::Value::from(serde_json::Map::from_iter(all)).to_string(),
            ),
            broker_name: inner.broker_name(),
            broker_addr: inner.broker_addr.clone(),
            cluster_name: inner.cluster_name(),
        }),
    )
}
