//! The vocabulary of a broker's role, shared by the broker, the operator and the tools:
//! `brokerRole`, `flushDiskType`, `brokerPermission` and master epochs, typed. A bad value in
//! `broker.conf` or UPDATE_BROKER_CONFIG is refused where it is read, never taken for a
//! default (`flushDiskType=SYNC_FLSUH` used to mean ASYNC_FLUSH). (In a request header, an
//! optional field that does not parse is left unset, as Java leaves it.)

use std::fmt;
use std::str::FromStr;

use crate::config::ConfigValue;

/// An unknown name for one of these settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a {what} (one of {})", .allowed.join(", "))]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
    pub allowed: &'static [&'static str],
}

/// Declares a Java enum read by name (case-insensitive, as the broker has always accepted)
/// and printed by its canonical name.
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// The name RocketMQ writes.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                let s = s.trim();
                $(if s.eq_ignore_ascii_case($text) { return Ok($name::$variant); })+
                Err(UnknownValue {
                    what: $what,
                    value: s.to_string(),
                    allowed: &[$($text),+],
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ConfigValue for $name {
            fn parse_value(raw: &str) -> Option<Self> {
                raw.parse().ok()
            }
            fn print_value(&self) -> String {
                self.as_str().to_string()
            }
        }
    };
}

named_enum!(
    /// `brokerRole`.
    BrokerRole, "brokerRole" {
        /// A master answering once its own store has the message.
        AsyncMaster = "ASYNC_MASTER",
        /// A master answering once a slave holds the message too.
        SyncMaster = "SYNC_MASTER",
        Slave = "SLAVE",
    }
);

impl BrokerRole {
    pub fn is_master(self) -> bool {
        self != BrokerRole::Slave
    }

    pub fn is_slave(self) -> bool {
        self == BrokerRole::Slave
    }
}

named_enum!(
    /// `flushDiskType`.
    FlushDiskType, "flushDiskType" {
        /// Acknowledge after the append; flush in the background.
        AsyncFlush = "ASYNC_FLUSH",
        /// Acknowledge once the record is on disk (group commit).
        SyncFlush = "SYNC_FLUSH",
    }
);

/// A master term of a broker group (RocketMQ 5's `masterEpoch`, an `Integer` on the wire).
/// Each promotion starts a newer one; 0 means none yet.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Epoch(pub i32);

impl Epoch {
    pub const NONE: Epoch = Epoch(0);

    /// The term after this one.
    pub fn next(self) -> Epoch {
        Epoch(self.0.saturating_add(1))
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Epoch {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim().parse().map(Epoch)
    }
}

/// Permission bits (`PermName`): of a broker (`brokerPermission`) or a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Perm(i32);

impl Perm {
    pub const INHERIT: i32 = 1;
    pub const WRITE: i32 = 2;
    pub const READ: i32 = 4;
    pub const PRIORITY: i32 = 8;
    /// Read and write: a broker's normal permission (6).
    pub const READ_WRITE: Perm = Perm(Self::READ | Self::WRITE);
    /// Read only (4): a master being switched over, or fenced.
    pub const READ_ONLY: Perm = Perm(Self::READ);

    /// Bits as RocketMQ defines them (0 to 15); anything else is refused.
    pub fn from_bits(bits: i32) -> Option<Perm> {
        (0..=15).contains(&bits).then_some(Perm(bits))
    }

    pub fn bits(self) -> i32 {
        self.0
    }

    pub fn is_readable(self) -> bool {
        self.0 & Self::READ != 0
    }

    pub fn is_writeable(self) -> bool {
        self.0 & Self::WRITE != 0
    }

    pub fn is_inherited(self) -> bool {
        self.0 & Self::INHERIT != 0
    }
}

impl Default for Perm {
    fn default() -> Self {
        Perm::READ_WRITE
    }
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl ConfigValue for Perm {
    fn parse_value(raw: &str) -> Option<Self> {
        raw.trim().parse().ok().and_then(Perm::from_bits)
    }
    fn print_value(&self) -> String {
        self.0.to_string()
    }
}

#[cfg(test)]
mod arbitrary {
    use proptest::prelude::*;

    impl Arbitrary for super::Epoch {
        type Parameters = ();
        type Strategy = BoxedStrategy<Self>;
        fn arbitrary_with(_: ()) -> Self::Strategy {
            any::<i32>().prop_map(super::Epoch).boxed()
        }
    }

    impl Arbitrary for super::BrokerRole {
        type Parameters = ();
        type Strategy = BoxedStrategy<Self>;
        fn arbitrary_with(_: ()) -> Self::Strategy {
            prop_oneof![
                Just(super::BrokerRole::AsyncMaster),
                Just(super::BrokerRole::SyncMaster),
                Just(super::BrokerRole::Slave)
            ]
            .boxed()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_leniently_and_printed_as_rocketmq_writes_them() {
        assert_eq!("sync_master".parse(), Ok(BrokerRole::SyncMaster));
        assert_eq!(BrokerRole::Slave.to_string(), "SLAVE");
        assert_eq!(
            FlushDiskType::parse_value(" SYNC_FLUSH "),
            Some(FlushDiskType::SyncFlush)
        );
    }

    #[test]
    fn bad_values_are_refused_not_defaulted() {
        let e = "SYNC_FLSUH".parse::<FlushDiskType>().unwrap_err();
        assert_eq!(e.value, "SYNC_FLSUH");
        assert!(
            e.to_string().ends_with("(one of ASYNC_FLUSH, SYNC_FLUSH)"),
            "{e}"
        );
        assert!("MASTER".parse::<BrokerRole>().is_err());
        assert_eq!(Perm::parse_value("6"), Some(Perm::READ_WRITE));
        assert_eq!(Perm::parse_value("16"), None);
        assert_eq!(Perm::parse_value("-1"), None);
        assert_eq!(Perm::parse_value("rw"), None);
    }

    #[test]
    fn permissions_and_epochs() {
        assert!(Perm::READ_ONLY.is_readable() && !Perm::READ_ONLY.is_writeable());
        assert!(Perm::from_bits(7).unwrap().is_inherited());
        assert_eq!(Epoch(3).next(), Epoch(4));
        assert!(Epoch(2) > Epoch::NONE);
        assert_eq!(" 7 ".parse(), Ok(Epoch(7)));
    }
}
