//! The JSON request header in the one shape every client writes it, read in a single pass.
//!
//! Clients write `{"code":310,"extFields":{"a":"x",...},"flag":0,"language":"JAVA",
//! "opaque":7,"serializeTypeCurrentRPC":"JSON","version":317}`: integers as numbers, names and
//! values as strings. That shape is read here without serde's generic
//! machinery (it was a tenth of the broker's CPU per send). Anything else (numbers in
//! `extFields`, integers as strings, repeated or unknown keys) returns `None`, and the caller
//! reads the header with the lenient serde reader instead, which accepts all of it.

use std::collections::HashMap;

use bytes::Bytes;

use crate::code::LanguageCode;
use crate::command::{RemotingCommand, SerializeType};

struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.buf.get(self.at) {
            self.at += 1;
        }
    }

    /// Skips whitespace, then takes `b` if it is next.
    fn eat(&mut self, b: u8) -> bool {
        self.ws();
        if self.buf.get(self.at) == Some(&b) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// A string, borrowed when it has no escapes (names, most values), unescaped otherwise
    /// (a properties string carries its `\u0001`/`\u0002` separators escaped).
    fn str(&mut self) -> Option<std::borrow::Cow<'a, str>> {
        if !self.eat(b'"') {
            return None;
        }
        let rest = &self.buf[self.at..];
        // One pass to the end quote, an escape, or a raw control character (which JSON
        // forbids in strings).
        let len = rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if rest[len] < 0x20 {
            return None;
        }
        if rest[len] == b'"' {
            self.at += len + 1;
            return std::str::from_utf8(&rest[..len]).ok().map(Into::into);
        }
        self.escaped().map(Into::into)
    }

    /// The rest of a string with escapes, from its first character.
    fn escaped(&mut self) -> Option<String> {
        let mut out = Vec::new();
        loop {
            let b = *self.buf.get(self.at)?;
            self.at += 1;
            match b {
                b'"' => return String::from_utf8(out).ok(),
                0..0x20 => return None,
                b'\\' => {
                    let e = *self.buf.get(self.at)?;
                    self.at += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            if (0xD800..0xDC00).contains(&hi) {
                                // A surrogate pair, or the slow path's business.
                                if self.buf.get(self.at..self.at + 2)? != b"\\u" {
                                    return None;
                                }
                                self.at += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return None;
                                }
                                char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))?
                            } else {
                                char::from_u32(hi)?
                            }
                        }
                        _ => return None,
                    };
                    let mut tmp = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                }
                b => out.push(b),
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.buf.get(self.at..self.at + 4)?;
        self.at += 4;
        u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    }

    /// An integer in i32's range.
    fn int(&mut self) -> Option<i32> {
        self.ws();
        let start = self.at;
        if self.buf.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        let digits = self.buf[self.at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 || digits > 10 {
            return None;
        }
        self.at += digits;
        // Digits and a sign only: valid UTF-8.
        std::str::from_utf8(&self.buf[start..self.at])
            .ok()?
            .parse()
            .ok()
    }

    fn null(&mut self) -> bool {
        self.ws();
        if self.buf[self.at..].starts_with(b"null") {
            self.at += 4;
            true
        } else {
            false
        }
    }
}

/// Reads `header` if it has the common shape (the body is attached by the caller).
pub(crate) fn decode(header: &[u8]) -> Option<RemotingCommand> {
    let mut c = Cursor { buf: header, at: 0 };
    let mut out = RemotingCommand {
        code: 0,
        language: LanguageCode::Other,
        version: 0,
        opaque: 0,
        flag: 0,
        remark: None,
        ext_fields: HashMap::new(),
        body: Bytes::new(),
        serialize_type: SerializeType::Json,
    };
    if !c.eat(b'{') {
        return None;
    }
    let mut seen = 0u8;
    let mut first = true;
    loop {
        if c.eat(b'}') {
            break;
        }
        if !first && !c.eat(b',') {
            return None;
        }
        first = false;
        let key = c.str()?;
        if !c.eat(b':') {
            return None;
        }
        let bit = match &*key {
            "code" => {
                out.code = c.int()?;
                1
            }
            "version" => {
                out.version = c.int()?;
                2
            }
            "opaque" => {
                out.opaque = c.int()?;
                4
            }
            "flag" => {
                out.flag = c.int()?;
                8
            }
            "language" => {
                out.language = LanguageCode::from_name(&c.str()?);
                16
            }
            "remark" => {
                if !c.null() {
                    out.remark = Some(c.str()?.into_owned());
                }
                32
            }
            "serializeTypeCurrentRPC" => {
                c.str()?;
                64
            }
            "extFields" => {
                if !c.null() {
                    ext(&mut c, &mut out.ext_fields)?;
                }
                128
            }
            _ => return None,
        };
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
    }
    c.ws();
    (c.at == header.len()).then_some(out)
}

fn ext(c: &mut Cursor<'_>, out: &mut HashMap<String, String>) -> Option<()> {
    if !c.eat(b'{') {
        return None;
    }
    out.reserve(16);
    let mut first = true;
    loop {
        if c.eat(b'}') {
            return Some(());
        }
        if !first && !c.eat(b',') {
            return None;
        }
        first = false;
        let k = c.str()?;
        if !c.eat(b':') {
            return None;
        }
        // A null value is no value, as the lenient reader has it.
        if c.null() {
            continue;
        }
        let v = c.str()?;
        out.insert(k.into_owned(), v.into_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_common_shape() {
        let h = br#"{"code":310,"extFields":{"a":"producer","b":"T\u00e9"},"flag":0,"language":"JAVA","opaque":-7,"serializeTypeCurrentRPC":"JSON","version":317}"#;
        // `\u00e9` is an escape: the slow path's.
        let f = decode(h).unwrap();
        assert_eq!(f.ext_fields["b"], "T\u{e9}");
        let h = r#"{"extFields":{"p":"KEYS\u0001k\u0002TAGS\u0001t","q":"\"\\\/\b\f\n\r\t\ud83d\ude00"}}"#;
        let f = decode(h.as_bytes()).unwrap();
        assert_eq!(f.ext_fields["p"], "KEYS\u{1}k\u{2}TAGS\u{1}t");
        assert_eq!(f.ext_fields["q"], "\"\\/\u{8}\u{c}\n\r\t\u{1f600}");
        let h = r#" { "code" : 310 , "extFields" : { "a" : "producer" , "b" : "Té" , "n" : null } ,
            "flag":0,"language":"JAVA","opaque":-7,"remark":null,"version":317 } "#;
        let f = decode(h.as_bytes()).unwrap();
        assert_eq!((f.code, f.flag, f.opaque, f.version), (310, 0, -7, 317));
        assert_eq!(f.language, LanguageCode::Java);
        assert_eq!(f.remark, None);
        assert_eq!(f.ext_fields.len(), 2);
        assert_eq!(f.ext_fields["b"], "Té");
    }

    #[test]
    fn leaves_every_other_shape_to_the_lenient_reader() {
        for h in [
            r#"{"code":"310"}"#,
            r#"{"code":310,"code":311}"#,
            r#"{"code":310,"extFields":{"a":1}}"#,
            r#"{"code":310,"extFields":{"a":true}}"#,
            r#"{"code":310,"other":1}"#,
            r#"{"code":99999999999}"#,
            r#"{"code":310,"language":2}"#,
            r#"{"code":310}x"#,
            r#"{"code":310,}"#,
            r#"{"code":310"#,
            r#"{"remark":"a\x"}"#,
            r#"{"remark":"\ud83d"}"#,
            r#"{"remark":"\ud83dx"}"#,
            r#"{"remark":"\u12"}"#,
            "{\"remark\":\"a\tb\"}",
            r#"[]"#,
            "",
        ] {
            assert!(decode(h.as_bytes()).is_none(), "{h}");
        }
    }

    proptest::proptest! {
        /// Whatever the fast reader accepts, the lenient reader reads the same way.
        #[test]
        fn agrees_with_the_lenient_reader(
            code in proptest::num::i32::ANY,
            opaque in proptest::num::i32::ANY,
            ext in proptest::collection::hash_map("[a-zA-Z0-9_ \u{e9}]{1,8}", "[a-zA-Z0-9 ,.:;/|=+%\u{1}\u{2}\"\\\\\n\u{e9}\u{1f600}-]{0,12}", 0..6),
            remark in proptest::option::of("[a-z ]{0,10}"),
        ) {
            let mut cmd = crate::command::RemotingCommand::request(code);
            cmd.opaque = opaque;
            cmd.remark = remark;
            cmd.ext_fields = ext;
            let bytes = cmd.encode_header();
            let fast = decode(&bytes).expect("our own headers take the fast path");
            proptest::prop_assert_eq!(fast.code, cmd.code);
            proptest::prop_assert_eq!(fast.opaque, cmd.opaque);
            proptest::prop_assert_eq!(&fast.remark, &cmd.remark);
            proptest::prop_assert_eq!(&fast.ext_fields, &cmd.ext_fields);
            let slow = crate::command::RemotingCommand::decode_json_header_lenient(&bytes).unwrap();
            proptest::prop_assert_eq!(&slow.ext_fields, &fast.ext_fields);
        }
    }
}
