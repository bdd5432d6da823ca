//! Topic configs and the body a broker registers with.

use std::collections::HashMap;
use std::io::Read;

use bytes::{Buf, BufMut};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{java_enum, DataVersion, JsonBody};
use crate::error::{RemotingError, Result};
use crate::fastjson;

/// Permission bits (`PermName`).
pub mod perm {
    pub const PRIORITY: i32 = 8;
    pub const READ: i32 = 4;
    pub const WRITE: i32 = 2;
    pub const INHERIT: i32 = 1;

    pub fn is_readable(perm: i32) -> bool {
        perm & READ != 0
    }

    pub fn is_writeable(perm: i32) -> bool {
        perm & WRITE != 0
    }

    /// Java's `perm2String`: `RWX` style, `-` for a missing bit.
    pub fn to_string(perm: i32) -> String {
        let mut s = String::with_capacity(3);
        s.push(if is_readable(perm) { 'R' } else { '-' });
        s.push(if is_writeable(perm) { 'W' } else { '-' });
        s.push(if perm & INHERIT != 0 { 'X' } else { '-' });
        s
    }
}

java_enum!(
    /// `TopicFilterType`.
    TopicFilterType (SingleTag) {
        SingleTag = "SINGLE_TAG",
        MultiTag = "MULTI_TAG",
    }
);

/// `TopicConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicConfig {
    pub topic_name: String,
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    pub perm: i32,
    pub topic_filter_type: TopicFilterType,
    pub topic_sys_flag: i32,
    pub order: bool,
    pub attributes: HashMap<String, String>,
}

impl Default for TopicConfig {
    fn default() -> Self {
        // Java's defaults: 16 queues, read and write.
        TopicConfig {
            topic_name: String::new(),
            read_queue_nums: 16,
            write_queue_nums: 16,
            perm: perm::READ | perm::WRITE,
            topic_filter_type: TopicFilterType::SingleTag,
            topic_sys_flag: 0,
            order: false,
            attributes: HashMap::new(),
        }
    }
}

impl TopicConfig {
    pub fn new(name: impl Into<String>, queues: i32, perm: i32) -> Self {
        TopicConfig {
            topic_name: name.into(),
            read_queue_nums: queues,
            write_queue_nums: queues,
            perm,
            ..Default::default()
        }
    }
}

/// `TopicConfigAndMappingSerializeWrapper` (the 5.x form of `TopicConfigSerializeWrapper`):
/// a broker's topics and the version they were taken at.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicConfigSerializeWrapper {
    pub topic_config_table: HashMap<String, TopicConfig>,
    pub data_version: DataVersion,
    /// Static-topic mappings, carried through untouched.
    pub topic_queue_mapping_info_map: HashMap<String, Value>,
    pub topic_queue_mapping_detail_map: HashMap<String, Value>,
    pub mapping_data_version: DataVersion,
}

/// `RegisterBrokerBody`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RegisterBrokerBody {
    pub topic_config_serialize_wrapper: TopicConfigSerializeWrapper,
    pub filter_server_list: Vec<String>,
}

/// Decompressed register bodies larger than this are refused (a deflate bomb guard).
pub const MAX_INFLATED_REGISTER_BODY: u64 = 256 * 1024 * 1024;

impl RegisterBrokerBody {
    /// Decodes the body of REGISTER_BROKER: JSON, or the compressed binary layout when the
    /// header says `compressed=true`. `broker_version` decides whether the compressed layout
    /// ends with static-topic mapping entries.
    pub fn decode_register(body: &[u8], compressed: bool, broker_version: i32) -> Result<Self> {
        if !compressed {
            return fastjson::from_slice(body);
        }
        let raw = inflate(body)?;
        let mut buf = &raw[..];
        let data_version: DataVersion = fastjson::from_slice(read_chunk(&mut buf, "dataVersion")?)?;
        let count = read_i32(&mut buf, "topic count")?;
        if count < 0 {
            return Err(bad(format!("negative topic count {count}")));
        }
        let mut table = HashMap::new();
        for _ in 0..count {
            let tc: TopicConfig = fastjson::from_slice(read_chunk(&mut buf, "topic config")?)?;
            table.insert(tc.topic_name.clone(), tc);
        }
        let filter_server_list: Vec<String> =
            fastjson::from_slice(read_chunk(&mut buf, "filter server list")?)?;
        let mut mapping = HashMap::new();
        if broker_version >= crate::code::version::V5_0_0 && buf.has_remaining() {
            let n = read_i32(&mut buf, "mapping count")?;
            for _ in 0..n.max(0) {
                let info: Value = fastjson::from_slice(read_chunk(&mut buf, "mapping info")?)?;
                let topic = info
                    .get("topic")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                mapping.insert(topic, info);
            }
        }
        Ok(RegisterBrokerBody {
            topic_config_serialize_wrapper: TopicConfigSerializeWrapper {
                topic_config_table: table,
                data_version,
                topic_queue_mapping_info_map: mapping,
                ..Default::default()
            },
            filter_server_list,
        })
    }

    /// The compressed layout (zlib), as Java's `RegisterBrokerBody#encode(true)`.
    pub fn encode_compressed(&self) -> Vec<u8> {
        let mut raw = Vec::new();
        let w = &self.topic_config_serialize_wrapper;
        put_chunk(&mut raw, &fastjson::to_vec(&w.data_version));
        let mut topics: Vec<&TopicConfig> = w.topic_config_table.values().collect();
        topics.sort_by(|a, b| a.topic_name.cmp(&b.topic_name));
        raw.put_i32(topics.len() as i32);
        for tc in topics {
            put_chunk(&mut raw, &fastjson::to_vec(tc));
        }
        put_chunk(&mut raw, &fastjson::to_vec(&self.filter_server_list));
        raw.put_i32(w.topic_queue_mapping_info_map.len() as i32);
        for info in w.topic_queue_mapping_info_map.values() {
            put_chunk(&mut raw, &fastjson::to_vec(info));
        }
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        use std::io::Write;
        let _ = enc.write_all(&raw);
        enc.finish().unwrap_or_default()
    }
}

fn bad(msg: String) -> RemotingError {
    RemotingError::BadBody(msg)
}

/// Inflates zlib (Java's `Deflater`) or, failing that, raw deflate, with a size bound.
fn inflate(body: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let zlib = flate2::read::ZlibDecoder::new(body)
        .take(MAX_INFLATED_REGISTER_BODY + 1)
        .read_to_end(&mut out);
    if zlib.is_err() {
        out.clear();
        flate2::read::DeflateDecoder::new(body)
            .take(MAX_INFLATED_REGISTER_BODY + 1)
            .read_to_end(&mut out)
            .map_err(|e| bad(format!("compressed register body: {e}")))?;
    }
    if out.len() as u64 > MAX_INFLATED_REGISTER_BODY {
        return Err(bad(
            "compressed register body inflates beyond the limit".into()
        ));
    }
    Ok(out)
}

fn read_i32(buf: &mut &[u8], what: &str) -> Result<i32> {
    if buf.remaining() < 4 {
        return Err(bad(format!("register body truncated at {what}")));
    }
    Ok(buf.get_i32())
}

fn read_chunk<'a>(buf: &mut &'a [u8], what: &str) -> Result<&'a [u8]> {
    let len = read_i32(buf, what)?;
    if len < 0 || len as usize > buf.remaining() {
        return Err(bad(format!("register body: bad length {len} for {what}")));
    }
    let (chunk, rest) = buf.split_at(len as usize);
    *buf = rest;
    Ok(chunk)
}

fn put_chunk(out: &mut Vec<u8>, chunk: &[u8]) {
    out.put_i32(chunk.len() as i32);
    out.put_slice(chunk);
}

impl JsonBody for TopicConfig {}
impl JsonBody for TopicConfigSerializeWrapper {}
impl JsonBody for RegisterBrokerBody {}

#[cfg(test)]
pub(crate) mod strategies {
    use super::*;
    use crate::protocol::strategies::{data_version, name, text};
    use proptest::collection::{hash_map, vec};
    use proptest::prelude::*;

    pub fn topic_config() -> impl Strategy<Value = TopicConfig> {
        (
            name(),
            any::<i32>(),
            any::<i32>(),
            any::<i32>(),
            any::<bool>(),
            any::<i32>(),
            any::<bool>(),
            hash_map(text(), text(), 0..3),
        )
            .prop_map(|(n, r, w, p, multi, flag, order, attributes)| TopicConfig {
                topic_name: n,
                read_queue_nums: r,
                write_queue_nums: w,
                perm: p,
                topic_filter_type: if multi {
                    TopicFilterType::MultiTag
                } else {
                    TopicFilterType::SingleTag
                },
                topic_sys_flag: flag,
                order,
                attributes,
            })
    }

    pub fn wrapper() -> impl Strategy<Value = TopicConfigSerializeWrapper> {
        (vec(topic_config(), 0..4), data_version()).prop_map(|(topics, dv)| {
            TopicConfigSerializeWrapper {
                topic_config_table: topics
                    .into_iter()
                    .map(|t| (t.topic_name.clone(), t))
                    .collect(),
                data_version: dv,
                ..Default::default()
            }
        })
    }

    pub fn register_body() -> impl Strategy<Value = RegisterBrokerBody> {
        (wrapper(), vec(text(), 0..3)).prop_map(|(w, f)| RegisterBrokerBody {
            topic_config_serialize_wrapper: w,
            filter_server_list: f,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::strategies::*;
    use super::*;
    use crate::protocol::tests::round_trip;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn topic_config_round_trips(v in topic_config()) { round_trip(&v); }
        #[test]
        fn wrapper_round_trips(v in wrapper()) { round_trip(&v); }
        #[test]
        fn register_body_round_trips(v in register_body()) {
            round_trip(&v);
            let back = RegisterBrokerBody::decode_register(&v.encode_compressed(), true, 479).unwrap();
            prop_assert_eq!(back, v);
        }
        #[test]
        fn compressed_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = RegisterBrokerBody::decode_register(&bytes, true, 479);
        }
    }

    #[test]
    fn java_topic_config_json() {
        let tc = TopicConfig::decode(
            br#"{"order":false,"perm":7,"readQueueNums":8,"topicFilterType":"SINGLE_TAG","topicName":"TBW102","topicSysFlag":0,"writeQueueNums":8}"#,
        )
        .unwrap();
        assert_eq!(tc.perm, 7);
        assert_eq!(perm::to_string(tc.perm), "RWX");
        let text = String::from_utf8(tc.encode()).unwrap();
        assert!(text.contains(r#""topicFilterType":"SINGLE_TAG""#), "{text}");
    }
}
