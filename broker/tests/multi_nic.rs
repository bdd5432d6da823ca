//! Address selection on a multi-NIC host, for real: a network namespace with two interfaces,
//! and `mqbroker -p` run inside it with `brokerIP1Interface` / `brokerIP1Cidr` /
//! `brokerIP2Interface`. Needs root and iproute2 (CI runs as root; scripts/test-deps installs it).

use std::process::Command;

const MQBROKER: &str = env!("CARGO_BIN_EXE_mqbroker");

struct Netns(String);

impl Netns {
    fn create() -> Netns {
        let name = format!("rmqnic{}", std::process::id());
        let ns = Netns(name.clone());
        let ip = |args: &[&str]| {
            let st = Command::new("ip")
                .args(args)
                .status()
                .expect("iproute2 `ip` is installed");
            assert!(st.success(), "ip {args:?} failed (needs root)");
        };
        ip(&["netns", "add", &name]);
        for (dev, addr) in [("net0", "10.91.1.5/24"), ("net1", "10.92.7.9/16")] {
            // veth pairs (the dummy module is not always there); the peers stay unused.
            let peer = format!("{dev}p");
            ip(&[
                "-n", &name, "link", "add", dev, "type", "veth", "peer", "name", &peer,
            ]);
            ip(&["-n", &name, "addr", "add", addr, "dev", dev]);
            ip(&["-n", &name, "link", "set", dev, "up"]);
        }
        ns
    }

    /// `mqbroker -c <conf> -p` inside the namespace: (success, stdout + stderr).
    fn print_config(&self, conf: &str) -> (bool, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broker.conf");
        std::fs::write(&path, conf).unwrap();
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0, MQBROKER, "-c"])
            .arg(&path)
            .arg("-p")
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn advertised_addresses_follow_interface_and_cidr() {
    let ns = Netns::create();
    let (ok, out) = ns.print_config("brokerIP1Interface=net1\n");
    assert!(ok, "{out}");
    assert!(out.lines().any(|l| l == "brokerIP1=10.92.7.9"), "{out}");

    let (ok, out) = ns.print_config("brokerIP1Cidr=10.91.0.0/16\nbrokerIP2Interface=net1\n");
    assert!(ok, "{out}");
    assert!(out.lines().any(|l| l == "brokerIP1=10.91.1.5"), "{out}");
    assert!(out.lines().any(|l| l == "brokerIP2=10.92.7.9"), "{out}");

    let (ok, out) = ns.print_config("brokerIP1Interface=eth9\n");
    assert!(!ok, "a missing interface must stop the broker");
    assert!(
        out.contains("eth9") && out.contains("net0=10.91.1.5"),
        "{out}"
    );

    let (ok, out) = ns.print_config("brokerIP1Cidr=172.31.0.0/16\n");
    assert!(!ok && out.contains("172.31.0.0/16"), "{out}");
}
