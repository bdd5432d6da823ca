//! Name server subcommands: KV config, write permission, name server config.

use anyhow::{anyhow, Result};
use rmq_remoting::config::parse_properties;
use rmq_remoting::header::{
    AddWritePermOfBrokerRequestHeader, AddWritePermOfBrokerResponseHeader,
    DeleteKvConfigRequestHeader, WipeWritePermOfBrokerRequestHeader,
    WipeWritePermOfBrokerResponseHeader,
};
use rmq_remoting::{RemotingCommand, RequestCode};

use super::cli::{BrokerNameArgs, DeleteKvConfigArgs, KeyValueArgs, UpdateKvConfigArgs};
use super::client::Failures;
use super::{Admin, Out};

pub async fn update_kv_config(
    admin: &Admin,
    args: &UpdateKvConfigArgs,
    out: Out<'_>,
) -> Result<()> {
    admin
        .put_kv(args.namespace.trim(), args.key.trim(), args.value.trim())
        .await?;
    writeln!(out, "create or update kv config to namespace success.")?;
    Ok(())
}

pub async fn delete_kv_config(
    admin: &Admin,
    args: &DeleteKvConfigArgs,
    out: Out<'_>,
) -> Result<()> {
    let header = DeleteKvConfigRequestHeader {
        namespace: args.namespace.trim().into(),
        key: args.key.trim().into(),
    };
    let req = RemotingCommand::request_with_header(RequestCode::DELETE_KV_CONFIG, &header);
    admin.call_every_namesrv(&req).await?;
    writeln!(out, "delete kv config from namespace success.")?;
    Ok(())
}

/// `wipeWritePerm` (`add` false) and `addWritePerm` (`add` true) on every name server.
pub async fn write_perm(
    admin: &Admin,
    args: &BrokerNameArgs,
    add: bool,
    out: Out<'_>,
) -> Result<()> {
    let broker = args.broker_name.trim();
    let (req, verb) = if add {
        let h = AddWritePermOfBrokerRequestHeader {
            broker_name: broker.into(),
        };
        (
            RemotingCommand::request_with_header(RequestCode::ADD_WRITE_PERM_OF_BROKER, &h),
            "add",
        )
    } else {
        let h = WipeWritePermOfBrokerRequestHeader {
            broker_name: broker.into(),
        };
        (
            RemotingCommand::request_with_header(RequestCode::WIPE_WRITE_PERM_OF_BROKER, &h),
            "wipe",
        )
    };
    let mut failures = Failures::default();
    for ns in admin.namesrv()? {
        let count = admin.call(ns, &req).await.and_then(|resp| {
            Ok(if add {
                resp.decode_header::<AddWritePermOfBrokerResponseHeader>()?
                    .add_topic_count
            } else {
                resp.decode_header::<WipeWritePermOfBrokerResponseHeader>()?
                    .wipe_topic_count
            })
        });
        match count {
            Ok(n) => writeln!(
                out,
                "{verb} write perm of broker[{broker}] in name server[{ns}] OK, {n}"
            )?,
            Err(e) => {
                writeln!(
                    out,
                    "{verb} write perm of broker[{broker}] in name server[{ns}] Failed"
                )?;
                failures.record(ns, e);
            }
        }
    }
    failures.finish()
}

pub async fn get_namesrv_config(admin: &Admin, out: Out<'_>) -> Result<()> {
    let req = RemotingCommand::request(RequestCode::GET_NAMESRV_CONFIG);
    for ns in admin.namesrv()? {
        let resp = admin.call(ns, &req).await?;
        let props = parse_properties(&String::from_utf8_lossy(&resp.body))
            .map_err(|e| anyhow!("{ns}: {e}"))?;
        writeln!(out, "============{ns}============")?;
        for (k, v) in props {
            writeln!(out, "{k:<50}=  {v}")?;
        }
    }
    Ok(())
}

pub async fn update_namesrv_config(admin: &Admin, args: &KeyValueArgs, out: Out<'_>) -> Result<()> {
    let (key, value) = (args.key.trim(), args.value.trim());
    let req = RemotingCommand::request(RequestCode::UPDATE_NAMESRV_CONFIG)
        .with_body(format!("{key}={value}\n").into_bytes());
    admin.call_every_namesrv(&req).await?;
    writeln!(
        out,
        "update name server config success![{}]\n{key} : {value}",
        admin.namesrv()?.join(", ")
    )?;
    Ok(())
}
