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

/// Whether `name=value` can be written as a pair that reads back the same.
fn representable(name: &str, value: &str) -> bool {
    !name.is_empty()
        && !value.is_empty()
        && !name.contains([NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR])
        && !value.contains(PROPERTY_SEPARATOR)
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
    /// case) is kept without a copy. Linear in the length, whatever the input.
    pub fn from_string(mut s: String) -> Properties {
        while s.ends_with(PROPERTY_SEPARATOR) {
            s.pop();
        }
        if Self::well_formed(&s) {
            return Properties { text: s };
        }
        // Rebuild in one pass: each name where it first appears, with its last value.
        let mut order: Vec<(&str, &str)> = Vec::new();
        let mut at: HashMap<&str, usize> = HashMap::new();
        for (k, v) in java_pairs(&s) {
            match at.get(k) {
                Some(&i) => order[i].1 = v,
                None => {
                    at.insert(k, order.len());
                    order.push((k, v));
                }
            }
        }
        Self::join(order)
    }

    /// Pairs known to be valid and distinct, joined.
    fn join<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Properties {
        let mut text = String::new();
        for (k, v) in pairs {
            if !text.is_empty() {
                text.push(PROPERTY_SEPARATOR);
            }
            text.push_str(k);
            text.push(NAME_VALUE_SEPARATOR);
            text.push_str(v);
        }
        Properties { text }
    }

    /// Every segment a valid pair and no name twice (the fast path of `parse`). A message has
    /// a handful of properties, compared pairwise without allocating; past that, a set keeps
    /// a hostile string with thousands of pairs linear.
    fn well_formed(s: &str) -> bool {
        const PAIRWISE: usize = 16;
        if s.is_empty() {
            return true;
        }
        // The first names are compared pairwise from a small array (no allocation); a long
        // list moves to a set, so the check stays linear.
        let mut first: [&str; PAIRWISE] = [""; PAIRWISE];
        let mut seen: Option<std::collections::HashSet<&str>> = None;
        for (i, seg) in s.split(PROPERTY_SEPARATOR).enumerate() {
            let Some((k, v)) = seg.split_once(NAME_VALUE_SEPARATOR) else {
                return false;
            };
            if k.is_empty() || v.is_empty() {
                return false;
            }
            let repeated = if i < PAIRWISE {
                let repeated = first[..i].contains(&k);
                first[i] = k;
                repeated
            } else {
                let seen = seen.get_or_insert_with(|| first.iter().copied().collect());
                !seen.insert(k)
            };
            if repeated {
                return false;
            }
        }
        true
    }

    /// Builds the string from a map; names are sorted so the same map gives the same bytes.
    /// Pairs that cannot be represented (see [`Properties::insert`]) are left out.
    pub fn from_map(map: &HashMap<String, String>) -> Properties {
        let mut entries: Vec<(&str, &str)> = map
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .filter(|(k, v)| representable(k, v))
            .collect();
        entries.sort_unstable();
        Self::join(entries)
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        // The text is always well formed (see the type), so a pair starts the string or
        // follows a `\x02`, and its name ends at its first `\x01`: compare names in place
        // instead of splitting every pair (a send looks up half a dozen names).
        if name.is_empty() || name.contains([NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR]) {
            return None;
        }
        let mut rest = self.text.as_str();
        loop {
            if let Some(after) = rest.strip_prefix(name) {
                if let Some(value) = after.strip_prefix(NAME_VALUE_SEPARATOR) {
                    return Some(value.split(PROPERTY_SEPARATOR).next().unwrap_or(value));
                }
            }
            rest = &rest[rest.find(PROPERTY_SEPARATOR)? + 1..];
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets `name` to `value`, replacing any earlier value. A pair that cannot be represented
    /// — an empty name or value (Java drops those when it reads them), a separator in the name
    /// or `\x02` in the value (a value may hold `\x01`: Java reads a pair up to its first) —
    /// is not stored: `name` is only removed. The string stays well formed whatever comes in.
    pub fn insert(&mut self, name: &str, value: &str) {
        self.remove(name);
        if !representable(name, value) {
            return;
        }
        self.push(name, value);
    }

    /// Sets `name` only if it has no value yet.
    pub fn insert_if_absent(&mut self, name: &str, value: impl FnOnce() -> String) {
        if !self.contains(name) {
            let value = value();
            if representable(name, &value) {
                self.push(name, &value);
            }
        }
    }

    /// Appends a pair known to be representable and absent.
    fn push(&mut self, name: &str, value: &str) {
        if !self.text.is_empty() {
            self.text.push(PROPERTY_SEPARATOR);
        }
        self.text.push_str(name);
        self.text.push(NAME_VALUE_SEPARATOR);
        self.text.push_str(value);
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

    #[test]
    fn separators_in_names_or_values_are_never_written() {
        let mut p = Properties::parse("TAGS\u{1}A");
        p.insert("ORIGIN_MESSAGE_ID", "x\u{2}CLUSTER\u{1}forged");
        p.insert("BAD\u{1}NAME", "v");
        p.insert_if_absent("ALSO\u{2}BAD", || "v".into());
        assert_eq!(p.as_str(), "TAGS\u{1}A");
        // `\x01` in a value is fine: Java reads a pair up to its first one.
        p.insert("K", "a\u{1}b");
        assert_eq!(Properties::parse(p.as_str()).get("K"), Some("a\u{1}b"));
    }

    #[test]
    fn hostile_strings_parse_in_linear_time() {
        // 200,000 distinct pairs with the first name repeated at the end: well-formedness
        // fails only at the last pair, then the string is rebuilt. Quadratic work would take
        // minutes here; linear work takes milliseconds.
        let mut s: String = (0..200_000).map(|i| format!("k{i}\u{1}v\u{2}")).collect();
        s.push_str("k0\u{1}last");
        let started = std::time::Instant::now();
        let p = Properties::from_string(s);
        assert_eq!(p.get("k0"), Some("last"));
        assert_eq!(p.to_map().len(), 200_000);
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
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
            // Lookups find whole names only ("A" is not "AB").
            for k in ["A", "B", "C", "AA", "AB", "AC", "BA", "BB", "BC", "CA", "CB", "CC"] {
                prop_assert_eq!(props.get(k), map.get(k).map(String::as_str));
            }
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
