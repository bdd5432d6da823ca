//! Which topics and groups a request touches, and how (RocketMQ 5's `PlainAccessResource.parse`,
//! which also checks batches; 4.9.8 let SEND_BATCH_MESSAGE through unchecked).

use rmq_remoting::protocol::heartbeat::HeartbeatData;
use rmq_remoting::{JsonBody, RemotingCommand, RequestCode};

use crate::plain::{perm, RETRY_PREFIX};
use crate::AclError;

/// `(resource, permission)`: topics by name, groups as `%RETRY%group`.
pub type Needed = Vec<(String, u8)>;

pub fn needed(req: &RemotingCommand) -> Result<Needed, AclError> {
    let f = |k: &str| req.ext_fields.get(k).map(String::as_str);
    let group = |g: Option<&str>| g.map(|g| (format!("{RETRY_PREFIX}{g}"), perm::SUB));
    // A send to a retry topic is its group's SUB (RocketMQ 5's rule), anything else PUB.
    let send = |topic: Option<&str>| match topic {
        Some(t) if t.starts_with(RETRY_PREFIX) => vec![(t.to_string(), perm::SUB)],
        Some(t) => vec![(t.to_string(), perm::PUB)],
        None => vec![],
    };
    let topic_sub = |k: &str| f(k).map(|t| (t.to_string(), perm::SUB));
    Ok(match req.code {
        RequestCode::SEND_MESSAGE => send(f("topic")),
        RequestCode::SEND_MESSAGE_V2 | RequestCode::SEND_BATCH_MESSAGE => send(f("b")),
        RequestCode::CONSUMER_SEND_MSG_BACK => group(f("group")).into_iter().collect(),
        RequestCode::PULL_MESSAGE | RequestCode::LITE_PULL_MESSAGE => topic_sub("topic")
            .into_iter()
            .chain(group(f("consumerGroup")))
            .collect(),
        RequestCode::QUERY_MESSAGE => topic_sub("topic").into_iter().collect(),
        RequestCode::HEART_BEAT => {
            let hb = HeartbeatData::decode(&req.body)
                .map_err(|e| AclError::new(format!("bad heartbeat body: {e}")))?;
            let mut n = Vec::new();
            for c in hb.consumer_data_set {
                n.extend(group(Some(&c.group_name)));
                for s in c.subscription_data_set {
                    // A retry topic here is checked as the group it belongs to.
                    n.push((s.topic, perm::SUB));
                }
            }
            n
        }
        RequestCode::UNREGISTER_CLIENT | RequestCode::GET_CONSUMER_LIST_BY_GROUP => {
            group(f("consumerGroup")).into_iter().collect()
        }
        RequestCode::UPDATE_CONSUMER_OFFSET => group(f("consumerGroup"))
            .into_iter()
            .chain(topic_sub("topic"))
            .collect(),
        RequestCode::RECALL_MESSAGE => f("topic")
            .map(|t| (t.to_string(), perm::PUB))
            .into_iter()
            .collect(),
        _ => vec![],
    })
}

/// RocketMQ's wording for a resource in refusals: `topic:T` or `group:G`.
pub fn describe(resource: &str) -> String {
    match resource.strip_prefix(RETRY_PREFIX) {
        Some(g) => format!("group:{g}"),
        None => format!("topic:{resource}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(code: i32, fields: &[(&str, &str)]) -> RemotingCommand {
        let mut r = RemotingCommand::request(code);
        for (k, v) in fields {
            r.ext_fields.insert(k.to_string(), v.to_string());
        }
        r
    }

    #[test]
    fn each_request_names_what_it_touches() {
        let n = needed(&req(
            RequestCode::SEND_MESSAGE_V2,
            &[("a", "pg"), ("b", "T")],
        ))
        .unwrap();
        assert_eq!(n, vec![("T".into(), perm::PUB)]);
        let n = needed(&req(
            RequestCode::SEND_MESSAGE,
            &[("producerGroup", "g"), ("topic", "%RETRY%g")],
        ))
        .unwrap();
        assert_eq!(n, vec![("%RETRY%g".into(), perm::SUB)]);
        let n = needed(&req(
            RequestCode::PULL_MESSAGE,
            &[("topic", "T"), ("consumerGroup", "g")],
        ))
        .unwrap();
        assert_eq!(
            n,
            vec![("T".into(), perm::SUB), ("%RETRY%g".into(), perm::SUB)]
        );
        let mut hb = req(RequestCode::HEART_BEAT, &[]);
        hb.body = br#"{"clientID":"c","consumerDataSet":[{"groupName":"g","subscriptionDataSet":[{"topic":"T","subString":"*"}]}],"producerDataSet":[{"groupName":"p"}]}"#
            .to_vec()
            .into();
        assert_eq!(
            needed(&hb).unwrap(),
            vec![("%RETRY%g".into(), perm::SUB), ("T".into(), perm::SUB)]
        );
        hb.body = b"{".to_vec().into();
        assert!(needed(&hb).is_err());
        assert!(needed(&req(RequestCode::GET_BROKER_RUNTIME_INFO, &[]))
            .unwrap()
            .is_empty());
        assert_eq!(describe("%RETRY%g"), "group:g");
        assert_eq!(describe("T"), "topic:T");
    }
}
