//! Message encodings: the stored record (`MessageExt`, also what pulls and queries return),
//! the properties string, batch bodies, and message ids.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{RemotingError, Result};

/// Magic of a V1 record (topic length in one byte).
pub const MESSAGE_MAGIC_CODE_V1: i32 = 0xDAA3_20A7_u32 as i32;
/// Magic of a V2 record (topic length in two bytes).
pub const MESSAGE_MAGIC_CODE_V2: i32 = 0xDAA3_20AB_u32 as i32;
/// Magic of the blank record that pads the end of a commit-log file.
pub const BLANK_MAGIC_CODE: i32 = 0xCBD4_3194_u32 as i32;

pub use crate::properties::{
    decode_properties, encode_properties, Properties, NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR,
};

/// `MessageSysFlag` bits.
pub mod sys_flag {
    pub const COMPRESSED: i32 = 0x1;
    pub const MULTI_TAGS: i32 = 0x2;
    pub const TRANSACTION_NOT_TYPE: i32 = 0;
    pub const TRANSACTION_PREPARED_TYPE: i32 = 0x4;
    pub const TRANSACTION_COMMIT_TYPE: i32 = 0x8;
    pub const TRANSACTION_ROLLBACK_TYPE: i32 = 0xC;
    pub const BORNHOST_V6: i32 = 0x10;
    pub const STOREHOST_V6: i32 = 0x20;
    pub const NEED_UNWRAP: i32 = 0x40;
    pub const INNER_BATCH: i32 = 0x80;

    /// The transaction type bits of a sys flag.
    pub fn transaction_value(flag: i32) -> i32 {
        flag & TRANSACTION_ROLLBACK_TYPE
    }
}

/// Property keys (`MessageConst`).
pub mod property {
    pub const KEYS: &str = "KEYS";
    pub const TAGS: &str = "TAGS";
    pub const WAIT_STORE_MSG_OK: &str = "WAIT";
    pub const DELAY_TIME_LEVEL: &str = "DELAY";
    pub const RETRY_TOPIC: &str = "RETRY_TOPIC";
    pub const REAL_TOPIC: &str = "REAL_TOPIC";
    pub const REAL_QUEUE_ID: &str = "REAL_QID";
    pub const TRANSACTION_PREPARED: &str = "TRAN_MSG";
    pub const PRODUCER_GROUP: &str = "PGROUP";
    pub const MIN_OFFSET: &str = "MIN_OFFSET";
    pub const MAX_OFFSET: &str = "MAX_OFFSET";
    pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
    pub const RECONSUME_TIME: &str = "RECONSUME_TIME";
    pub const UNIQ_CLIENT_MESSAGE_ID_KEYIDX: &str = "UNIQ_KEY";
    pub const MAX_RECONSUME_TIMES: &str = "MAX_RECONSUME_TIMES";
    pub const CONSUME_START_TIMESTAMP: &str = "CONSUME_START_TIME";
    pub const TRANSACTION_PREPARED_QUEUE_OFFSET: &str = "TRAN_PREPARED_QUEUE_OFFSET";
    pub const TRANSACTION_ID: &str = "__transactionId__";
    pub const TRANSACTION_CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";
    pub const CHECK_IMMUNITY_TIME_IN_SECONDS: &str = "CHECK_IMMUNITY_TIME_IN_SECONDS";
    pub const CLUSTER: &str = "CLUSTER";
    pub const INNER_NUM: &str = "INNER_NUM";
    pub const INNER_BASE: &str = "INNER_BASE";
    pub const DLQ_ORIGIN_TOPIC: &str = "DLQ_ORIGIN_TOPIC";
    pub const DLQ_ORIGIN_MESSAGE_ID: &str = "DLQ_ORIGIN_MESSAGE_ID";
    pub const SHARDING_KEY: &str = "__SHARDINGKEY";
    pub const KEY_SEPARATOR: &str = " ";
}

/// A stored message, as the commit log holds it and pulls return it.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageExt {
    pub store_size: i32,
    pub body_crc: i32,
    pub queue_id: i32,
    pub flag: i32,
    pub queue_offset: i64,
    pub commit_log_offset: i64,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_timestamp: i64,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    pub body: Bytes,
    pub topic: String,
    pub properties: HashMap<String, String>,
}

impl Default for MessageExt {
    fn default() -> Self {
        let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
        MessageExt {
            store_size: 0,
            body_crc: 0,
            queue_id: 0,
            flag: 0,
            queue_offset: 0,
            commit_log_offset: 0,
            sys_flag: 0,
            born_timestamp: 0,
            born_host: any,
            store_timestamp: 0,
            store_host: any,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body: Bytes::new(),
            topic: String::new(),
            properties: HashMap::new(),
        }
    }
}

impl MessageExt {
    /// The offset message id of this record.
    pub fn offset_msg_id(&self) -> String {
        encode_offset_msg_id(self.store_host, self.commit_log_offset)
    }

    pub fn tags(&self) -> Option<&str> {
        self.properties.get(property::TAGS).map(String::as_str)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.properties
            .get(property::KEYS)
            .map(|k| k.split(' ').filter(|s| !s.is_empty()))
            .into_iter()
            .flatten()
    }

    pub fn uniq_key(&self) -> Option<&str> {
        self.properties
            .get(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX)
            .map(String::as_str)
    }

    /// Encodes the record as the commit log stores it. `store_size` and, if zero, `body_crc`
    /// are computed; the V2 magic is used when the topic is longer than 127 bytes.
    pub fn encode(&self) -> Result<BytesMut> {
        let topic = self.topic.as_bytes();
        let props = encode_properties(&self.properties);
        if props.len() > i16::MAX as usize {
            return Err(RemotingError::BadBody(format!(
                "properties of {} bytes exceed 32767",
                props.len()
            )));
        }
        let v2 = topic.len() > 127;
        if topic.len() > i16::MAX as usize {
            return Err(RemotingError::BadBody("topic too long".into()));
        }
        let mut sys_flag = self.sys_flag & !(sys_flag::BORNHOST_V6 | sys_flag::STOREHOST_V6);
        if self.born_host.is_ipv6() {
            sys_flag |= sys_flag::BORNHOST_V6;
        }
        if self.store_host.is_ipv6() {
            sys_flag |= sys_flag::STOREHOST_V6;
        }
        let host_len = |a: &SocketAddr| if a.is_ipv6() { 20 } else { 8 };
        let total = 4
            + 4
            + 4
            + 4
            + 4
            + 8
            + 8
            + 4
            + 8
            + host_len(&self.born_host)
            + 8
            + host_len(&self.store_host)
            + 4
            + 8
            + 4
            + self.body.len()
            + if v2 { 2 } else { 1 }
            + topic.len()
            + 2
            + props.len();
        let crc = if self.body_crc != 0 {
            self.body_crc
        } else {
            body_crc(&self.body)
        };
        let mut b = BytesMut::with_capacity(total);
        b.put_i32(total as i32);
        b.put_i32(if v2 {
            MESSAGE_MAGIC_CODE_V2
        } else {
            MESSAGE_MAGIC_CODE_V1
        });
        b.put_i32(crc);
        b.put_i32(self.queue_id);
        b.put_i32(self.flag);
        b.put_i64(self.queue_offset);
        b.put_i64(self.commit_log_offset);
        b.put_i32(sys_flag);
        b.put_i64(self.born_timestamp);
        put_host(&mut b, self.born_host);
        b.put_i64(self.store_timestamp);
        put_host(&mut b, self.store_host);
        b.put_i32(self.reconsume_times);
        b.put_i64(self.prepared_transaction_offset);
        b.put_i32(self.body.len() as i32);
        b.put_slice(&self.body);
        if v2 {
            b.put_i16(topic.len() as i16);
        } else {
            b.put_u8(topic.len() as u8);
        }
        b.put_slice(topic);
        b.put_i16(props.len() as i16);
        b.put_slice(props.as_bytes());
        Ok(b)
    }

    /// Decodes one record from the front of `buf`, advancing past it. The body is a slice of
    /// `buf` (no copy).
    pub fn decode(buf: &mut Bytes) -> Result<MessageExt> {
        if buf.len() < 8 {
            return Err(bad("record shorter than its size and magic"));
        }
        let total = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if total < 8 || total as usize > buf.len() {
            return Err(bad(&format!(
                "record size {total} does not fit the {} bytes left",
                buf.len()
            )));
        }
        let mut rec = buf.split_to(total as usize);
        let r = &mut rec;
        let store_size = r.get_i32();
        let magic = r.get_i32();
        let v2 = match magic {
            MESSAGE_MAGIC_CODE_V1 => false,
            MESSAGE_MAGIC_CODE_V2 => true,
            other => return Err(bad(&format!("bad magic code {other:#x}"))),
        };
        need(r, 4 * 3 + 8 * 2 + 4 + 8)?;
        let body_crc = r.get_i32();
        let queue_id = r.get_i32();
        let flag = r.get_i32();
        let queue_offset = r.get_i64();
        let commit_log_offset = r.get_i64();
        let sys_flag = r.get_i32();
        let born_timestamp = r.get_i64();
        let born_host = get_host(r, sys_flag & sys_flag::BORNHOST_V6 != 0)?;
        need(r, 8)?;
        let store_timestamp = r.get_i64();
        let store_host = get_host(r, sys_flag & sys_flag::STOREHOST_V6 != 0)?;
        need(r, 4 + 8 + 4)?;
        let reconsume_times = r.get_i32();
        let prepared_transaction_offset = r.get_i64();
        let body_len = r.get_i32();
        if body_len < 0 || body_len as usize > r.len() {
            return Err(bad(&format!("body length {body_len} out of range")));
        }
        let body = r.split_to(body_len as usize);
        let topic_len = if v2 {
            need(r, 2)?;
            r.get_u16() as usize
        } else {
            need(r, 1)?;
            r.get_u8() as usize
        };
        need(r, topic_len)?;
        let topic = String::from_utf8(r.split_to(topic_len).to_vec())
            .map_err(|_| bad("topic is not UTF-8"))?;
        need(r, 2)?;
        let props_len = r.get_i16();
        if props_len < 0 || props_len as usize > r.len() {
            return Err(bad(&format!("properties length {props_len} out of range")));
        }
        let props = r.split_to(props_len as usize);
        if !r.is_empty() {
            // The fields must add up to the stored size, as RocketMQ checks on recovery.
            return Err(bad(&format!(
                "record size {store_size} disagrees with its fields ({} bytes left over)",
                r.len()
            )));
        }
        let properties = decode_properties(&String::from_utf8_lossy(&props));
        Ok(MessageExt {
            store_size,
            body_crc,
            queue_id,
            flag,
            queue_offset,
            commit_log_offset,
            sys_flag,
            born_timestamp,
            born_host,
            store_timestamp,
            store_host,
            reconsume_times,
            prepared_transaction_offset,
            body,
            topic,
            properties,
        })
    }

    /// Decodes every record of a pull or query body.
    pub fn decode_all(mut buf: Bytes) -> Result<Vec<MessageExt>> {
        let mut out = Vec::new();
        while buf.has_remaining() {
            out.push(Self::decode(&mut buf)?);
        }
        Ok(out)
    }
}

/// The body CRC RocketMQ stores: CRC-32 with the sign bit cleared (`UtilAll.crc32`).
pub fn body_crc(body: &[u8]) -> i32 {
    (crc32fast::hash(body) & 0x7FFF_FFFF) as i32
}

fn bad(msg: &str) -> RemotingError {
    RemotingError::BadBody(msg.to_string())
}

fn need(b: &Bytes, n: usize) -> Result<()> {
    if b.len() < n {
        Err(bad("record truncated"))
    } else {
        Ok(())
    }
}

fn put_host(b: &mut BytesMut, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => b.put_slice(&ip.octets()),
        IpAddr::V6(ip) => b.put_slice(&ip.octets()),
    }
    b.put_i32(addr.port() as i32);
}

fn get_host(b: &mut Bytes, v6: bool) -> Result<SocketAddr> {
    let ip = if v6 {
        need(b, 20)?;
        let mut o = [0u8; 16];
        b.copy_to_slice(&mut o);
        IpAddr::V6(Ipv6Addr::from(o))
    } else {
        need(b, 8)?;
        let mut o = [0u8; 4];
        b.copy_to_slice(&mut o);
        IpAddr::V4(Ipv4Addr::from(o))
    };
    let port = b.get_i32();
    Ok(SocketAddr::new(ip, port as u16))
}

/// One message of a SEND_BATCH_MESSAGE body.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BatchItem {
    pub flag: i32,
    pub body: Bytes,
    /// As the client wrote them (parsed with Java's rules).
    pub properties: Properties,
}

/// Encodes a batch body as Java's `MessageDecoder#encodeMessages`.
pub fn encode_batch(items: &[BatchItem]) -> BytesMut {
    let mut b = BytesMut::new();
    for item in items {
        let props = item.properties.as_str();
        let total = 4 + 4 + 4 + 4 + 4 + item.body.len() + 2 + props.len();
        b.put_i32(total as i32);
        b.put_i32(0);
        b.put_i32(0);
        b.put_i32(item.flag);
        b.put_i32(item.body.len() as i32);
        b.put_slice(&item.body);
        b.put_i16(props.len() as i16);
        b.put_slice(props.as_bytes());
    }
    b
}

/// Decodes a batch body; bodies are slices of `buf`.
pub fn decode_batch(mut buf: Bytes) -> Result<Vec<BatchItem>> {
    let mut items = Vec::new();
    while buf.has_remaining() {
        need(&buf, 20)?;
        let total = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if total < 22 || total as usize > buf.len() {
            return Err(bad(&format!("batch item size {total} out of range")));
        }
        let mut item = buf.split_to(total as usize);
        item.advance(12);
        let flag = item.get_i32();
        let body_len = item.get_i32();
        if body_len < 0 || body_len as usize + 2 > item.len() {
            return Err(bad(&format!("batch body length {body_len} out of range")));
        }
        let body = item.split_to(body_len as usize);
        let props_len = item.get_i16();
        if props_len < 0 || props_len as usize > item.len() {
            return Err(bad(&format!(
                "batch properties length {props_len} out of range"
            )));
        }
        let props = item.split_to(props_len as usize);
        items.push(BatchItem {
            flag,
            body,
            properties: Properties::from_string(String::from_utf8_lossy(&props).into_owned()),
        });
    }
    Ok(items)
}

/// The offset message id: upper-case hex of store IP, port and commit-log offset.
pub fn encode_offset_msg_id(store_host: SocketAddr, commit_log_offset: i64) -> String {
    let mut raw = Vec::with_capacity(28);
    match store_host.ip() {
        IpAddr::V4(ip) => raw.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => raw.extend_from_slice(&ip.octets()),
    }
    raw.extend_from_slice(&(store_host.port() as i32).to_be_bytes());
    raw.extend_from_slice(&commit_log_offset.to_be_bytes());
    hex_upper(&raw)
}

/// Decodes an offset message id into the store address and commit-log offset.
pub fn decode_offset_msg_id(id: &str) -> Result<(SocketAddr, i64)> {
    let raw = from_hex(id).ok_or_else(|| bad(&format!("message id `{id}` is not hex")))?;
    let (ip, rest) = match raw.len() {
        16 => {
            let o: [u8; 4] = raw[..4].try_into().unwrap_or_default();
            (IpAddr::V4(Ipv4Addr::from(o)), &raw[4..])
        }
        28 => {
            let o: [u8; 16] = raw[..16].try_into().unwrap_or_default();
            (IpAddr::V6(Ipv6Addr::from(o)), &raw[16..])
        }
        n => {
            return Err(bad(&format!(
                "message id `{id}` has {n} bytes, expected 16 (IPv4) or 28 (IPv6)"
            )))
        }
    };
    let port = i32::from_be_bytes(rest[..4].try_into().unwrap_or_default());
    let offset = i64::from_be_bytes(rest[4..12].try_into().unwrap_or_default());
    Ok((SocketAddr::new(ip, port as u16), offset))
}

static UNIQ_COUNTER: AtomicU16 = AtomicU16::new(0);

/// A client message id (`UNIQ_KEY`) in `MessageClientIDSetter`'s layout: IP, pid, a
/// per-process value, milliseconds since the start of the month, and a counter.
pub fn create_uniq_id(ip: Ipv4Addr) -> String {
    let now = crate::util::now_millis();
    let month_start = month_start_millis(now);
    let mut raw = Vec::with_capacity(16);
    raw.extend_from_slice(&ip.octets());
    raw.extend_from_slice(&(process_id() as u16).to_be_bytes());
    raw.extend_from_slice(&(process_seed()).to_be_bytes());
    raw.extend_from_slice(&((now - month_start) as i32).to_be_bytes());
    raw.extend_from_slice(&UNIQ_COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    hex_upper(&raw)
}

/// The pid, read once: glibc no longer caches it, so every call is a system call.
fn process_id() -> u32 {
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *PID.get_or_init(std::process::id)
}

fn process_seed() -> i32 {
    static SEED: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        (t ^ process_id().rotate_left(16)) as i32
    })
}

/// Milliseconds at 00:00 UTC of the first day of `now`'s month.
fn month_start_millis(now: i64) -> i64 {
    // Civil-from-days (Howard Hinnant), enough to find the first of the month.
    let days = now.div_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    (days - (d - 1)) * 86_400_000
}

fn hex_upper(raw: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(raw.len() * 2);
    for b in raw {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xF) as usize] as char);
    }
    s
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::{hash_map, vec};
    use proptest::prelude::*;

    fn addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>())
                .prop_map(|(ip, p)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), p)),
            (any::<[u8; 16]>(), any::<u16>())
                .prop_map(|(ip, p)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), p)),
        ]
    }

    fn props() -> impl Strategy<Value = HashMap<String, String>> {
        hash_map("[A-Za-z_]{1,8}", "[^\u{1}\u{2}]{1,16}", 0..5)
    }

    prop_compose! {
        fn message()(
            queue_id in any::<i32>(), flag in any::<i32>(), queue_offset in any::<i64>(),
            commit_log_offset in any::<i64>(), sys_flag in 0..0x100i32, born in any::<i64>(),
            born_host in addr(), store in any::<i64>(), store_host in addr(),
            reconsume in any::<i32>(), prepared in any::<i64>(),
            body in vec(any::<u8>(), 0..64), topic in "[A-Za-z0-9%_-]{1,200}", properties in props(),
        ) -> MessageExt {
            let mut sys_flag = sys_flag & !(sys_flag::BORNHOST_V6 | sys_flag::STOREHOST_V6);
            if born_host.is_ipv6() { sys_flag |= sys_flag::BORNHOST_V6; }
            if store_host.is_ipv6() { sys_flag |= sys_flag::STOREHOST_V6; }
            let body = Bytes::from(body);
            MessageExt {
                store_size: 0, body_crc: body_crc(&body), queue_id, flag, queue_offset,
                commit_log_offset, sys_flag, born_timestamp: born, born_host,
                store_timestamp: store, store_host, reconsume_times: reconsume,
                prepared_transaction_offset: prepared, body, topic, properties,
            }
        }
    }

    proptest! {
        #[test]
        fn record_round_trips(msgs in vec(message(), 1..4)) {
            let mut all = BytesMut::new();
            for m in &msgs {
                all.extend_from_slice(&m.encode().unwrap());
            }
            let back = MessageExt::decode_all(all.freeze()).unwrap();
            prop_assert_eq!(back.len(), msgs.len());
            for (b, m) in back.iter().zip(&msgs) {
                let mut m = m.clone();
                m.store_size = b.store_size;
                prop_assert_eq!(b, &m);
            }
        }

        #[test]
        fn record_decode_never_panics(bytes in vec(any::<u8>(), 0..300)) {
            let _ = MessageExt::decode_all(Bytes::from(bytes));
        }

        #[test]
        fn truncated_records_are_errors(m in message(), cut in 1usize..40) {
            let enc = m.encode().unwrap();
            let cut = cut.min(enc.len() - 1);
            let mut short = enc.freeze().slice(..cut);
            prop_assert!(MessageExt::decode(&mut short).is_err());
        }

        #[test]
        fn batch_round_trips(items in vec((any::<i32>(), vec(any::<u8>(), 0..64), props()), 0..5)) {
            let items: Vec<BatchItem> = items.into_iter().map(|(flag, body, properties)| BatchItem { flag, body: body.into(), properties: Properties::from_map(&properties) }).collect();
            let back = decode_batch(encode_batch(&items).freeze()).unwrap();
            prop_assert_eq!(back, items);
        }

        #[test]
        fn batch_decode_never_panics(bytes in vec(any::<u8>(), 0..200)) {
            let _ = decode_batch(Bytes::from(bytes));
        }

        #[test]
        fn properties_round_trip(p in props()) {
            prop_assert_eq!(decode_properties(&encode_properties(&p)), p);
        }

        #[test]
        fn offset_msg_id_round_trips(a in addr(), off in any::<i64>()) {
            let id = encode_offset_msg_id(a, off);
            prop_assert_eq!(id.len(), if a.is_ipv6() { 56 } else { 32 });
            prop_assert_eq!(decode_offset_msg_id(&id).unwrap(), (a, off));
        }

        #[test]
        fn msg_id_decode_never_panics(s in ".{0,60}") {
            let _ = decode_offset_msg_id(&s);
        }
    }

    #[test]
    fn known_offset_msg_id() {
        // 127.0.0.1:10911, offset 0x1234: as Java's MessageDecoder.createMessageId writes it.
        let a: SocketAddr = "127.0.0.1:10911".parse().unwrap();
        assert_eq!(
            encode_offset_msg_id(a, 0x1234),
            "7F00000100002A9F0000000000001234"
        );
    }

    #[test]
    fn java_properties_string() {
        let p = decode_properties("TAGS\u{1}TagA\u{2}KEYS\u{1}k1 k2\u{2}x\u{2}\u{1}\u{2}");
        assert_eq!(p.get("TAGS").map(String::as_str), Some("TagA"));
        assert_eq!(p.get("KEYS").map(String::as_str), Some("k1 k2"));
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn uniq_ids_are_32_hex_and_distinct() {
        let a = create_uniq_id(Ipv4Addr::LOCALHOST);
        let b = create_uniq_id(Ipv4Addr::LOCALHOST);
        assert_eq!(a.len(), 32);
        assert!(a.starts_with("7F000001"));
        assert_ne!(a, b);
        // 2026-11-21T12:00:00Z → start of month 2026-11-01T00:00:00Z.
        assert_eq!(month_start_millis(1_795_262_400_000), 1_793_491_200_000);
    }
}
