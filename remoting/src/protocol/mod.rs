//! JSON bodies, field for field as Java clients send and accept them.
//!
//! Every struct reads leniently (missing fields take their defaults, unknown fields are
//! ignored) and writes every field, the 5.x ones included, since strict client libraries
//! reject bodies without them.

pub mod admin;
pub mod heartbeat;
pub mod route;
pub mod topic;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::fastjson;

/// `KVTable`: `{"table":{k:v}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KvTable {
    pub table: HashMap<String, String>,
}

/// `TopicList`: `{"topicList":[...],"brokerAddr":...}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicList {
    pub topic_list: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_addr: Option<String>,
}

/// `DataVersion`: a broker's config version, compared by value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DataVersion {
    pub state_version: i64,
    pub timestamp: i64,
    pub counter: i64,
}

impl DataVersion {
    /// A fresh version stamped now.
    pub fn now() -> Self {
        DataVersion {
            state_version: 0,
            timestamp: crate::util::now_millis(),
            counter: 0,
        }
    }

    /// Bumps the version after a change, as Java's `nextVersion`.
    pub fn next(&mut self) {
        self.timestamp = crate::util::now_millis();
        self.counter += 1;
    }
}

/// Encoding and decoding of a body type.
pub trait JsonBody: Sized + Serialize + serde::de::DeserializeOwned {
    fn decode(body: &[u8]) -> Result<Self> {
        fastjson::from_slice(body)
    }
    fn encode(&self) -> Vec<u8> {
        fastjson::to_vec(self)
    }
}

impl JsonBody for KvTable {}
impl JsonBody for TopicList {}
impl JsonBody for DataVersion {}

/// A lenient `i64`: JSON number, numeric string, or null (→ 0).
pub(crate) mod lenient_i64 {
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_json::Value;

    pub fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(*v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Number(n) => n
                .as_i64()
                .unwrap_or_else(|| n.as_f64().unwrap_or(0.0) as i64),
            Value::String(s) => s.trim().parse().unwrap_or(0),
            _ => 0,
        })
    }
}

/// A list of `int`s that some clients write as strings (Go's `codeSet`: `["65","67"]`);
/// entries that are not numbers are dropped.
pub(crate) mod lenient_i32_vec {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;

    pub fn serialize<S: Serializer>(v: &[i32], s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<i32>, D::Error> {
        let items = match Value::deserialize(d)? {
            Value::Array(items) => items,
            _ => return Ok(Vec::new()),
        };
        Ok(items
            .into_iter()
            .filter_map(|v| match v {
                Value::Number(n) => n.as_i64().map(|n| n as i32),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            })
            .collect())
    }
}

/// Enums that Java writes by name and some clients by ordinal.
macro_rules! java_enum {
    ($(#[$meta:meta])* $name:ident ($default:ident) { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl Default for $name {
            fn default() -> Self {
                $name::$default
            }
        }

        impl $name {
            const NAMES: &'static [(&'static str, $name)] = &[$(($text, $name::$variant)),+];

            pub fn name(self) -> &'static str {
                Self::NAMES.iter().find(|(_, v)| *v == self).map(|(n, _)| *n).unwrap_or("")
            }

            pub fn from_name(name: &str) -> Option<Self> {
                Self::NAMES.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                use serde::de::Error;
                match serde_json::Value::deserialize(d)? {
                    serde_json::Value::String(s) => Self::from_name(&s)
                        .ok_or_else(|| D::Error::custom(format!("unknown {} `{s}`", stringify!($name)))),
                    serde_json::Value::Number(n) => n
                        .as_u64()
                        .and_then(|i| Self::NAMES.get(i as usize))
                        .map(|(_, v)| *v)
                        .ok_or_else(|| D::Error::custom(format!("bad {} ordinal {n}", stringify!($name)))),
                    other => Err(D::Error::custom(format!("bad {} {other}", stringify!($name)))),
                }
            }
        }
    };
}
pub(crate) use java_enum;

#[cfg(test)]
pub(crate) mod strategies {
    //! Proptest strategies for the body types.
    use proptest::collection::{hash_map, vec};
    use proptest::prelude::*;

    pub fn name() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_%-]{1,12}"
    }

    pub fn text() -> impl Strategy<Value = String> {
        any::<String>()
    }

    pub fn data_version() -> impl Strategy<Value = super::DataVersion> {
        (any::<i64>(), any::<i64>(), any::<i64>()).prop_map(|(s, t, c)| super::DataVersion {
            state_version: s,
            timestamp: t,
            counter: c,
        })
    }

    pub fn kv_table() -> impl Strategy<Value = super::KvTable> {
        hash_map(text(), text(), 0..4).prop_map(|table| super::KvTable { table })
    }

    pub fn topic_list() -> impl Strategy<Value = super::TopicList> {
        (vec(name(), 0..4), proptest::option::of(text())).prop_map(|(topic_list, broker_addr)| {
            super::TopicList {
                topic_list,
                broker_addr,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn round_trip<T: JsonBody + PartialEq + std::fmt::Debug>(v: &T) {
        let back = T::decode(&v.encode()).unwrap();
        assert_eq!(&back, v);
    }

    proptest! {
        #[test]
        fn kv_table_round_trips(v in strategies::kv_table()) { round_trip(&v); }
        #[test]
        fn topic_list_round_trips(v in strategies::topic_list()) { round_trip(&v); }
        #[test]
        fn data_version_round_trips(v in strategies::data_version()) { round_trip(&v); }
    }

    #[test]
    fn lenient_reads() {
        let dv = DataVersion::decode(br#"{"counter":3,"extra":[1,2]}"#).unwrap();
        assert_eq!(dv.counter, 3);
        assert!(DataVersion::decode(b"[1,").is_err());
    }
}
