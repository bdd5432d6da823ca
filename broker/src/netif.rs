//! Picking the broker's advertised addresses on multi-NIC hosts: by interface name or by
//! CIDR, from the host's (or pod's) own interfaces.

use std::net::Ipv4Addr;

/// Every IPv4 address of the host, with its interface name.
pub fn ipv4_interfaces() -> std::io::Result<Vec<(String, Ipv4Addr)>> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a linked list we free with freeifaddrs below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() && unsafe { (*ifa.ifa_addr).sa_family } as i32 == libc::AF_INET {
            // SAFETY: the family says this is a sockaddr_in.
            let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }
                .to_string_lossy()
                .to_string();
            out.push((name, ip));
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: frees the list from getifaddrs.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// Parses `a.b.c.d/n`.
pub fn parse_cidr(cidr: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, len) = cidr.trim().split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    (len <= 32).then_some((ip, len))
}

pub fn in_cidr(ip: Ipv4Addr, net: Ipv4Addr, len: u8) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(ip) & mask == u32::from(net) & mask
}

/// The address to advertise: of interface `iface`, or the first inside `cidr`.
pub fn select(iface: Option<&str>, cidr: Option<&str>) -> Result<Option<Ipv4Addr>, String> {
    if iface.is_none() && cidr.is_none() {
        return Ok(None);
    }
    let addrs = ipv4_interfaces().map_err(|e| format!("cannot list network interfaces: {e}"))?;
    if let Some(name) = iface {
        return addrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, ip)| Some(*ip))
            .ok_or_else(|| {
                format!(
                    "no IPv4 address on interface `{name}` (have: {})",
                    describe(&addrs)
                )
            });
    }
    let cidr = cidr.unwrap_or_default();
    let (net, len) =
        parse_cidr(cidr).ok_or_else(|| format!("`{cidr}` is not an IPv4 CIDR like 10.0.0.0/8"))?;
    addrs
        .iter()
        .find(|(_, ip)| in_cidr(*ip, net, len))
        .map(|(_, ip)| Some(*ip))
        .ok_or_else(|| {
            format!(
                "no local IPv4 address inside {cidr} (have: {})",
                describe(&addrs)
            )
        })
}

fn describe(addrs: &[(String, Ipv4Addr)]) -> String {
    addrs
        .iter()
        .map(|(n, ip)| format!("{n}={ip}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_math() {
        let (net, len) = parse_cidr("10.20.0.0/16").unwrap();
        assert!(in_cidr("10.20.3.4".parse().unwrap(), net, len));
        assert!(!in_cidr("10.21.0.1".parse().unwrap(), net, len));
        assert!(in_cidr(
            "1.2.3.4".parse().unwrap(),
            "0.0.0.0".parse().unwrap(),
            0
        ));
        assert!(parse_cidr("10.0.0.0/33").is_none());
        assert!(parse_cidr("nonsense").is_none());
    }

    #[test]
    fn loopback_is_found_by_name_and_cidr() {
        assert_eq!(select(Some("lo"), None).unwrap(), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(
            select(None, Some("127.0.0.0/8")).unwrap(),
            Some(Ipv4Addr::LOCALHOST)
        );
        assert!(select(Some("no-such-if0"), None)
            .unwrap_err()
            .contains("no-such-if0"));
        assert_eq!(select(None, None).unwrap(), None);
    }
}
