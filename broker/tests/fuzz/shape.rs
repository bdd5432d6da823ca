//! A frame as editable structure: the header's fields as the client wrote them (a JSON
//! number stays a number), its extFields in order, its serialize type and body. Encoding
//! writes the header by hand rather than through `RemotingCommand`, so a mutant can carry
//! what no well-behaved encoder writes: duplicate keys, numbers where strings belong, keys
//! and values longer than the binary layout's length fields, bytes that are not UTF-8.

use super::*;

/// A header value: a JSON string, or a raw JSON token written unquoted (`123`, `1e400`,
/// `null`, `[1]`). In the binary layout both are their text.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Str(String),
    Raw(String),
}

impl Val {
    pub fn text(&self) -> &str {
        match self {
            Val::Str(s) | Val::Raw(s) => s,
        }
    }

    fn from_json(v: &serde_json::Value) -> Val {
        match v {
            serde_json::Value::String(s) => Val::Str(s.clone()),
            other => Val::Raw(other.to_string()),
        }
    }
}

/// Stands for bytes that are not UTF-8: a value can only be a `String` until it is encoded,
/// then these four bytes (U+10FFFF) are swapped for four invalid ones of the same length,
/// so the binary layout's length prefixes stay right.
pub const NON_UTF8_MARK: char = '\u{10FFFF}';
const MARK_BYTES: [u8; 4] = [0xF4, 0x8F, 0xBF, 0xBF];
const INVALID_BYTES: [u8; 4] = [0xFF, 0xFE, 0xC0, 0xAF];

#[derive(Debug, Clone)]
pub struct Shape {
    /// Top-level header fields other than `extFields`, in order (`code`, `flag`, ...).
    pub top: Vec<(String, Val)>,
    /// `None`: no `extFields` key at all (Java 4.9.8's HEART_BEAT).
    pub ext: Option<Vec<(String, Val)>>,
    /// The serialize-type byte: 0 JSON, 1 ROCKETMQ binary, anything else as sent.
    pub serialize: u8,
    pub body: Vec<u8>,
}

impl Shape {
    /// From a complete, valid frame.
    pub fn from_frame(bytes: &[u8]) -> Result<Shape, String> {
        let serialize = bytes[4];
        let header_len = u32::from_be_bytes([0, bytes[5], bytes[6], bytes[7]]) as usize;
        let header = &bytes[8..8 + header_len];
        let body = bytes[8 + header_len..].to_vec();
        if serialize == 1 {
            let cmd = RemotingCommand::decode_header_bytes(SerializeType::RocketMq, header)
                .map_err(|e| e.to_string())?;
            return Ok(Shape::from_command(&cmd, 1, body));
        }
        let json: serde_json::Value =
            serde_json::from_slice(header).map_err(|e| format!("header: {e}"))?;
        let obj = json.as_object().ok_or("header is not an object")?;
        let mut top = Vec::new();
        let mut ext = None;
        for (k, v) in obj {
            if k == "extFields" {
                ext = Some(match v.as_object() {
                    Some(m) => m
                        .iter()
                        .map(|(k, v)| (k.clone(), Val::from_json(v)))
                        .collect(),
                    None => Vec::new(),
                });
            } else {
                top.push((k.clone(), Val::from_json(v)));
            }
        }
        Ok(Shape {
            top,
            ext,
            serialize,
            body,
        })
    }

    /// From a command built with the crate's types (serialized as `serialize` says).
    pub fn from_command(cmd: &RemotingCommand, serialize: u8, body: Vec<u8>) -> Shape {
        let num = |n: i32| Val::Raw(n.to_string());
        let mut top = vec![
            ("code".to_string(), num(cmd.code)),
            ("flag".to_string(), num(cmd.flag)),
            ("language".to_string(), Val::Str(cmd.language.name().into())),
            ("opaque".to_string(), num(cmd.opaque)),
            (
                "serializeTypeCurrentRPC".to_string(),
                Val::Str("JSON".into()),
            ),
            ("version".to_string(), num(cmd.version)),
        ];
        if let Some(r) = &cmd.remark {
            top.push(("remark".to_string(), Val::Str(r.clone())));
        }
        let mut ext: Vec<(String, Val)> = cmd
            .ext_fields
            .iter()
            .map(|(k, v)| (k.clone(), Val::Str(v.clone())))
            .collect();
        // HashMap order is random per process: sorted, so a seed is the same in every run.
        ext.sort_by(|a, b| a.0.cmp(&b.0));
        Shape {
            top,
            ext: Some(ext),
            serialize,
            body,
        }
    }

    /// The last value of top-level field `name`.
    pub fn top_value(&self, name: &str) -> Option<&Val> {
        self.top
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    pub fn set_top(&mut self, name: &str, v: Val) {
        match self.top.iter_mut().rev().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = v,
            None => self.top.push((name.to_string(), v)),
        }
    }

    pub fn ext_mut(&mut self) -> &mut Vec<(String, Val)> {
        self.ext.get_or_insert_with(Vec::new)
    }

    /// The header bytes (before the marker is swapped).
    pub fn header(&self) -> Vec<u8> {
        if self.serialize == 1 {
            self.binary_header()
        } else {
            self.json_header()
        }
    }

    /// The whole frame, its total length consistent with what follows it.
    pub fn encode(&self) -> Vec<u8> {
        let header = self.header();
        let mut out = Vec::with_capacity(8 + header.len() + self.body.len());
        out.extend_from_slice(&((4 + header.len() + self.body.len()) as u32).to_be_bytes());
        let word = ((self.serialize as u32) << 24) | (header.len() as u32 & 0x00FF_FFFF);
        out.extend_from_slice(&word.to_be_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.body);
        swap_marks(&mut out[8..]);
        out
    }

    fn json_header(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.push(b'{');
        let mut first = true;
        let mut field = |out: &mut Vec<u8>, k: &str| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            let _ = serde_json::to_writer(&mut *out, k);
            out.push(b':');
        };
        for (k, v) in &self.top {
            field(&mut out, k);
            write_val(&mut out, v);
        }
        if let Some(ext) = &self.ext {
            field(&mut out, "extFields");
            out.push(b'{');
            for (i, (k, v)) in ext.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let _ = serde_json::to_writer(&mut out, k);
                out.push(b':');
                write_val(&mut out, v);
            }
            out.push(b'}');
        }
        out.push(b'}');
        out
    }

    fn binary_header(&self) -> Vec<u8> {
        let int = |name: &str| -> i64 {
            self.top_value(name)
                .and_then(|v| v.text().trim().parse::<i64>().ok())
                .unwrap_or(0)
        };
        let language = self
            .top_value("language")
            .map(|v| LanguageCode::from_name(v.text()).code())
            .unwrap_or(0);
        let remark = self.top_value("remark").map(|v| v.text().as_bytes());
        let mut out = Vec::with_capacity(256);
        out.put_i16(int("code") as i16);
        out.put_u8(language);
        out.put_i16(int("version") as i16);
        out.put_i32(int("opaque") as i32);
        out.put_i32(int("flag") as i32);
        out.put_i32(remark.map_or(0, |r| r.len() as i32));
        out.put_slice(remark.unwrap_or_default());
        let mut ext = Vec::new();
        for (k, v) in self.ext.iter().flatten() {
            // Lengths as the layout holds them: a key over 32,767 bytes wraps, as a careless
            // encoder's would.
            ext.put_i16(k.len() as i16);
            ext.put_slice(k.as_bytes());
            ext.put_i32(v.text().len() as i32);
            ext.put_slice(v.text().as_bytes());
        }
        out.put_i32(ext.len() as i32);
        out.put_slice(&ext);
        out
    }
}

fn write_val(out: &mut Vec<u8>, v: &Val) {
    match v {
        Val::Str(s) => {
            let _ = serde_json::to_writer(&mut *out, s);
        }
        Val::Raw(s) => out.extend_from_slice(s.as_bytes()),
    }
}

fn swap_marks(bytes: &mut [u8]) {
    let mut i = 0;
    while i + 4 <= bytes.len() {
        if bytes[i..i + 4] == MARK_BYTES {
            bytes[i..i + 4].copy_from_slice(&INVALID_BYTES);
            i += 4;
        } else {
            i += 1;
        }
    }
}

/// How the broker's codec reads a byte string sent on a fresh connection.
#[derive(Debug)]
pub enum Parse {
    /// One whole frame and nothing after it.
    One(RemotingCommand),
    /// A frame followed by bytes the broker reads as the start of another.
    Trailing,
    /// Not enough bytes for the frame its length word announces: the broker waits for more.
    Incomplete,
    /// The codec refuses it: the broker closes the connection.
    Malformed,
}

pub fn parse(bytes: &[u8]) -> Parse {
    let mut buf = BytesMut::from(bytes);
    match RemotingCodec::default().decode(&mut buf) {
        Ok(Some(cmd)) if buf.is_empty() => Parse::One(cmd),
        Ok(Some(_)) => Parse::Trailing,
        Ok(None) => Parse::Incomplete,
        Err(_) => Parse::Malformed,
    }
}
