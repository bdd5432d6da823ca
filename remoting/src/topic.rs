//! Topic and group names as RocketMQ's `TopicValidator` accepts them.

/// Longest topic name a client may create.
pub const TOPIC_MAX_LENGTH: usize = 127;
/// Prefix of retry topics (`%RETRY%<group>`).
pub const RETRY_GROUP_TOPIC_PREFIX: &str = "%RETRY%";
/// Prefix of dead-letter topics (`%DLQ%<group>`).
pub const DLQ_GROUP_TOPIC_PREFIX: &str = "%DLQ%";
/// The template topic producers auto-create from.
pub const AUTO_CREATE_TOPIC_KEY_TOPIC: &str = "TBW102";

/// Whether every character is one of `%|a-zA-Z0-9_-`.
pub fn has_only_legal_characters(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'%' | b'|' | b'_' | b'-'))
}

/// Validates a topic name, with RocketMQ's messages. Retry and DLQ topics may be up to 255
/// characters long (their group names are 255 at most).
pub fn validate_topic(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("The specified topic is blank.".into());
    }
    if !has_only_legal_characters(name) {
        return Err(format!(
            "The specified topic[{name}] contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$"
        ));
    }
    let max = if is_retry_or_dlq(name) {
        255
    } else {
        TOPIC_MAX_LENGTH
    };
    if name.len() > max {
        return Err(format!(
            "The specified topic is longer than topic max length {max}."
        ));
    }
    Ok(())
}

/// Longest group name (RocketMQ's `Validators.CHARACTER_MAX_LENGTH`).
pub const GROUP_MAX_LENGTH: usize = 255;

/// Validates a producer or consumer group name as RocketMQ's client does (`checkGroup`).
pub fn validate_group(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("the specified group is blank".into());
    }
    if !has_only_legal_characters(name) {
        return Err(format!(
            "the specified group[{name}] contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$"
        ));
    }
    if name.len() > GROUP_MAX_LENGTH {
        return Err(format!(
            "the specified group is longer than group max length {GROUP_MAX_LENGTH}"
        ));
    }
    Ok(())
}

pub fn is_retry_or_dlq(name: &str) -> bool {
    name.starts_with(RETRY_GROUP_TOPIC_PREFIX) || name.starts_with(DLQ_GROUP_TOPIC_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_rules() {
        assert!(validate_topic("Topic_A-1").is_ok());
        assert!(validate_topic("ns%topic").is_ok());
        assert!(validate_topic("").is_err());
        assert!(validate_topic("bad topic")
            .unwrap_err()
            .contains("illegal characters"));
        assert!(validate_topic("bad/topic").is_err());
        assert!(validate_topic("ünïcode").is_err());
        assert!(validate_topic(&"a".repeat(127)).is_ok());
        assert!(validate_topic(&"a".repeat(128))
            .unwrap_err()
            .contains("longer"));
        assert!(validate_topic(&format!("%RETRY%{}", "g".repeat(200))).is_ok());
    }

    #[test]
    fn group_rules() {
        assert!(validate_group("CID_consumer-1").is_ok());
        assert!(validate_group("").is_err());
        assert!(validate_group("../etc").is_err());
        assert!(validate_group(&"g".repeat(255)).is_ok());
        assert!(validate_group(&"g".repeat(256)).is_err());
    }
}
