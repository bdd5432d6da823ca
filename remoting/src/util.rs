//! Small helpers shared by every crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Java's `String.hashCode()` (over UTF-16 code units), which RocketMQ uses for tag codes and
/// index keys.
pub fn java_hash_code(s: &str) -> i32 {
    let mut h: i32 = 0;
    for unit in s.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_codes() {
        assert_eq!(java_hash_code(""), 0);
        assert_eq!(java_hash_code("TagA"), 2598919);
        assert_eq!(java_hash_code("hello"), 99162322);
        // A value that overflows: "polygenelubricants".hashCode() == Integer.MIN_VALUE.
        assert_eq!(java_hash_code("polygenelubricants"), i32::MIN);
        // Non-BMP characters hash as their surrogate pairs.
        assert_eq!(java_hash_code("😀"), 0xD83D * 31 + 0xDE00);
    }
}
