//! `RemotingCommand`: one request or response, and its two header serializations.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};

use bytes::{Buf, BufMut, Bytes};

use crate::code::{version, LanguageCode, RequestCode, ResponseCode};
use crate::error::{RemotingError, Result};
use crate::header::CommandHeader;

/// Flag bit 0: this command is a response.
pub const FLAG_RESPONSE: i32 = 1;
/// Flag bit 1: the sender expects no response.
pub const FLAG_ONEWAY: i32 = 1 << 1;

/// How the header of a frame is serialized (high byte of the header-length word).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SerializeType {
    /// fastjson text (type 0), what Java writes by default.
    #[default]
    Json,
    /// The compact binary form (type 1).
    RocketMq,
}

impl SerializeType {
    pub fn code(self) -> u8 {
        match self {
            SerializeType::Json => 0,
            SerializeType::RocketMq => 1,
        }
    }

    pub fn from_code(code: u8) -> Result<Self> {
        match code {
            0 => Ok(SerializeType::Json),
            1 => Ok(SerializeType::RocketMq),
            other => Err(RemotingError::BadFrame(format!(
                "unknown serialize type {other}"
            ))),
        }
    }
}

static NEXT_OPAQUE: AtomicI32 = AtomicI32::new(1);

/// A fresh request id for this process.
pub fn next_opaque() -> i32 {
    NEXT_OPAQUE.fetch_add(1, Ordering::Relaxed)
}

/// One remoting command: the logical fields of the header plus the body.
#[derive(Debug, Clone, PartialEq)]
pub struct RemotingCommand {
    pub code: i32,
    pub language: LanguageCode,
    pub version: i32,
    pub opaque: i32,
    pub flag: i32,
    pub remark: Option<String>,
    pub ext_fields: HashMap<String, String>,
    pub body: Bytes,
    /// How the header was (or will be) serialized.
    pub serialize_type: SerializeType,
}

impl RemotingCommand {
    /// A request with a fresh opaque.
    pub fn request(code: i32) -> Self {
        RemotingCommand {
            code,
            language: LanguageCode::Rust,
            version: version::CURRENT,
            opaque: next_opaque(),
            flag: 0,
            remark: None,
            ext_fields: HashMap::new(),
            body: Bytes::new(),
            serialize_type: SerializeType::Json,
        }
    }

    /// A request carrying a typed header.
    pub fn request_with_header<H: CommandHeader>(code: i32, header: &H) -> Self {
        let mut cmd = Self::request(code);
        header.write_ext_fields(&mut cmd.ext_fields);
        cmd
    }

    /// A response with the given code and remark. Opaque and serialize type are filled in when
    /// it is matched to its request (see [`RemotingCommand::answer`]).
    pub fn response(code: i32, remark: impl Into<Option<String>>) -> Self {
        RemotingCommand {
            code,
            language: LanguageCode::Java,
            version: version::CURRENT,
            opaque: 0,
            flag: FLAG_RESPONSE,
            remark: remark.into(),
            ext_fields: HashMap::new(),
            body: Bytes::new(),
            serialize_type: SerializeType::Json,
        }
    }

    /// A `SUCCESS` response.
    pub fn success() -> Self {
        Self::response(ResponseCode::SUCCESS, None)
    }

    /// A response with the given code and remark text.
    pub fn error(code: i32, remark: impl Into<String>) -> Self {
        Self::response(code, Some(remark.into()))
    }

    /// `REQUEST_CODE_NOT_SUPPORTED` for `request_code`, with Java's remark.
    pub fn not_supported(request_code: i32) -> Self {
        Self::error(
            ResponseCode::REQUEST_CODE_NOT_SUPPORTED,
            format!(" request type {request_code} not supported"),
        )
    }

    /// Turns `self` into the response to `request`: same opaque, same header serialization.
    pub fn answer(mut self, request: &RemotingCommand) -> Self {
        self.opaque = request.opaque;
        self.flag |= FLAG_RESPONSE;
        self.serialize_type = request.serialize_type;
        self
    }

    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    pub fn with_header<H: CommandHeader>(mut self, header: &H) -> Self {
        header.write_ext_fields(&mut self.ext_fields);
        self
    }

    pub fn with_remark(mut self, remark: impl Into<String>) -> Self {
        self.remark = Some(remark.into());
        self
    }

    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }

    pub fn mark_oneway(&mut self) {
        self.flag |= FLAG_ONEWAY;
    }

    /// The typed header carried in `extFields`.
    pub fn decode_header<H: CommandHeader>(&self) -> Result<H> {
        H::from_ext_fields(&self.ext_fields)
    }

    /// A readable name for logs: the request or response code's name.
    pub fn code_name(&self) -> &'static str {
        let name = if self.is_response() {
            ResponseCode::name(self.code)
        } else {
            RequestCode::name(self.code)
        };
        name.unwrap_or("UNKNOWN")
    }

    /// `Err(Remote)` unless the response code is `SUCCESS`.
    pub fn ensure_success(self) -> Result<Self> {
        if self.code == ResponseCode::SUCCESS {
            Ok(self)
        } else {
            Err(RemotingError::remote(self.code, self.remark.as_deref()))
        }
    }

    /// Serializes the header in `self.serialize_type`.
    pub fn encode_header(&self) -> Vec<u8> {
        match self.serialize_type {
            SerializeType::Json => self.encode_json_header(),
            SerializeType::RocketMq => self.encode_binary_header(),
        }
    }

    fn encode_json_header(&self) -> Vec<u8> {
        // Written by hand, keys in fastjson's sorted order. `extFields` is always present:
        // Java clients read it without a null check on send responses.
        let mut out = Vec::with_capacity(128 + self.ext_fields.len() * 32);
        let mut ext: Vec<(&String, &String)> = self.ext_fields.iter().collect();
        ext.sort_unstable();
        out.extend_from_slice(b"{\"code\":");
        push_int(&mut out, self.code as i64);
        out.extend_from_slice(b",\"extFields\":{");
        for (n, (k, v)) in ext.into_iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            push_json_str(&mut out, k);
            out.push(b':');
            push_json_str(&mut out, v);
        }
        out.extend_from_slice(b"},\"flag\":");
        push_int(&mut out, self.flag as i64);
        out.extend_from_slice(b",\"language\":\"");
        out.extend_from_slice(self.language.name().as_bytes());
        out.extend_from_slice(b"\",\"opaque\":");
        push_int(&mut out, self.opaque as i64);
        if let Some(remark) = &self.remark {
            out.extend_from_slice(b",\"remark\":");
            push_json_str(&mut out, remark);
        }
        out.extend_from_slice(b",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":");
        push_int(&mut out, self.version as i64);
        out.push(b'}');
        out
    }

    fn encode_binary_header(&self) -> Vec<u8> {
        let remark = self.remark.as_deref().unwrap_or("").as_bytes();
        let mut ext = Vec::new();
        let mut fields: Vec<(&String, &String)> = self.ext_fields.iter().collect();
        fields.sort();
        for (k, v) in fields {
            // Keys are i16-length-prefixed; anything longer cannot be expressed and is dropped.
            if k.len() > i16::MAX as usize {
                continue;
            }
            ext.put_i16(k.len() as i16);
            ext.put_slice(k.as_bytes());
            ext.put_i32(v.len() as i32);
            ext.put_slice(v.as_bytes());
        }
        let mut out = Vec::with_capacity(21 + remark.len() + ext.len());
        out.put_i16(self.code as i16);
        out.put_u8(self.language.code());
        out.put_i16(self.version as i16);
        out.put_i32(self.opaque);
        out.put_i32(self.flag);
        out.put_i32(remark.len() as i32);
        out.put_slice(remark);
        out.put_i32(ext.len() as i32);
        out.put_slice(&ext);
        out
    }

    /// Decodes a header of the given serialization; the body is attached by the caller.
    pub fn decode_header_bytes(serialize_type: SerializeType, header: &[u8]) -> Result<Self> {
        let mut cmd = match serialize_type {
            SerializeType::Json => Self::decode_json_header(header)?,
            SerializeType::RocketMq => Self::decode_binary_header(header)?,
        };
        cmd.serialize_type = serialize_type;
        Ok(cmd)
    }

    fn decode_json_header(header: &[u8]) -> Result<Self> {
        match crate::header_json::decode(header) {
            Some(cmd) => Ok(cmd),
            None => Self::decode_json_header_lenient(header),
        }
    }

    /// Any JSON header a client may write (numbers as strings, values as numbers, ...).
    pub(crate) fn decode_json_header_lenient(header: &[u8]) -> Result<Self> {
        let h: json_header::JsonHeader = serde_json::from_slice(header)
            .map_err(|e| RemotingError::BadHeader(format!("JSON header: {e}")))?;
        Ok(RemotingCommand {
            code: h.code,
            language: h.language.0,
            version: h.version,
            opaque: h.opaque,
            flag: h.flag,
            remark: h.remark.0,
            ext_fields: h.ext_fields.map(|m| m.0).unwrap_or_default(),
            body: Bytes::new(),
            serialize_type: SerializeType::Json,
        })
    }

    fn decode_binary_header(mut buf: &[u8]) -> Result<Self> {
        let total = buf.len();
        let need = |buf: &[u8], n: usize, what: &str| -> Result<()> {
            if buf.remaining() < n {
                Err(RemotingError::BadHeader(format!(
                    "binary header truncated reading {what}"
                )))
            } else {
                Ok(())
            }
        };
        need(buf, 21, "fixed part")?;
        let code = buf.get_i16() as i32;
        let language = LanguageCode::from_code(buf.get_u8());
        let version = buf.get_i16() as i32;
        let opaque = buf.get_i32();
        let flag = buf.get_i32();
        let remark_len = buf.get_i32();
        if remark_len < 0 || remark_len as usize > total {
            return Err(RemotingError::BadHeader(format!(
                "remark length {remark_len} out of range"
            )));
        }
        need(buf, remark_len as usize, "remark")?;
        let remark = if remark_len == 0 {
            None
        } else {
            Some(utf8(&buf[..remark_len as usize], "remark")?)
        };
        buf.advance(remark_len as usize);
        need(buf, 4, "extFields length")?;
        let ext_len = buf.get_i32();
        if ext_len < 0 || ext_len as usize > buf.remaining() {
            return Err(RemotingError::BadHeader(format!(
                "extFields length {ext_len} out of range"
            )));
        }
        let mut ext = &buf[..ext_len as usize];
        let mut ext_fields = HashMap::new();
        while ext.has_remaining() {
            need(ext, 2, "extFields key length")?;
            let klen = ext.get_i16();
            if klen < 0 || klen as usize > ext.remaining() {
                return Err(RemotingError::BadHeader(format!(
                    "extFields key length {klen} out of range"
                )));
            }
            let key = utf8(&ext[..klen as usize], "extFields key")?;
            ext.advance(klen as usize);
            need(ext, 4, "extFields value length")?;
            let vlen = ext.get_i32();
            if vlen < 0 || vlen as usize > ext.remaining() {
                return Err(RemotingError::BadHeader(format!(
                    "extFields value length {vlen} out of range"
                )));
            }
            let value = utf8(&ext[..vlen as usize], "extFields value")?;
            ext.advance(vlen as usize);
            ext_fields.insert(key, value);
        }
        Ok(RemotingCommand {
            code,
            language,
            version,
            opaque,
            flag,
            remark,
            ext_fields,
            body: Bytes::new(),
            serialize_type: SerializeType::RocketMq,
        })
    }
}

fn utf8(bytes: &[u8], what: &str) -> Result<String> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| RemotingError::BadHeader(format!("{what} is not UTF-8")))
}

fn push_int(out: &mut Vec<u8>, v: i64) {
    use std::io::Write;
    let _ = write!(out, "{v}");
}

fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping, straight into the buffer.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// The JSON header, read leniently and without building a `Value` tree: numbers may come as
/// strings, extFields values as numbers or booleans, the language as a name or a number.
mod json_header {
    use std::collections::HashMap;
    use std::fmt;

    use serde::de::{self, Deserializer, MapAccess, Visitor};
    use serde::Deserialize;

    use crate::code::LanguageCode;

    #[derive(Deserialize)]
    pub struct JsonHeader {
        #[serde(default, deserialize_with = "lenient_i32")]
        pub code: i32,
        #[serde(default)]
        pub language: Lang,
        #[serde(default, deserialize_with = "lenient_i32")]
        pub version: i32,
        #[serde(default, deserialize_with = "lenient_i32")]
        pub opaque: i32,
        #[serde(default, deserialize_with = "lenient_i32")]
        pub flag: i32,
        #[serde(default)]
        pub remark: Remark,
        #[serde(default, rename = "extFields")]
        pub ext_fields: Option<Ext>,
    }

    /// A JSON scalar as text (`null` → `None`).
    struct Scalar(Option<String>);

    impl<'de> Deserialize<'de> for Scalar {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Scalar;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a string, number, boolean or null")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                    Ok(Scalar(Some(v.to_string())))
                }
                fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                    Ok(Scalar(Some(v)))
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                    Ok(Scalar(Some(v.to_string())))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                    Ok(Scalar(Some(v.to_string())))
                }
                fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                    Ok(Scalar(Some(v.to_string())))
                }
                fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                    Ok(Scalar(Some(v.to_string())))
                }
                fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                    Ok(Scalar(None))
                }
                fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
                    Ok(Scalar(None))
                }
                // Nested values are nothing a header field can hold: skipped.
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Scalar, A::Error> {
                    while m.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
                    Ok(Scalar(None))
                }
                fn visit_seq<A: de::SeqAccess<'de>>(self, mut s: A) -> Result<Scalar, A::Error> {
                    while s.next_element::<de::IgnoredAny>()?.is_some() {}
                    Ok(Scalar(None))
                }
            }
            d.deserialize_any(V)
        }
    }

    fn lenient_i32<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
        match Scalar::deserialize(d)?.0 {
            None => Ok(0),
            Some(s) => s
                .trim()
                .parse::<i64>()
                .ok()
                .and_then(|v| i32::try_from(v).ok())
                .ok_or_else(|| de::Error::custom(format!("`{s}` is not an int"))),
        }
    }

    pub struct Lang(pub LanguageCode);

    impl Default for Lang {
        fn default() -> Self {
            Lang(LanguageCode::Other)
        }
    }

    impl<'de> Deserialize<'de> for Lang {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            Ok(Lang(match Scalar::deserialize(d)?.0 {
                Some(s) => LanguageCode::from_name(&s),
                None => LanguageCode::Other,
            }))
        }
    }

    #[derive(Default)]
    pub struct Remark(pub Option<String>);

    impl<'de> Deserialize<'de> for Remark {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            Ok(Remark(Scalar::deserialize(d)?.0))
        }
    }

    pub struct Ext(pub HashMap<String, String>);

    impl<'de> Deserialize<'de> for Ext {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Ext;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("an object")
                }
                fn visit_unit<E: de::Error>(self) -> Result<Ext, E> {
                    Ok(Ext(HashMap::new()))
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Ext, A::Error> {
                    let mut out = HashMap::with_capacity(m.size_hint().unwrap_or(8));
                    while let Some((k, v)) = m.next_entry::<String, Scalar>()? {
                        if let Some(v) = v.0 {
                            out.insert(k, v);
                        }
                    }
                    Ok(Ext(out))
                }
            }
            d.deserialize_any(V)
        }
    }
}
