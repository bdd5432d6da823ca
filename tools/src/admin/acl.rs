//! `updateAclConfig`, `deleteAclConfig`, `updateGlobalWhiteAddr`, `clusterAclConfigVersion`:
//! RocketMQ's ACL admin subcommands. Changes go to every broker of a cluster (masters and
//! slaves: each keeps its own files); versions are read from the masters.

use anyhow::{bail, Result};
use rmq_remoting::header::{
    CreateAccessConfigRequestHeader, DeleteAccessConfigRequestHeader,
    GetBrokerAclConfigResponseHeader, UpdateGlobalWhiteAddrsConfigRequestHeader,
};
use rmq_remoting::{CommandHeader, RemotingCommand, RequestCode};

use super::cli::{
    BrokerOrClusterArgs, DeleteAclConfigArgs, UpdateAclConfigArgs, UpdateGlobalWhiteAddrArgs,
};
use super::client::{all_addrs, master_addrs, Admin, Failures};
use super::Out;

/// The brokers a subcommand goes to: `-b`, or the cluster's (all of them, or its masters).
async fn targets(admin: &Admin, t: &BrokerOrClusterArgs, with_slaves: bool) -> Result<Vec<String>> {
    match (&t.broker_addr, &t.cluster) {
        (Some(addr), _) => Ok(vec![addr.trim().to_string()]),
        (None, Some(c)) => {
            let info = admin.cluster_info().await?;
            if with_slaves {
                all_addrs(&info, c.trim())
            } else {
                master_addrs(&info, c.trim())
            }
        }
        (None, None) => bail!("give -b brokerAddr or -c clusterName"),
    }
}

/// Sends `req` to each target, printing `ok(addr)` for each success.
async fn each(
    admin: &Admin,
    t: &BrokerOrClusterArgs,
    req: &RemotingCommand,
    out: Out<'_>,
    ok: impl Fn(&str) -> String,
) -> Result<()> {
    let mut failures = Failures::default();
    for addr in targets(admin, t, true).await? {
        match admin.call(&addr, req).await {
            Ok(_) => writeln!(out, "{}", ok(&addr))?,
            Err(e) => failures.record(&addr, e),
        }
    }
    failures.finish()
}

pub async fn update_acl_config(admin: &Admin, a: &UpdateAclConfigArgs, out: Out<'_>) -> Result<()> {
    let header = CreateAccessConfigRequestHeader {
        access_key: a.access_key.trim().to_string(),
        secret_key: Some(a.secret_key.trim().to_string()),
        white_remote_address: a.white_remote_address.clone(),
        admin: Some(a.admin.unwrap_or(false)),
        default_topic_perm: a.default_topic_perm.clone(),
        default_group_perm: a.default_group_perm.clone(),
        topic_perms: a.topic_perms.clone(),
        group_perms: a.group_perms.clone(),
    };
    let req =
        RemotingCommand::request_with_header(RequestCode::UPDATE_AND_CREATE_ACL_CONFIG, &header);
    each(admin, &a.target, &req, out, |addr| {
        format!("create or update plain access config to {addr} success.")
    })
    .await?;
    // The account as sent, without its secret.
    writeln!(
        out,
        "PlainAccessConfig{{accessKey='{}', whiteRemoteAddress='{}', admin={}, defaultTopicPerm='{}', defaultGroupPerm='{}', topicPerms=[{}], groupPerms=[{}]}}",
        header.access_key,
        header.white_remote_address.unwrap_or_default(),
        a.admin.unwrap_or(false),
        header.default_topic_perm.unwrap_or_default(),
        header.default_group_perm.unwrap_or_default(),
        header.topic_perms.unwrap_or_default(),
        header.group_perms.unwrap_or_default(),
    )?;
    Ok(())
}

pub async fn delete_acl_config(admin: &Admin, a: &DeleteAclConfigArgs, out: Out<'_>) -> Result<()> {
    let ak = a.access_key.trim().to_string();
    let req = RemotingCommand::request_with_header(
        RequestCode::DELETE_ACL_CONFIG,
        &DeleteAccessConfigRequestHeader {
            access_key: ak.clone(),
        },
    );
    each(admin, &a.target, &req, out, |addr| {
        format!("delete plain access config account from {addr} success.")
    })
    .await?;
    writeln!(out, "account's accesskey is:{ak}")?;
    Ok(())
}

pub async fn update_global_white_addr(
    admin: &Admin,
    a: &UpdateGlobalWhiteAddrArgs,
    out: Out<'_>,
) -> Result<()> {
    let req = RemotingCommand::request_with_header(
        RequestCode::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG,
        &UpdateGlobalWhiteAddrsConfigRequestHeader {
            global_white_addrs: a.addrs.trim().to_string(),
            acl_file_full_path: a.file.clone(),
        },
    );
    each(admin, &a.target, &req, out, |addr| {
        format!("update global white remote addresses to {addr} success.")
    })
    .await
}

pub async fn cluster_acl_config_version(
    admin: &Admin,
    t: &BrokerOrClusterArgs,
    out: Out<'_>,
) -> Result<()> {
    writeln!(
        out,
        "{:<16}  {:<22}  {:<22}  {:<20}  {:<22}  {:<22}",
        "#Cluster Name",
        "#Broker Name",
        "#Broker Addr",
        "#AclFilePath",
        "#AclConfigVersionNum",
        "#AclLastUpdateTime"
    )?;
    let mut failures = Failures::default();
    for addr in targets(admin, t, false).await? {
        let req = RemotingCommand::request(RequestCode::GET_BROKER_CLUSTER_ACL_INFO);
        let r = match admin.call(&addr, &req).await {
            Ok(r) => r,
            Err(e) => {
                failures.record(&addr, e);
                continue;
            }
        };
        let h = GetBrokerAclConfigResponseHeader::from_ext_fields(&r.ext_fields)?;
        let files: serde_json::Map<String, serde_json::Value> = h
            .all_acl_file_version
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        for (path, v) in files {
            writeln!(
                out,
                "{:<16}  {:<22}  {:<22}  {:<20}  {:<22}  {:<22}",
                h.cluster_name,
                h.broker_name,
                h.broker_addr,
                path,
                v["counter"].as_i64().unwrap_or(0),
                super::java::date_time(v["timestamp"].as_i64().unwrap_or(0))
            )?;
        }
    }
    failures.finish()?;
    if t.broker_addr.is_some() {
        writeln!(out, "get broker's plain access config version success.")?;
    } else {
        writeln!(out, "get cluster's plain access config version success.")?;
    }
    Ok(())
}
