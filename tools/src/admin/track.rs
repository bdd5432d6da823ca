//! `messageTrackDetail`: which consumer groups of a message's topic consumed it.

use std::fmt;

use anyhow::Result;
use rmq_remoting::message::MessageExt;
use rmq_remoting::protocol::heartbeat::ConsumeType;
use rmq_remoting::protocol::route::MASTER_ID;
use rmq_remoting::ResponseCode;

use super::client::CodeError;
use super::consumer::{consumer_connection, examine_consume_stats};
use super::topic::consumer_groups;
use super::Admin;

/// `TrackType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackType {
    Consumed,
    ConsumedButFiltered,
    Pull,
    NotConsumeYet,
    NotOnline,
    ConsumeBroadcasting,
    Unknown,
}

impl fmt::Display for TrackType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrackType::Consumed => "CONSUMED",
            TrackType::ConsumedButFiltered => "CONSUMED_BUT_FILTERED",
            TrackType::Pull => "PULL",
            TrackType::NotConsumeYet => "NOT_CONSUME_YET",
            TrackType::NotOnline => "NOT_ONLINE",
            TrackType::ConsumeBroadcasting => "CONSUME_BROADCASTING",
            TrackType::Unknown => "UNKNOWN",
        })
    }
}

/// `MessageTrack`.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageTrack {
    pub consumer_group: String,
    pub track_type: TrackType,
    pub exception_desc: Option<String>,
}

impl fmt::Display for MessageTrack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MessageTrack [consumerGroup={}, trackType={}, exceptionDesc={}]",
            self.consumer_group,
            self.track_type,
            self.exception_desc.as_deref().unwrap_or("null")
        )
    }
}

fn code_desc(e: &anyhow::Error) -> String {
    match e.downcast_ref::<CodeError>() {
        Some(c) => format!("CODE:{} DESC:{}", c.code, c.remark),
        None => format!("{e:#}"),
    }
}

/// One track per consumer group of the message's topic.
pub async fn message_track_detail(admin: &Admin, msg: &MessageExt) -> Result<Vec<MessageTrack>> {
    let mut result = Vec::new();
    for group in consumer_groups(admin, &msg.topic).await? {
        let mut mt = MessageTrack {
            consumer_group: group.clone(),
            track_type: TrackType::Unknown,
            exception_desc: None,
        };
        let cc = match consumer_connection(admin, &group).await {
            Ok(cc) => cc,
            Err(e) => {
                if CodeError::code_of(&e) == Some(ResponseCode::CONSUMER_NOT_ONLINE) {
                    mt.track_type = TrackType::NotOnline;
                }
                mt.exception_desc = Some(code_desc(&e));
                result.push(mt);
                continue;
            }
        };
        match cc.consume_type {
            ConsumeType::ConsumeActively => mt.track_type = TrackType::Pull,
            ConsumeType::ConsumePassively => match consumed(admin, msg, &group).await {
                Ok(true) => {
                    mt.track_type = TrackType::Consumed;
                    if let Some(sub) = cc.subscription_table.get(&msg.topic) {
                        let tags = &sub.tags_set;
                        let tag = msg.tags().unwrap_or_default();
                        if !(tags.is_empty() || tags.iter().any(|t| t == "*" || t == tag)) {
                            mt.track_type = TrackType::ConsumedButFiltered;
                        }
                    }
                }
                Ok(false) => mt.track_type = TrackType::NotConsumeYet,
                Err(e) => match CodeError::code_of(&e) {
                    Some(ResponseCode::CONSUMER_NOT_ONLINE) => {
                        mt.track_type = TrackType::NotOnline;
                        mt.exception_desc = Some(code_desc(&e));
                    }
                    Some(ResponseCode::BROADCAST_CONSUMPTION) => {
                        mt.track_type = TrackType::ConsumeBroadcasting;
                    }
                    Some(_) => {}
                    None => mt.exception_desc = Some(code_desc(&e)),
                },
            },
            ConsumeType::ConsumePop => {}
        }
        result.push(mt);
    }
    Ok(result)
}

/// Whether `group`'s offset on the message's queue (at the master that stores it) is past it.
async fn consumed(admin: &Admin, msg: &MessageExt, group: &str) -> Result<bool> {
    let stats = examine_consume_stats(admin, group, None).await?;
    let info = admin.cluster_info().await?;
    let store = format!("{}:{}", msg.store_host.ip(), msg.store_host.port());
    Ok(stats.offset_table.iter().any(|(mq, o)| {
        mq.topic == msg.topic
            && mq.queue_id == msg.queue_id
            && info
                .broker_addr_table
                .get(&mq.broker_name)
                .and_then(|bd| bd.broker_addrs.get(&MASTER_ID))
                .is_some_and(|master| *master == store)
            && o.consumer_offset > msg.queue_offset
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_print_as_java() {
        let t = MessageTrack {
            consumer_group: "G".into(),
            track_type: TrackType::NotConsumeYet,
            exception_desc: None,
        };
        assert_eq!(
            t.to_string(),
            "MessageTrack [consumerGroup=G, trackType=NOT_CONSUME_YET, exceptionDesc=null]"
        );
    }
}
