//! JSON bodies as Java's fastjson writes and reads them.
//!
//! fastjson writes `Map<Long, _>` keys as bare numbers (`{0:"addr"}`) and object-keyed maps
//! with a JSON object as the key (`{{"topic":"T",...}:{...}}`). Neither is valid JSON. Readers
//! here accept both (and standard JSON); writers produce standard JSON unless told which
//! fields should carry fastjson's bare keys, for the old clients that parse them that way.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::{RemotingError, Result};

/// Parses a body written by Java (fastjson) or by a standard JSON writer.
pub fn from_slice<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    match serde_json::from_slice(body) {
        Ok(v) => Ok(v),
        Err(first) => {
            let normalized =
                normalize(body).map_err(|_| RemotingError::BadBody(first.to_string()))?;
            serde_json::from_str(&normalized).map_err(|e| RemotingError::BadBody(e.to_string()))
        }
    }
}

/// Standard JSON, keys sorted as fastjson sorts them.
pub fn to_vec<T: Serialize>(value: &T) -> Vec<u8> {
    // Going through `Value` sorts object keys (serde_json's map is ordered by key).
    match serde_json::to_value(value) {
        Ok(v) => serde_json::to_vec(&v).unwrap_or_default(),
        Err(e) => {
            tracing::error!(error = %e, "serializing a body failed");
            b"{}".to_vec()
        }
    }
}

/// fastjson's default form: maps held in a field named in `bare_key_fields` have their
/// numeric keys written bare and their object keys (serialized as JSON text by our types)
/// written as raw objects.
pub fn to_vec_fastjson<T: Serialize>(value: &T, bare_key_fields: &[&str]) -> Vec<u8> {
    let value = match serde_json::to_value(value) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "serializing a body failed");
            return b"{}".to_vec();
        }
    };
    let mut out = String::new();
    write_value(&value, false, bare_key_fields, &mut out);
    out.into_bytes()
}

fn write_value(value: &Value, bare_keys: bool, fields: &[&str], out: &mut String) {
    match value {
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let raw_key = bare_keys
                    && (k.parse::<i64>().is_ok()
                        || (k.starts_with('{') && serde_json::from_str::<Value>(k).is_ok()));
                if raw_key {
                    out.push_str(k);
                } else {
                    out.push_str(&serde_json::to_string(k).unwrap_or_default());
                }
                out.push(':');
                write_value(v, fields.contains(&k.as_str()), fields, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(v, false, fields, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Rewrites fastjson text into standard JSON: bare keys become strings and object or array
/// keys become strings holding their (normalized) JSON text.
pub fn normalize(input: &[u8]) -> Result<String> {
    let text = std::str::from_utf8(input).map_err(|_| bad("body is not UTF-8"))?;
    let mut p = Normalizer {
        s: text.as_bytes(),
        text,
        pos: 0,
        out: String::with_capacity(text.len() + 16),
        depth: 0,
    };
    p.value()?;
    p.ws();
    if p.pos != p.s.len() {
        return Err(bad("trailing characters after JSON value"));
    }
    Ok(p.out)
}

fn bad(msg: &str) -> RemotingError {
    RemotingError::BadBody(msg.to_string())
}

const MAX_DEPTH: usize = 128;

struct Normalizer<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
    out: String,
    depth: usize,
}

impl Normalizer<'_> {
    fn ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn value(&mut self) -> Result<()> {
        self.ws();
        match self.peek() {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => {
                let start = self.pos;
                self.string()?;
                self.out.push_str(&self.text[start..self.pos]);
                Ok(())
            }
            Some(_) => {
                let start = self.pos;
                self.scalar();
                if start == self.pos {
                    return Err(bad("unexpected character"));
                }
                self.out.push_str(&self.text[start..self.pos]);
                Ok(())
            }
            None => Err(bad("unexpected end of JSON")),
        }
    }

    /// Skips a string literal, leaving `pos` after its closing quote.
    fn string(&mut self) -> Result<()> {
        self.pos += 1;
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                b'\\' => self.pos += 1,
                b'"' => return Ok(()),
                _ => {}
            }
        }
        Err(bad("unterminated string"))
    }

    /// A bare token: number, `true`, `false`, `null`, or an unquoted key.
    fn scalar(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.' | b'_' | b'$') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(bad("JSON nested too deeply"));
        }
        Ok(())
    }

    fn object(&mut self) -> Result<()> {
        self.enter()?;
        self.pos += 1;
        self.out.push('{');
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.out.push('}');
            self.depth -= 1;
            return Ok(());
        }
        loop {
            self.ws();
            self.key()?;
            self.ws();
            if self.peek() != Some(b':') {
                return Err(bad("expected `:` after object key"));
            }
            self.pos += 1;
            self.out.push(':');
            self.value()?;
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.out.push(',');
                }
                Some(b'}') => {
                    self.pos += 1;
                    self.out.push('}');
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(bad("expected `,` or `}` in object")),
            }
        }
    }

    fn key(&mut self) -> Result<()> {
        match self.peek() {
            Some(b'"') => {
                let start = self.pos;
                self.string()?;
                self.out.push_str(&self.text[start..self.pos]);
                Ok(())
            }
            Some(b'{') | Some(b'[') => {
                // An object used as a key: normalize it on its own, then quote its text.
                let saved = std::mem::take(&mut self.out);
                let result = self.value();
                let inner = std::mem::replace(&mut self.out, saved);
                result?;
                self.out
                    .push_str(&serde_json::to_string(&inner).map_err(|e| bad(&e.to_string()))?);
                Ok(())
            }
            Some(_) => {
                let start = self.pos;
                self.scalar();
                if start == self.pos {
                    return Err(bad("unexpected character in object key"));
                }
                let token = &self.text[start..self.pos];
                self.out.push('"');
                self.out.push_str(token);
                self.out.push('"');
                Ok(())
            }
            None => Err(bad("unexpected end of JSON in object")),
        }
    }

    fn array(&mut self) -> Result<()> {
        self.enter()?;
        self.pos += 1;
        self.out.push('[');
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.out.push(']');
            self.depth -= 1;
            return Ok(());
        }
        loop {
            self.value()?;
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.out.push(',');
                }
                Some(b']') => {
                    self.pos += 1;
                    self.out.push(']');
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(bad("expected `,` or `]` in array")),
            }
        }
    }
}

/// serde helpers for maps whose keys are objects (fastjson writes the object as the key; we
/// carry it as the key's JSON text).
pub mod object_key_map {
    use std::collections::HashMap;
    use std::hash::Hash;

    use serde::de::{DeserializeOwned, Error as _};
    use serde::ser::{Error as _, SerializeMap};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K, V, S>(map: &HashMap<K, V>, ser: S) -> Result<S::Ok, S::Error>
    where
        K: Serialize + Ord,
        V: Serialize,
        S: Serializer,
    {
        let mut entries: Vec<(&K, &V)> = map.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        let mut m = ser.serialize_map(Some(entries.len()))?;
        for (k, v) in entries {
            // Through `Value` so the key's own fields come out sorted, as fastjson writes them.
            let key = serde_json::to_value(k)
                .and_then(|v| serde_json::to_string(&v))
                .map_err(S::Error::custom)?;
            m.serialize_entry(&key, v)?;
        }
        m.end()
    }

    pub fn deserialize<'de, K, V, D>(de: D) -> Result<HashMap<K, V>, D::Error>
    where
        K: DeserializeOwned + Eq + Hash,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        let raw: HashMap<String, V> = HashMap::deserialize(de)?;
        raw.into_iter()
            .map(|(k, v)| {
                serde_json::from_str(&k)
                    .map(|k| (k, v))
                    .map_err(|e| D::Error::custom(format!("bad map key {k}: {e}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn bare_and_object_keys_normalize() {
        let text = br#"{"brokerAddrs":{0:"a:1",1:"b:2"},"t":{{"topic":"T","queueId":1}:{"x":1}}}"#;
        let v: Value = from_slice(text).unwrap();
        assert_eq!(v["brokerAddrs"]["0"], "a:1");
        let (k, inner) = v["t"].as_object().unwrap().iter().next().unwrap();
        let key: Value = serde_json::from_str(k).unwrap();
        assert_eq!(key["topic"], "T");
        assert_eq!(inner["x"], 1);
    }

    #[test]
    fn writes_bare_keys_only_where_asked() {
        let mut addrs = BTreeMap::new();
        addrs.insert(0i64, "a:1".to_string());
        addrs.insert(1i64, "b:2".to_string());
        let v = serde_json::json!({"brokerAddrs": addrs, "other": {"5": "x"}});
        let text = String::from_utf8(to_vec_fastjson(&v, &["brokerAddrs"])).unwrap();
        assert_eq!(
            text,
            r#"{"brokerAddrs":{0:"a:1",1:"b:2"},"other":{"5":"x"}}"#
        );
        let back: Value = from_slice(text.as_bytes()).unwrap();
        assert_eq!(back["brokerAddrs"]["1"], "b:2");
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let text = "{a:".repeat(10_000);
        assert!(normalize(text.as_bytes()).is_err());
    }

    proptest! {
        #[test]
        fn normalize_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = normalize(&bytes);
            let _ = from_slice::<Value>(&bytes);
        }

        #[test]
        fn normalize_never_panics_on_jsonish(s in "[{}\\[\\]:,\"0-9a-z \\\\]{0,64}") {
            let _ = normalize(s.as_bytes());
        }
    }
}
