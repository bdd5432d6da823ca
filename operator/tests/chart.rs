//! The Helm charts lint clean under Helm's own Go SDK (PyPI helm-python-sdk; no helm binary
//! here) and render what they promise: the operator chart for cluster-wide and single-namespace
//! installs, the cluster chart's NameServer, BrokerGroups, Topics and ConsumerGroups joined to
//! one cluster. Bad values are refused. Every rendered object validates (custom resources
//! against our CRDs, strictly), and the cluster chart's resources go through the operator's own
//! builders (`render`) into objects that validate against the Kubernetes schemas. `scripts/test-deps`
//! installs helm-python-sdk and kubernetes-validate.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

#[test]
fn charts_lint_render_and_validate() {
    let dir = tempfile::tempdir().unwrap();
    let text = run(Command::new("python3")
        .arg(root().join("operator/tests/chart_check.py"))
        .arg(root().join("charts"))
        .arg(dir.path()));
    assert!(text.contains("charts ok"), "{text}");

    // The cluster chart's custom resources, built into StatefulSets, Services, ... as the
    // operator would build them.
    let built = dir.path().join("built");
    run(Command::new(env!("CARGO_BIN_EXE_render"))
        .arg(&built)
        .arg(dir.path().join("cluster")));
    let rendered = [
        dir.path().join("defaults.yaml"),
        dir.path().join("namespaced.yaml"),
        dir.path().join("multi-namespace.yaml"),
        dir.path().join("dashboard.yaml"),
        dir.path().join("cluster/cluster.yaml"),
        built.join("cluster.yaml"),
    ];
    let text = run(Command::new("python3")
        .arg(root().join("operator/tests/validate.py"))
        .arg(root().join("crds"))
        .args(&rendered));
    // 47 before the operator's admin-credential Secret (one per rendered operator release).
    assert!(text.contains("validated 50 objects, 0 failures"), "{text}");
}

#[test]
fn chart_version_follows_the_workspace() {
    let chart =
        std::fs::read_to_string(root().join("charts/rocketmq-operator/Chart.yaml")).unwrap();
    let meta: serde_yaml::Value = serde_yaml::from_str(&chart).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        meta["appVersion"].as_str(),
        Some(version),
        "Chart.yaml appVersion"
    );
    assert_eq!(
        meta["version"].as_str(),
        Some(version),
        "Chart.yaml version"
    );
}
