//! Remote-address patterns of `plain_acl.yml` (`globalWhiteRemoteAddresses` and an account's
//! `whiteRemoteAddress`), read as RocketMQ's `RemoteAddressStrategyFactory` reads them:
//!
//! * blank: matches nothing; `*`, `*.*.*.*`, `*:*:*:*:*:*:*:*`: matches everything;
//! * `192.168.0.{1,2,3}`: those addresses; `1.1.1.1,2.2.2.2`: those addresses;
//! * `192.168.*.*`, `192.168.1.1-5`, `10.*.*.*`: a range in the first part that is `*` or
//!   `a-b`, the parts before it fixed (RocketMQ ignores the parts after it, and so do we);
//! * otherwise one literal address.

use std::net::IpAddr;

/// A parsed pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum AddressPattern {
    None,
    Any,
    /// Exact addresses.
    Set(Vec<IpAddr>),
    /// IPv4: `head` parts fixed, the next part within `lo..=hi`.
    V4Range {
        head: Vec<u8>,
        lo: u8,
        hi: u8,
    },
    /// IPv6: `head` groups fixed, the next group within `lo..=hi`.
    V6Range {
        head: Vec<u16>,
        lo: u16,
        hi: u16,
    },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("Netaddress examine Exception netaddress is {0}")]
pub struct BadPattern(pub String);

impl AddressPattern {
    pub fn parse(raw: &str) -> Result<AddressPattern, BadPattern> {
        let s = raw.trim();
        let bad = || BadPattern(s.to_string());
        if s.is_empty() {
            return Ok(AddressPattern::None);
        }
        if matches!(s, "*" | "*.*.*.*" | "*:*:*:*:*:*:*:*") {
            return Ok(AddressPattern::Any);
        }
        if s.ends_with('}') {
            let sep = if s.contains(':') { ':' } else { '.' };
            let open = s.rfind('{').ok_or_else(bad)?;
            let prefix = &s[..open];
            if !prefix.ends_with(sep) {
                return Err(bad());
            }
            let set = s[open + 1..s.len() - 1]
                .split(',')
                .map(|last| format!("{prefix}{}", last.trim()).parse::<IpAddr>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| bad())?;
            return Ok(AddressPattern::Set(set));
        }
        if s.contains(',') {
            let set = s
                .split(',')
                .map(|a| a.trim().parse::<IpAddr>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| bad())?;
            return Ok(AddressPattern::Set(set));
        }
        if s.contains('*') || s.contains('-') {
            return if s.contains(':') {
                v6_range(s).ok_or_else(bad)
            } else {
                v4_range(s).ok_or_else(bad)
            };
        }
        s.parse::<IpAddr>()
            .map(|a| AddressPattern::Set(vec![a]))
            .map_err(|_| bad())
    }

    pub fn matches(&self, addr: IpAddr) -> bool {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
            v4 => v4,
        };
        match self {
            AddressPattern::None => false,
            AddressPattern::Any => true,
            AddressPattern::Set(set) => set.contains(&addr),
            AddressPattern::V4Range { head, lo, hi } => match addr {
                IpAddr::V4(a) => {
                    let o = a.octets();
                    o[..head.len()] == head[..] && (*lo..=*hi).contains(&o[head.len()])
                }
                IpAddr::V6(_) => false,
            },
            AddressPattern::V6Range { head, lo, hi } => match addr {
                IpAddr::V6(a) => {
                    let g = a.segments();
                    g[..head.len()] == head[..] && (*lo..=*hi).contains(&g[head.len()])
                }
                IpAddr::V4(_) => false,
            },
        }
    }
}

fn v4_range(s: &str) -> Option<AddressPattern> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut head = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let range = if *p == "*" {
            Some((0u8, 255u8))
        } else if let Some((a, b)) = p.split_once('-') {
            let (a, b) = (a.parse::<u8>().ok()?, b.parse::<u8>().ok()?);
            (a <= b).then_some((a, b))?.into()
        } else {
            None
        };
        match range {
            // The first part may only be `*` as a whole pattern (handled before).
            Some(_) if i == 0 => return None,
            Some((lo, hi)) => return Some(AddressPattern::V4Range { head, lo, hi }),
            None => head.push(p.parse().ok()?),
        }
    }
    None
}

fn v6_range(s: &str) -> Option<AddressPattern> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() > 8 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let mut head = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let range = if *p == "*" {
            Some((0u16, 0xffffu16))
        } else if let Some((a, b)) = p.split_once('-') {
            let a = u16::from_str_radix(a, 16).ok()?;
            let b = u16::from_str_radix(b, 16).ok()?;
            (a <= b).then_some((a, b))?.into()
        } else {
            None
        };
        match range {
            // As RocketMQ: the wildcard or range is the last group written.
            Some((lo, hi)) if i == parts.len() - 1 && i > 0 => {
                return Some(AddressPattern::V6Range { head, lo, hi })
            }
            Some(_) => return None,
            None => head.push(u16::from_str_radix(p, 16).ok()?),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    fn v6(s: &str) -> IpAddr {
        IpAddr::V6(s.parse::<Ipv6Addr>().expect("test address"))
    }

    fn m(p: &str, a: IpAddr) -> bool {
        AddressPattern::parse(p).unwrap().matches(a)
    }

    #[test]
    fn patterns_match_as_rocketmq_reads_them() {
        assert!(!m("", v4(1, 2, 3, 4)));
        assert!(m("*", v4(1, 2, 3, 4)));
        assert!(m("*.*.*.*", v6("::1")));
        assert!(m("192.168.0.{1,2}", v4(192, 168, 0, 2)));
        assert!(!m("192.168.0.{1,2}", v4(192, 168, 0, 3)));
        assert!(m("1.1.1.1,2.2.2.2", v4(2, 2, 2, 2)));
        assert!(!m("1.1.1.1,2.2.2.2", v4(2, 2, 2, 3)));
        assert!(m("192.168.*.*", v4(192, 168, 7, 9)));
        assert!(!m("192.168.*.*", v4(192, 169, 7, 9)));
        assert!(m("192.168.1.1-5", v4(192, 168, 1, 5)));
        assert!(!m("192.168.1.1-5", v4(192, 168, 1, 6)));
        // Parts after the range are ignored, as in RocketMQ.
        assert!(m("10.1-3.9.9", v4(10, 2, 0, 0)));
        assert!(m("127.0.0.1", v4(127, 0, 0, 1)));
        assert!(m("127.0.0.1", v6("::ffff:127.0.0.1")), "v4-mapped peers");
        assert!(m("fe80:0:0:0:0:0:0:*", v6("fe80::12")));
        assert!(m("fe80:0:0:0:0:0:0:1-f", v6("fe80::a")));
        assert!(!m("fe80:0:0:0:0:0:0:1-f", v6("fe80::10")));
        assert!(m("::1", v6("::1")));
        for bad in [
            "*.1.1.1",
            "1.1.1",
            "1.1.1.300",
            "1.1.5-2.1",
            "a.b.c.d",
            "1.1.1.1,x",
            "1.1.1.{1,x}",
            "fe80:*:1",
            "-1.1.1.1",
        ] {
            assert!(AddressPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
