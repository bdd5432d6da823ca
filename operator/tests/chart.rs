//! The Helm chart lints clean under Helm's own Go SDK (PyPI helm-python-sdk; no helm binary
//! here), renders what it promises for cluster-wide and single-namespace installs, refuses bad
//! values, and every rendered object validates against the Kubernetes schemas. `.ci/run`
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
fn chart_lints_renders_and_validates() {
    let dir = tempfile::tempdir().unwrap();
    let chart = root().join("charts/rocketmq-operator");
    let text = run(Command::new("python3")
        .arg(root().join("operator/tests/chart_check.py"))
        .arg(&chart)
        .arg(dir.path()));
    assert!(text.contains("chart ok"), "{text}");

    let rendered = [
        dir.path().join("defaults.yaml"),
        dir.path().join("namespaced.yaml"),
    ];
    let text = run(Command::new("python3")
        .arg(root().join("operator/tests/validate.py"))
        .arg(root().join("crds"))
        .args(&rendered));
    assert!(text.contains(" 0 failures"), "{text}");
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
