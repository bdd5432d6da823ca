//! Slave side metadata: the master's topic configs, subscription groups, consumer offsets and
//! delay progress follow it every few seconds (RocketMQ's `SlaveSynchronize`). Epochs do not:
//! they come with the HA handshake only.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::broker::BrokerInner;

/// Slave side: every few seconds, the master's topic configs, subscription groups, consumer
/// offsets and delay progress (RocketMQ's `SlaveSynchronize`). Offsets consumers committed
/// here while the master was away are first handed to the master, so they are not lost when
/// it returns.
pub async fn sync_metadata(inner: Arc<BrokerInner>, stop: CancellationToken) {
    loop {
        if !inner.role.is_slave() {
            return; // promoted
        }
        let master = inner.ha.master();
        if let Some(master) = master.filter(|m| !m.is_empty()) {
            if let Err(e) = sync_once(&inner, &master).await {
                tracing::debug!(%master, error = %e, "metadata sync with the master failed");
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(3)) => {}
        }
    }
}

async fn call(inner: &BrokerInner, addr: &str, code: i32) -> Result<Bytes, String> {
    let req = rmq_remoting::RemotingCommand::request(code);
    let r = inner
        .namesrv
        .invoke(addr, req, Duration::from_secs(3))
        .await
        .map_err(|e| e.to_string())?
        .ensure_success()
        .map_err(|e| e.to_string())?;
    Ok(r.body)
}

async fn sync_once(inner: &Arc<BrokerInner>, master: &str) -> Result<(), String> {
    use rmq_remoting::protocol::topic::TopicConfigSerializeWrapper;
    use rmq_remoting::{JsonBody, RequestCode};

    if inner.ha.take_offsets_committed() {
        if let Err(e) = hand_offsets_to_master(inner, master).await {
            inner.ha.note_offset_committed();
            return Err(e);
        }
    }
    let topics = call(inner, master, RequestCode::GET_ALL_TOPIC_CONFIG).await?;
    let topics = TopicConfigSerializeWrapper::decode(&topics).map_err(|e| e.to_string())?;
    let groups = call(inner, master, RequestCode::GET_ALL_SUBSCRIPTIONGROUP_CONFIG).await?;
    let groups: crate::manager::subscriptions::SubscriptionGroupWrapper =
        rmq_remoting::fastjson::from_slice(&groups).map_err(|e| e.to_string())?;
    let offsets = call(inner, master, RequestCode::GET_ALL_CONSUMER_OFFSET).await?;
    let offsets: crate::manager::offsets::OffsetWrapper =
        rmq_remoting::fastjson::from_slice(&offsets).map_err(|e| e.to_string())?;
    let delay = call(inner, master, RequestCode::GET_ALL_DELAY_OFFSET).await?;
    // Not the master's epochs: a slave takes them only in the HA handshake, after its log
    // has been reconciled with that master's. Taken here, from the broker the name servers
    // name (which need not be the one the HA link follows), they would make a log with
    // another term's tail look like the master's, and the next handshake would not cut it.
    let i = inner.clone();
    tokio::task::spawn_blocking(move || {
        if i.topics.replace_all(topics) {
            tracing::info!("topic configs synced from the master");
        }
        i.groups.replace_all(groups);
        i.offsets.replace_all(offsets.offset_table);
        i.schedule.replace_from_json(&delay);
    })
    .await
    .map_err(|e| e.to_string())
}

/// Commits to the master every offset this slave holds beyond the master's.
async fn hand_offsets_to_master(inner: &Arc<BrokerInner>, master: &str) -> Result<(), String> {
    use rmq_remoting::header::UpdateConsumerOffsetRequestHeader;
    use rmq_remoting::RequestCode;
    let theirs = call(inner, master, RequestCode::GET_ALL_CONSUMER_OFFSET).await?;
    let theirs: crate::manager::offsets::OffsetWrapper =
        rmq_remoting::fastjson::from_slice(&theirs).map_err(|e| e.to_string())?;
    let mut handed = 0;
    for (key, queue, offset) in inner.offsets.entries() {
        let master_has = theirs
            .offset_table
            .get(&key)
            .and_then(|m| m.get(&queue))
            .copied()
            .unwrap_or(-1);
        let Some((topic, group)) = key.split_once('@') else {
            continue;
        };
        if offset <= master_has {
            continue;
        }
        let h = UpdateConsumerOffsetRequestHeader {
            consumer_group: group.to_string(),
            topic: topic.to_string(),
            queue_id: queue,
            commit_offset: offset,
        };
        let req = rmq_remoting::RemotingCommand::request_with_header(
            RequestCode::UPDATE_CONSUMER_OFFSET,
            &h,
        );
        inner
            .namesrv
            .invoke(master, req, Duration::from_secs(3))
            .await
            .map_err(|e| e.to_string())?
            .ensure_success()
            .map_err(|e| e.to_string())?;
        handed += 1;
    }
    if handed > 0 {
        tracing::info!(%master, handed, "offsets committed on this slave handed to the master");
    }
    Ok(())
}
