//! `RemotingCommand`: one request or response, and its two header serializations.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};

use bytes::{Buf, BufMut, Bytes};
use serde_json::Value;

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
        // Keys in fastjson's sorted order. `extFields` is always present: Java clients read
        // it without a null check on send responses.
        let mut ext: Vec<(&String, &String)> = self.ext_fields.iter().collect();
        ext.sort();
        let ext: serde_json::Map<String, Value> = ext
            .into_iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let mut obj = serde_json::Map::new();
        obj.insert("code".into(), self.code.into());
        obj.insert("extFields".into(), Value::Object(ext));
        obj.insert("flag".into(), self.flag.into());
        obj.insert("language".into(), self.language.name().into());
        obj.insert("opaque".into(), self.opaque.into());
        if let Some(remark) = &self.remark {
            obj.insert("remark".into(), remark.clone().into());
        }
        obj.insert("serializeTypeCurrentRPC".into(), "JSON".into());
        obj.insert("version".into(), self.version.into());
        serde_json::to_vec(&Value::Object(obj)).unwrap_or_default()
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
        let value: Value = serde_json::from_slice(header)
            .map_err(|e| RemotingError::BadHeader(format!("JSON header: {e}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| RemotingError::BadHeader("JSON header is not an object".into()))?;
        let int = |key: &str| -> Result<i32> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(0),
                Some(v) => json_i32(v)
                    .ok_or_else(|| RemotingError::BadHeader(format!("`{key}` is not an int"))),
            }
        };
        let language = match obj.get("language") {
            Some(Value::String(s)) => LanguageCode::from_name(s),
            Some(Value::Number(n)) => LanguageCode::from_code(n.as_u64().unwrap_or(7) as u8),
            _ => LanguageCode::Other,
        };
        let remark = match obj.get("remark") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        };
        let mut ext_fields = HashMap::new();
        match obj.get("extFields") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (k, v) in map {
                    // Lenient like the Java broker: numbers and booleans are taken as text.
                    let text = match v {
                        Value::String(s) => s.clone(),
                        Value::Null => continue,
                        other => other.to_string(),
                    };
                    ext_fields.insert(k.clone(), text);
                }
            }
            Some(_) => {
                return Err(RemotingError::BadHeader(
                    "`extFields` is not an object".into(),
                ))
            }
        }
        Ok(RemotingCommand {
            code: int("code")?,
            language,
            version: int("version")?,
            opaque: int("opaque")?,
            flag: int("flag")?,
            remark,
            ext_fields,
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

fn json_i32(v: &Value) -> Option<i32> {
    match v {
        Value::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
