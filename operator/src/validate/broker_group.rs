//! `BrokerGroup` spec checks, and what they resolve for the builders.

use std::collections::BTreeMap;

use super::{external, invalid, SpecError};
use crate::build::broker_group::{kept_replicas, master_ordinal, roll_partition};
use crate::build::failover::MAX_REPLICAS;
use crate::crd::broker_group::{
    AddressMode, BrokerGroupSpec, BrokerRole, ExternalAccess, ExternalType,
};
use crate::crd::BrokerGroup;

/// `broker.conf` keys the operator sets itself; a spec may not override them.
pub const MANAGED_KEYS: &[&str] = &[
    "brokerClusterName",
    "brokerName",
    "brokerId",
    "brokerRole",
    "namesrvAddr",
    "listenPort",
    "haListenPort",
    "storePathRootDir",
    "brokerIP1",
    "brokerIP2",
    "flushDiskType",
    "metricsPort",
    "brokerAdvertisedPort",
    "brokerIP1Interface",
    "brokerIP1Cidr",
    "brokerIP2Interface",
    "brokerIP2Cidr",
];

/// A `BrokerGroup` whose spec builds, with what its builders need resolved.
#[derive(Debug, Clone)]
pub struct ValidatedBrokerGroup<'a> {
    /// The object: its spec, and the master a failover recorded in its status.
    pub group: &'a BrokerGroup,
    /// What its objects are named after.
    pub name: String,
    /// `brokerName`: the spec's, else `name`.
    pub broker_name: String,
    /// The name servers (never empty).
    pub namesrv_addr: String,
    /// The master's ordinal ([`master_ordinal`]).
    pub master: i32,
    /// Pods the StatefulSet keeps ([`kept_replicas`]).
    pub replicas: i32,
    /// The StatefulSet's roll partition ([`roll_partition`]).
    pub partition: i32,
    pub addresses: Addresses<'a>,
}

/// Where each broker's advertised addresses come from.
#[derive(Debug, Clone, Default)]
pub struct Addresses<'a> {
    /// `broker.conf` keys `mqbroker` resolves at start (multi-NIC).
    pub props: BTreeMap<String, String>,
    /// `brokerIP1` is the pod IP, which the entrypoint has from the downward API.
    pub ip1_from_pod: bool,
    /// `brokerIP2` (replication) is the pod IP.
    pub ip2_from_pod: bool,
    /// `addressing.mode: External`, checked.
    pub external: Option<&'a ExternalAccess>,
}

impl ValidatedBrokerGroup<'_> {
    pub fn spec(&self) -> &BrokerGroupSpec {
        &self.group.spec
    }

    pub fn external_type(&self) -> Option<ExternalType> {
        self.addresses.external.map(|e| e.type_)
    }

    /// Brokers on their node's network (`External` HostNetwork).
    pub fn host_network(&self) -> bool {
        self.external_type() == Some(ExternalType::HostNetwork)
    }
}

/// Checks `bg`, whose objects are named after `name`, for brokers registering with
/// `namesrv_addr`. The checks run in a fixed order: the first failure is reported.
pub fn validate<'a>(
    bg: &'a BrokerGroup,
    name: &str,
    namesrv_addr: &str,
) -> Result<ValidatedBrokerGroup<'a>, SpecError> {
    let spec = &bg.spec;
    if !(1..=MAX_REPLICAS).contains(&spec.replicas) {
        return Err(invalid(format!(
            "replicas must be 1..={MAX_REPLICAS}, got {}",
            spec.replicas
        )));
    }
    if let Some(k) = spec
        .config
        .keys()
        .find(|k| MANAGED_KEYS.contains(&k.as_str()))
    {
        return Err(invalid(format!(
            "config key `{k}` is managed by the operator"
        )));
    }
    // Escaping keeps any text on its own line; these are refused anyway, since no RocketMQ
    // property is named that way or takes a line break, and the user should hear so.
    if let Some(k) = spec.config.keys().find(|k| {
        k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    }) {
        return Err(invalid(format!(
            "config key {k:?} is not a property name (letters, digits, `.`, `_`, `-`)"
        )));
    }
    if let Some((k, _)) = spec
        .config
        .iter()
        .find(|(_, v)| v.chars().any(|c| c.is_control() || c as u32 > 0xffff))
    {
        // Past U+FFFF: `\u` escapes would need surrogate pairs, which the broker's reader
        // does not take.
        return Err(invalid(format!(
            "config value of `{k}` contains a line break, another control character or a \
             character past U+FFFF"
        )));
    }
    super::tls(spec.tls.as_ref(), &spec.config)?;
    super::acl(spec.acl.as_ref(), &spec.config)?;
    if spec.broker_role == BrokerRole::SyncMaster && spec.replicas < 2 {
        return Err(invalid(
            "brokerRole SYNC_MASTER needs a slave to acknowledge sends: replicas must be at least 2 (or use ASYNC_MASTER)",
        ));
    }
    let addresses = addresses(bg)?;
    if namesrv_addr.is_empty() {
        return Err(invalid(
            "no name server: set nameServer.name or nameServer.address",
        ));
    }
    Ok(ValidatedBrokerGroup {
        group: bg,
        name: name.to_string(),
        broker_name: spec.broker_name.clone().unwrap_or_else(|| name.to_string()),
        namesrv_addr: namesrv_addr.to_string(),
        master: master_ordinal(bg),
        replicas: kept_replicas(bg),
        partition: roll_partition(bg),
        addresses,
    })
}

/// `spec.addressing`, resolved.
fn addresses(bg: &BrokerGroup) -> Result<Addresses<'_>, SpecError> {
    let a = &bg.spec.addressing;
    let mut out = Addresses::default();
    match a.mode {
        AddressMode::PodIp => out.ip1_from_pod = true,
        AddressMode::Interface => {
            let iface = a
                .interface
                .clone()
                .filter(|i| !i.is_empty())
                .ok_or_else(|| invalid("addressing.mode Interface needs addressing.interface"))?;
            out.props.insert("brokerIP1Interface".into(), iface);
        }
        AddressMode::Cidr => {
            let cidr = a.cidr.clone().filter(|c| c.contains('/')).ok_or_else(|| {
                invalid("addressing.mode Cidr needs addressing.cidr like 10.20.0.0/16")
            })?;
            out.props.insert("brokerIP1Cidr".into(), cidr);
        }
        AddressMode::External => {
            out.external = Some(external::validate(a.external.as_ref(), kept_replicas(bg))?);
        }
    }
    match a.ha_interface.clone().filter(|i| !i.is_empty()) {
        Some(iface) => {
            out.props.insert("brokerIP2Interface".into(), iface);
        }
        None => out.ip2_from_pod = true,
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(spec: serde_json::Value) -> BrokerGroup {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "rocketmq.rs/v1alpha1", "kind": "BrokerGroup",
            "metadata": { "name": "g" }, "spec": spec
        }))
        .unwrap()
    }

    #[test]
    fn resolves_defaults_and_addresses() {
        let bg = group(serde_json::json!({
            "nameServer": { "name": "ns" }, "replicas": 2, "storage": { "size": "1Gi" },
            "addressing": { "mode": "Interface", "interface": "net1" }
        }));
        let v = validate(&bg, "g", "ns:9876").unwrap();
        assert_eq!((v.broker_name.as_str(), v.master, v.replicas), ("g", 0, 2));
        assert_eq!(v.addresses.props["brokerIP1Interface"], "net1");
        assert!(!v.addresses.ip1_from_pod && v.addresses.ip2_from_pod);
        assert_eq!(v.external_type(), None);
    }

    #[test]
    fn the_first_failed_check_is_reported() {
        // Both the replica count and the name server are wrong: replicas is checked first.
        let bg = group(serde_json::json!({
            "nameServer": {}, "replicas": 7, "storage": { "size": "1Gi" }
        }));
        assert_eq!(
            validate(&bg, "g", "").unwrap_err().to_string(),
            "invalid spec: replicas must be 1..=5, got 7"
        );
    }

    #[test]
    fn config_that_would_add_lines_is_refused() {
        let with = |config: serde_json::Value| {
            let bg = group(serde_json::json!({
                "nameServer": { "name": "ns" }, "replicas": 1, "storage": { "size": "1Gi" },
                "config": config
            }));
            validate(&bg, "g", "ns:9876")
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        let err = with(serde_json::json!({ "maxMessageSize": "1\nbrokerId=0" })).unwrap_err();
        assert!(
            err.contains("`maxMessageSize` contains a line break"),
            "{err}"
        );
        assert!(with(serde_json::json!({ "a\rb": "1" })).is_err());
        assert!(with(serde_json::json!({ "brokerId=0\nx": "1" })).is_err());
        assert!(with(serde_json::json!({ "x y": "1" })).is_err());
        assert!(with(serde_json::json!({ "x": "😀" })).is_err());
        with(serde_json::json!({ "autoCreateTopicEnable": "false", "a.b_c-d": "x = y #z" }))
            .unwrap();
    }
}
