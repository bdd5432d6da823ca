//! Java-properties configuration, as RocketMQ's `-c file`, `-p` and the get/update config
//! requests use it: typed fields with RocketMQ's property names and defaults.

use std::collections::BTreeMap;

/// A config value that reads from and prints to a properties string.
pub trait ConfigValue: Sized {
    fn parse_value(raw: &str) -> Option<Self>;
    fn print_value(&self) -> String;
}

macro_rules! number_value {
    ($($t:ty),*) => {$(
        impl ConfigValue for $t {
            fn parse_value(raw: &str) -> Option<Self> { raw.trim().parse().ok() }
            fn print_value(&self) -> String { self.to_string() }
        }
    )*};
}
number_value!(i32, i64, u16, u32, u64, usize, f64);

impl ConfigValue for bool {
    fn parse_value(raw: &str) -> Option<Self> {
        match raw.trim() {
            t if t.eq_ignore_ascii_case("true") => Some(true),
            f if f.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        }
    }
    fn print_value(&self) -> String {
        self.to_string()
    }
}

impl ConfigValue for String {
    fn parse_value(raw: &str) -> Option<Self> {
        Some(raw.trim().to_string())
    }
    fn print_value(&self) -> String {
        self.clone()
    }
}

/// Why a property could not be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("property `{key}` has an invalid value `{value}`")]
    BadValue { key: String, value: String },
    #[error("cannot read properties: {0}")]
    Parse(String),
}

/// A config struct whose fields are named by their property keys.
pub trait JavaConfig {
    /// Sets `key`; `Ok(false)` when the key is not one of ours.
    fn set_property(&mut self, key: &str, value: &str) -> Result<bool, ConfigError>;
    /// Every property as `key → value`, sorted.
    fn properties(&self) -> BTreeMap<String, String>;

    /// Applies a set of properties; returns the keys that are not ours.
    fn apply(&mut self, props: &BTreeMap<String, String>) -> Result<Vec<String>, ConfigError> {
        let mut unknown = Vec::new();
        for (k, v) in props {
            if !self.set_property(k, v)? {
                unknown.push(k.clone());
            }
        }
        Ok(unknown)
    }

    /// The properties as text, one `key=value` a line.
    fn to_properties_text(&self) -> String {
        properties_to_text(&self.properties())
    }
}

/// Parses Java properties text (comments, continuations and escapes included).
pub fn parse_properties(text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let map =
        java_properties::read(text.as_bytes()).map_err(|e| ConfigError::Parse(e.to_string()))?;
    Ok(map.into_iter().collect())
}

/// Writes properties as `key=value` lines (values as they are, as RocketMQ prints them).
pub fn properties_to_text(props: &BTreeMap<String, String>) -> String {
    let mut s = String::new();
    for (k, v) in props {
        s.push_str(k);
        s.push('=');
        s.push_str(v);
        s.push('\n');
    }
    s
}

/// Declares a config struct: `field: Type = default => "propertyName"`.
#[macro_export]
macro_rules! java_config {
    ($(#[$meta:meta])* $vis:vis struct $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty = $default:expr => $key:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        $vis struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl Default for $name {
            fn default() -> Self {
                $name { $($field: $default,)* }
            }
        }

        impl $crate::config::JavaConfig for $name {
            fn set_property(&mut self, key: &str, value: &str) -> Result<bool, $crate::config::ConfigError> {
                match key {
                    $($key => {
                        self.$field = <$ty as $crate::config::ConfigValue>::parse_value(value).ok_or_else(|| {
                            $crate::config::ConfigError::BadValue { key: key.to_string(), value: value.to_string() }
                        })?;
                        Ok(true)
                    })*
                    _ => Ok(false),
                }
            }

            fn properties(&self) -> std::collections::BTreeMap<String, String> {
                let mut m = std::collections::BTreeMap::new();
                $(m.insert($key.to_string(), $crate::config::ConfigValue::print_value(&self.$field));)*
                m
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::java_config! {
        struct Sample {
            listen_port: u16 = 9876 => "listenPort",
            order: bool = false => "orderMessageEnable",
            home: String = String::new() => "rocketmqHome",
        }
    }

    #[test]
    fn reads_sets_and_prints() {
        let props =
            parse_properties("# comment\nlistenPort = 9877\norderMessageEnable=true\nfoo=bar\n")
                .unwrap();
        let mut c = Sample::default();
        let unknown = c.apply(&props).unwrap();
        assert_eq!(unknown, vec!["foo".to_string()]);
        assert_eq!(c.listen_port, 9877);
        assert!(c.order);
        assert_eq!(
            c.to_properties_text(),
            "listenPort=9877\norderMessageEnable=true\nrocketmqHome=\n"
        );
        assert!(matches!(
            c.set_property("listenPort", "x"),
            Err(ConfigError::BadValue { .. })
        ));
    }
}
