//! Headers and bodies the admin tool needs that `rmq_remoting` does not define.

use std::collections::{BTreeMap, HashMap};

use rmq_remoting::header::{CommandHeader, HeaderValue};
use rmq_remoting::JsonBody;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Declares a header struct with its `extFields` key for every field.
macro_rules! header {
    ($(#[$meta:meta])* $name:ident { $($field:ident : $ty:ty => $key:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct $name {
            $(pub $field: $ty,)*
        }

        impl CommandHeader for $name {
            fn write_ext_fields(&self, ext: &mut HashMap<String, String>) {
                $(
                    if let Some(v) = HeaderValue::write(&self.$field) {
                        ext.insert($key.to_string(), v);
                    }
                )*
            }

            fn from_ext_fields(ext: &HashMap<String, String>) -> rmq_remoting::Result<Self> {
                Ok($name {
                    $($field: <$ty as HeaderValue>::read($key, ext.get($key))?,)*
                })
            }
        }
    };
}

header!(
    /// QUERY_TOPIC_CONSUME_BY_WHO (300).
    QueryTopicConsumeByWhoRequestHeader {
        topic: String => "topic",
    }
);

header!(
    /// GET_CONSUMER_RUNNING_INFO (307), relayed by the broker to the client.
    GetConsumerRunningInfoRequestHeader {
        consumer_group: String => "consumerGroup",
        client_id: String => "clientId",
        jstack_enable: bool => "jstackEnable",
    }
);

/// `GroupList`: `{"groupList":[...]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GroupList {
    pub group_list: Vec<String>,
}

impl JsonBody for GroupList {}

/// `SubscriptionGroupConfig`, with the defaults `mqadmin updateSubGroup` starts from
/// (`consumeFromMinEnable` and `consumeBroadcastEnable` off, the rest as the Java class).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SubscriptionGroupConfig {
    pub group_name: String,
    pub consume_enable: bool,
    pub consume_from_min_enable: bool,
    pub consume_broadcast_enable: bool,
    pub consume_message_orderly: bool,
    pub retry_queue_nums: i32,
    pub retry_max_times: i32,
    pub group_retry_policy: Value,
    pub broker_id: i64,
    pub which_broker_when_consume_slowly: i64,
    pub notify_consumer_ids_changed_enable: bool,
    pub group_sys_flag: i32,
    pub consume_timeout_minute: i32,
    pub attributes: BTreeMap<String, String>,
}

impl Default for SubscriptionGroupConfig {
    fn default() -> Self {
        SubscriptionGroupConfig {
            group_name: String::new(),
            consume_enable: true,
            consume_from_min_enable: false,
            consume_broadcast_enable: false,
            consume_message_orderly: false,
            retry_queue_nums: 1,
            retry_max_times: 16,
            group_retry_policy: serde_json::json!({"type": "CUSTOMIZED"}),
            broker_id: 0,
            which_broker_when_consume_slowly: 1,
            notify_consumer_ids_changed_enable: true,
            group_sys_flag: 0,
            consume_timeout_minute: 15,
            attributes: BTreeMap::new(),
        }
    }
}

impl JsonBody for SubscriptionGroupConfig {}

impl std::fmt::Display for SubscriptionGroupConfig {
    /// Guava's `toStringHelper` form, as Java's `toString`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SubscriptionGroupConfig{{groupName={}, consumeEnable={}, consumeFromMinEnable={}, \
             consumeBroadcastEnable={}, consumeMessageOrderly={}, retryQueueNums={}, \
             retryMaxTimes={}, groupRetryPolicy={}, brokerId={}, \
             whichBrokerWhenConsumeSlowly={}, notifyConsumerIdsChangedEnable={}, \
             groupSysFlag={}, consumeTimeoutMinute={}, subscriptionDataSet=null, attributes={}}}",
            self.group_name,
            self.consume_enable,
            self.consume_from_min_enable,
            self.consume_broadcast_enable,
            self.consume_message_orderly,
            self.retry_queue_nums,
            self.retry_max_times,
            retry_policy_string(&self.group_retry_policy),
            self.broker_id,
            self.which_broker_when_consume_slowly,
            self.notify_consumer_ids_changed_enable,
            self.group_sys_flag,
            self.consume_timeout_minute,
            super::java::map_string(&self.attributes),
        )
    }
}

/// `GroupRetryPolicy.toString`.
fn retry_policy_string(policy: &Value) -> String {
    let field = |name: &str, class: &str| match policy.get(name) {
        None | Some(Value::Null) => "null".to_string(),
        Some(Value::Object(m)) => {
            let items: Vec<String> = m.iter().map(|(k, v)| format!("{k}={}", plain(v))).collect();
            format!("{class}{{{}}}", items.join(", "))
        }
        Some(other) => plain(other),
    };
    format!(
        "GroupRetryPolicy{{type={}, exponentialRetryPolicy={}, customizedRetryPolicy={}}}",
        policy
            .get("type")
            .map(plain)
            .unwrap_or_else(|| "CUSTOMIZED".into()),
        field("exponentialRetryPolicy", "ExponentialRetryPolicy"),
        field("customizedRetryPolicy", "CustomizedRetryPolicy"),
    )
}

/// A JSON value as Java's `toString` would show it (strings unquoted, arrays `[a, b]`).
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(plain).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

/// `AttributeParser.parseToMap`: `+a=b,+c=d,-e`.
pub fn parse_attributes(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut map = BTreeMap::new();
    if text.is_empty() {
        return Ok(map);
    }
    for kv in text.split(',') {
        let (key, value) = match kv.split_once('=') {
            Some((k, v)) => {
                if !k.contains('+') {
                    return Err(format!("add/alter attribute format is wrong: {k}"));
                }
                (k.to_string(), v.to_string())
            }
            None => {
                if !kv.contains('-') {
                    return Err(format!("delete attribute format is wrong: {kv}"));
                }
                (kv.to_string(), String::new())
            }
        };
        if map.insert(key.clone(), value).is_some() {
            return Err(format!("key duplication: {key}"));
        }
    }
    Ok(map)
}

/// `AttributeParser.parseToString`: the inverse of [`parse_attributes`].
pub fn attributes_string(map: &BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(k, v)| {
            if v.is_empty() {
                k.clone()
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_group_json_has_java_names() {
        let cfg = SubscriptionGroupConfig {
            group_name: "G".into(),
            ..Default::default()
        };
        let v: Value = serde_json::from_slice(&cfg.encode()).unwrap();
        for key in [
            "groupName",
            "consumeEnable",
            "consumeFromMinEnable",
            "consumeBroadcastEnable",
            "retryQueueNums",
            "retryMaxTimes",
            "brokerId",
            "whichBrokerWhenConsumeSlowly",
            "notifyConsumerIdsChangedEnable",
            "groupSysFlag",
            "consumeTimeoutMinute",
        ] {
            assert!(v.get(key).is_some(), "{key} missing in {v}");
        }
        assert_eq!(v["retryMaxTimes"], 16);
        assert_eq!(v["consumeFromMinEnable"], false);
        let text = cfg.to_string();
        assert!(text.starts_with("SubscriptionGroupConfig{groupName=G, consumeEnable=true,"));
        assert!(text.contains("groupRetryPolicy=GroupRetryPolicy{type=CUSTOMIZED, exponentialRetryPolicy=null, customizedRetryPolicy=null}"));
    }

    #[test]
    fn attributes_parse_as_java() {
        let m = parse_attributes("+a=b,-c").unwrap();
        assert_eq!(m.get("+a").map(String::as_str), Some("b"));
        assert_eq!(attributes_string(&m), "+a=b,-c");
        assert!(parse_attributes("a=b").is_err());
        assert!(parse_attributes("c").is_err());
        assert!(parse_attributes("+a=b,+a=c").is_err());
    }

    #[test]
    fn local_headers_round_trip() {
        let h = GetConsumerRunningInfoRequestHeader {
            consumer_group: "g".into(),
            client_id: "c".into(),
            jstack_enable: false,
        };
        let ext = h.to_ext_fields();
        assert_eq!(ext["jstackEnable"], "false");
        assert_eq!(
            GetConsumerRunningInfoRequestHeader::from_ext_fields(&ext).unwrap(),
            h
        );
    }
}
