//! Every example and every object the builders render validates: built-in kinds against the
//! Kubernetes OpenAPI schemas (PyPI's kubernetes-validate, strict), custom resources against
//! our CRDs with unknown fields rejected. `scripts/test-deps` installs kubernetes-validate.

use std::process::Command;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn validate(files: &[std::path::PathBuf]) {
    let script = root().join("operator/tests/validate.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(root().join("crds"))
        .args(files)
        .output()
        .expect("python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schema validation failed (needs `pip install kubernetes-validate`, which scripts/test-deps does):\n{text}"
    );
    assert!(text.contains("0 failures"), "{text}");
}

fn yaml_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(yaml_under(&p));
        } else if p.extension().and_then(|e| e.to_str()) == Some("yaml")
            && !p.ends_with("kustomization.yaml")
        {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn examples_validate_against_the_crds() {
    validate(&yaml_under(&root().join("examples")));
}

#[test]
fn rendered_objects_validate_against_kubernetes_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_render"))
        .arg(dir.path())
        .arg(root().join("examples"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = yaml_under(dir.path());
    assert!(files.len() >= 3, "{files:?}");
    validate(&files);
}

#[test]
fn crds_validate_against_kubernetes_schemas() {
    validate(&yaml_under(&root().join("crds")));
}
