//! Java's ways of printing things, so output reads as Java's mqadmin prints it: local time
//! stamps (`UtilAll`), `Double.toString`, `Boolean.parseBoolean`, `Map.toString`, and
//! fastjson's pretty JSON.

use std::collections::BTreeMap;
use std::fmt::Display;

use serde_json::Value;

/// Broken-down local time of a millisecond timestamp (the `TZ` of this process, as Java's
/// default time zone).
struct LocalTime {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    millis: u32,
}

fn local_time(ms: i64) -> LocalTime {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000) as u32;
    let t = secs as libc::time_t;
    // SAFETY: `localtime_r` only writes the `tm` we hand it; a zeroed `tm` is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        return LocalTime {
            year: 1970,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
            millis,
        };
    }
    LocalTime {
        year: tm.tm_year + 1900,
        month: (tm.tm_mon + 1) as u32,
        day: tm.tm_mday as u32,
        hour: tm.tm_hour as u32,
        minute: tm.tm_min as u32,
        second: tm.tm_sec as u32,
        millis,
    }
}

/// `UtilAll.timeMillisToHumanString2`: `yyyy-MM-dd HH:mm:ss,SSS` in local time.
pub fn human_time2(ms: i64) -> String {
    let t = local_time(ms);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02},{:03}",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.millis
    )
}

/// `yyyy-MM-dd HH:mm:ss` in local time (`UtilAll.YYYY_MM_DD_HH_MM_SS`).
pub fn date_time(ms: i64) -> String {
    let t = local_time(ms);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// `Double.toString`: `0.0`, `1.5`, `1.0E7`.
pub fn double(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let abs = v.abs();
    if v == 0.0 || (1e-3..1e7).contains(&abs) {
        let s = format!("{v}");
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        let s = format!("{v:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa = if mantissa.contains('.') {
            mantissa.to_string()
        } else {
            format!("{mantissa}.0")
        };
        format!("{mantissa}E{exp}")
    }
}

/// `Boolean.parseBoolean`: true only for `true` in any case.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    Ok(s.trim().eq_ignore_ascii_case("true"))
}

/// `UtilAll.frontStringAtLeast`: at most `size` characters of `s` (the name says the opposite).
pub fn front(s: &str, size: usize) -> &str {
    match s.char_indices().nth(size) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `AbstractMap.toString`: `{k1=v1, k2=v2}` (keys sorted here, Java's hash order is arbitrary).
pub fn map_string<K: Display, V: Display>(map: impl IntoIterator<Item = (K, V)>) -> String {
    let items: Vec<String> = map.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", items.join(", "))
}

/// A string map printed as Java prints a `HashMap<String, String>`, keys sorted.
pub fn string_map<'a>(map: impl IntoIterator<Item = (&'a String, &'a String)>) -> String {
    let sorted: BTreeMap<&String, &String> = map.into_iter().collect();
    map_string(sorted)
}

/// fastjson's `toJSONString(obj, true)`: tab indentation, `"key":value`, and the numeric keys
/// of the maps named in `bare_key_fields` written bare (`{0:"addr"}`), as Java writes
/// `Map<Long, String>`.
pub fn pretty_json(value: &Value, bare_key_fields: &[&str]) -> String {
    let mut out = String::new();
    write_pretty(value, 0, false, bare_key_fields, &mut out);
    out
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push('\t');
    }
}

fn write_pretty(value: &Value, level: usize, bare: bool, fields: &[&str], out: &mut String) {
    match value {
        Value::Object(map) if map.is_empty() => out.push_str("{}"),
        Value::Object(map) => {
            // fastjson sorts fields (`MapSortField`); do so whatever order the map keeps.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('\n');
                indent(out, level + 1);
                if bare && k.parse::<i64>().is_ok() {
                    out.push_str(k);
                } else {
                    out.push_str(&Value::String(k.clone()).to_string());
                }
                out.push(':');
                write_pretty(v, level + 1, fields.contains(&k.as_str()), fields, out);
            }
            out.push('\n');
            indent(out, level);
            out.push('}');
        }
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('\n');
                indent(out, level + 1);
                write_pretty(v, level + 1, false, fields, out);
            }
            out.push('\n');
            indent(out, level);
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_as_java_prints_them() {
        assert_eq!(double(0.0), "0.0");
        assert_eq!(double(1.5), "1.5");
        assert_eq!(double(12.0), "12.0");
        assert_eq!(double(1e7), "1.0E7");
        assert_eq!(double(1.25e-5), "1.25E-5");
    }

    #[test]
    fn java_booleans_and_truncation() {
        assert_eq!(parse_bool("TRUE"), Ok(true));
        assert_eq!(parse_bool("yes"), Ok(false));
        assert_eq!(front("abcdef", 3), "abc");
        assert_eq!(front("ab", 3), "ab");
    }

    #[test]
    fn times_have_java_layout() {
        let s = human_time2(1_700_000_000_123);
        assert_eq!(s.len(), "2023-11-14 22:13:20,123".len());
        assert!(s.ends_with(",123"), "{s}");
        assert_eq!(date_time(1_700_000_000_123).len(), 19);
    }

    #[test]
    fn pretty_json_with_bare_keys() {
        let v = serde_json::json!({"a": {"0": "x"}, "b": [], "c": [1, 2], "d": {"0": 1}});
        let s = pretty_json(&v, &["a"]);
        assert_eq!(
            s,
            "{\n\t\"a\":{\n\t\t0:\"x\"\n\t},\n\t\"b\":[],\n\t\"c\":[\n\t\t1,\n\t\t2\n\t],\n\t\"d\":{\n\t\t\"0\":1\n\t}\n}"
        );
        let mut m = BTreeMap::new();
        m.insert("k".to_string(), "v".to_string());
        m.insert("a".to_string(), "b".to_string());
        assert_eq!(string_map(&m), "{a=b, k=v}");
    }
}
