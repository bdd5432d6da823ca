//! A message's properties in their wire form: `name\x01value` pairs joined by `\x02`.
//!
//! Clients disagree on the last separator: the official Java client ends the string without one
//! (`MessageDecoder#messageProperties2String` deletes it), C++ and rocketmq-client-rust end every
//! pair with one. A broker that appends to the string it was given must tell the two apart, or
//! the client's last property swallows what it appends (`TAGS` = `A` becomes
//! `ACLUSTER\x01DefaultCluster`). [`Properties`] is the one place that reads and edits the
//! string: it is parsed once with Java's rules and every edit keeps it well formed.

use std::collections::HashMap;
use std::fmt;

/// Separates a property's name from its value.
pub const NAME_VALUE_SEPARATOR: char = '\u{1}';
/// Separates one property from the next.
pub const PROPERTY_SEPARATOR: char = '\u{2}';

/// Message properties, kept encoded in the order received (edits append at the end).
///
/// The text is always in the form Java brokers store: pairs joined by `\x02`, no trailing
/// separator, no empty name or value, each name once.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Properties {
    text: String,
}

/// The pairs of an encoded string that Java's `string2messageProperties` keeps: segments of at
/// least three characters with a non-empty name before the first `\x01` and a non-empty value.
fn java_pairs(s: &str) -> impl Iterator<Item = (&str, &str)> {
    s.split(PROPERTY_SEPARATOR).filter_map(|seg| {
        if seg.len() < 3 {
            return None;
        }
        let (k, v) = seg.split_once(NAME_VALUE_SEPARATOR)?;
        (!k.is_empty() && !v.is_empty()).then_some((k, v))
    })
}

impl Properties {
    /// An empty set.
    pub fn new() -> Self {
        Properties::default()
    }

    /// Reads a properties string as any client writes it, with or without a trailing `\x02`.
    /// Malformed segments are dropped and a repeated name keeps its last value, as Java's
    /// `string2messageProperties` does. A well-formed string is kept as it is.
    pub fn parse(s: &str) -> Properties {
        Self::from_string(s.to_string())
    }

    /// [`Properties::parse`] taking ownership of the string, so a well-formed one (the common
    /// case) is kept without a copy.
    pub fn from_string(mut s: String) -> Properties {
        while s.ends_with(PROPERTY_SEPARATOR) {
            s.pop();
        }
        if Self::well_formed(&s) {
            return Properties { text: s };
        }
        let mut p = Properties::new();
        for (k, v) in java_pairs(&s) {
            p.insert(k, v);
        }
        p
    }

    /// Every segment a valid pair and no name twice (the fast path of `parse`; no allocation,
    /// and the quadratic name check is cheap for the handful of properties a message has).
    fn well_formed(s: &str) -> bool {
        if s.is_empty() {
            return true;
        }
        for (i, seg) in s.split(PROPERTY_SEPARATOR).enumerate() {
            let Some((k, v)) = seg.split_once(NAME_VALUE_SEPARATOR) else {
                return false;
            };
            if k.is_empty()
                || v.is_empty()
                || s.split(PROPERTY_SEPARATOR)
                    .take(i)
                    .any(|prev| prev.split_once(NAME_VALUE_SEPARATOR).map(|(p, _)| p) == Some(k))
            {
                return false;
            }
        }
        true
    }

    /// Builds the string from a map; names are sorted so the same map gives the same bytes.
    pub fn from_map(map: &HashMap<String, String>) -> Properties {
        let mut entries: Vec<(&String, &String)> = map.iter().collect();
        entries.sort_unstable();
        let mut p = Properties::new();
        for (k, v) in entries {
            p.insert(k, v);
        }
        p
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find_map(|(k, v)| (k == name).then_some(v))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets `name` to `value`, replacing any earlier value. An empty name or value is not
    /// representable (Java drops such pairs when it reads them), so it removes `name` instead.
    pub fn insert(&mut self, name: &str, value: &str) {
        // A value may hold `\x01` (Java reads a pair up to its first one), never `\x02`.
        debug_assert!(
            !name.contains([NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR])
                && !value.contains(PROPERTY_SEPARATOR),
            "property {name:?} holds a separator"
        );
        self.remove(name);
        if name.is_empty() || value.is_empty() {
            return;
        }
        if !self.text.is_empty() {
            self.text.push(PROPERTY_SEPARATOR);
        }
        self.text.push_str(name);
        self.text.push(NAME_VALUE_SEPARATOR);
        self.text.push_str(value);
    }

    /// Sets `name` only if it has no value yet.
    pub fn insert_if_absent(&mut self, name: &str, value: impl FnOnce() -> String) {
        if !self.contains(name) {
            self.insert(name, &value());
        }
    }

    /// Removes `name`, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        let mut start = 0;
        for seg in self.text.split(PROPERTY_SEPARATOR) {
            let end = start + seg.len();
            if seg
                .split_once(NAME_VALUE_SEPARATOR)
                .is_some_and(|(k, _)| k == name)
            {
                let value = seg[name.len() + 1..].to_string();
                // Take the pair with one neighbouring separator (the one before it, or after it
                // when it is the first pair).
                let (from, to) = if start > 0 {
                    (start - 1, end)
                } else {
                    (0, (end + 1).min(self.text.len()))
                };
                self.text.replace_range(from..to, "");
                return Some(value);
            }
            start = end + 1;
        }
        None
    }

    /// The pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        java_pairs(&self.text)
    }

    /// The encoded string (no trailing separator, as Java brokers store it).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn into_string(self) -> String {
        self.text
    }

    /// Encoded length in bytes.
    pub fn len(&self) -> usize {
        self.text.len()
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    pub fn to_map(&self) -> HashMap<String, String> {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

impl fmt::Debug for Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for Properties {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut p = Properties::new();
        for (k, v) in iter {
            p.insert(k.as_ref(), v.as_ref());
        }
        p
    }
}

/// Parses a properties string into a map with Java's rules (see [`Properties::parse`]).
pub fn decode_properties(s: &str) -> HashMap<String, String> {
    java_pairs(s)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Encodes a map as Java does (no trailing separator); names sorted for stable bytes.
pub fn encode_properties(props: &HashMap<String, String>) -> String {
    Properties::from_map(props).into_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::hash_map;
    use proptest::prelude::*;

    #[test]
    fn java_client_string_without_trailing_separator() {
        // As the official Java client 4.9 writes it: no `\x02` after the last pair.
        let mut p = Properties::parse("KEYS\u{1}k1 k2\u{2}WAIT\u{1}true\u{2}TAGS\u{1}A");
        p.insert("CLUSTER", "DefaultCluster");
        p.insert_if_absent("UNIQ_KEY", || "ABC".into());
        assert_eq!(p.get("TAGS"), Some("A"));
        assert_eq!(p.get("CLUSTER"), Some("DefaultCluster"));
        assert_eq!(
            p.as_str(),
            "KEYS\u{1}k1 k2\u{2}WAIT\u{1}true\u{2}TAGS\u{1}A\u{2}CLUSTER\u{1}DefaultCluster\u{2}UNIQ_KEY\u{1}ABC"
        );
    }

    #[test]
    fn trailing_separator_is_dropped() {
        let mut p = Properties::parse("TAGS\u{1}A\u{2}KEYS\u{1}k\u{2}");
        p.insert("CLUSTER", "c");
        assert_eq!(p.as_str(), "TAGS\u{1}A\u{2}KEYS\u{1}k\u{2}CLUSTER\u{1}c");
    }

    #[test]
    fn malformed_and_repeated_pairs_follow_java() {
        let p =
            Properties::parse("TAGS\u{1}A\u{2}x\u{2}\u{1}v\u{2}K\u{1}\u{2}TAGS\u{1}B\u{2}\u{2}");
        assert_eq!(p.to_map().len(), 1);
        assert_eq!(p.get("TAGS"), Some("B"));
        assert_eq!(p.as_str(), "TAGS\u{1}B");
        assert_eq!(Properties::parse("\u{2}\u{2}").as_str(), "");
    }

    #[test]
    fn insert_replaces_and_remove_keeps_the_rest_well_formed() {
        let mut p = Properties::parse("A\u{1}1\u{2}B\u{1}2\u{2}C\u{1}3");
        p.insert("B", "two");
        assert_eq!(p.as_str(), "A\u{1}1\u{2}C\u{1}3\u{2}B\u{1}two");
        assert_eq!(p.remove("A").as_deref(), Some("1"));
        assert_eq!(p.as_str(), "C\u{1}3\u{2}B\u{1}two");
        assert_eq!(p.remove("B").as_deref(), Some("two"));
        assert_eq!(p.as_str(), "C\u{1}3");
        assert_eq!(p.remove("C").as_deref(), Some("3"));
        assert_eq!(p.as_str(), "");
        assert_eq!(p.remove("C"), None);
        // A name that is a prefix of another is not confused with it.
        let mut p = Properties::parse("KEYS\u{1}k\u{2}KEY\u{1}v");
        assert_eq!(p.remove("KEY").as_deref(), Some("v"));
        assert_eq!(p.get("KEYS"), Some("k"));
    }

    fn props() -> impl Strategy<Value = HashMap<String, String>> {
        hash_map("[A-Za-z_]{1,8}", "[^\u{1}\u{2}]{1,16}", 0..6)
    }

    proptest! {
        #[test]
        fn edits_match_a_map(p in props(), edits in proptest::collection::vec(("[A-C]{1,2}", proptest::option::of("[a-z]{1,3}")), 0..12), trailing in any::<bool>()) {
            let mut text = encode_properties(&p);
            if trailing && !text.is_empty() {
                text.push(PROPERTY_SEPARATOR);
            }
            let mut props = Properties::parse(&text);
            let mut map = p.clone();
            for (k, v) in edits {
                match v {
                    Some(v) => { props.insert(&k, &v); map.insert(k, v); }
                    None => { prop_assert_eq!(props.remove(&k), map.remove(&k)); }
                }
            }
            prop_assert_eq!(props.to_map(), map.clone());
            // What is stored reads back the same through Java's rules.
            prop_assert_eq!(decode_properties(props.as_str()), map);
            prop_assert!(!props.as_str().ends_with(PROPERTY_SEPARATOR));
        }

        #[test]
        fn parse_never_panics_and_is_well_formed(s in "[A-C\u{1}\u{2}]{0,24}") {
            let p = Properties::parse(&s);
            prop_assert!(Properties::well_formed(p.as_str()));
            prop_assert_eq!(p.to_map(), decode_properties(&s));
        }
    }
}
