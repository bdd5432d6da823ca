//! The corpus files, their placeholders, and frames made ready to send as the client writes them.

use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusFile {
    pub client: String,
    pub describes: String,
    pub language: String,
    pub notes: String,
    pub frame: Vec<Frame>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Frame {
    pub op: String,
    pub name: String,
    pub source: String,
    pub serialize: String,
    #[serde(default)]
    pub oneway: bool,
    pub header: String,
    pub body: Option<String>,
    #[serde(default)]
    pub batch: Vec<BatchSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchSpec {
    #[serde(default)]
    pub flag: i32,
    #[serde(default)]
    pub properties: String,
    #[serde(default)]
    pub body: String,
}

pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

pub fn load(file: &str) -> CorpusFile {
    let path = corpus_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let corpus: CorpusFile = toml::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    assert!(!corpus.frame.is_empty(), "{file}: no frames");
    assert!(
        !corpus.describes.is_empty() && !corpus.language.is_empty() && !corpus.notes.is_empty(),
        "{file}: describes, language and notes say where the frames come from"
    );
    corpus
}

/// Fills `${name}` placeholders; an unknown one is an error (a typo would otherwise be sent).
pub fn fill(template: &str, vars: &BTreeMap<&str, String>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| format!("unclosed placeholder in {template:?}"))?;
        let name = &rest[start + 2..start + end];
        let value = vars
            .get(name)
            .ok_or_else(|| format!("unknown placeholder ${{{name}}}"))?;
        out.push_str(value);
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Java's `MessageDecoder#string2messageProperties`, written out here on its own (not the
/// library's parser, which is what is under test): pairs split at `\x02`, a pair of at least
/// three characters split at its first `\x01`, name and value non-empty, last value wins.
pub fn java_properties(s: &str) -> HashMap<String, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut map = HashMap::new();
    let mut index = 0;
    while index < chars.len() {
        let end = (index..chars.len())
            .find(|&i| chars[i] == '\u{2}')
            .unwrap_or(chars.len());
        if end - index >= 3 {
            if let Some(sep) = (index..chars.len()).find(|&i| chars[i] == '\u{1}') {
                if sep > index && sep < end - 1 {
                    map.insert(
                        chars[index..sep].iter().collect(),
                        chars[sep + 1..end].iter().collect(),
                    );
                }
            }
        }
        index = end + 1;
    }
    map
}

/// An extFields value as a number, whether the client wrote text or a JSON number.
pub fn ext_i64(ext: &serde_json::Map<String, serde_json::Value>, keys: &[&str]) -> Option<i64> {
    keys.iter().find_map(|k| match ext.get(*k)? {
        serde_json::Value::String(s) => s.trim().parse().ok(),
        v => v.as_i64(),
    })
}

/// The properties string of each record in a pull body, as stored (raw bytes), walking
/// RocketMQ's record layout independently of the library's decoder.
pub fn raw_properties(mut body: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let int = |b: &[u8], at: usize, n: usize| -> Result<i64, String> {
        let bytes = b.get(at..at + n).ok_or("record truncated")?;
        Ok(bytes.iter().fold(0i64, |acc, x| (acc << 8) | *x as i64))
    };
    let mut out = Vec::new();
    while !body.is_empty() {
        let total = int(body, 0, 4)? as usize;
        let rec = body.get(..total).ok_or("record longer than the body")?;
        let v2 = int(rec, 4, 4)? as u32 == 0xDAA3_20AB;
        let sys_flag = int(rec, 36, 4)?;
        let born = if sys_flag & 0x10 != 0 { 20 } else { 8 };
        let stored = if sys_flag & 0x20 != 0 { 20 } else { 8 };
        let mut at = 40 + 8 + born + 8 + stored + 4 + 8;
        at += 4 + int(rec, at, 4)? as usize;
        let topic_len = if v2 { 2 } else { 1 };
        at += topic_len + int(rec, at, topic_len)? as usize;
        let props_len = int(rec, at, 2)? as usize;
        out.push(
            rec.get(at + 2..at + 2 + props_len)
                .ok_or("properties truncated")?
                .to_vec(),
        );
        body = &body[total..];
    }
    Ok(out)
}

/// One item of a batch as the client sent it.
pub struct SentItem {
    pub body: Bytes,
    pub properties: HashMap<String, String>,
}

/// One frame made ready to send: its bytes and what the harness reads from it.
pub struct Prepared {
    pub bytes: Vec<u8>,
    pub opaque: i32,
    /// The ONEWAY flag is set: the broker must not answer.
    pub oneway: bool,
    /// The header's extFields as the client wrote them (JSON values, not yet text).
    pub ext: serde_json::Map<String, serde_json::Value>,
    /// The client's version (MQVersion ordinal).
    pub version: i64,
    /// The properties string the client sent, if any (`properties` or V2 `i`).
    pub properties: Option<String>,
    pub batch: Vec<SentItem>,
    pub body: Bytes,
}

pub fn prepare(frame: &Frame, vars: &BTreeMap<&str, String>) -> Result<Prepared, String> {
    let text = fill(&frame.header, vars)?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("header is not JSON: {e}"))?;
    let opaque = json["opaque"]
        .as_i64()
        .ok_or("header has no numeric opaque")? as i32;
    let flag = json["flag"].as_i64().unwrap_or(0);
    let version = json["version"].as_i64().unwrap_or(0);
    let ext = json["extFields"].as_object().cloned().unwrap_or_default();
    let properties = ["properties", "i"]
        .iter()
        .find_map(|k| ext.get(*k).and_then(|v| v.as_str()).map(String::from));
    let mut batch = Vec::new();
    let body = if !frame.batch.is_empty() {
        // Encoded here (MessageDecoder#encodeMessages' layout) so each item's properties
        // string goes out exactly as the client writes it.
        let mut body = BytesMut::new();
        for spec in &frame.batch {
            let item_body = fill(&spec.body, vars)?;
            let props = fill(&spec.properties, vars)?;
            let total = 20 + item_body.len() + 2 + props.len();
            body.put_i32(total as i32);
            body.put_i32(0);
            body.put_i32(0);
            body.put_i32(spec.flag);
            body.put_i32(item_body.len() as i32);
            body.put_slice(item_body.as_bytes());
            body.put_i16(props.len() as i16);
            body.put_slice(props.as_bytes());
            batch.push(SentItem {
                body: Bytes::from(item_body),
                properties: java_properties(&props),
            });
        }
        body.freeze()
    } else {
        Bytes::from(fill(frame.body.as_deref().unwrap_or(""), vars)?)
    };
    let header = match frame.serialize.as_str() {
        "json" => text.into_bytes(),
        "rocketmq" => {
            let mut cmd =
                RemotingCommand::decode_header_bytes(SerializeType::Json, text.as_bytes())
                    .map_err(|e| format!("header: {e}"))?;
            cmd.serialize_type = SerializeType::RocketMq;
            cmd.encode_header()
        }
        other => return Err(format!("unknown serialize {other:?}")),
    };
    let serialize = if frame.serialize == "rocketmq" {
        1u32
    } else {
        0
    };
    let mut bytes = Vec::with_capacity(8 + header.len() + body.len());
    bytes.extend_from_slice(&((4 + header.len() + body.len()) as u32).to_be_bytes());
    bytes.extend_from_slice(&((serialize << 24) | header.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&body);
    let oneway = flag & 2 != 0;
    if oneway != frame.oneway {
        return Err(format!(
            "`oneway = {}` disagrees with the header's flag {flag}",
            frame.oneway
        ));
    }
    Ok(Prepared {
        bytes,
        opaque,
        oneway,
        ext,
        version,
        properties,
        batch,
        body,
    })
}
