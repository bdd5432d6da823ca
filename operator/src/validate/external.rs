//! Checks of `addressing.external`: each broker must get an address and port of its own.

use super::{invalid, SpecError};
use crate::build::external::node_port;
use crate::crd::broker_group::{ExternalAccess, ExternalType};

/// Highest port of the default NodePort range.
const NODE_PORT_MAX: i32 = 32767;

/// Checks an `External` spec for a group of `replicas` pods.
pub fn validate(ext: Option<&ExternalAccess>, replicas: i32) -> Result<&ExternalAccess, SpecError> {
    let ext = ext.ok_or_else(|| {
        invalid(
            "addressing.mode External needs addressing.external (type NodePort, LoadBalancer or HostNetwork)",
        )
    })?;
    if let Some(host) = &ext.advertised_host {
        if ext.type_ != ExternalType::NodePort {
            return Err(invalid(
                "addressing.external.advertisedHost applies to NodePort only",
            ));
        }
        if !is_host(host) {
            return Err(invalid(format!(
                "addressing.external.advertisedHost `{host}` is not a host name or IPv4 address"
            )));
        }
    }
    match ext.type_ {
        ExternalType::NodePort => {
            let base = ext.node_port_base.ok_or_else(|| {
                invalid(
                    "addressing.external.nodePortBase is required for NodePort: each broker advertises a fixed port",
                )
            })?;
            let last = node_port(base, replicas - 1);
            if base < 30000 || last > NODE_PORT_MAX {
                return Err(invalid(format!(
                    "node ports {base}..={last} leave the NodePort range 30000..=32767"
                )));
            }
        }
        ExternalType::LoadBalancer | ExternalType::HostNetwork => {
            if ext.node_port_base.is_some() {
                return Err(invalid(
                    "addressing.external.nodePortBase applies to NodePort only",
                ));
            }
        }
    }
    if ext.type_ != ExternalType::LoadBalancer && !ext.load_balancer_source_ranges.is_empty() {
        return Err(invalid(
            "addressing.external.loadBalancerSourceRanges applies to LoadBalancer only",
        ));
    }
    Ok(ext)
}

/// A DNS name or IPv4 address, and nothing else: it becomes a `broker.conf` line.
fn is_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && !host.starts_with(['.', '-'])
        && !host.ends_with(['.', '-'])
}
